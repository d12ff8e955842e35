"""The hyperparameters of each server method, its factory and its report label.

One frozen dataclass per method of Erickson & Johansson (2026), "Clipping Makes
Distributed and Federated Asynchronous SGD Robust to Stragglers" (arXiv 2606.13287),
and its baselines; :mod:`clipasync.policies.registry` registers them. Field order is
the order of a run record's ``hyper`` (grid axes first), so records, run ids and their
hashes read as they always have. See :mod:`clipasync.policies.hyper` for the field
metadata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from clipasync.errors import HyperparameterError
from clipasync.policies.async_sgd import Assign, AsyncSGD
from clipasync.policies.base import ServerPolicy
from clipasync.policies.dc_asgd import DelayCompensated
from clipasync.policies.fedasync import FedAsync
from clipasync.policies.fedavg import FedAvg
from clipasync.policies.fedbuff import FedBuff
from clipasync.policies.hyper import (
    at_least,
    axis,
    fmt_value,
    got,
    in_range,
    one_of,
    positive,
    setting,
)
from clipasync.policies.malenia import Malenia
from clipasync.policies.mindflayer import MindFlayer
from clipasync.policies.msync import MSync
from clipasync.policies.picky import PickySGD
from clipasync.policies.rennala import Rennala, SyncMinibatch
from clipasync.policies.ringleader import Ringleader
from clipasync.policies.ringmaster import DelayCount, Ringmaster
from clipasync.policies.staleness import (
    ConstantStaleness,
    StalenessFn,
    make_staleness,
)
from clipasync.transforms.base import GradientTransform, chain
from clipasync.transforms.chains import (
    AdaptiveClip,
    clipped_sgd,
    fedbuff_server,
    momentum_sgd,
)
from clipasync.transforms.normalize import normalize
from clipasync.transforms.stepsizes import scale

_ADAPTIVE = setting(parse=AdaptiveClip.from_config, omit_none=True)
_STALENESS = setting(parse=make_staleness, yaml=str | dict[str, Any] | None)


def _check_step(
    stepsize: float, max_norm: float | None, adaptive: AdaptiveClip | None
) -> None:
    positive("stepsize", stepsize)
    if max_norm is not None:
        positive("max_norm", max_norm, finite=False)
    if adaptive is not None and max_norm is not None:
        raise HyperparameterError(
            "adaptive_clip",
            "give either max_norm or adaptive_clip (its initial_max_norm sets the "
            "starting level), not both",
        )


class _ServerStep:
    """The server step every non-federated method shares: u = γ·clip_c(g), or a
    learned c (``adaptive_clip``), or the delay-adaptive γ (fields of the
    dataclasses below; this class adds behaviour only, so field order is theirs)."""

    stepsize: float
    max_norm: float | None
    delay_adaptive: bool
    adaptive_clip: AdaptiveClip | None

    def _check_step(self) -> None:
        _check_step(self.stepsize, self.max_norm, self.adaptive_clip)

    def transform(self) -> GradientTransform:
        """The server's transform (:func:`clipasync.transforms.chains.clipped_sgd`)."""
        return clipped_sgd(
            self.stepsize,
            max_norm=self.max_norm,
            adaptive=self.adaptive_clip,
            delay_adaptive=self.delay_adaptive,
        )


def _step_label(stepsize: float | None, max_norm: float | None) -> list[str]:
    parts = [f"γ={fmt_value(stepsize)}"] if stepsize is not None else []
    if max_norm is not None:
        parts.append(f"c={fmt_value(max_norm)}")
    return parts


def _tail_label(delay_adaptive: bool, assign: str) -> list[str]:
    parts = ["delay-adaptive"] if delay_adaptive else []
    if assign == "random":
        parts.append("random assignment")
    return parts


def _policy(built: object) -> ServerPolicy[Any]:
    # The frozen policy dataclasses expose ``name`` read-only, which mypy does not
    # accept for the protocol's plain attribute.
    return cast("ServerPolicy[Any]", built)


# ---------------------------------------------------------------------------
# Asynchronous SGD and its synchronous / bounded-delay baselines.


@dataclass(frozen=True, kw_only=True)
class AsyncSGDParams(_ServerStep):
    """Asynchronous SGD, u = γ·clip_c(g) (Algorithm 1; ``assign="random"``:
    Algorithm 2). No ``max_norm``: vanilla ASGD; ``delay_adaptive``: the stepsize
    γ·min(1, n/delay) of Mishchenko et al. (2022); ``adaptive_clip``: a learned c."""

    stepsize: float = field(metadata=axis("g"))
    max_norm: float | None = field(default=None, metadata=axis("c"))
    delay_adaptive: bool = False
    adaptive_clip: AdaptiveClip | None = field(default=None, metadata=_ADAPTIVE)
    assign: Assign = "same"

    def __post_init__(self) -> None:
        self._check_step()
        one_of("assign", self.assign, ("same", "random"))


def build_async_sgd(p: AsyncSGDParams) -> ServerPolicy[Any]:
    return _policy(AsyncSGD(p.transform(), assign=p.assign))


def label_async_sgd(p: AsyncSGDParams) -> str:
    parts = _step_label(p.stepsize, p.max_norm)
    return ", ".join(parts + _tail_label(p.delay_adaptive, p.assign))


@dataclass(frozen=True, kw_only=True)
class RingmasterParams(_ServerStep):
    """Ringmaster ASGD: gradients with delay >= ``max_delay`` (R) are discarded."""

    stepsize: float = field(metadata=axis("g"))
    max_norm: float | None = field(default=None, metadata=axis("c"))
    max_delay: int = field(metadata=axis("R"))
    delay_adaptive: bool = False
    adaptive_clip: AdaptiveClip | None = field(default=None, metadata=_ADAPTIVE)
    cancel_stale: bool = False
    #: What the delay counts; the record keeps the key only when it is not the
    #: default, so run ids of the default are those of earlier versions.
    delay_count: DelayCount | None = field(
        default=None, metadata=setting(omit_none=True)
    )

    def __post_init__(self) -> None:
        self._check_step()
        at_least("max_delay", self.max_delay, 1)
        if self.delay_count is not None:
            one_of("delay_count", self.delay_count, ("applied", "arrivals"))


def build_ringmaster(p: RingmasterParams) -> ServerPolicy[Any]:
    return _policy(
        Ringmaster(
            p.transform(),
            max_delay=p.max_delay,
            cancel_stale=p.cancel_stale,
            delay_count=p.delay_count or "applied",
        )
    )


def label_ringmaster(p: RingmasterParams) -> str:
    parts = [*_step_label(p.stepsize, p.max_norm), f"R={p.max_delay}"]
    if p.delay_count == "arrivals":
        parts.append("delay over arrivals")
    return ", ".join(parts + _tail_label(p.delay_adaptive, "same"))


@dataclass(frozen=True, kw_only=True)
class RennalaParams(_ServerStep):
    """Rennala SGD: one step with the mean of ``batch_size`` (B) fresh gradients.
    ``cancel_stale``: restart every worker at each step (default ``False``, the
    paper's rule: stale jobs finish and are ignored); run records written before
    the option existed ran with ``True`` and read back so."""

    stepsize: float = field(metadata=axis("g"))
    max_norm: float | None = field(default=None, metadata=axis("c"))
    batch_size: int = field(metadata=axis("B"))
    delay_adaptive: bool = False
    adaptive_clip: AdaptiveClip | None = field(default=None, metadata=_ADAPTIVE)
    cancel_stale: bool = field(default=False, metadata=setting(legacy=True))

    def __post_init__(self) -> None:
        self._check_step()
        at_least("batch_size", self.batch_size, 1)


def build_rennala(p: RennalaParams) -> ServerPolicy[Any]:
    return _policy(
        Rennala(p.transform(), batch_size=p.batch_size, cancel_stale=p.cancel_stale)
    )


def label_rennala(p: RennalaParams) -> str:
    parts = [*_step_label(p.stepsize, p.max_norm), f"B={p.batch_size}"]
    if p.cancel_stale:
        parts.append("cancel stale")
    return ", ".join(parts + _tail_label(p.delay_adaptive, "same"))


@dataclass(frozen=True, kw_only=True)
class MinibatchParams(_ServerStep):
    """Synchronous minibatch SGD: one gradient per worker, then one step."""

    stepsize: float = field(metadata=axis("g"))
    max_norm: float | None = field(default=None, metadata=axis("c"))
    delay_adaptive: bool = False
    adaptive_clip: AdaptiveClip | None = field(default=None, metadata=_ADAPTIVE)

    def __post_init__(self) -> None:
        self._check_step()


def build_minibatch(p: MinibatchParams) -> ServerPolicy[Any]:
    return _policy(SyncMinibatch(p.transform()))


def label_minibatch(p: MinibatchParams) -> str:
    parts = _step_label(p.stepsize, p.max_norm)
    return ", ".join(parts + _tail_label(p.delay_adaptive, "same"))


@dataclass(frozen=True, kw_only=True)
class PickyParams(_ServerStep):
    """Picky SGD (Cohen et al. 2021): a gradient is applied only if the iterate moved
    at most ``threshold`` since its job was dispatched, ‖x_k − x_v‖ ≤ threshold."""

    stepsize: float = field(metadata=axis("g"))
    max_norm: float | None = field(default=None, metadata=axis("c"))
    threshold: float = field(metadata=axis("th"))
    delay_adaptive: bool = False
    adaptive_clip: AdaptiveClip | None = field(default=None, metadata=_ADAPTIVE)

    def __post_init__(self) -> None:
        self._check_step()
        positive("threshold", self.threshold, finite=False)


def build_picky(p: PickyParams) -> ServerPolicy[Any]:
    return _policy(PickySGD(p.transform(), threshold=p.threshold))


def label_picky(p: PickyParams) -> str:
    parts = [*_step_label(p.stepsize, p.max_norm), f"θ={fmt_value(p.threshold)}"]
    return ", ".join(parts + _tail_label(p.delay_adaptive, "same"))


def _limits(value: Any) -> tuple[float, ...]:
    """A time-limit list of a YAML file or run record as a tuple of floats."""
    if isinstance(value, (int, float)):
        return (float(value),)
    return tuple(float(v) for v in value)


@dataclass(frozen=True, kw_only=True)
class MindFlayerParams(_ServerStep):
    """MindFlayer SGD (Maranjyan et al. 2024): Rennala's batch of ``batch_size`` (B)
    gradients, each job abandoned and restarted once it runs past ``time_limit``
    (the same t for every worker, a grid axis) or ``time_limits`` (one t_i per
    worker); ``cancel_stale`` restarts every worker at each step (default)."""

    stepsize: float = field(metadata=axis("g"))
    max_norm: float | None = field(default=None, metadata=axis("c"))
    batch_size: int = field(metadata=axis("B"))
    time_limit: float | None = field(default=None, metadata=axis("t"))
    delay_adaptive: bool = False
    adaptive_clip: AdaptiveClip | None = field(default=None, metadata=_ADAPTIVE)
    time_limits: tuple[float, ...] | None = field(
        default=None,
        metadata=setting(parse=_limits, yaml=list[float] | None, omit_none=True),
    )
    cancel_stale: bool = True

    def __post_init__(self) -> None:
        self._check_step()
        at_least("batch_size", self.batch_size, 1)
        if (self.time_limit is None) == (self.time_limits is None):
            raise HyperparameterError(
                "time_limit",
                "give time_limit (one t for every worker) or time_limits (one t_i "
                "per worker), not both",
            )
        if self.time_limit is not None:
            positive("time_limit", self.time_limit, finite=False)
        for t in self.time_limits or ():
            positive("time_limits", t, finite=False)

    @property
    def limits(self) -> tuple[float, ...]:
        """t_i per worker, or the one t."""
        if self.time_limits is not None:
            return self.time_limits
        assert self.time_limit is not None
        return (self.time_limit,)


def build_mindflayer(p: MindFlayerParams) -> ServerPolicy[Any]:
    return _policy(
        MindFlayer(
            p.transform(),
            p.batch_size,
            time_limits=p.limits,
            cancel_stale=p.cancel_stale,
        )
    )


def label_mindflayer(p: MindFlayerParams) -> str:
    parts = [*_step_label(p.stepsize, p.max_norm), f"B={p.batch_size}"]
    if p.time_limit is not None:
        parts.append(f"t={fmt_value(p.time_limit)}")
    else:
        parts.append("t_i=" + "/".join(fmt_value(t) for t in p.limits))
    if not p.cancel_stale:
        parts.append("stale jobs finish")
    return ", ".join(parts + _tail_label(p.delay_adaptive, "same"))


# ---------------------------------------------------------------------------
# Federated methods: a job is local training on the client's shard.


def _check_clients(
    local_stepsize: float, client_max_norm: float | None, local_steps: int
) -> None:
    positive("local_stepsize", local_stepsize)
    if client_max_norm is not None:
        positive("client_max_norm", client_max_norm, finite=False)
    at_least("local_steps", local_steps, 1)


def _client_label(
    local_stepsize: float, local_steps: int, client_max_norm: float | None
) -> list[str]:
    parts = [f"η_l={fmt_value(local_stepsize)}", f"Q={local_steps}"]
    if client_max_norm is not None:
        parts.append(f"client c={fmt_value(client_max_norm)}")
    return parts


@dataclass(frozen=True, kw_only=True)
class FedBuffParams:
    """FedBuff (Nguyen et al. 2022): the server buffers ``buffer_size`` (K) client
    deltas and steps with η_g (``stepsize``) on their clipped (``max_norm``) mean,
    through heavy-ball ``server_momentum`` when set; clients run ``local_steps`` of
    SGD at ``local_stepsize``, their delta clipped to ``client_max_norm``."""

    stepsize: float = field(metadata=axis("g"))
    max_norm: float | None = field(default=None, metadata=axis("c"))
    buffer_size: int = field(metadata=axis("K"))
    local_stepsize: float = field(metadata=axis("el"))
    client_max_norm: float | None = field(default=None, metadata=axis("cc"))
    #: η_g is never delay-adaptive; the run records keep the key.
    delay_adaptive: Literal[False] = field(default=False, init=False)
    adaptive_clip: AdaptiveClip | None = field(default=None, metadata=_ADAPTIVE)
    server_momentum: float | None = None
    max_staleness: int | None = None
    local_steps: int = 1
    staleness: StalenessFn = field(
        default_factory=ConstantStaleness, metadata=_STALENESS
    )
    assign: Assign = "same"

    def __post_init__(self) -> None:
        _check_step(self.stepsize, self.max_norm, self.adaptive_clip)
        at_least("buffer_size", self.buffer_size, 1)
        _check_clients(self.local_stepsize, self.client_max_norm, self.local_steps)
        if self.server_momentum is not None:
            in_range("server_momentum", self.server_momentum, 0.0, 1.0)
        if self.max_staleness is not None:
            at_least("max_staleness", self.max_staleness, 0)
        one_of("assign", self.assign, ("same", "random"))


def build_fedbuff(p: FedBuffParams) -> ServerPolicy[Any]:
    server = fedbuff_server(
        p.stepsize,
        max_norm=p.max_norm,
        adaptive=p.adaptive_clip,
        server_momentum=p.server_momentum,
    )
    return _policy(
        FedBuff(p.buffer_size, server, p.staleness, p.max_staleness, p.assign)
    )


def label_fedbuff(p: FedBuffParams) -> str:
    parts = [f"γ={fmt_value(p.stepsize)}", f"K={p.buffer_size}"]
    parts += _client_label(p.local_stepsize, p.local_steps, p.client_max_norm)
    if p.server_momentum is not None:
        parts.append(f"β={fmt_value(p.server_momentum)}")
    if p.max_norm is not None:
        parts.append(f"c={fmt_value(p.max_norm)}")
    return ", ".join(parts + _tail_label(False, p.assign))


@dataclass(frozen=True, kw_only=True)
class FedAsyncParams:
    """FedAsync (Xie et al. 2019): x ← (1 − α_t) x + α_t x_client with α_t = ``mixing``
    × staleness weight; no server stepsize. Clients as in :class:`FedBuffParams`."""

    mixing: float = field(metadata=axis("a"))
    local_stepsize: float = field(metadata=axis("el"))
    client_max_norm: float | None = field(default=None, metadata=axis("cc"))
    #: Mixing is never delay-adaptive; the run records keep the key.
    delay_adaptive: Literal[False] = field(default=False, init=False)
    local_steps: int = 1
    staleness: StalenessFn = field(
        default_factory=ConstantStaleness, metadata=_STALENESS
    )
    assign: Assign = "same"

    def __post_init__(self) -> None:
        in_range("mixing", self.mixing, 0.0, 1.0, closed="(]")
        _check_clients(self.local_stepsize, self.client_max_norm, self.local_steps)
        one_of("assign", self.assign, ("same", "random"))


def build_fedasync(p: FedAsyncParams) -> ServerPolicy[Any]:
    return _policy(FedAsync(p.mixing, p.staleness, p.assign))


def label_fedasync(p: FedAsyncParams) -> str:
    parts = [f"α={fmt_value(p.mixing)}"]
    parts += _client_label(p.local_stepsize, p.local_steps, p.client_max_norm)
    return ", ".join(parts + _tail_label(False, p.assign))


# ---------------------------------------------------------------------------
# Controls.


@dataclass(frozen=True, kw_only=True)
class NormalizedSGDParams:
    """Normalised asynchronous SGD, x ← x − γ·g/‖g‖ (g = 0 leaves x unchanged).

    The c → 0 limit of clipped ASGD (arXiv 2606.13287, Algorithm 1) at a fixed
    effective step γ·c: once c is below every arriving ‖g‖, γ'·clip_c(g) with
    γ' = γ/c is γ·g/‖g‖. Here ``stepsize`` is that effective step γ (the length
    of every update), so a grid of normalised SGD compares with clipped ASGD's at
    equal γ·c. Jobs are assigned as in :class:`AsyncSGDParams`."""

    stepsize: float = field(metadata=axis("g"))
    assign: Assign = "same"

    def __post_init__(self) -> None:
        positive("stepsize", self.stepsize)
        one_of("assign", self.assign, ("same", "random"))

    def transform(self) -> GradientTransform:
        """The server's transform: ``chain(normalize(), scale(γ))``."""
        return chain(normalize(), scale(self.stepsize))


def build_normalized_sgd(p: NormalizedSGDParams) -> ServerPolicy[Any]:
    return _policy(AsyncSGD(p.transform(), assign=p.assign, name="normalized_sgd"))


def label_normalized_sgd(p: NormalizedSGDParams) -> str:
    return ", ".join([f"γ={fmt_value(p.stepsize)}", *_tail_label(False, p.assign)])


# ---------------------------------------------------------------------------
# Heterogeneous data across workers: a per-worker gradient table.


@dataclass(frozen=True, kw_only=True)
class RingleaderParams:
    """Ringleader ASGD (Maranjyan & Richtárik 2025): rounds of n updates with the
    table mean (1/n) Σ_i G_i/b_i, u = γ·clip_c(mean); fast workers' extra gradients
    are buffered for the next round."""

    stepsize: float = field(metadata=axis("g"))
    max_norm: float | None = field(default=None, metadata=axis("c"))

    def __post_init__(self) -> None:
        _check_step(self.stepsize, self.max_norm, None)


def build_ringleader(p: RingleaderParams) -> ServerPolicy[Any]:
    return _policy(Ringleader(clipped_sgd(p.stepsize, max_norm=p.max_norm)))


def label_ringleader(p: RingleaderParams) -> str:
    return ", ".join(_step_label(p.stepsize, p.max_norm))


@dataclass(frozen=True, kw_only=True)
class MaleniaParams:
    """Malenia SGD (Tyurin & Richtárik 2023): collect at x_k until every worker sent
    one and (1/n Σ 1/b_i)^{-1} >= S/n (``batch_size``), step with the table mean;
    ``cancel_stale``: restart every worker at the new point (the simulator's rule)."""

    stepsize: float = field(metadata=axis("g"))
    max_norm: float | None = field(default=None, metadata=axis("c"))
    batch_size: int = field(metadata=axis("S"))
    cancel_stale: bool = True

    def __post_init__(self) -> None:
        _check_step(self.stepsize, self.max_norm, None)
        at_least("batch_size", self.batch_size, 1)


def build_malenia(p: MaleniaParams) -> ServerPolicy[Any]:
    transform = clipped_sgd(p.stepsize, max_norm=p.max_norm)
    return _policy(Malenia(transform, p.batch_size, cancel_stale=p.cancel_stale))


def label_malenia(p: MaleniaParams) -> str:
    parts = [*_step_label(p.stepsize, p.max_norm), f"S={p.batch_size}"]
    if not p.cancel_stale:
        parts.append("late jobs finish")
    return ", ".join(parts)


# ---------------------------------------------------------------------------
# Synchronous baselines: first m of n, federated averaging.


@dataclass(frozen=True, kw_only=True)
class MSyncParams:
    """m-synchronous SGD: step with the mean of the first ``quorum`` (m) of n
    gradients at x_k; the n - m late jobs are discarded on arrival, or cancelled
    (``cancel_stale``). m = n is synchronous minibatch SGD."""

    stepsize: float = field(metadata=axis("g"))
    max_norm: float | None = field(default=None, metadata=axis("c"))
    quorum: int = field(metadata=axis("m"))
    cancel_stale: bool = False

    def __post_init__(self) -> None:
        _check_step(self.stepsize, self.max_norm, None)
        at_least("quorum", self.quorum, 1)


def build_m_sync(p: MSyncParams) -> ServerPolicy[Any]:
    transform = clipped_sgd(p.stepsize, max_norm=p.max_norm)
    return _policy(MSync(transform, p.quorum, cancel_stale=p.cancel_stale))


def label_m_sync(p: MSyncParams) -> str:
    parts = [*_step_label(p.stepsize, p.max_norm), f"m={p.quorum}"]
    if p.cancel_stale:
        parts.append("late jobs cancelled")
    return ", ".join(parts)


@dataclass(frozen=True, kw_only=True)
class FedAvgParams:
    """Synchronous FedAvg (McMahan et al. 2017): each round ``clients_per_round``
    clients (all when unset) run ``local_steps`` of SGD at ``local_stepsize`` from
    x; the server steps with η_g (``stepsize``; 1 = model averaging) on the clipped
    (``max_norm``) mean delta, through heavy-ball ``server_momentum`` when set."""

    stepsize: float = field(default=1.0, metadata=axis("g"))
    max_norm: float | None = field(default=None, metadata=axis("c"))
    local_stepsize: float = field(metadata=axis("el"))
    client_max_norm: float | None = field(default=None, metadata=axis("cc"))
    #: η_g is never delay-adaptive; the run records keep the key.
    delay_adaptive: Literal[False] = field(default=False, init=False)
    server_momentum: float | None = None
    local_steps: int = 1
    clients_per_round: int | None = None

    def __post_init__(self) -> None:
        _check_step(self.stepsize, self.max_norm, None)
        _check_clients(self.local_stepsize, self.client_max_norm, self.local_steps)
        if self.server_momentum is not None:
            in_range("server_momentum", self.server_momentum, 0.0, 1.0)
        if self.clients_per_round is not None:
            at_least("clients_per_round", self.clients_per_round, 1)


def build_fedavg(p: FedAvgParams) -> ServerPolicy[Any]:
    server = fedbuff_server(
        p.stepsize, max_norm=p.max_norm, server_momentum=p.server_momentum
    )
    return _policy(FedAvg(server, p.clients_per_round))


def label_fedavg(p: FedAvgParams) -> str:
    parts = [f"γ={fmt_value(p.stepsize)}"]
    parts += _client_label(p.local_stepsize, p.local_steps, p.client_max_norm)
    if p.clients_per_round is not None:
        parts.append(f"{p.clients_per_round} clients/round")
    if p.server_momentum is not None:
        parts.append(f"β={fmt_value(p.server_momentum)}")
    if p.max_norm is not None:
        parts.append(f"c={fmt_value(p.max_norm)}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------
# Asynchronous SGD with server momentum, and with delay compensation.


@dataclass(frozen=True, kw_only=True)
class AsyncMomentumParams:
    """Asynchronous SGD with server momentum β (``server_momentum``) on each
    arriving gradient, clipped first when ``max_norm`` is set: m ← β m + clip_c(g),
    u = γ m (heavy ball) or u = γ (clip_c(g) + β m) (``nesterov``). Jobs are
    assigned as in :class:`AsyncSGDParams`."""

    stepsize: float = field(metadata=axis("g"))
    max_norm: float | None = field(default=None, metadata=axis("c"))
    server_momentum: float = field(metadata=axis("b"))
    nesterov: bool = False
    assign: Assign = "same"

    def __post_init__(self) -> None:
        _check_step(self.stepsize, self.max_norm, None)
        in_range("server_momentum", self.server_momentum, 0.0, 1.0)
        one_of("assign", self.assign, ("same", "random"))


def build_async_momentum(p: AsyncMomentumParams) -> ServerPolicy[Any]:
    transform = momentum_sgd(
        p.stepsize, p.server_momentum, nesterov=p.nesterov, max_norm=p.max_norm
    )
    return _policy(AsyncSGD(transform, assign=p.assign, name="async_momentum"))


def label_async_momentum(p: AsyncMomentumParams) -> str:
    parts = [*_step_label(p.stepsize, p.max_norm), f"β={fmt_value(p.server_momentum)}"]
    if p.nesterov:
        parts.append("Nesterov")
    return ", ".join(parts + _tail_label(False, p.assign))


@dataclass(frozen=True, kw_only=True)
class DCASGDParams:
    """DC-ASGD (Zheng et al. 2017): g̃ = g + λ g ⊙ g ⊙ (x_k − x_v) with λ =
    ``compensation``, then u = γ·clip_c(g̃) (the compensated gradient is clipped)."""

    stepsize: float = field(metadata=axis("g"))
    max_norm: float | None = field(default=None, metadata=axis("c"))
    compensation: float = field(metadata=axis("l"))

    def __post_init__(self) -> None:
        _check_step(self.stepsize, self.max_norm, None)
        lam = self.compensation
        if not (math.isfinite(lam) and lam >= 0):
            raise HyperparameterError(
                "compensation", f"must be finite and >= 0 (got {got(lam)})"
            )


def build_dc_asgd(p: DCASGDParams) -> ServerPolicy[Any]:
    transform = clipped_sgd(p.stepsize, max_norm=p.max_norm)
    return _policy(DelayCompensated(transform, p.compensation))


def label_dc_asgd(p: DCASGDParams) -> str:
    parts = [*_step_label(p.stepsize, p.max_norm), f"λ={fmt_value(p.compensation)}"]
    return ", ".join(parts)
