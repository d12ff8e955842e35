"""Adaptive clipping levels: max_norm set from the norms of recent gradients.

This goes beyond Erickson & Johansson (2026), whose theory asks for a clip level
c ≈ σ·polylog + ζ (arXiv 2606.13287, Thms 4.2 and 5.1) and whose experiments
grid-search it. Here c is learned online so that a chosen fraction ``quantile`` of
the arriving gradients is left unclipped, in the spirit of the quantile clipping of
Andrew, Thakkar, McMahan & Ramaswamy (2021). Two rules, both pure
``(init, update)`` transforms whose state carries the current level:

===============================  ============================================
:func:`clip_by_quantile`         c_k = empirical q-quantile of the last
                                 ``window`` pre-clip norms
:func:`clip_by_geometric_quantile`  c_{k+1} = c_k · exp(−η_c (b_k − q)),
                                 b_k = 1{‖g_k‖ <= c_k} (Andrew et al. 2021)
===============================  ============================================

Both clip g_k with the level c_k computed from the norms *before* it (the level
never depends on the gradient it clips) and then update the level with ‖g_k‖. The
``info`` of every update holds ``pre_clip_norm``, ``clipped`` and ``max_norm``
(the level used for this gradient).

Asynchrony. The norms are those of the arriving, possibly stale, gradients. Under
stragglers the stalest gradients tend to be the largest (``norm_vs_delay.png`` of a
report), so a quantile rule clips mostly the stale ones, which is the mechanism by
which clipping removes the dependence on the maximum delay.

Note on bias. Clipping at a *fixed* c biases the update whenever the noise is not
symmetric about the gradient: E[clip_c(g)] ≠ ∇f(x), and the biased fixed point can
sit above a training-loss target that unclipped SGD reaches. An adaptive level
that tracks the q-quantile of the norms rescales with the noise, so the clipped
mass stays a fraction 1 − q of the gradients at every point of the run instead of
nearly all of them for a too-small c; it shrinks that bias but does not remove it
for q < 1. ``tests/transforms/test_adaptive.py`` measures it on least squares
with Student-t noise.

References:
    Andrew, Thakkar, McMahan, Ramaswamy. "Differentially private learning with
    adaptive clipping." NeurIPS 2021. arXiv:1905.03871.

    Erickson, Johansson. "Clipping makes distributed and federated asynchronous SGD
    robust to stragglers." arXiv:2606.13287, 2026.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError
from clipasync.transforms import GradientTransform, Info, norm_in_context
from clipasync.types import UpdateContext, Vector

__all__ = [
    "ADAPTIVE_RULES",
    "GeometricClipState",
    "WindowClipState",
    "adaptive_clip",
    "clip_by_geometric_quantile",
    "clip_by_quantile",
]


def _check_quantile(quantile: float) -> float:
    if not (isinstance(quantile, int | float) and 0.0 < quantile < 1.0):
        raise ConfigError(f"quantile must lie in (0, 1), got {quantile!r}")
    return float(quantile)


def _check_positive(name: str, value: float) -> float:
    if not (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _clip(g: Vector, norm: float, level: float) -> tuple[Vector, Info]:
    """Return clip_c(g) (exact, no epsilon; see clip_by_norm) and its info."""
    if norm <= level:
        return g, {"pre_clip_norm": norm, "clipped": 0.0, "max_norm": level}
    return g * (level / norm), {
        "pre_clip_norm": norm,
        "clipped": 1.0,
        "max_norm": level,
    }


class WindowClipState(NamedTuple):
    """State of :func:`clip_by_quantile`.

    Attributes:
        max_norm: The level the next gradient is clipped at.
        norms: Ring buffer of the last pre-clip norms (read-only array).
        num_seen: Norms seen so far (the buffer holds min(num_seen, window)).
    """

    max_norm: float
    norms: npt.NDArray[np.float64]
    num_seen: int


def clip_by_quantile(
    quantile: float = 0.9,
    *,
    window: int = 100,
    initial_max_norm: float = 1.0,
    warmup: int | None = None,
) -> GradientTransform:
    """Clip at the empirical q-quantile of the last ``window`` pre-clip norms.

    .. math::
        c_k = \\hat Q_q\\bigl(\\lVert g_{k-w}\\rVert, \\dots,
        \\lVert g_{k-1}\\rVert\\bigr), \\qquad
        u_k = \\min\\Bigl(1, \\frac{c_k}{\\lVert g_k\\rVert}\\Bigr) g_k,

    with Q̂_q numpy's default (linear) empirical quantile, and c_k =
    ``initial_max_norm`` until ``warmup`` norms have been seen. The fraction of
    clipped gradients is then 1 − q whatever the scale of the noise, which is what
    makes the rule tuning-free in c (the stepsize still needs a grid).

    Args:
        quantile: Level q in (0, 1): the fraction of gradients left unclipped.
        window: Number w >= 1 of recent norms the quantile is taken over. Each
            update copies the window (state is never mutated), O(w).
        initial_max_norm: Level before the warm-up ends (> 0).
        warmup: Norms needed before the quantile is used; default min(w, 10).

    Returns:
        A transform with state :class:`WindowClipState`; info holds
        ``pre_clip_norm``, ``clipped`` and ``max_norm``.

    Raises:
        ConfigError: On a level outside (0, 1) or a non-positive size or level.

    Examples:
        >>> import numpy as np
        >>> t = clip_by_quantile(0.5, window=3, initial_max_norm=10.0, warmup=1)
        >>> s = t.init(np.zeros(1))
        >>> ctx = UpdateContext(step=0, delay=0, worker=0, num_workers=1)
        >>> for v in (4.0, 2.0, 6.0):
        ...     u, s, info = t.update(np.array([v]), s, ctx)
        >>> info["max_norm"], u.tolist(), s.max_norm  # median(4, 2), then of 4, 2, 6
        (3.0, [3.0], 4.0)
    """
    q = _check_quantile(quantile)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ConfigError(f"window must be a positive integer, got {window!r}")
    c0 = _check_positive("initial_max_norm", initial_max_norm)
    need = min(window, 10) if warmup is None else warmup
    if isinstance(need, bool) or not isinstance(need, int) or not 1 <= need <= window:
        raise ConfigError(f"warmup must be an integer in [1, window], got {warmup!r}")

    def init(params: Vector) -> WindowClipState:
        del params
        buf = np.zeros(window, dtype=np.float64)
        buf.flags.writeable = False
        return WindowClipState(c0, buf, 0)

    def update(
        g: Vector, state: WindowClipState, ctx: UpdateContext
    ) -> tuple[Vector, WindowClipState, Info]:
        norm = norm_in_context(g, ctx)
        u, info = _clip(g, norm, state.max_norm)
        buf = state.norms.copy()
        buf[state.num_seen % window] = norm
        buf.flags.writeable = False
        count = state.num_seen + 1
        level = (
            float(np.quantile(buf[: min(count, window)], q))
            if count >= need
            else state.max_norm
        )
        # A window of zero gradients would give c = 0, which clip_by_norm forbids.
        if not level > 0.0:
            level = state.max_norm
        return u, WindowClipState(level, buf, count), info

    return GradientTransform(init, update)


class GeometricClipState(NamedTuple):
    """State of :func:`clip_by_geometric_quantile`.

    Attributes:
        max_norm: The level the next gradient is clipped at.
        num_seen: Number of gradients seen.
    """

    max_norm: float
    num_seen: int


def clip_by_geometric_quantile(
    quantile: float = 0.9,
    *,
    initial_max_norm: float = 1.0,
    adapt_rate: float = 0.2,
) -> GradientTransform:
    """Clip at a level updated geometrically toward the q-quantile of the norms.

    The rule of Andrew et al. (2021, Alg. 1 with one gradient per step and no
    privacy noise on the indicator):

    .. math::
        u_k = \\min\\Bigl(1, \\frac{c_k}{\\lVert g_k\\rVert}\\Bigr) g_k,\\qquad
        b_k = \\mathbb 1\\{\\lVert g_k\\rVert \\le c_k\\},\\qquad
        c_{k+1} = c_k \\exp\\bigl(-\\eta_c (b_k - q)\\bigr).

    log c_k performs stochastic gradient descent on the pinball loss of the
    q-quantile, so c_k hovers where P(‖g‖ <= c) = q; each step moves c by a factor
    e^{±η_c q} at most, so after a jump in the noise scale it needs about
    |log(ratio)|/(η_c(1 − q)) updates to catch up (upward, when q is large).
    Unlike :func:`clip_by_quantile` it keeps O(1) state.

    Note: Andrew et al. update once per federated round with the fraction of
    unclipped client updates in place of b_k; here every arriving gradient is a
    round of one.

    Args:
        quantile: Target fraction q in (0, 1) of unclipped gradients.
        initial_max_norm: c_0 > 0.
        adapt_rate: η_c > 0 (Andrew et al. use 0.2).

    Returns:
        A transform with state :class:`GeometricClipState`; info holds
        ``pre_clip_norm``, ``clipped`` and ``max_norm``.

    Raises:
        ConfigError: On a level outside (0, 1) or a non-positive c_0 or η_c.

    Examples:
        >>> import numpy as np
        >>> t = clip_by_geometric_quantile(0.5, initial_max_norm=1.0, adapt_rate=2.0)
        >>> ctx = UpdateContext(step=0, delay=0, worker=0, num_workers=1)
        >>> u, s, info = t.update(np.array([4.0]), t.init(np.zeros(1)), ctx)
        >>> u.tolist(), info["clipped"], round(s.max_norm, 4)  # c·e^{2·0.5}
        ([1.0], 1.0, 2.7183)
    """
    q = _check_quantile(quantile)
    c0 = _check_positive("initial_max_norm", initial_max_norm)
    eta = _check_positive("adapt_rate", adapt_rate)

    def init(params: Vector) -> GeometricClipState:
        del params
        return GeometricClipState(c0, 0)

    def update(
        g: Vector, state: GeometricClipState, ctx: UpdateContext
    ) -> tuple[Vector, GeometricClipState, Info]:
        norm = norm_in_context(g, ctx)
        u, info = _clip(g, norm, state.max_norm)
        b = 1.0 - info["clipped"]
        level = state.max_norm * math.exp(-eta * (b - q))
        return u, GeometricClipState(level, state.num_seen + 1), info

    return GradientTransform(init, update)


#: Names accepted by :func:`adaptive_clip` (the ``rule`` of a config's
#: ``adaptive_clip``).
ADAPTIVE_RULES = ("window", "geometric")


def adaptive_clip(
    rule: str = "window",
    *,
    quantile: float = 0.9,
    initial_max_norm: float = 1.0,
    window: int = 100,
    warmup: int | None = None,
    adapt_rate: float = 0.2,
) -> GradientTransform:
    """Return the adaptive clip of a config: ``rule`` and its parameters.

    Args:
        rule: ``"window"`` (:func:`clip_by_quantile`) or ``"geometric"``
            (:func:`clip_by_geometric_quantile`).
        quantile: Fraction q of unclipped gradients.
        initial_max_norm: Level at the start.
        window: Window of the ``window`` rule.
        warmup: Warm-up of the ``window`` rule.
        adapt_rate: η_c of the ``geometric`` rule.

    Raises:
        ConfigError: On an unknown rule or invalid parameters.
    """
    if rule == "window":
        return clip_by_quantile(
            quantile, window=window, initial_max_norm=initial_max_norm, warmup=warmup
        )
    if rule == "geometric":
        return clip_by_geometric_quantile(
            quantile, initial_max_norm=initial_max_norm, adapt_rate=adapt_rate
        )
    raise ConfigError(
        f"unknown adaptive clipping rule {rule!r}; choose one of: "
        f"{', '.join(ADAPTIVE_RULES)}"
    )
