"""RayPool on a two-node Ray cluster on one machine (ray.cluster_utils.Cluster).

Kept apart from tests/runtime/test_ray.py: the cluster needs its own Ray session,
and the module fixture of test_ray.py has shut its session down before this module
runs.
"""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from clipasync.engine import StopRule, run  # noqa: E402
from clipasync.policies import AsyncSGD  # noqa: E402
from clipasync.runtime import ProblemTask, RayPool  # noqa: E402
from clipasync.timing import FixedTimes  # noqa: E402
from clipasync.transforms import scale  # noqa: E402
from tests.conftest import two_node_cluster  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def two_nodes():
    with two_node_cluster() as cluster:
        yield cluster


def test_pool_joins_a_two_node_cluster_by_address(two_nodes):
    task = ProblemTask.of("least_squares", num_samples=100, dim=4, batch_size=8)
    pool = RayPool(
        task,
        timing=FixedTimes((1.0, 1.5)),
        time_unit_s=0.01,
        seed=0,
        address=two_nodes.address,
    )
    try:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        res = run(
            AsyncSGD(scale(0.5)),
            pool,
            np.zeros(4),
            stop=StopRule(max_updates=12),
            rng=np.random.default_rng(0),
        )
    finally:
        pool.close()
    assert res.version == 12
