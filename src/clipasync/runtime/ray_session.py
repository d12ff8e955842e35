"""Start or join Ray for this process: a private local Ray, or a cluster.

A real run of the asynchronous methods of Erickson & Johansson (2026), "Clipping
Makes Distributed and Federated Asynchronous SGD Robust to Stragglers" (arXiv
2606.13287), keeps its server in the driver and its workers in Ray actors
(:class:`~clipasync.runtime.ray_pool.RayPool`); this module starts the Ray they run
in. Ray is imported here only, lazily, with an install hint when it is missing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from clipasync.errors import ConfigError

_INSTALL_HINT = "the Ray backend needs Ray: pip install 'clipasync[ray]'"


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


def start_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    runtime_env: dict[str, Any] | None = None,
) -> None:
    """Start or join Ray for this process (no-op if Ray is already initialised).

    Local Ray (``address=None``) is started fresh, never attached to another Ray on
    the machine, with the dashboard off, every server bound to 127.0.0.1, usage
    statistics off and ``num_cpus`` defaulting to the machine's CPU count. An
    ``address`` (``"HOST:PORT"`` or ``"auto"``) joins an existing cluster instead.

    Never call ``ray stop`` to clean up: it ends every Ray on the machine; this
    process's session ends with ``ray.shutdown()``.

    Args:
        address: Cluster to join, or ``None`` for a private local Ray.
        num_cpus: CPUs of the local Ray (ignored when joining a cluster).
        runtime_env: Ray ``runtime_env`` of this job (e.g. ``working_dir``: the
            user's modules and data shipped to every node).

    Raises:
        ConfigError: If ``num_cpus`` exceeds the machine's CPU count.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = import_ray()
    if ray.is_initialized():
        return
    if address is not None:
        host = address.removeprefix("ray://").rsplit(":", 1)[0]
        if host in ("127.0.0.1", "localhost"):  # a cluster on this machine's loopback
            with _loopback_node_ip(ray):
                ray.init(
                    address=address, configure_logging=False, runtime_env=runtime_env
                )
        else:
            ray.init(address=address, configure_logging=False, runtime_env=runtime_env)
        return
    machine = os.cpu_count() or 1
    cpus = machine if num_cpus is None else num_cpus
    if not (isinstance(cpus, int) and 1 <= cpus <= machine):
        raise ConfigError(
            f"num_cpus must be an integer in [1, {machine}] (this machine), got {cpus}"
        )
    with _loopback_node_ip(ray):
        ray.init(
            address="local",  # never attach to someone else's Ray on this machine
            num_cpus=cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            configure_logging=False,
            runtime_env=runtime_env,
        )
