"""Faults of the Ray runtime: an actor dying at start-up or mid-job, a killed driver.

Deaths are scripted by the task itself (``os._exit`` inside the actor, once, marked
by a file), so they happen at a known moment: while the actor is being built, or
during a chosen job. The driver tests run the driver in a subprocess and check, by
process id, that nothing of the Ray it started is left once it is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from clipasync.engine import StopRule, run  # noqa: E402
from clipasync.errors import WorkerFailed  # noqa: E402
from clipasync.policies import AsyncSGD  # noqa: E402
from clipasync.runtime import RayPool, start_ray  # noqa: E402
from clipasync.timing import FixedTimes  # noqa: E402
from clipasync.transforms import scale  # noqa: E402

pytestmark = pytest.mark.ray

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    start_ray(num_cpus=2)
    yield
    ray.shutdown()


def _first_time(marker: Path) -> bool:
    """True once per marker file (atomic create), across processes."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


@dataclass(frozen=True)
class DyingTask:
    """Gradient x - 1; the actor of ``worker`` exits once: while it is built
    (``at_job=None``) or at its ``at_job``-th job."""

    marker: str
    worker: int
    at_job: int | None = None

    def __call__(self) -> Any:
        if self.at_job is None and _first_time(Path(self.marker)):
            os._exit(1)  # dies inside the actor's constructor
        calls = {"n": 0}

        def task(worker: int, x: Any, rng: np.random.Generator) -> Any:
            if worker == self.worker:
                calls["n"] += 1
                if calls["n"] == self.at_job and _first_time(Path(self.marker)):
                    os._exit(1)
            return x - 1.0

        return task


def _run(pool: RayPool, updates: int) -> Any:
    try:
        return run(
            AsyncSGD(scale(0.1)),
            pool,
            np.zeros(3),
            stop=StopRule(max_updates=updates),
            rng=np.random.default_rng(0),
        )
    finally:
        pool.close()


@pytest.mark.parametrize("workers_per_actor", [1, 2])
def test_an_actor_that_dies_while_starting_is_replaced(tmp_path, workers_per_actor):
    pool = RayPool(
        DyingTask(str(tmp_path / "died"), worker=0),
        timing=FixedTimes((1.0, 1.0, 2.0)),
        time_unit_s=0.01,
        workers_per_actor=workers_per_actor,
    )
    assert (tmp_path / "died").exists() and pool.failures == 1
    assert pool.startup_s > 0
    res = _run(pool, 12)
    assert res.version == 12 and pool.failures == 1
    # Every worker, the replaced one included, contributed.
    assert set(res.recorder.arrival_arrays()["worker"].tolist()) == {0, 1, 2}


@pytest.mark.parametrize("workers_per_actor", [1, 3])
def test_an_actor_that_dies_mid_job_is_replaced_and_its_jobs_resubmitted(
    tmp_path, workers_per_actor
):
    pool = RayPool(
        DyingTask(str(tmp_path / "died"), worker=1, at_job=3),
        timing=FixedTimes((1.0, 1.0, 2.0)),
        time_unit_s=0.01,
        workers_per_actor=workers_per_actor,
    )
    res = _run(pool, 30)
    rows = res.recorder.arrival_arrays()
    assert res.version == 30 and pool.failures == 1
    assert rows["version"].tolist() == list(range(30))  # nothing lost or doubled
    assert len(set(rows["job"].tolist())) == 30
    # x_k = x_{k-1} - 0.1 (x_v - 1): the run is the same sequence of updates.
    assert np.all(np.isfinite(res.params))


def test_a_resubmitted_job_of_the_in_place_server_sees_its_own_version(tmp_path):
    # The in-place buffer moves on while the dead actor's job waits to be redone;
    # the resubmitted job must still compute at the model it was dispatched with.
    # Worker 1 dies in its second job; worker 0 (its own actor) updates the model
    # while the job runs and while the replacement actor starts.
    pool = RayPool(
        DyingTask(str(tmp_path / "died"), worker=1, at_job=2),
        timing=FixedTimes((4.0, 6.0)),
        time_unit_s=0.01,
        in_place=True,
        workers_per_actor=1,
    )
    x0 = pool.model(np.zeros(3, dtype=np.float32))
    try:
        res = run(
            AsyncSGD(scale(0.1)),
            pool,
            x0,
            stop=StopRule(max_updates=120),
            rng=np.random.default_rng(0),
        )
    finally:
        pool.close()
    assert pool.failures == 1
    rows = res.recorder.arrival_arrays()
    assert int((rows["worker"] == 1).sum()) >= 3  # the resubmitted job arrived
    # Replayed from the records: x_{k+1} = x_k - 0.1 (x_{k - delay_k} - 1), in the
    # float32 operations the worker (x - 1.0) and the policy (x - g * 0.1) perform.
    xs = [np.zeros(3, dtype=np.float32)]
    for k, delay in enumerate(rows["delay"].tolist()):
        g = xs[k - int(delay)] - 1.0
        xs.append(xs[-1] - g * 0.1)
    assert np.asarray(res.params).tobytes() == xs[-1].tobytes()
    assert int(rows["delay"].max()) > 0  # stale jobs were part of the run


def test_an_actor_that_never_stops_dying_at_start_up_is_reported(tmp_path):
    @dataclass(frozen=True)
    class AlwaysDies:
        def __call__(self) -> Any:
            os._exit(1)

    with pytest.raises(WorkerFailed, match="died 2 times in a row"):
        RayPool(AlwaysDies(), num_workers=1, max_consecutive_failures=1)


def test_a_task_that_raises_while_building_is_reported_not_retried():
    @dataclass(frozen=True)
    class Broken:
        def __call__(self) -> Any:
            raise ModuleNotFoundError("No module named 'my_models'")

    pool_failed = pytest.raises(WorkerFailed, match="No module named 'my_models'")
    with pool_failed:
        RayPool(Broken(), num_workers=2)


def test_start_up_is_bounded(tmp_path):
    with pytest.raises(WorkerFailed, match="not ready after"):
        RayPool(
            DyingTask(str(tmp_path / "m"), worker=0, at_job=1),
            num_workers=2,
            actor_options={"resources": {"no_such_resource": 1}},
            ready_timeout_s=1.0,
        )


DRIVER = """
import sys, time
from clipasync.runtime import ProblemTask, RayPool, start_ray
from clipasync.timing import FixedTimes
start_ray(num_cpus=1)
task = ProblemTask.of("least_squares", num_samples=50, dim=3, batch_size=5)
pool = RayPool(task, timing=FixedTimes((1.0, 1.0)))
print("ready", flush=True)
time.sleep(120)
"""


def _tree(root: int) -> set[int]:
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            parents.setdefault(ppid, []).append(int(name))
    out, stack = set(), [root]
    while stack:
        pid = stack.pop()
        out.add(pid)
        stack.extend(parents.get(pid, []))
    return out


def _alive(pids: set[int]) -> set[int]:
    return {p for p in pids if Path(f"/proc/{p}").exists()}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["TERM", "KILL"])
def test_a_killed_driver_leaves_no_ray_process_behind(sig):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert driver.stdout is not None
        while (line := driver.stdout.readline()) and line.strip() != "ready":
            pass
        assert line.strip() == "ready"
        time.sleep(1.0)  # the reaper records the agents every 0.5 s
        started = _tree(driver.pid) - {driver.pid}
        assert len(started) >= 4  # GCS, raylet, agents, two actors, ...
        driver.send_signal(sig)
        driver.wait(30)
        deadline = time.monotonic() + 15
        while _alive(started) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _alive(started)
        names = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:60] for p in left}
        assert not left, names
    finally:
        if driver.poll() is None:
            driver.kill()
