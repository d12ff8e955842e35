"""Problems by import path: ``problem: {factory: "my_pkg.problems:make", args: {...}}``.

The convention is Hydra's ``_target_``: ``"module.sub:attr"`` (or
``"module.sub.attr"``) names a callable that the config's ``args`` are passed to
as keyword arguments; it must return an object satisfying the
:class:`~clipasync.problems.base.Problem` protocol (``dim``, ``name``,
``initial_point``, ``loss``, ``grad``, ``stochastic_grad``, ``evaluate``).

Where the module is found: ``root`` (the config file's folder, which the
experiment loader fills in) is put first on ``sys.path`` before the import, in
this process and in every process that builds the problem from its config (a
spawned worker process, a Ray actor), so a module lying next to the config
imports everywhere without installing it. On a Ray cluster whose nodes do not
share that folder the experiment layer ships it as the job's ``working_dir``
(the actor's working directory, also on its ``sys.path``).

Every failure (no such module, no such attribute, not callable, the factory
raising, an object that is not a problem) is one :class:`ConfigError` line that
names the import path and what was wrong.

Importing user code is what the user asked for by writing the config; a results
directory never triggers it: reports read the saved records only.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from clipasync.errors import ConfigError
from clipasync.problems.base import Problem

#: Methods and attributes a problem must have (the ``Problem`` protocol).
REQUIRED = (
    "dim",
    "name",
    "initial_point",
    "loss",
    "grad",
    "stochastic_grad",
    "evaluate",
)

#: Problems handed over as objects (``clipasync.api``), keyed by :func:`given_key`;
#: they live in this process only.
GIVEN: dict[str, Problem] = {}


def add_root(root: str | None) -> None:
    """Put ``root`` first on ``sys.path`` (once) so modules beside the config import.

    A root that does not exist here (a Ray node without the config's folder) is
    skipped: the job's ``working_dir`` is on the path there instead.
    """
    if root and Path(root).is_dir() and root not in sys.path:
        sys.path.insert(0, root)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def import_target(path: object, root: str | None = None, what: str = "factory") -> Any:
    """Return the object named ``"module.sub:attr"`` (or ``"module.sub.attr"``).

    Raises:
        ConfigError: One line naming ``path`` and what went wrong.
    """
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{what} must be an import path 'module:attr', got {path!r}")
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{what} {path!r}: expected an import path 'module:attr'")
    add_root(root)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        where = f" (searched the config folder {root} and sys.path)" if root else ""
        raise ConfigError(
            f"{what} {path!r}: no module named {exc.name or module_name!r}{where}"
        ) from None
    except Exception as exc:  # the user's module failed at import time
        raise ConfigError(
            f"{what} {path!r}: importing {module_name!r} raised {_one_line(exc)}"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{what} {path!r}: {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj


def call_user(path: str, fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """Call ``fn(**kwargs)``; anything it raises becomes one ConfigError line."""
    try:
        return fn(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{path!r}: {exc}") from None
    except Exception as exc:
        raise ConfigError(f"{path!r} raised {_one_line(exc)}") from None


def check_problem(obj: object, path: str) -> Problem:
    """Return ``obj`` if it satisfies the Problem protocol, else raise one line.

    ``dim`` must be a positive integer and ``initial_point()`` a vector of that
    length.
    """
    missing = [m for m in REQUIRED if not hasattr(obj, m)]
    if missing:
        raise ConfigError(
            f"factory {path!r} returned {type(obj).__name__}, not a problem: it has "
            f"no {', '.join(missing)} (see clipasync.problems.base.Problem)"
        )
    problem: Any = obj
    dim = problem.dim
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"factory {path!r}: dim must be an integer >= 1, got {dim!r}")
    shape = getattr(problem.initial_point(), "shape", None)
    if shape != (dim,):
        raise ConfigError(
            f"factory {path!r}: initial_point() has shape {shape}, expected ({dim},)"
        )
    checked: Problem = problem
    return checked


def imported_problem(
    factory: str, args: Mapping[str, Any] | None = None, root: str | None = None
) -> Problem:
    """Your own problem: ``factory(**args)``, the factory named by an import path.

    Args:
        factory: ``"module.sub:callable"``.
        args: Its keyword arguments (the config's ``args``).
        root: Folder put first on ``sys.path`` (the config file's folder).

    Raises:
        ConfigError: One line naming the import path and what was wrong.
    """
    if args is not None and not isinstance(args, Mapping):
        raise ConfigError(f"factory {factory!r}: args must be a mapping, got {args!r}")
    fn = import_target(factory, root)
    if not callable(fn):
        raise ConfigError(
            f"factory {factory!r} is not callable (got {type(fn).__name__})"
        )
    return check_problem(call_user(factory, fn, dict(args or {})), factory)


def given_key(problem: Problem) -> str:
    """A stable key for a problem object: its name and a hash of its x_0 (so the
    run ids of the same problem are the same in every session)."""
    x0 = np.ascontiguousarray(problem.initial_point())
    digest = hashlib.sha256(x0.tobytes() + str(x0.dtype).encode()).hexdigest()[:12]
    return f"{problem.name}-{digest}"


def given(key: str) -> Problem:
    """The factory of a problem object registered in :data:`GIVEN` (this process).

    Raises:
        ConfigError: If no such object was registered here (it lives in the
            process that registered it: run such problems in-process, on the
            simulator).
    """
    if key not in GIVEN:
        raise ConfigError(
            f"problem object {key!r} is not registered in this process; an "
            "in-memory problem runs in-process on the simulator only (pass a "
            "factory import path for worker processes or Ray)"
        )
    return GIVEN[key]
