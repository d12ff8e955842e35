"""Problems by import path (``problem: {factory: "mod:make", args: {...}}``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.problems import make_problem
from clipasync.problems.imported import check_problem, given_key, import_target

USER_MODULE = '''
import numpy as np

class Quad:
    """f(x) = ½‖x − c‖²; the stochastic gradient adds N(0, σ²I)."""

    name = "quad"

    def __init__(self, dim, center, sigma):
        self.dim = dim
        self.c = np.full(dim, float(center))
        self.sigma = sigma

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

def make(dim=3, center=1.0, sigma=0.1):
    if dim < 1:
        raise ValueError("dim must be >= 1")
    return Quad(dim, center, sigma)

def not_a_problem():
    return 42

CONSTANT = 7
'''


@pytest.fixture
def user_root(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    name = f"userprob_{request.node.name[:20]}".replace("[", "_").replace("]", "_")
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    yield f"{tmp_path}|{name}"
    sys.modules.pop(name, None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def split(user_root: str) -> tuple[str, str]:
    root, name = user_root.split("|")
    return root, name


def test_factory_builds_the_users_problem_from_the_config_folder(user_root):
    root, mod = split(user_root)
    p = make_problem("factory", factory=f"{mod}:make", args={"dim": 4}, root=root)
    assert p.dim == 4 and p.name == "quad"
    # f(0) = ½ · 4 · 1² = 2, ∇f(0) = −c.
    assert p.loss(p.initial_point()) == 2.0
    np.testing.assert_array_equal(p.grad(np.zeros(4)), -np.ones(4))


def test_dotted_form_works_as_well_as_the_colon_form(user_root):
    root, mod = split(user_root)
    assert import_target(f"{mod}.CONSTANT", root) == 7
    assert import_target(f"{mod}:CONSTANT", root) == 7


@pytest.mark.parametrize(
    ("factory", "args", "message"),
    [
        ("no_such_mod_xyz:make", {}, "'no_such_mod_xyz:make': no module named"),
        ("{mod}:missing", {}, "has no 'missing'"),
        ("{mod}:CONSTANT", {}, "is not callable (got int)"),
        ("{mod}:not_a_problem", {}, "returned int, not a problem: it has no dim"),
        ("{mod}:make", {"dim": 0}, "raised ValueError: dim must be >= 1"),
        ("{mod}:make", {"width": 3}, "raised TypeError: make() got an unexpected"),
        ("nocolon", {}, "expected an import path 'module:attr'"),
    ],
)
def test_every_failure_is_one_line_naming_the_import_path(
    user_root, factory, args, message
):
    root, mod = split(user_root)
    path = factory.format(mod=mod)
    with pytest.raises(ConfigError) as exc:
        make_problem("factory", factory=path, args=args, root=root)
    text = str(exc.value)
    assert message in text and "\n" not in text
    assert path in text


def test_check_problem_rejects_an_initial_point_of_the_wrong_length():
    class Bad:
        name, dim = "bad", 3

        def initial_point(self):
            return np.zeros(2)

        stochastic_grad = evaluate = loss = grad = initial_point

    with pytest.raises(ConfigError, match=r"initial_point\(\) has shape \(2,\)"):
        check_problem(Bad(), "m:f")


def test_given_key_depends_on_the_initial_point_only(user_root):
    root, mod = split(user_root)
    a = make_problem("factory", factory=f"{mod}:make", root=root)
    b = make_problem("factory", factory=f"{mod}:make", args={"center": 2.0}, root=root)
    c = make_problem("factory", factory=f"{mod}:make", args={"dim": 4}, root=root)
    assert given_key(a) == given_key(b)  # same name and x_0
    assert given_key(a) != given_key(c)
