"""The declarative PyTorch problem of a config (``problem: {name: torch, ...}``)::

    problem:
      name: torch
      model: "my_nets:MLP"            # an nn.Module class or factory, by import path
      model_args: {hidden: 64}
      data: {train: data/train.npz, test: data/test.csv}
      loss: cross_entropy             # or mse, or an import path
      metrics: [accuracy]
      batch_size: 32

It builds a :class:`~clipasync.problems.torch_adaptor.TorchProblem` (the flat-vector
adaptor), so everything that adaptor guarantees holds here: the objective is
f(θ) = (1/N) Σ_i ℓ(θ; ξ_i) and a job's gradient is the minibatch gradient
∇_θ (1/|B|) Σ_{i∈B} ℓ(θ; ξ_i), the SGD oracle of arXiv 2606.13287 (§2).

A data entry is a file (``.npz``, ``.csv``, ``.parquet``; see
:mod:`clipasync.problems.datasets.user_files`), ``{dataset: "mod:make", args:
{...}}`` (a ``torch.utils.data.Dataset`` whose items are ``(input, target)``
pairs, stacked once) or ``{function: "mod:arrays", args: {...}}`` (returning
``(inputs, targets)`` arrays). Relative paths resolve against ``root``, the
config file's folder.

The model's initial weights are drawn from ``seed`` only (inside
``torch.random.fork_rng``), so every process that builds the problem from its
config starts from the same x_0. Before any run the model is applied to two
training rows and the loss to its output: a model whose input or output does not
fit the data or the loss is one error line, not a failure mid-run (and not a
silently broadcast ``mse``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clipasync.errors import ConfigError
from clipasync.problems.datasets.user_files import read_arrays
from clipasync.problems.imported import call_user, import_target
from clipasync.problems.torch_adaptor import TorchProblem

#: Built-in losses by config name (mean over the batch).
LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "cross_entropy": F.cross_entropy,
    "mse": F.mse_loss,
}


def _tensors(x: Any, y: Any, loss: str, field: str) -> tuple[Tensor, Tensor]:
    """Inputs as float32; targets int64 for cross-entropy, float32 otherwise."""
    xa = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x)
    ya = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y)
    if xa.dtype.kind not in "biuf" or ya.dtype.kind not in "biuf":
        raise ConfigError(f"{field}: inputs and targets must be numeric arrays")
    inputs = torch.from_numpy(np.array(xa, dtype=np.float32))
    if loss == "cross_entropy":
        if ya.dtype.kind == "f" and not np.all(ya == np.round(ya)):
            raise ConfigError(
                f"{field}: cross_entropy needs integer class labels as targets"
            )
        targets = torch.from_numpy(np.array(ya, dtype=np.int64))
    else:
        ya = ya.astype(np.float32)
        targets = torch.from_numpy(np.array(ya.reshape(len(ya), -1)))
    if len(inputs) != len(targets) or len(inputs) == 0:
        raise ConfigError(
            f"{field}: {len(inputs)} inputs and {len(targets)} targets (need the "
            "same non-zero number)"
        )
    return inputs, targets


def load_data(
    entry: Any, root: str | None, loss: str, field: str
) -> tuple[Tensor, Tensor]:
    """Return the ``(inputs, targets)`` tensors of one data entry.

    Raises:
        ConfigError: One line naming the entry and what was wrong.
    """
    if isinstance(entry, Mapping) and ("dataset" in entry or "function" in entry):
        kind = "dataset" if "dataset" in entry else "function"
        unknown = sorted(set(entry) - {kind, "args"})
        if unknown:
            raise ConfigError(f"{field}: unknown key {unknown[0]!r} beside {kind}:")
        path = entry[kind]
        fn = import_target(path, root, what=f"{field}.{kind}")
        made = call_user(path, fn, dict(entry.get("args") or {}))
        if kind == "dataset":
            try:
                pairs = [made[i] for i in range(len(made))]
                x = torch.stack([torch.as_tensor(p[0]) for p in pairs])
                y = torch.stack([torch.as_tensor(p[1]) for p in pairs])
            except Exception as exc:
                raise ConfigError(
                    f"{field}.dataset {path!r}: items must be (input, target) pairs "
                    f"of tensors ({type(exc).__name__}: {exc})"
                ) from None
            return _tensors(x, y, loss, field)
        if not (isinstance(made, tuple | list) and len(made) == 2):
            raise ConfigError(
                f"{field}.function {path!r} must return (inputs, targets), got "
                f"{type(made).__name__}"
            )
        return _tensors(made[0], made[1], loss, field)
    if isinstance(entry, str | Mapping):
        feats, targets = read_arrays(entry, root, field)
        return _tensors(feats, targets, loss, field)
    raise ConfigError(
        f"{field}: expected a file path, {{path: ...}}, {{dataset: ...}} or "
        f"{{function: ...}}, got {entry!r}"
    )


def _loss_fn(loss: str, root: str | None) -> Callable[[Tensor, Tensor], Tensor]:
    if loss in LOSSES:
        return LOSSES[loss]
    if ":" not in loss:
        raise ConfigError(
            f"loss {loss!r}: use one of {', '.join(LOSSES)} or an import path "
            "'module:function'"
        )
    fn = import_target(loss, root, what="loss")
    if isinstance(fn, type) and issubclass(fn, nn.Module):
        fn = call_user(loss, fn, {})
    if not callable(fn):
        raise ConfigError(f"loss {loss!r} is not callable")
    out: Callable[[Tensor, Tensor], Tensor] = fn
    return out


def _check_fit(
    model: nn.Module,
    fn: Callable[[Tensor, Tensor], Tensor],
    path: str,
    loss: str,
    train: tuple[Tensor, Tensor],
) -> None:
    """Apply the model to two rows and the loss to its output, or raise one line."""
    xb, yb = train[0][:2], train[1][:2]
    model.eval()
    with torch.no_grad():
        try:
            out = model(xb)
        except Exception as exc:
            raise ConfigError(
                f"model {path!r} does not accept inputs of shape "
                f"{tuple(xb.shape)}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            ) from None
        if not isinstance(out, Tensor):
            raise ConfigError(
                f"model {path!r} must return a tensor, got {type(out).__name__}"
            )
        fits = True
        if loss == "cross_entropy":
            classes = out.shape[-1] if out.ndim >= 2 else 0
            top = int(train[1].max())
            fits = out.ndim == 2 and yb.ndim == 1 and int(train[1].min()) >= 0
            if fits and top >= classes:
                raise ConfigError(
                    f"model {path!r} outputs {classes} classes but the targets go up "
                    f"to {top} (loss cross_entropy)"
                )
        elif loss == "mse":
            fits = tuple(out.shape) == tuple(yb.shape)
        if not fits:
            raise ConfigError(
                f"model {path!r} output of shape {tuple(out.shape)} does not fit loss "
                f"{loss!r} with targets of shape {tuple(yb.shape)}"
            )
        try:
            value = fn(out, yb)
        except Exception as exc:
            raise ConfigError(
                f"model {path!r} output of shape {tuple(out.shape)} does not fit loss "
                f"{loss!r}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            ) from None
    if not (isinstance(value, Tensor) and value.numel() == 1):
        raise ConfigError(f"loss {loss!r} must return a scalar (the batch mean)")


def torch_problem(
    model: str,
    data: Mapping[str, Any],
    model_args: Mapping[str, Any] | None = None,
    loss: str = "cross_entropy",
    metrics: Sequence[str] = (),
    batch_size: int = 32,
    seed: int = 0,
    device: str = "cpu",
    eval_subset: int = 1024,
    root: str | None = None,
) -> TorchProblem:
    """Build the :class:`TorchProblem` of a declarative config (module docstring).

    Args:
        model: Import path of an ``nn.Module`` class or a function returning one.
        data: ``{train: entry, test: entry}`` (``test`` optional).
        model_args: Keyword arguments of ``model``.
        loss: ``cross_entropy``, ``mse`` or an import path (a function
            ``loss(output, target)`` returning the batch mean, or a module class).
        metrics: ``accuracy`` and/or ``perplexity`` (see :class:`TorchProblem`).
        batch_size: Minibatch size |B|.
        seed: Seed of the initial weights and of the evaluation subset.
        device: ``cpu``, ``cuda``, ``cuda:<i>`` or ``auto``.
        eval_subset: Training rows used by ``evaluate``.
        root: Folder for relative paths and modules (the config file's folder).

    Raises:
        ConfigError: One line naming what was wrong (import path, data entry,
            a model that does not fit the data or the loss).
    """
    if not isinstance(data, Mapping) or "train" not in data:
        raise ConfigError("data must be a mapping {train: ..., test: ...}")
    unknown = sorted(set(data) - {"train", "test"})
    if unknown:
        raise ConfigError(f"data: unknown key {unknown[0]!r}; use train and test")
    fn = _loss_fn(loss, root)
    train = load_data(data["train"], root, loss, "data.train")
    test = None
    if data.get("test") is not None:
        test = load_data(data["test"], root, loss, "data.test")
        if test[0].shape[1:] != train[0].shape[1:]:
            raise ConfigError(
                f"data.test inputs have shape {tuple(test[0].shape[1:])} per row, "
                f"data.train {tuple(train[0].shape[1:])}"
            )
    factory = import_target(model, root, what="model")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = call_user(model, factory, dict(model_args or {}))
    if not isinstance(net, nn.Module):
        raise ConfigError(
            f"model {model!r} returned {type(net).__name__}, not a torch.nn.Module"
        )
    _check_fit(net, fn, model, loss, train)
    return TorchProblem(
        net,
        fn,
        train,
        test,
        batch_size=batch_size,
        metrics=tuple(metrics),
        device=device,
        seed=seed,
        eval_subset=eval_subset,
        name=f"torch_{model.rpartition(':')[2].rpartition('.')[2]}",
    )
