"""The settings a Ray experiment keeps in ``backend.json`` for ``clipasync
resume``, read back as data: each field checked for type and range, and the
cluster address checked to answer within a few seconds before Ray is asked to join
it (a tampered or stale address would otherwise make ``resume`` wait for ever).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from clipasync.errors import ConfigError
from clipasync.io import read_json

#: How long a cluster address may take to accept a connection.
_ADDRESS = re.compile(
    r"(?:ray://)?([A-Za-z0-9.\-]{1,253}|\[[0-9a-fA-F:]{2,45}\]):(\d{1,5})"
)


def read_backend_settings(path: Path) -> dict[str, Any]:
    """``backend.json`` of a Ray experiment, every field checked.

    Raises:
        ConfigError: ``<path>: <field>: <what is wrong>``.
    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not Ray settings (a JSON object is expected)")

    def bad(field: str, want: str) -> ConfigError:
        got = str(data.get(field))[:60]
        return ConfigError(f"{path}: {field}: must be {want} (got {got!r})")

    address = data.get("address")
    if address is not None and not (
        isinstance(address, str) and (address == "auto" or _ADDRESS.fullmatch(address))
    ):
        raise bad("address", "HOST:PORT, auto or null")
    unit = data.get("time_unit_s")
    if isinstance(unit, bool) or not isinstance(unit, int | float):
        raise bad("time_unit_s", "a number of seconds")
    if not (math.isfinite(unit) and 1e-6 <= unit <= 3600):
        raise bad("time_unit_s", "a number of seconds in [1e-6, 3600]")
    if not isinstance(data.get("inject_delays"), bool):
        raise bad("inject_delays", "true or false")
    every = data.get("checkpoint_every")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise bad("checkpoint_every", "an integer >= 1")
    overrides = data.get("overrides", [])
    if not isinstance(overrides, list) or not all(
        isinstance(o, str) and len(o) < 10_000 for o in overrides
    ):
        raise bad("overrides", "a list of key=value texts")
    if not isinstance(data.get("profile"), str | None):
        raise bad("profile", "a profile name or null")
    return data
