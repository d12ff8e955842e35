"""The batched oracle of a PyTorch model: every row's minibatch gradient in one
``torch.func`` call (``functional_call`` + ``vmap`` of ``grad``).

:meth:`~clipasync.problems.torch_adaptor.TorchProblem.stochastic_grad_many` draws
the minibatch indices and the torch seed of one ``stochastic_grad`` call, then
vectorises the gradient over the K stacked parameter vectors with
``torch.func.vmap(..., randomness="error")``. A model that vmap cannot take (random
layers such as dropout, whose draws would differ from the one-configuration run's,
in-place buffer updates such as batch norm in training mode, or an unsupported
operation) raises inside vmap; the problem then remembers it and uses the per-row
replay of :func:`clipasync.problems.many.replay_rows` (bit-identical to the
one-configuration gradients), as it does for fewer than :data:`VMAP_MIN_ROWS`
rows. Rows agree with ``stochastic_grad`` up to float32 rounding of the vectorised
kernels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from clipasync.problems._common import sample_indices
from clipasync.problems.many import Rows, replay_rows

#: Fewer rows than this replay one call per row: vmap's fixed cost per call
#: (≈ 5 ms on the MNIST-1D MLP, 1 thread) exceeds ≈ 1 ms per row of the replay
#: below 5–6 rows (measured: 4 rows 5.3 vs 4.7 ms, 16 rows 5.5 vs 16 ms).
VMAP_MIN_ROWS = 6


def grad_rows(
    problem: Any, xs: Rows, rng: np.random.Generator, worker: int | None
) -> Rows:
    """Return the gradient of every row of ``xs`` on one minibatch (module
    docstring); ``problem`` is a ``TorchProblem``."""
    if getattr(problem, "_vmap_fails", False) or xs.shape[0] < VMAP_MIN_ROWS:
        return replay_rows(problem, xs, rng, worker)
    start = rng.bit_generator.state
    idx = sample_indices(
        rng, problem.num_samples, problem.batch_size, problem.partition, worker, True
    )
    torch_seed = int(rng.integers(0, 2**63 - 1))
    try:
        return _vmapped(problem, xs, idx, torch_seed)
    except Exception:  # vmap cannot take this model: replay, as one run would
        problem._vmap_fails = True
        rng.bit_generator.state = start
        return replay_rows(problem, xs, rng, worker)


def _vmapped(problem: Any, xs: Rows, idx: Any, torch_seed: int) -> Rows:
    model, device = problem.model, problem.device
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())
    k = xs.shape[0]
    flat = torch.from_numpy(np.ascontiguousarray(xs, dtype=np.float32)).to(device)
    pieces = torch.split(flat, [p.numel() for _, p in named], dim=1)
    stacked = {
        n: piece.reshape(k, *p.shape)
        for (n, p), piece in zip(named, pieces, strict=True)
    }
    idx_t = torch.from_numpy(idx).to(device)
    xb, yb = problem._train[0][idx_t], problem._train[1][idx_t]

    def loss(params: dict[str, torch.Tensor]) -> torch.Tensor:
        out = functional_call(model, {**params, **frozen, **buffers}, (xb,))
        value: torch.Tensor = problem.loss_fn(out, yb)
        return value

    problem._set_mode(True)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        torch.manual_seed(torch_seed)
        grads = vmap(grad(loss), randomness="error")(stacked)
    rows = torch.cat([grads[n].reshape(k, -1) for n, _ in named], dim=1)
    out: Rows = rows.detach().to("cpu").numpy()
    return out
