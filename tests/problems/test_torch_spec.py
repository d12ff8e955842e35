"""The declarative PyTorch problem (``problem: {name: torch, model, data, ...}``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from clipasync.errors import ConfigError  # noqa: E402
from clipasync.problems import make_problem  # noqa: E402

NETS = """
import numpy as np
import torch
from torch import nn

class MLP(nn.Module):
    def __init__(self, features=4, classes=3, hidden=6):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.Tanh(),
                                 nn.Linear(hidden, classes))

    def forward(self, x):
        return self.net(x)

class Pairs(torch.utils.data.Dataset):
    def __init__(self, n=10, features=4):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, features, generator=g)
        self.y = torch.arange(n) % 3

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]

def arrays(n=10, features=4):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, features)), np.arange(n) % 3
"""


@pytest.fixture
def project(tmp_path: Path, request: pytest.FixtureRequest):
    """A user folder: a module of nets and the same 12 × 4 data in three formats."""
    mod = f"nets_{abs(hash(request.node.name)) % 10**8}"
    (tmp_path / f"{mod}.py").write_text(NETS)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 4)).astype(np.float32)
    y = np.arange(12) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(4)]).assign(label=y)
    frame.to_csv(tmp_path / "d.csv", index=False)
    if importlib.util.find_spec("pyarrow") is not None:  # the parquet extra
        frame.to_parquet(tmp_path / "d.parquet")
    yield tmp_path, mod, x, y
    sys.modules.pop(mod, None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def build(root: Path, mod: str, train, **kw):
    return make_problem(
        "torch",
        model=f"{mod}:MLP",
        data={"train": train, **kw.pop("extra_data", {})},
        root=str(root),
        batch_size=4,
        **kw,
    )


@pytest.mark.parametrize("entry", ["d.npz", "d.csv", "d.parquet"])
def test_every_file_format_gives_the_same_problem(project, entry):
    root, mod, x, y = project
    if entry.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    p = build(root, mod, entry, metrics=["accuracy"])
    ref = build(root, mod, "d.npz", metrics=["accuracy"])
    x0 = p.initial_point()
    # The same seed gives the same initial weights; the same rows the same loss.
    np.testing.assert_array_equal(x0, ref.initial_point())
    assert p.loss(x0) == ref.loss(x0)
    # The loss is the mean cross-entropy of the module's output on the file's rows.
    net = p.model
    with torch.no_grad():
        want = torch.nn.functional.cross_entropy(
            net(torch.from_numpy(x)), torch.from_numpy(y)
        )
    assert p.loss(x0) == pytest.approx(float(want), rel=1e-6)


def test_dataset_and_function_entries(project):
    root, mod, _, _ = project
    ds = build(root, mod, {"dataset": f"{mod}:Pairs", "args": {"n": 9}})
    fn = build(root, mod, {"function": f"{mod}:arrays"})
    assert ds.num_samples == 9 and fn.num_samples == 10


def test_csv_target_column_by_name(project):
    root, mod, _, _ = project
    frame = pd.read_csv(root / "d.csv")
    frame[["label", *frame.columns[:-1]]].to_csv(root / "first.csv", index=False)
    a = build(root, mod, {"path": "first.csv", "target": "label"})
    b = build(root, mod, "d.csv")
    assert a.loss(a.initial_point()) == b.loss(b.initial_point())


@pytest.mark.parametrize(
    ("train", "kw", "message"),
    [
        ("missing.npz", {}, "data.train: data file not found: missing.npz"),
        ("d.txt", {}, "unknown data format '.txt'"),
        # Five columns of features for a model built for four.
        ("wide.csv", {}, "does not accept inputs of shape (2, 5)"),
        ("d.npz", {"model_args": {"classes": 2}}, "outputs 2 classes but the targets"),
        ("d.npz", {"loss": "mse"}, "output of shape (2, 3) does not fit loss 'mse'"),
        ("d.npz", {"loss": "hinge"}, "loss 'hinge': use one of cross_entropy, mse"),
        ({"path": "d.npz", "x": "a"}, {}, "holds arrays ['x', 'y']; expected 'a'"),
        ({"function": "nope_mod:f"}, {}, "no module named 'nope_mod'"),
    ],
)
def test_bad_data_or_model_is_one_line(project, train, kw, message):
    root, mod, x, y = project
    pd.DataFrame(np.hstack([x, x[:, :1]])).assign(t=y).to_csv(
        root / "wide.csv", index=False
    )
    (root / "d.txt").write_text("1")
    with pytest.raises(ConfigError) as exc:
        build(root, mod, train, **kw)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_test_split_must_have_the_training_rows_shape(project):
    root, mod, x, y = project
    np.savez(root / "t.npz", x=x[:, :3], y=y)
    with pytest.raises(ConfigError, match=r"data.test inputs have shape \(3,\)"):
        build(root, mod, "d.npz", extra_data={"test": "t.npz"})
