"""Reports: analysis of a run directory, markdown, plots, and the hp / noise /
theory / compare tables (floor 5)."""

from clipasync.reports.report import build_report

__all__ = ["build_report"]
