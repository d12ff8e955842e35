"""How heavy-tailed is a problem's gradient noise? Sample it, fit it, plot it.

``clipasync noise CONFIG`` draws stochastic gradients g_i of the config's problem at
one or more points x, computes the noise norms ‖g_i − ∇f(x)‖ against the exact
gradient (:func:`~clipasync.diagnostics.tails.noise_norms`), and reports

* θ̂, the sub-Weibull tail parameter of Vladimirova et al. (2020) (regression of the
  log of the top-k order statistics on log log(n/i)); θ = 1/2 is sub-Gaussian,
  θ = 1 sub-exponential, the paper reports θ̂ = 2.71 for ResNet-18 on CIFAR-10;
* σ̂ = 2^θ̂ ŝ, the sub-Weibull scale of Assumption 3.2 for the fitted model;
* the Hill index α̂ of a polynomial (Pareto) tail with a 90 % bootstrap interval: a
  small, stable α̂ means no finite θ describes the tail (e.g. Student-t noise);
* a PNG of the log-survival P̂(‖ξ‖ >= t) against t with the fitted sub-Weibull
  curve exp(−(t/ŝ)^{1/θ̂}) and the Gaussian reference of the same E‖ξ‖².

Checkpoints (``--at``, repeatable):

* ``init``: the problem's initial point x_0 (the default);
* ``sgd:K``: after K steps of sequential SGD from x_0, x ← x − γ·clip_c(g), with γ
  and c the smallest stepsize and max_norm of the config's reference method (no
  clip when it has none), run by the library's clipped-ASGD policy with one worker
  (:mod:`clipasync.reports.noise_checkpoints`); this is the noise "during
  training" without needing a saved model, and is cheap for the simulator's
  problems;
* ``optimum``: the exact minimiser, for problems that have one (``x_star``, least
  squares): the noise at the solution is what sets a clipped method's bias.

Run directories do not store parameters, so a run's final iterate is not offered.

Example::

    clipasync noise experiments/stragglers.yaml --samples 20000 --at init --at sgd:500

References:
    Vladimirova, Girard, Nguyen, Arbel. "Sub-Weibull distributions: generalizing
    sub-Gaussian and sub-Exponential properties to heavier tailed distributions."
    Stat 9(1), 2020.

    Erickson, Johansson. "Clipping makes distributed and federated asynchronous SGD
    robust to stragglers." arXiv:2606.13287, 2026.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.diagnostics.tails import (
    TailFit,
    empirical_survival,
    estimate_sub_weibull_theta,
    gaussian_norm_reference,
    hill_bootstrap_interval,
    hill_tail_index,
    noise_norms,
    sub_weibull_survival,
)
from clipasync.errors import ConfigError
from clipasync.experiments.build import build_problem
from clipasync.experiments.schema import ExperimentConfig
from clipasync.io import write_json_atomic
from clipasync.problems.base import Problem
from clipasync.reports.noise_checkpoints import checkpoint_point, reference_hyper
from clipasync.seeding import Stream, stream
from clipasync.types import Vector

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class NoiseCheckpoint:
    """The noise statistics at one point.

    Attributes:
        label: Checkpoint name (``init``, ``sgd:500``, ``optimum``).
        norms: The sampled noise norms.
        fit: Sub-Weibull tail fit (θ̂, ŝ, k, R²).
        hill: Hill index α̂ with the same k.
        hill_interval: 90 % percentile-bootstrap interval of α̂.
        dim: Problem dimension (for the Gaussian reference).
        grad_norm: ‖∇f(x)‖ at the checkpoint.
    """

    label: str
    norms: FloatArray = field(repr=False)
    fit: TailFit
    hill: float
    hill_interval: tuple[float, float]
    dim: int
    grad_norm: float

    @property
    def rms(self) -> float:
        """Return sqrt(mean ‖ξ‖²), the σ of a bounded-variance assumption."""
        return float(np.sqrt(np.mean(self.norms**2)))

    def to_json(self) -> dict[str, Any]:
        """Return the statistics as JSON-ready data (without the samples)."""
        q = np.quantile(self.norms, [0.5, 0.9, 0.99, 1.0])
        return {
            "label": self.label,
            "samples": int(self.norms.size),
            "grad_norm": self.grad_norm,
            "mean_norm": float(self.norms.mean()),
            "rms_norm": self.rms,
            "norm_quantiles": {"p50": q[0], "p90": q[1], "p99": q[2], "max": q[3]},
            "theta": self.fit.theta,
            "sub_weibull_scale": self.fit.scale,
            "sub_weibull_sigma": self.fit.sigma,
            "k": self.fit.k,
            "r2": self.fit.r2,
            "hill_alpha": self.hill,
            "hill_interval_90": list(self.hill_interval),
        }


def measure_noise(
    problem: Problem,
    x: Vector,
    label: str,
    rng: np.random.Generator,
    *,
    samples: int,
    k: int | None = None,
    num_boot: int = 200,
) -> NoiseCheckpoint:
    """Sample ``samples`` noise norms at x and fit both tail models.

    Raises:
        ConfigError: If ``samples`` is too small or the norms are degenerate.
    """
    if samples < 100:
        raise ConfigError(f"--samples must be at least 100, got {samples}")
    norms = noise_norms(problem, x, rng, samples)
    fit = estimate_sub_weibull_theta(norms, k=k)
    return NoiseCheckpoint(
        label=label,
        norms=norms,
        fit=fit,
        hill=hill_tail_index(norms, k=fit.k),
        hill_interval=hill_bootstrap_interval(norms, fit.k, rng, num_boot=num_boot),
        dim=int(problem.dim),
        grad_norm=float(np.linalg.norm(problem.grad(x))),
    )


def noise_report(
    config: ExperimentConfig,
    *,
    samples: int = 10_000,
    at: Sequence[str] = ("init",),
    seed: int = 0,
    k: int | None = None,
    out: Path | None = None,
) -> list[NoiseCheckpoint]:
    """Measure the noise of the config's problem at each checkpoint.

    With a sweep, the problem of the first sweep point is used (sweeps usually
    change the timing, not the problem).

    Args:
        config: Validated experiment.
        samples: Stochastic gradients per checkpoint (>= 100; the tail fit uses the
            top 1 %, so 10^4 gives k = 100).
        at: Checkpoint specs.
        seed: Seed of the sampling (and of the SGD steps of ``sgd:K``).
        k: Upper order statistics of both estimators (default top 1 %).
        out: If given, write ``noise.json`` and ``noise_tails.png`` there.

    Returns:
        One result per checkpoint, in the order given.

    Raises:
        ConfigError: On an invalid checkpoint or sample count.
    """

    point = config.sweep_points()[0]
    cfg = config.at(point) if point else config
    problem = build_problem(cfg.problem.model_dump(mode="json", exclude_none=True))
    stepsize, max_norm = reference_hyper(cfg)
    results = []
    for i, spec in enumerate(at or ("init",)):
        rng = stream(seed, Stream.ORACLE, i)
        x = checkpoint_point(problem, spec, rng, stepsize=stepsize, max_norm=max_norm)
        results.append(measure_noise(problem, x, spec, rng, samples=samples, k=k))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            out / "noise.json",
            {
                "config": config.name,
                "problem": problem.name,
                "dim": int(problem.dim),
                "seed": seed,
                "sgd_stepsize": stepsize,
                "sgd_max_norm": max_norm,
                "checkpoints": [r.to_json() for r in results],
            },
        )
        plot_noise_tails(results, out / "noise_tails.png", title=problem.name)
    return results


def format_table(results: Sequence[NoiseCheckpoint]) -> str:
    """Return a plain-text table of the statistics, one row per checkpoint."""
    header = (
        "checkpoint",
        "n",
        "||grad f||",
        "mean ||xi||",
        "rms",
        "p99",
        "theta",
        "sigma_subW",
        "R2",
        "k",
        "Hill alpha [90% CI]",
    )
    rows = [header]
    for r in results:
        lo, hi = r.hill_interval
        rows.append(
            (
                r.label,
                str(r.norms.size),
                f"{r.grad_norm:.4g}",
                f"{r.norms.mean():.4g}",
                f"{r.rms:.4g}",
                f"{float(np.quantile(r.norms, 0.99)):.4g}",
                f"{r.fit.theta:.3f}",
                f"{r.fit.sigma:.4g}",
                f"{r.fit.r2:.3f}",
                str(r.fit.k),
                f"{r.hill:.2f} [{lo:.2f}, {hi:.2f}]",
            )
        )
    widths = [max(len(row[j]) for row in rows) for j in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if j == 0 else c.rjust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def plot_noise_tails(
    results: Sequence[NoiseCheckpoint], path: Path, *, title: str = ""
) -> Path:
    """Plot log-survival against the norm, one panel per checkpoint.

    Each panel shows the empirical P̂(‖ξ‖ >= t), the fitted sub-Weibull
    exp(−(t/ŝ)^{1/θ̂}) and the survival of the norm of a Gaussian vector with the
    same E‖ξ‖² (:func:`~clipasync.diagnostics.tails.gaussian_norm_reference`).
    The fit is made on the top k samples only, so agreement matters at the right
    end (survival below k/n, marked by a dotted line).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(5.0 * n, 4.0), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        xs, surv = empirical_survival(r.norms)
        t = np.linspace(0.0, float(xs[-1]) * 1.1, 400)
        floor = 0.5 / xs.size
        ax.plot(xs, surv, color="C0", lw=1.5, label="empirical")
        if r.fit.theta > 0:  # a degenerate sample can give θ̂ <= 0: no model
            sw = sub_weibull_survival(t, r.fit.theta, r.fit.scale)
            ax.plot(
                t,
                np.maximum(sw, floor / 10),
                color="C3",
                ls="--",
                label=f"sub-Weibull θ̂={r.fit.theta:.2f}",
            )
        gauss = gaussian_norm_reference(t, r.dim, float(np.mean(r.norms**2)))
        ax.plot(
            t,
            np.maximum(gauss, floor / 10),
            color="0.4",
            ls=":",
            label="Gaussian, same E‖ξ‖²",
        )
        ax.axhline(r.fit.k / xs.size, color="C3", lw=0.8, ls=":", alpha=0.6)
        ax.set_yscale("log")
        ax.set_ylim(floor, 1.5)
        ax.set_xlabel("noise norm ‖g − ∇f(x)‖")
        ax.set_title(
            f"{r.label}: Hill α̂={r.hill:.2f}" if math.isfinite(r.hill) else r.label,
            fontsize=10,
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("P(‖ξ‖ ≥ t)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
