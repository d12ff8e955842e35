"""Faults of a simulator experiment, through the real command line: the driver
killed outright (no worker process may live on), two runs on one ``--out`` (the
second is refused while the first holds it; a crashed run's lock is no lock),
and Ctrl-C (one line naming the results and how to continue, exit 130)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.cli.fuzz_corpus import BASE, BASE_TEXT
from tests.cli.sandbox import ENTRY, SRC, run_cli

#: Four runs of ~10^6 time units each (minutes of work): long enough to kill.
LONG = {
    **BASE,
    "seeds": [0, 1, 2, 3],
    "stop": {"max_time": 1_000_000},
    "eval_every": None,
    "workers": 2,
}


def _start(root: Path, out: str = "out") -> subprocess.Popen[str]:
    (root / "long.yaml").write_text(
        yaml.safe_dump({k: v for k, v in LONG.items() if v is not None})
    )
    env = {**os.environ, "PYTHONPATH": SRC, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            ENTRY,
            "run",
            "long.yaml",
            "--out",
            out,
            "--no-progress",
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own session: every descendant is findable
        # A shell starting this suite in the background ignores SIGINT, and a
        # child inherits that: give the driver the default, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _session(sid: int) -> list[int]:
    """Pids of the live (not zombie) processes of session ``sid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


def _wait(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_killing_the_driver_ends_its_worker_processes(tmp_path: Path) -> None:
    driver = _start(tmp_path)
    try:
        # driver + forkserver + 2 workers (+ the resource tracker)
        assert _wait(lambda: len(_session(driver.pid)) >= 4, 60), driver.stderr
        assert _wait(lambda: (tmp_path / "out" / "runs").is_dir(), 30)
        driver.kill()
        driver.wait(10)
        assert _wait(lambda: _session(driver.pid) == [], 10), _session(driver.pid)
    finally:
        for pid in _session(driver.pid):
            os.kill(pid, signal.SIGKILL)
    assert not list((tmp_path / "out" / "runs").glob("*/summary.json"))


@pytest.mark.slow
def test_a_second_run_on_the_same_out_is_refused_then_ctrl_c(tmp_path: Path) -> None:
    first = _start(tmp_path)
    try:
        lock = tmp_path / "out" / ".lock"
        assert _wait(lambda: lock.is_file() and lock.read_text().strip(), 60)
        (tmp_path / "cfg.yaml").write_text(BASE_TEXT)
        second = run_cli(["run", "cfg.yaml", "--out", "out", "--no-progress"], tmp_path)
        assert second.rc == 2
        assert second.stderr.strip() == (
            f"error: out is in use by another run (pid {first.pid}); wait for it "
            "to finish or choose another --out"
        )
        first.send_signal(signal.SIGINT)  # what Ctrl-C sends
        _, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("interrupted: finished runs are kept in out; run the")
    assert "Traceback" not in err


@pytest.mark.slow
def test_the_lock_of_a_killed_run_is_no_lock(tmp_path: Path) -> None:
    first = _start(tmp_path)
    try:
        lock = tmp_path / "out" / ".lock"
        assert _wait(lambda: lock.is_file() and lock.read_text().strip(), 60)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    (tmp_path / "cfg.yaml").write_text(BASE_TEXT)
    again = run_cli(["run", "cfg.yaml", "--out", "out", "--no-progress"], tmp_path)
    assert again.rc == 0, again.stderr
    assert again.stdout.strip() == "out"
