"""Exceptions raised by clipasync.

One small hierarchy so that callers can catch everything from the library with
``ClipasyncError`` and user mistakes with ``ConfigError`` (also a ``ValueError``).
"""

from __future__ import annotations


class ClipasyncError(Exception):
    """Base class of every error raised on purpose by clipasync."""


class ConfigError(ClipasyncError, ValueError):
    """An invalid configuration or hyperparameter; the message names the field."""


class SimulationExhausted(ClipasyncError):
    """A pool was asked for the next arrival while no job is in flight."""


class WorkerFailed(ClipasyncError):
    """A worker died and could not be replaced."""


class ClusterUnreachable(ClipasyncError):
    """The driver could not join a Ray cluster; the message says what to do."""


class HyperparameterError(ConfigError):
    """A hyperparameter out of its range; ``field`` names it (dotted when nested).

    ``str(error)`` is ``"<field>: <detail>"``, e.g. ``max_norm: must be > 0 (got -1)``;
    the experiment layer prefixes the YAML path of the method.
    """

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(field, detail)
        self.field = field
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}"

    def within(self, parent: str) -> HyperparameterError:
        """Return the same error for the field nested under ``parent``."""
        return HyperparameterError(f"{parent}.{self.field}", self.detail)
