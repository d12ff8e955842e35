"""Start or join Ray for this process: a private local Ray, or a cluster.

A real run of the asynchronous methods of Erickson & Johansson (2026), "Clipping
Makes Distributed and Federated Asynchronous SGD Robust to Stragglers" (arXiv
2606.13287), keeps its server in the driver and its workers in Ray actors
(:class:`~clipasync.runtime.ray_pool.RayPool`); this module starts the Ray they run
in. Ray is imported here only, lazily, with an install hint when it is missing.

Joining a cluster (``address="HOST:PORT"``):

* **Authentication.** Ray 2.60's ``ray start --head`` turns token authentication on
  when a token exists (``~/.ray/auth_token``, written by any earlier local Ray), but
  a driver given an explicit address sends the token only when
  ``RAY_AUTH_MODE=token`` is set. Here a driver joining a cluster turns token mode
  on whenever a token is available: ``auth_token_path`` (the option), else Ray's own
  ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``. Sending a
  token to a cluster without authentication is harmless; ``RAY_AUTH_MODE`` set by
  the user is respected as it is.
* **Fail fast.** Before ``ray.init``, :func:`check_cluster` opens a TCP connection to
  the address and asks the cluster's GCS for its id, each bounded by a few seconds:
  nothing listening, a wrong address and a refused token each raise
  :class:`~clipasync.errors.ClusterUnreachable` with one line that says what to do
  (``ray.init`` itself would retry for 20–40 s and end in a long traceback).

A local Ray (``address=None``) is ended with its driver: ``ray.init`` registers
``ray.shutdown`` at exit, SIGTERM is turned into a normal exit so that this runs,
and a small reaper process (:mod:`clipasync.runtime._reaper`) ends whatever Ray
processes outlive a driver killed by SIGKILL.

A local Ray also passes objects of up to :data:`INLINE_BYTES` inside its task
messages instead of its shared-memory object store (Ray's
``max_direct_call_object_size``, 100 KiB by default). Measured with bare Ray on a
2-core machine (4 actors, 50 ms jobs, a float32 model sent and a gradient returned
per job): at 400 KB the store's round trips between processes (create, seal,
fetch) cost about 8 ms per job, inline about 3 ms; at 1 MB inline still wins; at
4 MB the store is the faster path. :func:`inline_bytes` says which limit this
process's Ray has.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clipasync.errors import ClusterUnreachable, ConfigError
from clipasync.runtime import _reaper

_INSTALL_HINT = "the Ray backend needs Ray: pip install 'clipasync[ray]'"
#: Bound of each connection check (TCP connect, then the GCS's answer), seconds.
CONNECT_TIMEOUT_S = 4.0
_TOKEN_HELP = (
    "copy the head's ~/.ray/auth_token to this machine (or run `ray get-auth-token` "
    "on the head and export RAY_AUTH_TOKEN=<token>, or pass the token file as "
    "auth_token_path / RAY_AUTH_TOKEN_PATH)"
)
#: Largest object a local Ray started here sends inline (in the task message).
INLINE_BYTES = 1 << 20
#: Ray's own default of ``max_direct_call_object_size``.
_RAY_INLINE_DEFAULT = 100 * 1024
_local: dict[str, Any] = {}  # the GCS address of the local Ray started here


def inline_bytes() -> int:
    """The largest object this process's Ray passes inline: :data:`INLINE_BYTES`
    while the local Ray started by :func:`start_ray` runs, else Ray's own limit
    (its ``RAY_max_direct_call_object_size`` variable, default 100 KiB; a cluster
    started with another ``--system-config`` is not seen here)."""
    ray = import_ray()
    ours = ray.is_initialized() and "gcs" in _local
    if ours and ray.get_runtime_context().gcs_address == _local["gcs"]:
        return INLINE_BYTES
    # Ray's own (lower-case) variable name.
    env = os.environ.get("RAY_max_direct_call_object_size", "")  # noqa: SIM112
    return int(env) if env.isdigit() else _RAY_INLINE_DEFAULT


def import_ray() -> Any:
    """Import and return the ``ray`` module, with an install hint if it is missing."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc
    return ray


@contextlib.contextmanager
def _loopback_node_ip(ray: Any) -> Iterator[None]:
    # Ray 2.60 resolves ``_node_ip_address="127.0.0.1"`` to the machine's external
    # address (and then listens there) unless its cluster mode is off, which is what
    # the RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 switch does; that switch is read once at
    # import time, so it is flipped here around ``ray.init`` only.
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not (sep and host and port.isdigit()):
        raise ConfigError(
            f"a Ray address is HOST:PORT (the head's `ray start --head --port`), "
            f"got {address!r}"
        )
    return host.strip("[]"), int(port)


def _token_file(auth_token_path: str | os.PathLike[str] | None) -> Path | None:
    if auth_token_path is not None:
        return Path(auth_token_path)
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return Path(os.environ["RAY_AUTH_TOKEN_PATH"])
    default = Path.home() / ".ray" / "auth_token"
    return default if default.is_file() else None


def use_cluster_token(auth_token_path: str | os.PathLike[str] | None = None) -> bool:
    """Turn Ray's token mode on for this process when a token is available.

    Returns whether token mode is on. ``auth_token_path`` (a file holding the token)
    wins over ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` and ``~/.ray/auth_token``;
    a ``RAY_AUTH_MODE`` set by the user is left alone.

    Raises:
        ConfigError: If ``auth_token_path`` is not a readable file.
    """
    if auth_token_path is not None:
        path = Path(auth_token_path)
        if not path.is_file():
            raise ConfigError(f"auth_token_path {path} is not a file")
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(path.resolve())
        os.environ.pop("RAY_AUTH_TOKEN", None)
        os.environ["RAY_AUTH_MODE"] = "token"
    elif "RAY_AUTH_MODE" not in os.environ and (
        os.environ.get("RAY_AUTH_TOKEN") or _token_file(None) is not None
    ):
        os.environ["RAY_AUTH_MODE"] = "token"
    _refresh_ray_config()
    return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"


def _refresh_ray_config() -> None:
    if "ray" in sys.modules:  # Ray caches its config: refresh it (as ray.init does)
        from ray._raylet import Config  # type: ignore[attr-defined]

        Config.initialize("")


def check_cluster(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`ClusterUnreachable` unless a Ray head answers at ``address``.

    Two bounded steps: a TCP connection to ``HOST:PORT`` (nothing listening, a
    wrong host), then the GCS's cluster id (a refused token, a port that is not a
    Ray head). Call :func:`use_cluster_token` first. Takes at most about
    ``2 * timeout_s``.
    """
    host, port = _split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterUnreachable(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}): start "
            f"one with `ray start --head --port={port}` on {host}, or pass the "
            "head's address as HOST:PORT"
        ) from None
    ray = import_ray()
    del ray  # imported for its side effects on the config only
    from ray._raylet import GcsClient  # type: ignore[attr-defined]

    outcome: list[BaseException | None] = []

    def probe() -> None:
        try:
            GcsClient(address=f"{host}:{port}").internal_kv_get(
                b"clipasync-probe", None, timeout=timeout_s
            )
            outcome.append(None)
        except BaseException as exc:  # reported in the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        raise ClusterUnreachable(
            f"{address} accepts connections but no Ray head answered within "
            f"{timeout_s:g} s: pass the port of `ray start --head --port` (the GCS), "
            "not a dashboard or client port"
        )
    failure = outcome[0]
    if failure is None:
        return
    if "auth" in type(failure).__name__.lower() or "token" in str(failure).lower():
        mode = os.environ.get("RAY_AUTH_MODE", "unset")
        unset = "unset RAY_AUTH_MODE, or " if mode.lower() == "disabled" else ""
        raise ClusterUnreachable(
            f"the Ray cluster at {address} refused this driver's authentication "
            f"(RAY_AUTH_MODE={mode}): {unset}{_TOKEN_HELP}"
        ) from None
    first = (str(failure).strip().splitlines() or [type(failure).__name__])[0]
    raise ClusterUnreachable(
        f"the Ray head at {address} did not answer ({first}): check the address "
        "and that `ray start --head` is running there"
    ) from None


def ray_init_kwargs(
    address: str | None,
    num_cpus: int | None,
    runtime_env: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The arguments of ``ray.init`` for a cluster or a private local Ray (the one
    place they are assembled)."""
    common: dict[str, Any] = {"configure_logging": False}
    if runtime_env is not None:
        common["runtime_env"] = runtime_env
    if address is not None:
        return {"address": address, **common}
    machine = os.cpu_count() or 1
    cpus = machine if num_cpus is None else num_cpus
    if not (isinstance(cpus, int) and 1 <= cpus <= machine):
        raise ConfigError(
            f"num_cpus must be an integer in [1, {machine}] (this machine), got {cpus}"
        )
    return {
        "address": "local",  # never attach to someone else's Ray on this machine
        "num_cpus": cpus,
        "include_dashboard": False,
        "_node_ip_address": "127.0.0.1",
        "_system_config": {"max_direct_call_object_size": INLINE_BYTES},
        **common,
    }


def _children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(p) for p in text.split()}


def _exit_on_sigterm() -> None:
    # The default SIGTERM action skips atexit, hence ray.shutdown(); a SystemExit
    # runs it. Only where nobody installed a handler, and only in the main thread.
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

        def handler(signum: int, frame: Any) -> None:
            del frame
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, handler)


def _start_local(ray: Any, kwargs: dict[str, Any]) -> None:
    before = _children(os.getpid())
    reaper = None
    if Path("/proc/self/stat").exists():  # Linux: reap what outlives a SIGKILL
        reaper = subprocess.Popen(
            [sys.executable, _reaper.__file__],
            stdin=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    with _loopback_node_ip(ray):
        ray.init(**kwargs)
    _local["gcs"] = ray.get_runtime_context().gcs_address
    _exit_on_sigterm()
    if reaper is not None and reaper.stdin is not None:
        started = _children(os.getpid()) - before - {reaper.pid}
        reaper.stdin.write((" ".join(map(str, sorted(started))) + "\n").encode())
        reaper.stdin.flush()
        _REAPERS.append(reaper)  # its pipe closes when this process ends


_REAPERS: list[subprocess.Popen[bytes]] = []


def start_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    runtime_env: dict[str, Any] | None = None,
    *,
    auth_token_path: str | os.PathLike[str] | None = None,
) -> None:
    """Start or join Ray for this process (no-op if Ray is already initialised).

    Local Ray (``address=None``) is started fresh, never attached to another Ray on
    the machine, with the dashboard off, every server bound to 127.0.0.1, usage
    statistics off and ``num_cpus`` defaulting to the machine's CPU count; it ends
    with this process (exit, SIGTERM or SIGKILL; see the module docstring). An
    ``address`` (``"HOST:PORT"``) joins an existing cluster instead, sending its
    authentication token when one is available (:func:`use_cluster_token`), after
    :func:`check_cluster` confirmed that it answers.

    Never call ``ray stop`` to clean up: it ends every Ray on the machine; this
    process's session ends with ``ray.shutdown()``.

    Args:
        address: Cluster to join, or ``None`` for a private local Ray.
        num_cpus: CPUs of the local Ray (ignored when joining a cluster).
        runtime_env: Ray ``runtime_env`` of this job (e.g. ``working_dir``: the
            user's modules and data shipped to every node).
        auth_token_path: File holding the cluster's token (default: Ray's
            ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``).

    Raises:
        ConfigError: If ``num_cpus`` exceeds the machine's CPU count, or the address
            or token file is malformed.
        ClusterUnreachable: If the cluster cannot be joined (one line: what to do).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is not None and address != "auto":
        _split_address(address)
        use_cluster_token(auth_token_path)
    ray = import_ray()
    if ray.is_initialized():
        return
    kwargs = ray_init_kwargs(address, num_cpus, runtime_env)
    if address is None:
        _start_local(ray, kwargs)
        return
    if address != "auto":
        check_cluster(address)
    host = address.removeprefix("ray://").rsplit(":", 1)[0]
    try:
        if host in ("127.0.0.1", "localhost"):  # a cluster on this machine's loopback
            with _loopback_node_ip(ray):
                ray.init(**kwargs)
        else:
            ray.init(**kwargs)
    except ConnectionError as exc:
        raise ClusterUnreachable(
            f"could not join the Ray cluster at {address} ({exc}): check that "
            "`ray start --head` runs there and this machine can reach every node"
        ) from None
