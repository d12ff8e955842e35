"""Turn any ``torch.nn.Module`` + loss + in-memory tensors into a :class:`Problem`.

The pure layer sees one flat ``numpy.float32`` vector x (all parameters with
``requires_grad``, in ``parameters()`` order). Each oracle call points the module's
parameters at views of x (``torch.nn.utils.vector_to_parameters``: on CPU
``torch.from_numpy`` wraps x without a copy), so the result depends on x alone and
never on what an earlier call left in the module. Gradients come from
``torch.autograd.grad`` (``.grad`` attributes are never touched) and are
concatenated into one fresh tensor returned as ``.numpy()`` (no further copy).
We measured ``torch.func.functional_call`` at ~100 µs more per call on the
MNIST-1D MLP, which is why the module's parameters are re-pointed instead.

Determinism: minibatch indices come from the caller's numpy ``Generator``
(``rng.integers``); stochastic layers (dropout) draw from torch's generator of
the problem's device, which is reseeded with a seed drawn from the same ``rng``
inside ``torch.random.fork_rng`` so that global torch randomness is left exactly as
it was. Hence the same rng state gives a bit-identical gradient (same device,
same torch build, same thread count).

Threads: this module never calls ``torch.set_num_threads``; the caller chooses
(on a 2-core machine running several simulator processes, 1 thread per process is
usually fastest). ``fork_rng`` and the module's buffers are process-global state,
so use one ``TorchProblem`` per thread (Ray actors each hold their own copy).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn
from torch.nn.utils import vector_to_parameters

from clipasync.errors import ConfigError
from clipasync.problems._common import (
    Indices,
    ShardsAndStartMixin,
    check_batch_size,
    check_partition,
    check_positive_int,
    sample_indices,
)
from clipasync.problems.torch_many import grad_rows
from clipasync.types import Vector

#: Metrics that ``evaluate`` can add on top of ``loss`` and ``grad_norm``.
METRICS = ("accuracy", "perplexity")

LossFn = Callable[[Tensor, Tensor], Tensor]


def resolve_device(device: str | torch.device) -> torch.device:
    """Map ``"cpu"``/``"cuda"``/``"cuda:i"``/``"auto"`` to a ``torch.device``.

    ``"auto"`` picks CUDA when available, else the CPU.

    Raises:
        ConfigError: For an unknown device string or CUDA requested but absent.
    """
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ConfigError(
                f"device must be 'cpu', 'cuda', 'cuda:<i>' or 'auto', got {device!r}"
            ) from exc
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(
            f"device must be 'cpu', 'cuda', 'cuda:<i>' or 'auto', got {device!r}"
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return dev


class TorchProblem(ShardsAndStartMixin):
    """A PyTorch model as a flat-vector :class:`Problem`.

    With per-sample loss ℓ(θ; ξ) and training set {ξ_1..ξ_N}:

        f(θ) = (1/N) Σ_i ℓ(θ; ξ_i),    g_B(θ) = ∇_θ (1/|B|) Σ_{i∈B} ℓ(θ; ξ_i),

    B drawn uniformly with replacement by ``rng.integers`` (from shard i on a
    partitioned problem). ``loss_fn(output, target)`` must return the *mean* over
    the batch (``reduction="mean"``; for token cross-entropy the mean over all
    tokens, every sequence having the same length).

    Modes: ``stochastic_grad`` runs the module in train mode (dropout active);
    ``loss``, ``grad`` and ``evaluate`` run in eval mode, so they are
    deterministic functions of x. With dropout, g_B is unbiased for the
    dropout-averaged objective, not for the eval-mode f.

    Cost: ``loss(x)``/``grad(x)`` pass over the whole training set in chunks of
    ``eval_batch_size`` (one forward, plus one backward for ``grad``, per
    chunk), i.e. about N/|B| minibatch gradients; ``evaluate`` uses only a fixed
    random subset of ``eval_subset`` training rows plus the test set, so it is
    the one to call periodically.

    Note:
        Buffers (e.g. BatchNorm running statistics) are not part of x; a module
        that updates buffers in train mode makes ``evaluate`` depend on the
        history of ``stochastic_grad`` calls. Prefer GroupNorm/LayerNorm, or
        ``track_running_stats=False``; a warning is raised for such modules.

    Args:
        model: The module (float32 parameters); its current parameters, flattened
            in ``parameters()`` order, define ``initial_point()``. The problem
            takes over the parameters' storage: after any oracle call they are
            views of the last x.
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar mean loss``.
        train_data: ``(inputs, targets)`` tensors with equal first dimension.
        test_data: Optional held-out ``(inputs, targets)``.
        batch_size: Minibatch size |B| (at most N).
        metrics: Extra metrics for ``evaluate``: ``"accuracy"`` (argmax over the
            last output dimension equals the target; averaged over all
            positions) and/or ``"perplexity"`` (exp of the mean token
            cross-entropy ``loss``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:<i>"`` or ``"auto"``.
        seed: Seed of the fixed evaluation subset.
        eval_subset: Number of training rows used by ``evaluate`` (capped at N).
        eval_batch_size: Chunk size for full passes.
        partition: Optional per-worker arrays of training-row indices.
        name: Name for reports (default ``"torch_<ModelClass>"``).

    Raises:
        ConfigError: Mismatched data, bad sizes, unknown metrics or device, or an
            invalid partition.

    Examples:
        >>> import numpy as np, torch
        >>> from torch import nn
        >>> x, y = torch.randn(20, 3), torch.randn(20, 1)
        >>> p = TorchProblem(nn.Linear(3, 1), nn.MSELoss(), (x, y), batch_size=4)
        >>> p.dim
        4
        >>> p.stochastic_grad(p.initial_point(), np.random.default_rng(0)).dtype
        dtype('float32')
    """

    name: str
    dim: int

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        train_data: tuple[Tensor, Tensor],
        test_data: tuple[Tensor, Tensor] | None = None,
        batch_size: int = 32,
        metrics: Sequence[str] = (),
        device: str | torch.device = "cpu",
        seed: int = 0,
        eval_subset: int = 1024,
        *,
        eval_batch_size: int = 1024,
        partition: Sequence[npt.ArrayLike] | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model must be a torch.nn.Module, got {type(model)}")
        self.device = resolve_device(device)
        self._train = self._check_data("train_data", train_data)
        self._test = (
            None if test_data is None else self._check_data("test_data", test_data)
        )
        self.num_samples = int(self._train[0].shape[0])
        self.batch_size = check_batch_size(batch_size, self.num_samples)
        unknown = [m for m in metrics if m not in METRICS]
        if isinstance(metrics, str) or unknown:
            raise ConfigError(
                f"metrics must be a sequence drawn from {METRICS}, got {metrics!r}"
            )
        self.metrics = tuple(metrics)
        check_positive_int("eval_subset", eval_subset)
        self.eval_batch_size = check_positive_int("eval_batch_size", eval_batch_size)
        self._shards: tuple[Indices, ...] | None = check_partition(
            partition, self.num_samples
        )
        self.loss_fn = loss_fn
        self.model = model.to(self.device)
        self.name = name or f"torch_{type(model).__name__}"
        self.seed = seed
        self._warn_on_running_stats(model)

        self._params = [p for p in self.model.parameters() if p.requires_grad]
        if not self._params:
            raise ConfigError("model has no parameters with requires_grad=True")
        dtypes = {p.dtype for p in self._params}
        if dtypes != {torch.float32}:
            # The flat vector is float32 and parameters are re-pointed at it.
            raise ConfigError(
                f"model parameters must all be float32, got {sorted(map(str, dtypes))}"
            )
        self.dim = int(sum(p.numel() for p in self._params))
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in self._params])
        x0 = flat.to(device="cpu", dtype=torch.float32).numpy().copy()
        x0.flags.writeable = False
        self._x0: npt.NDArray[np.float32] = x0

        sub_rng = np.random.default_rng(seed)
        k = min(eval_subset, self.num_samples)
        eval_idx = np.sort(sub_rng.choice(self.num_samples, size=k, replace=False))
        idx_t = torch.from_numpy(eval_idx).to(self.device)
        self._eval = (self._train[0][idx_t], self._train[1][idx_t])
        self._mode: bool | None = None

    # ----------------------------------------------------------------- helpers

    def _check_data(self, field: str, data: object) -> tuple[Tensor, Tensor]:
        if (
            not isinstance(data, tuple | list)
            or len(data) != 2
            or not all(isinstance(t, Tensor) for t in data)
        ):
            raise ConfigError(f"{field} must be a pair (inputs, targets) of tensors")
        inputs, targets = data
        if inputs.shape[0] != targets.shape[0] or inputs.shape[0] == 0:
            raise ConfigError(
                f"{field} inputs and targets must have the same non-zero length, got "
                f"{inputs.shape[0]} and {targets.shape[0]}"
            )
        return inputs.to(self.device), targets.to(self.device)

    @staticmethod
    def _warn_on_running_stats(model: nn.Module) -> None:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                warnings.warn(
                    "model has BatchNorm running statistics: they are not part of "
                    "the parameter vector, so evaluate() depends on the history of "
                    "stochastic_grad() calls; use track_running_stats=False or "
                    "GroupNorm for a pure oracle",
                    stacklevel=3,
                )
                return

    def _set_mode(self, train: bool) -> None:
        if self._mode is not train:  # model.train() walks every submodule
            self.model.train(train)
            self._mode = train

    def _load(self, x: npt.ArrayLike) -> None:
        """Point the module's trainable parameters at (a device copy of) x."""
        arr = np.asarray(x)
        if arr.shape != (self.dim,):
            raise ConfigError(f"x must have shape ({self.dim},), got {arr.shape}")
        if arr.dtype != np.float32 or not arr.flags.writeable:
            # from_numpy shares memory; a read-only or float64 array needs a copy.
            arr = arr.astype(np.float32, copy=True)
        with torch.no_grad():
            vector_to_parameters(torch.from_numpy(arr).to(self.device), self._params)

    def _loss_and_grad(
        self, xb: Tensor, yb: Tensor, with_grad: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Return (output, mean loss, flat gradient) on one batch.

        The gradient is an empty tensor when ``with_grad`` is false.
        """
        with torch.set_grad_enabled(with_grad):
            out = self.model(xb)
            loss = self.loss_fn(out, yb)
            if not with_grad:
                return out, loss, out.new_empty(0)
            grads = torch.autograd.grad(loss, self._params)
        return out, loss, torch.cat([g.reshape(-1) for g in grads])

    def _to_numpy(self, g: Tensor) -> Vector:
        out: npt.NDArray[np.float32] = g.detach().to("cpu").numpy()
        return out

    def _full_pass(
        self, x: npt.ArrayLike, data: tuple[Tensor, Tensor], with_grad: bool
    ) -> tuple[float, Tensor, float | None]:
        """Return (mean loss, mean gradient, accuracy or None) over data.

        The gradient is an empty tensor when ``with_grad`` is false.

        Chunk losses are weighted by chunk length, which is exact for mean-reduced
        losses over equally sized samples.
        """
        self._set_mode(False)
        self._load(x)
        inputs, targets = data
        n = inputs.shape[0]
        total = 0.0
        correct = 0.0
        size = self.dim if with_grad else 0
        grad = torch.zeros(size, dtype=torch.float32, device=self.device)
        for start in range(0, n, self.eval_batch_size):
            xb = inputs[start : start + self.eval_batch_size]
            yb = targets[start : start + self.eval_batch_size]
            w = xb.shape[0] / n
            out, loss, gc = self._loss_and_grad(xb, yb, with_grad)
            if with_grad:
                grad.add_(gc, alpha=w)
            total += float(loss.detach()) * w
            if "accuracy" in self.metrics:
                hit = (out.detach().argmax(dim=-1) == yb).to(torch.float64).mean()
                correct += float(hit) * w
        acc = correct if "accuracy" in self.metrics else None
        return total, grad, acc

    # ------------------------------------------------------------------ Problem
    # (num_shards, partition and initial_point come from ShardsAndStartMixin.)

    def loss(self, x: npt.ArrayLike) -> float:
        """Return f(x) over the full training set (eval mode; O(N) forwards)."""
        return self._full_pass(x, self._train, with_grad=False)[0]

    def grad(self, x: npt.ArrayLike) -> Vector:
        """Return ∇f(x) over the full training set (eval mode; O(N) fwd+bwd)."""
        return self._to_numpy(self._full_pass(x, self._train, with_grad=True)[1])

    def stochastic_grad(
        self, x: Vector, rng: np.random.Generator, worker: int | None = None
    ) -> Vector:
        """Return the minibatch gradient g_B(x) (train mode), bit-reproducible.

        Draws, in this order, the |B| indices (``rng.integers``) and one 63-bit seed
        for torch's generator (dropout), both from ``rng``.

        Raises:
            ConfigError: If ``worker`` is out of range on a partitioned problem.
        """
        idx = sample_indices(
            rng, self.num_samples, self.batch_size, self._shards, worker, True
        )
        torch_seed = int(rng.integers(0, 2**63 - 1))
        idx_t = torch.from_numpy(idx).to(self.device)
        xb, yb = self._train[0][idx_t], self._train[1][idx_t]
        self._set_mode(True)
        self._load(x)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=self.device.type):
            if self.device.type == "cuda":
                index = self.device.index
                if index is None:
                    index = torch.cuda.current_device()
                torch.cuda.default_generators[index].manual_seed(torch_seed)
            else:
                torch.default_generator.manual_seed(torch_seed)
            g = self._loss_and_grad(xb, yb, with_grad=True)[2]
        return self._to_numpy(g)

    def stochastic_grad_many(
        self, xs: Vector, rng: np.random.Generator, worker: int | None = None
    ) -> Vector:
        """Return g_B(x_k) for every row x_k of ``xs`` from the draws of one
        :meth:`stochastic_grad` (``torch.func.vmap``, else one call per row; see
        :mod:`clipasync.problems.torch_many`)."""
        return grad_rows(self, xs, rng, worker)

    def evaluate(self, x: npt.ArrayLike) -> dict[str, float]:
        """Return metrics at x (eval mode).

        ``loss`` and ``grad_norm`` are over the fixed evaluation subset of the
        training set (``eval_subset`` rows), as is ``accuracy``; ``test_loss`` and
        ``test_accuracy`` over the whole test set; ``perplexity`` =
        exp(``loss``) and ``test_perplexity`` = exp(``test_loss``) when requested.
        """
        loss, g, acc = self._full_pass(x, self._eval, with_grad=True)
        out = {"loss": loss, "grad_norm": float(torch.linalg.vector_norm(g))}
        if acc is not None:
            out["accuracy"] = acc
        if "perplexity" in self.metrics:
            out["perplexity"] = _safe_exp(loss)
        if self._test is not None:
            test_loss, _, test_acc = self._full_pass(x, self._test, with_grad=False)
            out["test_loss"] = test_loss
            if test_acc is not None:
                out["test_accuracy"] = test_acc
            if "perplexity" in self.metrics:
                out["test_perplexity"] = _safe_exp(test_loss)
        return out

    def __repr__(self) -> str:
        return (
            f"TorchProblem(name={self.name!r}, dim={self.dim}, "
            f"num_samples={self.num_samples}, batch_size={self.batch_size}, "
            f"device={str(self.device)!r})"
        )


def _safe_exp(v: float) -> float:
    return math.exp(v) if v < 700.0 else math.inf
