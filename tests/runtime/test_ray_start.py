"""The cluster path as users run it: ``ray start --head`` with token authentication.

A real head (``ray start --head --block`` in a subprocess, on this machine, its own
port, temp dir and home, so its token is not the machine's) and a second node
(``ray start --address``); the driver is the ``clipasync`` command in a subprocess,
as a user would run it. Every process started here is ended by its process id.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SRC = Path(__file__).resolve().parents[2] / "src"
TINY = (
    "name: tiny\n"
    "seeds: [0]\n"
    "problem: {name: least_squares, num_samples: 100, dim: 4, batch_size: 8}\n"
    "timing: {kind: two_speed, num_fast: 2, num_slow: 1, slow_time: 3}\n"
    "methods:\n"
    "  clipped: {policy: async_sgd, stepsize: [0.5], max_norm: [1.0]}\n"
    "stop: {max_time: 10}\n"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_bin() -> str:
    found = Path(sys.executable).with_name("ray")
    return str(found) if found.exists() else str(shutil.which("ray"))


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(
        HOME=str(home),
        PYTHONPATH=f"{SRC}{os.pathsep}{env.get('PYTHONPATH', '')}",
        RAY_USAGE_STATS_ENABLED="0",
        **extra,
    )
    return env


def _wait_listening(port: int, proc: subprocess.Popen[bytes], limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, "ray start exited early"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listening on {port} after {limit} s")


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` ends its node
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A token-authenticated head and a second node; yields (address, home)."""
    root = tmp_path_factory.mktemp("cluster")
    home = root / "home"
    (home / ".ray").mkdir(parents=True)
    # A token under ~/.ray, as any earlier local Ray leaves one: `ray start` then
    # turns authentication on (Ray 2.60).
    (home / ".ray" / "auth_token").write_text("clipasync-test-" + "0" * 40)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    # Ray 2.60 in cluster mode replaces a loopback node address by the machine's
    # own (and refuses a second node on loopback), so the nodes register under that
    # address; the driver reaches the head through 127.0.0.1, on this machine only.
    common = ["--block", "--num-cpus=1"]
    procs = [
        subprocess.Popen(
            [
                *(_ray_bin(), "start", "--head", f"--port={port}"),
                *("--include-dashboard=false", f"--temp-dir={root / 'ray'}", *common),
            ],
            env=_env(home),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        _wait_listening(port, procs[0], 60)
        procs.append(
            subprocess.Popen(
                [_ray_bin(), "start", f"--address={address}", *common],
                # Joining a node sends the token only in token mode (Ray 2.60).
                env=_env(home, RAY_AUTH_MODE="token"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        yield address, home
    finally:
        for p in reversed(procs):
            _end(p)


def _clipasync(args: list[str], env: dict[str, str], timeout: float) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "clipasync.cli.app", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _nodes_alive(address: str, env: dict[str, str]) -> int:
    code = (
        "import ray;from clipasync.runtime import start_ray;"
        f"start_ray({address!r});print(sum(n['Alive'] for n in ray.nodes()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    return int(out.stdout.strip().splitlines()[-1])


def test_run_joins_a_token_cluster_of_two_nodes(head, tmp_path):
    address, home = head
    env = _env(home)  # RAY_AUTH_MODE unset: the token under ~/.ray is found
    deadline = time.monotonic() + 30
    while _nodes_alive(address, env) < 2:
        assert time.monotonic() < deadline, "second node never joined"
        time.sleep(1)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = tmp_path / "out"
    done = _clipasync(
        [
            *("run", str(config), "--backend", "ray", "--address", address),
            *("--time-unit", "0.02", "--out", str(out), "--no-progress"),
        ],
        env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (summary,) = list((out / "runs").glob("*/summary.json"))
    s = json.loads(summary.read_text())
    assert s["backend"] == "ray" and s["version"] > 0


@pytest.mark.parametrize(
    "case", ["wrong token", "nothing listening", "no token", "bad address"]
)
def test_a_failed_connection_is_one_line_fast_and_writes_nothing(head, tmp_path, case):
    address, home = head
    env = _env(home)
    if case == "wrong token":
        env["RAY_AUTH_TOKEN"] = "not-the-token"
    elif case == "nothing listening":
        address = f"127.0.0.1:{_free_port()}"
    elif case == "no token":
        env = _env(tmp_path)  # a home without ~/.ray/auth_token
    else:
        address = "127.0.0.1"
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = tmp_path / "out"
    t0 = time.monotonic()
    done = _clipasync(
        [
            *("run", str(config), "--backend", "ray", "--address", address),
            *("--out", str(out), "--no-progress"),
        ],
        env,
        timeout=60,
    )
    took = time.monotonic() - t0
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    hint = {
        "wrong token": "auth_token",
        "no token": "auth_token",
        "nothing listening": "ray start --head",
        "bad address": "HOST:PORT",
    }[case]
    assert hint in lines[0]
    assert took < 15  # interpreter and Ray import included; the check is ≤ 2 × 4 s
    assert not out.exists()
