"""A user's own project written into a temporary folder: a module with a problem
factory and a PyTorch model, a data file, and one config per problem form."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

MODULE = '''
import numpy as np
from torch import nn

class Quad:
    """f(x) = ½‖x − c‖² with gradient noise N(0, σ²I)."""

    name = "quad"

    def __init__(self, dim, center, sigma):
        self.dim, self.sigma = dim, sigma
        self.c = np.full(dim, float(center))

    def initial_point(self):
        return np.zeros(self.dim)

    def loss(self, x):
        return 0.5 * float(np.sum((x - self.c) ** 2))

    def grad(self, x):
        return x - self.c

    def stochastic_grad(self, x, rng, worker=None):
        return x - self.c + self.sigma * rng.standard_normal(self.dim)

    def evaluate(self, x):
        return {"loss": self.loss(x), "grad_norm": float(np.linalg.norm(x - self.c))}

def make(dim=3, center=1.0, sigma=0.5):
    return Quad(dim, center, sigma)

class MLP(nn.Module):
    def __init__(self, features=5, hidden=8, classes=3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.Tanh(),
                                 nn.Linear(hidden, classes))

    def forward(self, x):
        return self.net(x)
'''

COMMON = """seeds: [0, 1]
timing: {kind: two_speed, num_fast: 2, num_slow: 2, slow_time: 4}
methods:
  clipped: {policy: async_sgd, stepsize: [0.1], max_norm: [1.0]}
stop: {max_time: 20}
eval_every: 5
"""

_count = itertools.count()


def write_project(folder: Path) -> tuple[str, Path, Path]:
    """Write the project; return (module name, factory config, torch config).

    The module name is new on every call (modules stay imported in a test
    process), and the configs name data by paths relative to their folder.
    """
    mod = f"byo_user_{next(_count)}_{abs(hash(str(folder))) % 10**6}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{mod}.py").write_text(MODULE)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 5)).astype(np.float32)
    y = (x @ rng.standard_normal((5, 3))).argmax(1)
    (folder / "data").mkdir(exist_ok=True)
    np.savez(folder / "data" / "train.npz", x=x, y=y)
    factory = folder / "factory.yaml"
    factory.write_text(
        f"name: byo_factory\nproblem: {{factory: '{mod}:make', args: {{dim: 3}}}}\n"
        + COMMON
    )
    torch_cfg = folder / "torch.yaml"
    torch_cfg.write_text(
        "name: byo_torch\n"
        "problem:\n"
        "  name: torch\n"
        f"  model: '{mod}:MLP'\n"
        "  model_args: {hidden: 8}\n"
        "  data: {train: data/train.npz}\n"
        "  loss: cross_entropy\n"
        "  metrics: [accuracy]\n"
        "  batch_size: 8\n" + COMMON
    )
    return mod, factory, torch_cfg


def forget(mod: str, folder: Path) -> None:
    """Undo the import of the user's module in this process."""
    sys.modules.pop(mod, None)
    while str(folder) in sys.path:
        sys.path.remove(str(folder))
