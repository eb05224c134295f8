"""SOFO problems lorenz and linreg: hand-written tangents = vmap(jvp); sketch = autograd;
O4 on the real regression task."""

import pytest
import torch
from conftest import assert_sketch_matches_autograd

from rnntk.methods.sofo import SOFO, generic_tangent_step, sample_tangents
from rnntk.methods.sofo_problems import LinregProblem, LorenzProblem
from rnntk.nets.lorenz_map import LorenzMap

pytestmark = pytest.mark.filterwarnings("error:There is a performance drop")
D64 = torch.float64


def test_lorenz_map_tangents_and_sketch():
    prob = LorenzProblem(hidden=12, n_chunks=64, chunk_len=9)
    prob.prepare(torch.Generator().manual_seed(0))
    m = LorenzMap(12, generator=torch.Generator().manual_seed(1)).double()
    b = prob.sample(6, torch.Generator().manual_seed(2))
    tr = b.trials
    tr.inputs, tr.targets, tr.mask = tr.inputs.double(), tr.targets.double(), tr.mask.double()
    p = m.params()
    V = sample_tangents(p, 9, generator=torch.Generator().manual_seed(3))
    gen = generic_tangent_step(m.step)
    ya = yb = tr.inputs[:, 0]
    da = db = torch.zeros(9, 6, 3, dtype=D64)
    for _ in range(8):
        ya, _, da, _ = gen(p, ya, da, V, None, None)
        yb, _, db, _ = m.tangent_step(p, yb, db, V)
        torch.testing.assert_close(db, da, rtol=0, atol=1e-12)
    assert tr.mask[:, -1].eq(1).all() and tr.mask[:, :-1].eq(0).all()  # final state only
    assert_sketch_matches_autograd(prob, m, V, b)


def test_O4_linreg_one_full_rank_undamped_step_recovers_the_teacher():
    prob = LinregProblem(n_in=20, n_out=3)
    prob.prepare(torch.Generator().manual_seed(0))
    model = prob.make_model(torch.Generator()).double()
    prob.teacher = prob.teacher.double()
    b = prob.sample(200, torch.Generator().manual_seed(1))
    b.trials.inputs, b.trials.targets = b.trials.inputs.double(), b.trials.targets.double()
    assert prob.evaluate(model, b) > 0.5
    opt = SOFO(dict(model.named_parameters()), n_tangents=60, damping=0.0, lr=1.0, generator=torch.Generator().manual_seed(2))
    opt.step(lambda V: prob.sketch(model, V, b))
    x, y = b.trials.inputs[:, 0], b.trials.targets[:, 0]
    torch.testing.assert_close(model.weight.detach().T, torch.linalg.lstsq(x, y).solution, rtol=0, atol=1e-9)
    torch.testing.assert_close(model.weight.detach().T, prob.teacher, rtol=0, atol=1e-5)  # targets made in float32
    assert prob.evaluate(model, b) < 1e-10
