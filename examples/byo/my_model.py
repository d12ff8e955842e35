"""Your own model and data: a small MLP on a generated tabular data set.

Run ``python my_model.py`` once to write ``data/train.npz`` and ``data/test.csv``
next to this file; ``byo.yaml`` then trains the MLP with clipped and vanilla
asynchronous SGD (``clipasync run byo.yaml``). ``make_problem`` is the same
problem as a factory (``problem: {factory: "my_model:make_problem"}``, or
``clipasync.api.compare(my_model.make_problem, ...)``).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn


class MLP(nn.Module):
    """features -> hidden (tanh) -> classes logits."""

    def __init__(self, features: int = 20, hidden: int = 32, classes: int = 3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, classes)
        )

    def forward(self, x):
        return self.net(x)


def make_data(folder: Path, rows: int = 2000, features: int = 20, seed: int = 0):
    """Three classes from a random linear teacher, 10% of labels flipped."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features)).astype(np.float32)
    y = (x @ rng.standard_normal((features, 3))).argmax(axis=1)
    flip = rng.random(rows) < 0.1
    y[flip] = rng.integers(0, 3, flip.sum())
    folder.mkdir(exist_ok=True)
    split = rows * 4 // 5
    np.savez(folder / "train.npz", x=x[:split], y=y[:split])
    test = pd.DataFrame(x[split:], columns=[f"f{i}" for i in range(features)])
    test.assign(label=y[split:]).to_csv(folder / "test.csv", index=False)


def make_problem(hidden: int = 32, seed: int = 0):
    """The factory form: the training set of ``data/`` as a ``TorchProblem``."""
    from clipasync.problems import TorchProblem

    data = np.load(Path(__file__).resolve().parent / "data" / "train.npz")
    train = (torch.from_numpy(data["x"]), torch.from_numpy(data["y"]))
    torch.manual_seed(seed)  # the initial weights come from the seed only
    model = MLP(features=train[0].shape[1], hidden=hidden)
    return TorchProblem(
        model, nn.functional.cross_entropy, train, batch_size=32, metrics=["accuracy"]
    )


if __name__ == "__main__":
    make_data(Path(__file__).resolve().parent / "data")
