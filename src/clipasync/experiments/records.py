"""Checks on what a report reads back from a run directory, which is data someone
may have edited or sent: run ids that stay inside ``runs/``, and summaries whose
fields have the types and ranges the reports rely on.

A tampered record is one :class:`~clipasync.errors.ConfigError` naming the file
and the field (``runs/<id>/summary.json: sim_time: must be a number >= 0 (got
'abc')``), never a ``KeyError`` deep in a plot.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from clipasync.errors import ConfigError
from clipasync.experiments.limits import limit

#: A run id as :func:`clipasync.experiments.grid.make_run_id` writes it.
RUN_ID = re.compile(r"[A-Za-z0-9_=+\-][A-Za-z0-9_.+\-=]{0,254}")

_TEXT = ("run_id", "method", "policy", "stop_reason")
_MAPPINGS = ("hyper", "counts", "final", "initial", "problem", "timing", "stop")
_TIMES = ("time_to_target", "first_hit", "robust_hit", "censor_time", "sim_time")
_OPTIONAL_NUMBERS = ("mean_delay", "frac_clipped", "mean_pre_clip_norm", "wall_time")


def check_run_ids(ids: Any, where: Path) -> list[str]:
    """The run index (``runs.json``) as a list of safe run ids.

    Raises:
        ConfigError: If it is not a list of run ids (a name with ``/`` or ``..``
            would read outside ``runs/``) or longer than the run limit.
    """
    if not isinstance(ids, list):
        raise ConfigError(f"{where}: must be a list of run ids")
    if len(ids) > limit("runs"):
        raise ConfigError(f"{where}: more than {limit('runs')} run ids")
    for rid in ids:
        if not isinstance(rid, str) or not RUN_ID.fullmatch(rid):
            raise ConfigError(f"{where}: not a run id: {str(rid)[:80]!r}")
    return list(ids)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_summary(data: Any, where: Path) -> dict[str, Any]:
    """A run's ``summary.json`` with the fields reports read checked.

    Raises:
        ConfigError: ``<where>: <field>: <what is wrong>``.
    """

    def bad(field: str, want: str, got: Any) -> ConfigError:
        return ConfigError(f"{where}: {field}: must be {want} (got {str(got)[:60]!r})")

    if not isinstance(data, dict):
        raise ConfigError(f"{where}: not a run summary (a JSON object is expected)")
    for key in _TEXT:
        if not isinstance(data.get(key), str) or len(data[key]) > 255:
            raise bad(key, "a short text", data.get(key))
    if not RUN_ID.fullmatch(data["run_id"]):
        raise bad("run_id", "a run id", data["run_id"])
    for key in _MAPPINGS:
        if key in data and not isinstance(data[key], dict | None):
            raise bad(key, "a mapping", data[key])
    if "sweep" in data and not isinstance(data["sweep"], dict | None):
        raise bad("sweep", "a mapping", data["sweep"])
    if not isinstance(data.get("stage"), str | None):
        raise bad("stage", "a stage name or null", data.get("stage"))
    seed = data.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise bad("seed", "an integer >= 0", seed)
    if not isinstance(data.get("reached", False), bool):
        raise bad("reached", "true or false", data.get("reached"))
    for key in _TIMES:
        v = data.get(key)
        if v is not None and not (_number(v) and math.isfinite(v) and v >= 0):
            raise bad(key, "a number >= 0 or null", v)
    for key in _OPTIONAL_NUMBERS:
        v = data.get(key)
        if v is not None and not _number(v):
            raise bad(key, "a number or null", v)
    for key in ("version", "largest_delay"):
        v = data.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise bad(key, "an integer >= 0", v)
    for key in ("final", "initial"):
        for name, v in (data.get(key) or {}).items():
            if v is not None and not _number(v):
                raise bad(f"{key}.{name}", "a number or null", v)
    return data
