"""Read an experiment file: YAML, profiles, ``--set`` overrides, then validation.

Profiles: a file may hold ``profiles: {quick: {dotted.key: value, ...}, full: {...}}``
and ``default_profile: quick``. ``load_config(path, profile="full")`` (the CLI's
``--profile full``) applies the named profile's overrides to the file, then the
``--set`` overrides; without ``--profile`` the ``default_profile`` is applied, and a
file without one runs as written. A profile key names a dotted path
(``problem.subset``) or a whole top-level section (``sweep: {timing.slow_time: [4]}``:
sweep keys contain dots, so replace the sweep as a whole).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clipasync.errors import ConfigError
from clipasync.experiments.safe_yaml import MAX_TEXT, load_yaml
from clipasync.experiments.schema import ExperimentConfig, set_dotted, validate_config


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key.sub=value`` and parse the value as YAML.

    Raises:
        ConfigError: If there is no ``=`` or the value is not valid YAML (read by
            :func:`~clipasync.experiments.safe_yaml.load_yaml`: bounded aliases and
            nesting, no repeated keys).
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"bad override {text!r}: expected key.sub=value")
    return key, load_yaml(value, f"override {text[:80]!r}")


def apply_profile(raw: dict[str, Any], profile: str | None = None) -> None:
    """Apply a profile of ``raw['profiles']`` in place and drop the profile keys.

    Args:
        raw: Parsed experiment file (modified).
        profile: Profile name; ``None`` uses ``default_profile`` if the file has one.
            The chosen name is stored as ``raw['profile']``.

    Raises:
        ConfigError: If the profile is unknown or malformed.
    """
    profiles = raw.pop("profiles", None) or {}
    default = raw.pop("default_profile", None)
    if not isinstance(profiles, dict):
        raise ConfigError("config error at profiles: must be a mapping name -> {...}")
    name = profile if profile is not None else default
    if name is None:
        return
    if name not in profiles:
        known = ", ".join(map(str, profiles)) or "none defined"
        raise ConfigError(f"config error: unknown profile {name!r} (profiles: {known})")
    settings = profiles[name] or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"config error at profiles.{name}: must be a mapping")
    for key, value in settings.items():
        set_dotted(raw, str(key), value)
    raw["profile"] = str(name)


def load_config(
    path: str | Path,
    overrides: list[str] | None = None,
    profile: str | None = None,
    root: str | Path | None = None,
) -> ExperimentConfig:
    """Read, override and validate an experiment file.

    Args:
        path: YAML file.
        overrides: ``key.sub=value`` strings applied before validation; values are
            parsed as YAML (``--set methods.clipped.max_norm=[1,2]``).
        profile: Profile of the file's ``profiles`` to apply before ``overrides``
            (default: the file's ``default_profile``, if any).
        root: Folder of a user problem's modules and relative data paths
            (default: the file's folder; see :func:`set_root`).

    Raises:
        ConfigError: If the file is missing, not YAML, or invalid (one line).
    """
    p = Path(path)
    try:
        if p.exists() and not p.is_file():
            raise ConfigError(f"cannot read config {p}: not a regular file")
        with open(p, "rb") as fh:  # bounded: /dev/zero is not a config
            text = fh.read(MAX_TEXT + 1).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config error: {p}: not UTF-8 text (byte {exc.start})"
        ) from None
    raw = load_yaml(text, str(p))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config error: {p} must hold a mapping")
    apply_profile(raw, profile)
    for text_override in overrides or []:
        key, value = parse_override(text_override)
        set_dotted(raw, key, value)
    set_root(raw, p.parent if root is None else Path(root))
    return validate_config(raw)


#: Problems whose modules and data files lie beside the config (``root``).
USER_PROBLEMS = ("factory", "torch")


def set_root(raw: dict[str, Any], folder: Path) -> None:
    """Give a user problem (``factory:`` or ``name: torch``) ``root: <folder>``.

    ``root`` is where its modules are imported from and its relative data paths
    resolve: the config file's folder, unless the file sets ``root`` itself. It is
    not part of the run ids (:meth:`~clipasync.experiments.grid.RunSpec.settings`),
    so moving the experiment's folder keeps finished runs.
    """
    problem = raw.get("problem")
    if not isinstance(problem, dict) or "root" in problem:
        return
    if "factory" in problem or problem.get("name") in USER_PROBLEMS:
        problem["root"] = str(folder.expanduser().resolve())


def saved_root(out_dir: str | Path) -> str | None:
    """The user problem's ``root`` recorded in a run directory's resolved config.

    Read as data (YAML), nothing is imported: a resumed run keeps the folder it
    started from, not the run directory its source copy lies in.
    """
    path = Path(out_dir) / "config.resolved.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    if len(text) > MAX_TEXT:
        raise ConfigError(f"{path}: larger than {MAX_TEXT} characters")
    resolved = load_yaml(text, str(path))
    problem = resolved.get("problem") if isinstance(resolved, dict) else None
    root = problem.get("root") if isinstance(problem, dict) else None
    if root is not None and not isinstance(root, str):
        raise ConfigError(f"{path}: problem.root must be a folder name")
    return root or None
