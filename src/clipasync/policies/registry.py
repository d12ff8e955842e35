"""The method registry: one entry per server policy that a YAML ``policy:`` names.

An entry holds everything the rest of the package knows about a method: its name,
a one-line description (``clipasync list``), its parameter class (a frozen dataclass
whose fields with their defaults are the method's hyperparameters, see
:mod:`clipasync.policies.hyper`), the factory ``params -> ServerPolicy``, the label
a report shows for a grid point, whether its jobs are federated local training, and
an example grid point.
The experiment layer derives the YAML schema, the grid, the run-id tags and the
builders from the entries, so adding a method is its module and one
:func:`register` call (below, for the methods of Erickson & Johansson 2026,
arXiv 2606.13287, Algorithms 1–2, and their baselines)::

    register(MethodEntry("half", "SGD with half the gradient", HalfParams, build_half,
                         label_half, example=HalfParams(stepsize=0.5)))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from clipasync.errors import ConfigError
from clipasync.policies import params as p
from clipasync.policies.base import ServerPolicy
from clipasync.policies.columns import (
    ColumnStep,
    ColumnUpdate,
    async_columns,
    concat_columns,
    normalized_columns,
    ringmaster_columns,
)
from clipasync.policies.families import (
    ColumnUnion,
    redispatch_family,
    uncancelled_family,
)
from clipasync.policies.hyper import fields_of, fmt_value, from_hyper, is_axis, tags
from clipasync.policies.hyper import to_hyper as _to_hyper
from clipasync.policies.rennala_columns import rennala_columns
from clipasync.policies.staleness import PolynomialStaleness
from clipasync.transforms.chains import AdaptiveClip

P = TypeVar("P")


@dataclass(frozen=True)
class MethodEntry(Generic[P]):
    """A server method as a YAML file names it.

    Attributes:
        name: The value of ``policy:``.
        description: One line for ``clipasync list``.
        params: Parameter class: a frozen dataclass; its fields are the method's
            hyperparameters (grid axes marked by
            :func:`~clipasync.policies.hyper.axis`).
        build: Factory of the server policy of one grid point.
        label: Text of a grid point in reports (``γ=0.5, c=1``).
        federated: Jobs are local training on the client's shard (the parameters
            then hold ``local_steps``, ``local_stepsize`` and ``client_max_norm``).
        needs_all_workers: The method waits for every worker (synchronous rounds),
            so it cannot run in an open system.
        example: A small valid grid point that exercises the method's state (the
            conformance tests run every registered method at its example).
        schedule: The hyperparameters that shape a run's event sequence (which
            workers get jobs, which are cancelled, what the oracle streams draw):
            grid points equal in these, the seed, problem and timing share one
            batched event loop (:mod:`clipasync.sim.batched`). ``None``: the
            method's decisions may depend on its iterate, so its runs go one by
            one.
        columns: The vectorised server step of a batch of grid points
            (:mod:`clipasync.policies.columns`), or ``None`` for a batch it does
            not cover; without it a batch keeps one policy state per point.
        family: The event family of a grid point (:mod:`clipasync.policies.families`):
            points of different methods in one family, with the same seed,
            problem and timing, share one batched event loop; ``None`` (the
            default, or for a point outside every family): only points of this
            method equal in ``schedule`` do.
    """

    name: str
    description: str
    params: type[P]
    build: Callable[[P], ServerPolicy[Any]]
    label: Callable[[P], str]
    federated: bool = False
    needs_all_workers: bool = False
    example: P | None = None
    schedule: tuple[str, ...] | None = None
    columns: Callable[[Sequence[Any]], ColumnUpdate | None] | None = None
    family: Callable[[P], str | None] | None = None
    tags: tuple[tuple[str, str], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", tags(self.params))  # also checks params
        unknown = set(self.schedule or ()) - set(self.fields)
        if unknown:
            raise ConfigError(
                f"policy {self.name!r}: schedule names unknown fields: "
                f"{', '.join(sorted(unknown))}"
            )

    @property
    def fields(self) -> tuple[str, ...]:
        """The hyperparameters a YAML method of this policy may set."""
        return tuple(f.name for f in fields_of(self.params) if f.init)

    @property
    def axes(self) -> tuple[str, ...]:
        """The fields that are grid axes."""
        return tuple(f.name for f in fields_of(self.params) if is_axis(f))

    def to_hyper(self, params: P) -> dict[str, Any]:
        """Return the plain record of a grid point (run settings, summaries)."""
        return _to_hyper(params)

    def from_hyper(self, hyper: Mapping[str, Any]) -> P:
        """Return the parameters of a plain record.

        Raises:
            HyperparameterError: If a value is invalid.
        """
        return from_hyper(self.params, hyper)  # type: ignore[no-any-return]


_ENTRIES: dict[str, MethodEntry[Any]] = {}


def register(entry: MethodEntry[P]) -> MethodEntry[P]:
    """Add a method; its name must be new.

    Raises:
        ConfigError: If a method of that name is registered.
    """
    if entry.name in _ENTRIES:
        raise ConfigError(f"policy {entry.name!r} is already registered")
    _ENTRIES[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a method (a test's toy method, say); unknown names are ignored."""
    _ENTRIES.pop(name, None)


def names() -> tuple[str, ...]:
    """Return the registered policy names, in registration order."""
    return tuple(_ENTRIES)


def entries() -> tuple[MethodEntry[Any], ...]:
    """Return the registered entries, in registration order."""
    return tuple(_ENTRIES.values())


def lookup(name: str) -> MethodEntry[Any]:
    """Return the entry of a policy name.

    Raises:
        ConfigError: One line listing the registered names.
    """
    entry = _ENTRIES.get(name) if isinstance(name, str) else None
    if entry is None:
        raise ConfigError(
            f"unknown policy {name!r}; choose one of: {', '.join(_ENTRIES)}"
        )
    return entry


def build(policy: str, params: Any) -> ServerPolicy[Any]:
    """Return the server policy of a grid point of ``policy``."""
    return lookup(policy).build(params)


def group_columns(
    policies: Sequence[str], points: Sequence[Any]
) -> ColumnUpdate | None:
    """Return the vectorised step of a batch whose row j is ``policies[j]``'s grid
    point ``points[j]`` (one method, or one event family's methods:
    :class:`~clipasync.policies.families.ColumnUnion`), or ``None`` when a method
    has no such step for its rows."""
    rows: dict[str, list[int]] = {}
    for j, name in enumerate(policies):
        rows.setdefault(name, []).append(j)
    parts: list[tuple[list[int], ColumnUpdate]] = []
    plain: list[tuple[list[int], ColumnStep]] = []
    for name, idx in rows.items():
        columns = lookup(name).columns
        step = None if columns is None else columns([points[j] for j in idx])
        if step is None:
            return None
        if isinstance(step, ColumnStep):
            plain.append((idx, step))
        else:
            parts.append((idx, step))
    if len(plain) > 1:
        # One step for the stateless methods' rows: one pass per arrival, not one
        # per method.
        merged = concat_columns([s for _, s in plain])
        if merged is None:
            return None
        plain = [([j for idx, _ in plain for j in idx], merged)]
    parts += plain
    if len(parts) == 1 and parts[0][0] == list(range(len(policies))):
        return parts[0][1]
    return ColumnUnion(parts)


def label(policy: str, hyper: Mapping[str, Any]) -> str:
    """Return a report's text for a run record's ``hyper`` (``γ=0.5, c=1``).

    A record of a policy that is not registered (or that no longer reads) shows as
    ``key=value`` pairs.
    """
    entry = _ENTRIES.get(policy)
    if entry is not None:
        try:
            return entry.label(entry.from_hyper(hyper))
        except (ConfigError, TypeError):
            pass
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in hyper.items() if v is not None)


register(
    MethodEntry(
        "async_sgd",
        "asynchronous SGD: vanilla, clipped (max_norm), delay-adaptive, "
        "Alg. 2 (assign: random)",
        p.AsyncSGDParams,
        p.build_async_sgd,
        p.label_async_sgd,
        example=p.AsyncSGDParams(stepsize=0.1, max_norm=1.0, assign="random"),
        schedule=("assign",),
        columns=async_columns,
        family=redispatch_family,
    )
)
register(
    MethodEntry(
        "ringmaster",
        "Ringmaster ASGD: discard gradients with delay >= max_delay (R)",
        p.RingmasterParams,
        p.build_ringmaster,
        p.label_ringmaster,
        example=p.RingmasterParams(
            stepsize=0.1,
            max_delay=2,
            adaptive_clip=AdaptiveClip(quantile=0.5, initial_max_norm=1.0, window=8),
            cancel_stale=True,
        ),
        schedule=("max_delay", "cancel_stale"),
        columns=ringmaster_columns,
        family=uncancelled_family,
    )
)
register(
    MethodEntry(
        "rennala",
        "Rennala SGD: step with the mean of batch_size (B) fresh gradients",
        p.RennalaParams,
        p.build_rennala,
        p.label_rennala,
        needs_all_workers=True,
        example=p.RennalaParams(stepsize=0.1, max_norm=1.0, batch_size=2),
        schedule=("batch_size",),
        columns=rennala_columns,
        family=uncancelled_family,
    )
)
register(
    MethodEntry(
        "minibatch",
        "synchronous minibatch SGD: one gradient per worker",
        p.MinibatchParams,
        p.build_minibatch,
        p.label_minibatch,
        needs_all_workers=True,
        example=p.MinibatchParams(stepsize=0.1, delay_adaptive=True),
        schedule=(),
    )
)
register(
    MethodEntry(
        "fedbuff",
        "FedBuff: buffer buffer_size (K) client deltas, server stepsize (eta_g), "
        "optional server_momentum; clients run local_steps at local_stepsize, "
        "deltas clipped to client_max_norm",
        p.FedBuffParams,
        p.build_fedbuff,
        p.label_fedbuff,
        federated=True,
        example=p.FedBuffParams(
            stepsize=1.0,
            max_norm=1.0,
            buffer_size=2,
            local_stepsize=0.05,
            client_max_norm=1.0,
            server_momentum=0.5,
            max_staleness=4,
            local_steps=2,
        ),
        schedule=("local_steps", "assign"),
    )
)
register(
    MethodEntry(
        "fedasync",
        "FedAsync: mix client models with weight mixing (alpha) x staleness; "
        "clients run local_steps at local_stepsize, clipped to client_max_norm",
        p.FedAsyncParams,
        p.build_fedasync,
        p.label_fedasync,
        federated=True,
        example=p.FedAsyncParams(
            mixing=0.5,
            local_stepsize=0.05,
            client_max_norm=1.0,
            local_steps=2,
            staleness=PolynomialStaleness(0.5),
            assign="random",
        ),
        schedule=("local_steps", "assign"),
    )
)
register(
    MethodEntry(
        "normalized_sgd",
        "normalised asynchronous SGD: x <- x - stepsize * g/||g|| (clipped ASGD's "
        "c -> 0 limit at effective step stepsize = gamma*c)",
        p.NormalizedSGDParams,
        p.build_normalized_sgd,
        p.label_normalized_sgd,
        example=p.NormalizedSGDParams(stepsize=0.05, assign="random"),
        schedule=("assign",),
        columns=normalized_columns,
        family=redispatch_family,
    )
)
register(
    MethodEntry(
        "ringleader",
        "Ringleader ASGD: heterogeneous data; rounds of n updates with the mean over "
        "workers of each worker's mean gradient, extra gradients buffered",
        p.RingleaderParams,
        p.build_ringleader,
        p.label_ringleader,
        needs_all_workers=True,
        example=p.RingleaderParams(stepsize=0.1, max_norm=1.0),
        schedule=(),
    )
)
register(
    MethodEntry(
        "malenia",
        "Malenia SGD: heterogeneous data; step once every worker sent one and the "
        "harmonic mean of counts reaches batch_size (S) / n",
        p.MaleniaParams,
        p.build_malenia,
        p.label_malenia,
        needs_all_workers=True,
        example=p.MaleniaParams(stepsize=0.1, max_norm=1.0, batch_size=6),
        schedule=("batch_size", "cancel_stale"),
    )
)
register(
    MethodEntry(
        "m_sync",
        "m-synchronous SGD: step with the first quorum (m) of n gradients; late "
        "jobs discarded (or cancelled: cancel_stale)",
        p.MSyncParams,
        p.build_m_sync,
        p.label_m_sync,
        needs_all_workers=True,
        example=p.MSyncParams(stepsize=0.1, max_norm=1.0, quorum=2),
        schedule=("quorum", "cancel_stale"),
    )
)
register(
    MethodEntry(
        "fedavg",
        "synchronous FedAvg / local SGD: clients_per_round clients run local_steps "
        "at local_stepsize; server stepsize (eta_g) on the mean delta",
        p.FedAvgParams,
        p.build_fedavg,
        p.label_fedavg,
        federated=True,
        needs_all_workers=True,
        example=p.FedAvgParams(
            stepsize=1.0,
            max_norm=1.0,
            local_stepsize=0.05,
            client_max_norm=1.0,
            server_momentum=0.5,
            local_steps=2,
            clients_per_round=2,
        ),
        # The participants are drawn from the policy stream, seeded alike for
        # every grid point, at rounds that counts alone decide.
        schedule=("local_steps", "clients_per_round"),
    )
)
register(
    MethodEntry(
        "async_momentum",
        "asynchronous SGD with server momentum (heavy ball, or nesterov) on each "
        "arriving gradient, clipped first when max_norm is set",
        p.AsyncMomentumParams,
        p.build_async_momentum,
        p.label_async_momentum,
        example=p.AsyncMomentumParams(
            stepsize=0.05, max_norm=1.0, server_momentum=0.5, nesterov=True
        ),
        schedule=("assign",),
    )
)
register(
    MethodEntry(
        "dc_asgd",
        "DC-ASGD: delay-compensated gradient g + compensation (lambda) * g*g*(x_k - "
        "x_v), clipped when max_norm is set",
        p.DCASGDParams,
        p.build_dc_asgd,
        p.label_dc_asgd,
        needs_all_workers=True,
        example=p.DCASGDParams(stepsize=0.1, max_norm=1.0, compensation=0.5),
        schedule=(),
    )
)
register(
    MethodEntry(
        "picky_sgd",
        "Picky SGD (Cohen et al. 2021): apply a gradient only if the iterate moved "
        "at most threshold since its job was dispatched",
        p.PickyParams,
        p.build_picky,
        p.label_picky,
        example=p.PickyParams(stepsize=0.1, max_norm=1.0, threshold=0.05),
        schedule=(),
    )
)
register(
    MethodEntry(
        "mindflayer",
        "MindFlayer SGD (Maranjyan et al. 2024): Rennala's batch_size (B) gradients, "
        "each job abandoned and restarted past time_limit (t, or time_limits t_i)",
        p.MindFlayerParams,
        p.build_mindflayer,
        p.label_mindflayer,
        needs_all_workers=True,
        # Stale jobs finish here: restarting all workers at once makes near-ties
        # that the wall-clock pool of the conformance tests cannot replay.
        example=p.MindFlayerParams(
            stepsize=0.1, batch_size=2, time_limit=120.0, cancel_stale=False
        ),
        schedule=("batch_size", "time_limit", "time_limits", "cancel_stale"),
    )
)
