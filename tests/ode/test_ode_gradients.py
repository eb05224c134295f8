"""ode-train's gradients are strategy objects chosen by name at the edge (issue 15 item 5):
every registered name resolves to a :class:`Gradient` class, ``auto`` resolves to one of them by
``auto_adjoint``'s rule, train.py tests no gradient name, and a strategy passed as an object
gives the numbers of its name (oracle: the same solve chosen by name; GQ vs direct within tolerance)."""

import ast
from pathlib import Path

import pytest
import torch

from rnntk.ode.gradients import GQ, GRADIENTS, Adjoint, Direct, Gradient, SDEAdjoint, SDEDirect, Seminorm, make_gradient
from rnntk.ode.train import ADJOINTS, ODEConfig, ODEProblem

TRAIN = Path(__file__).resolve().parents[2] / "rnntk" / "ode" / "train.py"


def test_every_name_resolves_to_a_strategy_class():
    assert ADJOINTS == ("gq", "adjoint", "seminorm", "direct", "sde-direct", "sde-adjoint", "auto")
    expected = {"gq": GQ, "adjoint": Adjoint, "seminorm": Seminorm, "direct": Direct, "sde-direct": SDEDirect, "sde-adjoint": SDEAdjoint}
    assert GRADIENTS == expected
    for name, cls in GRADIENTS.items():
        g = make_gradient(name)
        assert issubclass(cls, Gradient) and type(g) is cls and g.name == name
    for bad in ("auto", "magic"):
        with pytest.raises(ValueError, match="unknown gradient"):
            make_gradient(bad)


def _gradient_name_compares(path: Path) -> list[str]:
    """Comparisons in ``path`` against a gradient's name ("auto", resolved at the edge, is allowed)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                for sub in ast.walk(side):
                    if isinstance(sub, ast.Constant) and sub.value in GRADIENTS:
                        found.append(f"{path.name}:{node.lineno} compares with {sub.value!r}")
    return found


def test_train_tests_no_gradient_name(tmp_path):
    assert _gradient_name_compares(TRAIN) == []
    before = tmp_path / "train.py"  # the shape of ode_train.solve before the strategies: the check sees it
    before.write_text('def solve(cfg):\n    if cfg.adjoint == "gq":\n        pass\n    opts = 1 if cfg.adjoint in ("seminorm",) else None\n')
    assert len(_gradient_name_compares(before)) == 2


def _grads(cfg: ODEConfig, gradient=None):
    torch.manual_seed(0)
    prob = ODEProblem(cfg, torch.Generator().manual_seed(0), gradient)
    mods = prob.modules()
    loss, st, _ = prob.loss(prob.batches(torch.Generator().manual_seed(0))[0], torch.device("cpu"))
    loss.backward()
    return prob, [p.grad.clone() for p in mods.parameters()], st


@pytest.mark.parametrize("name", ["gq", "adjoint", "seminorm", "direct"])
def test_a_strategy_object_gives_the_numbers_of_its_name(name):
    cfg = ODEConfig(task="g1d", adjoint=name, width=8, n_train=4, batch=2, rtol=1e-6, atol=1e-6)
    p1, by_name, st1 = _grads(cfg)
    cfg2 = ODEConfig(task="g1d", adjoint="direct", width=8, n_train=4, batch=2, rtol=1e-6, atol=1e-6)
    p2, by_obj, st2 = _grads(cfg2, make_gradient(name))
    assert type(p1.gradient) is GRADIENTS[name] and p2.gradient.name == name
    assert all(torch.equal(a, b) for a, b in zip(by_name, by_obj))
    assert (st1.nfe_forward, st1.nfe_backward) == (st2.nfe_forward, st2.nfe_backward)
    _, direct, _ = _grads(cfg2)
    num = sum(float((a - b).pow(2).sum()) for a, b in zip(by_obj, direct)) ** 0.5
    assert num <= 1e-3 * sum(float(b.pow(2).sum()) for b in direct) ** 0.5


def test_auto_resolves_to_a_strategy_by_the_rule():
    """g1d at batch 2: 1 interval, 4,740 parameters for 8 state numbers -> GQ; sines: many intervals -> direct."""
    prob = ODEProblem(ODEConfig(task="g1d", adjoint="auto", width=64, batch=2, n_train=8), torch.Generator().manual_seed(0))
    assert prob.auto_shape() == (1, 4740, 8) and isinstance(prob.gradient, GQ)
    prob = ODEProblem(ODEConfig(task="sines", adjoint="auto", width=8, ntimes=6), torch.Generator().manual_seed(0))
    assert isinstance(prob.gradient, Direct)


def test_sde_strategies_refuse_an_ode():
    with pytest.raises(ValueError, match="only --task ou"):
        SDEAdjoint().solve(ODEConfig(task="ou"), torch.nn.Linear(1, 1), torch.zeros(2, 1), torch.tensor([0.0, 1.0]))
