"""The method registry (clipasync.policies.registry): the six entries, report labels,
values checked once by the parameter classes, FedBuff's server chain."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clipasync.errors import ConfigError, HyperparameterError
from clipasync.experiments import validate_config
from clipasync.experiments.build import build_policy
from clipasync.policies.params import (
    AsyncSGDParams,
    FedAsyncParams,
    FedBuffParams,
    RennalaParams,
    RingmasterParams,
)
from clipasync.policies.registry import (
    entries,
    label,
    lookup,
    names,
    register,
)
from clipasync.transforms.chains import AdaptiveClip, fedbuff_server
from clipasync.types import UpdateContext
from tests.conftest import tiny_experiment


def test_registry_lists_the_seven_methods_and_rejects_a_second_entry() -> None:
    # The first seven, in registration order (later methods append; see below).
    assert names()[:7] == (
        "async_sgd",
        "ringmaster",
        "rennala",
        "minibatch",
        "fedbuff",
        "fedasync",
        "normalized_sgd",
    )
    assert [e.federated for e in entries()[:7]] == [False] * 4 + [True] * 2 + [False]
    assert {"picky_sgd", "mindflayer"} <= set(names())
    assert lookup("fedasync").axes == ("mixing", "local_stepsize", "client_max_norm")
    assert "delay_adaptive" not in lookup("fedbuff").fields  # a recorded constant
    with pytest.raises(ConfigError, match="already registered"):
        register(lookup("rennala"))
    with pytest.raises(ConfigError, match=r"^unknown policy 'sgd'; choose one of: "):
        lookup("sgd")


@pytest.mark.parametrize(
    ("policy", "params", "text"),
    [
        (
            "async_sgd",
            AsyncSGDParams(stepsize=0.5, max_norm=1.0, assign="random"),
            "γ=0.5, c=1, random assignment",
        ),
        (
            "ringmaster",
            RingmasterParams(stepsize=0.25, max_delay=16, delay_adaptive=True),
            "γ=0.25, R=16, delay-adaptive",
        ),
        ("rennala", RennalaParams(stepsize=2.0, batch_size=8), "γ=2, B=8"),
        (
            "fedbuff",
            FedBuffParams(
                stepsize=1.0,
                max_norm=2.0,
                buffer_size=4,
                local_stepsize=0.4,
                client_max_norm=0.1,
                server_momentum=0.5,
                local_steps=5,
            ),
            "γ=1, K=4, η_l=0.4, Q=5, client c=0.1, β=0.5, c=2",
        ),
        (
            "fedasync",
            FedAsyncParams(mixing=0.6, local_stepsize=0.4, assign="random"),
            "α=0.6, η_l=0.4, Q=1, random assignment",
        ),
    ],
)
def test_report_labels(policy: str, params: Any, text: str) -> None:
    assert label(policy, lookup(policy).to_hyper(params)) == text


def test_label_of_an_unknown_policy_lists_its_values() -> None:
    assert label("gone", {"stepsize": 0.5, "max_norm": None, "k": 3}) == (
        "stepsize=0.5, k=3"
    )


def test_values_are_checked_once_by_the_parameter_class() -> None:
    with pytest.raises(HyperparameterError) as info:
        RingmasterParams(stepsize=0.1, max_delay=0)
    assert (info.value.field, info.value.detail) == (
        "max_delay",
        "must be >= 1 (got 0)",
    )
    with pytest.raises(HyperparameterError, match=r"^server_momentum: must be < 1"):
        FedBuffParams(
            stepsize=1.0, buffer_size=2, local_stepsize=0.1, server_momentum=1.0
        )
    with pytest.raises(HyperparameterError, match="not both"):
        AsyncSGDParams(stepsize=0.1, max_norm=1.0, adaptive_clip=AdaptiveClip())
    with pytest.raises(
        HyperparameterError, match=r"^warmup: must be in \[1, window=5\]"
    ):
        AdaptiveClip(window=5, warmup=6)
    # The YAML path is prefixed; nested fields are dotted.
    raw = tiny_experiment(
        {
            "a": {
                "policy": "async_sgd",
                "stepsize": 0.1,
                "adaptive_clip": {"quantile": 2},
            }
        }
    )
    with pytest.raises(ConfigError) as err:
        validate_config(raw)
    assert str(err.value) == (
        "config error at methods.a.adaptive_clip.quantile: must be in (0, 1) (got 2)"
    )


def test_fedbuff_server_is_clip_then_momentum_then_server_stepsize() -> None:
    t = fedbuff_server(2.0, max_norm=1.0, server_momentum=0.5)
    ctx = UpdateContext(step=0, delay=0, worker=-1, num_workers=1)
    g = np.array([3.0, 4.0])  # clipped to [0.6, 0.8]
    state = t.init(np.zeros(2))
    u1, state, info = t.update(g, state, ctx)
    u2, state, _ = t.update(g, state, ctx)
    np.testing.assert_allclose(u1, [1.2, 1.6])  # η_g · clip(g)
    np.testing.assert_allclose(u2, [1.8, 2.4])  # η_g · (β·clip(g) + clip(g))
    assert info["clipped"] == 1.0 and info["stepsize"] == 2.0
    # FedBuff built from its typed point uses that chain.
    point = FedBuffParams(
        stepsize=2.0,
        max_norm=1.0,
        buffer_size=1,
        local_stepsize=0.1,
        server_momentum=0.5,
    )
    server: Any = build_policy("fedbuff", point)
    s = server.server_transform.init(np.zeros(2))
    v1, s, _ = server.server_transform.update(g, s, ctx)
    v2, s, _ = server.server_transform.update(g, s, ctx)
    assert v1.tolist() == u1.tolist() and v2.tolist() == u2.tolist()
