"""The transform chains of the server methods, built from typed arguments.

Erickson & Johansson (2026), "Clipping Makes Distributed and Federated Asynchronous
SGD Robust to Stragglers" (arXiv 2606.13287), apply u = γ·clip_c(g) at the server
(Algorithms 1 and 2); the baselines change one stage of that chain:

=============================  ===================================================
:func:`clipped_sgd`            clip → γ (Alg. 1/2); no ``max_norm``: vanilla ASGD;
                               ``delay_adaptive``: γ·min(1, n/delay) (Mishchenko
                               et al. 2022); ``adaptive``: a learned clip level
:func:`fedbuff_server`         clip → momentum β → η_g, FedBuff's server optimiser
                               (Nguyen et al. 2022) on the buffered pseudo-gradient
:func:`momentum_sgd`           clip → momentum β (heavy ball or Nesterov) → γ,
                               server momentum on each arriving gradient
=============================  ===================================================

:class:`AdaptiveClip` holds the arguments of
:func:`~clipasync.transforms.adaptive.adaptive_clip` (beyond the paper, which
grid-searches c). Every argument is checked once, by the constructor that takes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from clipasync.errors import ConfigError, HyperparameterError
from clipasync.transforms.adaptive import adaptive_clip
from clipasync.transforms.base import GradientTransform, chain
from clipasync.transforms.clipping import clip_by_norm
from clipasync.transforms.momentum import momentum
from clipasync.transforms.stepsizes import scale, scale_by_delay


def _got(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


@dataclass(frozen=True, kw_only=True)
class AdaptiveClip:
    """A clip level learned online (``adaptive_clip:`` of a method).

    ``rule="window"`` clips at the ``quantile`` of the last ``window`` pre-clip
    norms (after ``warmup`` norms; default min(window, 10)); ``rule="geometric"``
    uses c ← c·exp(−adapt_rate·(1{‖g‖ <= c} − quantile)) (Andrew et al. 2021).
    Both start at ``initial_max_norm``.

    Raises:
        HyperparameterError: On a value out of its range (the field is named).
    """

    rule: Literal["window", "geometric"] = "window"
    quantile: float = 0.9
    initial_max_norm: float = 1.0
    window: int = 100
    warmup: int | None = None
    adapt_rate: float = 0.2

    def __post_init__(self) -> None:
        if self.rule not in ("window", "geometric"):
            raise HyperparameterError(
                "rule", f"must be 'window' or 'geometric' (got {self.rule!r})"
            )
        if not 0 < self.quantile < 1:
            raise HyperparameterError(
                "quantile", f"must be in (0, 1) (got {_got(self.quantile)})"
            )
        for name in ("initial_max_norm", "adapt_rate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise HyperparameterError(name, f"must be > 0 (got {_got(value)})")
        if self.window < 1:
            raise HyperparameterError("window", f"must be >= 1 (got {self.window})")
        if self.warmup is not None and not 1 <= self.warmup <= self.window:
            raise HyperparameterError(
                "warmup",
                f"must be in [1, window={self.window}] (got {self.warmup})",
            )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AdaptiveClip:
        """Return the spec of a plain mapping (a run record's ``adaptive_clip``)."""
        return cls(**dict(config))

    def to_config(self) -> dict[str, Any]:
        """Return the arguments as plain data, leaving out those that are ``None``."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def transform(self) -> GradientTransform:
        """Return the clipping transform (no stepsize)."""
        return adaptive_clip(
            self.rule,
            quantile=self.quantile,
            initial_max_norm=self.initial_max_norm,
            window=self.window,
            warmup=self.warmup,
            adapt_rate=self.adapt_rate,
        )


def clip_stage(
    max_norm: float | None = None, adaptive: AdaptiveClip | None = None
) -> GradientTransform | None:
    """Return clip_c at a fixed ``max_norm``, the learned clip, or ``None`` (no clip).

    Raises:
        ConfigError: If both are given.
    """
    if adaptive is not None:
        if max_norm is not None:
            raise ConfigError("give max_norm or an adaptive clip, not both")
        return adaptive.transform()
    if max_norm is None:
        return None
    return clip_by_norm(float(max_norm))


def step(stepsize: float, *, delay_adaptive: bool = False) -> GradientTransform:
    """Return u = γ·g, or u = γ·min(1, n/delay)·g when ``delay_adaptive``."""
    return scale_by_delay(stepsize) if delay_adaptive else scale(stepsize)


def clipped_sgd(
    stepsize: float,
    *,
    max_norm: float | None = None,
    adaptive: AdaptiveClip | None = None,
    delay_adaptive: bool = False,
) -> GradientTransform:
    """Return the server transform of asynchronous SGD: clip (if any) → stepsize.

    ``chain(clip_by_norm(c), scale(γ))`` is clipped ASGD (arXiv 2606.13287, Alg. 1);
    without ``max_norm`` nor ``adaptive`` it is ``scale(γ)`` (vanilla ASGD).
    """
    server_step = step(stepsize, delay_adaptive=delay_adaptive)
    clip = clip_stage(max_norm, adaptive)
    return server_step if clip is None else chain(clip, server_step)


def fedbuff_server(
    stepsize: float,
    *,
    max_norm: float | None = None,
    adaptive: AdaptiveClip | None = None,
    server_momentum: float | None = None,
) -> GradientTransform:
    """Return FedBuff's server optimiser: clip (if any) → momentum β (if any) → η_g.

    The buffered pseudo-gradient is clipped before it enters the momentum buffer, so
    ``clip_c`` bounds what one buffer can add to it.
    """
    if server_momentum is None:
        return clipped_sgd(stepsize, max_norm=max_norm, adaptive=adaptive)
    server_step = scale(stepsize)
    clip = clip_stage(max_norm, adaptive)
    heavy_ball = momentum(server_momentum)
    if clip is None:
        return chain(heavy_ball, server_step)
    return chain(clip, heavy_ball, server_step)


def momentum_sgd(
    stepsize: float,
    beta: float,
    *,
    nesterov: bool = False,
    max_norm: float | None = None,
) -> GradientTransform:
    """Return asynchronous SGD with server momentum: clip (if any) → momentum → γ.

    The arriving (possibly stale) gradient is clipped first, so the momentum buffer
    m ← β m + clip_c(g) grows by at most c per arrival; heavy ball applies
    u = γ m, Nesterov u = γ (clip_c(g) + β m)
    (:func:`~clipasync.transforms.momentum.momentum`, the
    ``torch.optim.SGD(momentum=β, nesterov=...)`` convention).
    """
    server_step = scale(stepsize)
    heavy_ball = momentum(beta, nesterov=nesterov)
    clip = clip_stage(max_norm)
    if clip is None:
        return chain(heavy_ball, server_step)
    return chain(clip, heavy_ball, server_step)


__all__ = [
    "AdaptiveClip",
    "clip_stage",
    "clipped_sgd",
    "fedbuff_server",
    "momentum_sgd",
    "step",
]
