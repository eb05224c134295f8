"""SOFO problems lorenz and linreg: hand-written tangents = vmap(jvp); sketch = autograd;
O4 on the real regression task."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_sketch_matches_autograd

from rnntk.sofo.optimizer import SOFO, direction, generic_tangent_step, sample_tangents, solve
from rnntk.sofo.problems import Batch, LinregProblem, LorenzProblem
from rnntk.core.trials import TrialBatch
from rnntk.sofo.models.lorenz_map import LorenzMap

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


# ---------------------------------------------------------------- issue 12.5: upstream's PyTorch Lorenz problem
DATA = Path(__file__).parent / "data" / "sofo_upstream_lorenz_step.npz"


def test_lorenz_supervise_all_with_target_noise_matches_the_sketch_and_upstream_normalisation():
    prob = LorenzProblem(hidden=10, n_chunks=64, chunk_len=9, supervise="all", target_noise=0.0125)
    prob.prepare(torch.Generator().manual_seed(0))
    m = LorenzMap(10, generator=torch.Generator().manual_seed(1)).double()
    b = prob.sample(5, torch.Generator().manual_seed(2))
    tr = b.trials
    assert tr.mask[:, 1:].eq(1).all() and tr.mask[:, 0].eq(0).all()
    clean = tr.extra["clean_targets"]
    assert not torch.equal(tr.targets[:, 1:], clean[:, 1:]) and torch.equal(tr.inputs[:, 0], clean[:, 0])
    tr.inputs, tr.targets, tr.mask = tr.inputs.double(), tr.targets.double(), tr.mask.double()
    tr.extra["clean_targets"] = clean.double()
    with torch.no_grad():  # upstream: (1/T) sum_t mean_b mean_d (y_t - x_t)^2 over the T = chunk_len - 1 steps
        ys = m.rollout(m.params(), tr.inputs[:, 0], 8)
        up = torch.stack([((ys[:, t] - tr.targets[:, t]) ** 2).mean() for t in range(1, 9)]).mean()
        up_clean = torch.stack([((ys[:, t] - clean.double()[:, t]) ** 2).mean() for t in range(1, 9)]).mean()
    torch.testing.assert_close(prob.loss(m, b), up, rtol=1e-12, atol=0)
    assert prob.evaluate(m, b) == pytest.approx(float(up_clean), rel=1e-12)
    V = sample_tangents(m.params(), 9, generator=torch.Generator().manual_seed(3))
    assert_sketch_matches_autograd(prob, m, V, b)


def test_lorenz_target_noise_is_fixed_per_data_point():
    """As upstream's lorenz.py: noise added once to the data set (same chunk, same noisy target),
    with the requested std; inputs stay noise-free."""
    prob = LorenzProblem(hidden=4, n_chunks=400, chunk_len=33, supervise="all", target_noise=0.0125)
    prob.prepare(torch.Generator().manual_seed(0))
    d = prob.data
    diff = (d.noisy - d.chunks).double()
    assert abs(float(diff.std()) / 0.0125 - 1) < 0.02 and abs(float(diff.mean())) < 1e-3
    a = prob.sample(300, torch.Generator().manual_seed(1)).trials
    c = prob.sample(300, torch.Generator().manual_seed(2)).trials
    first = {int(k): t for k, t in zip(a.table["chunk"], a.targets)}
    common = [(t, first[int(k)]) for k, t in zip(c.table["chunk"], c.targets) if int(k) in first]
    assert len(common) > 50 and all(torch.equal(x, y) for x, y in common)
    with pytest.raises(ValueError, match="target-noise"):
        LorenzProblem(target_noise=-1.0)


def test_lorenz_one_step_equals_upstream_pytorch_with_lr_times_2_over_d():
    """Oracle: a stored step of upstream's pytorch/api.py value_and_sofo_grad_temporal on its
    lorenz.py problem (all 32 steps, noisy targets; float64, tiny model, upstream's tangents).
    rnntk's loss equals upstream's, and rnntk's Δ·(2/D) equals upstream's step h: an upstream
    learning rate η maps to η·2/D in rnntk (upstream's MSE GGN omits the 2/D of mean_d)."""
    ref = {k: torch.from_numpy(v) for k, v in np.load(DATA).items()}
    prob = LorenzProblem(hidden=8, n_chunks=4, chunk_len=33, supervise="all")
    m = LorenzMap(8).double()
    with torch.no_grad():
        for k in ("A", "C", "W"):
            getattr(m, k).copy_(ref[f"param_{k}"])
    B = ref["x0"].shape[0]
    inputs = torch.zeros(B, 33, 3, dtype=D64)
    inputs[:, 0] = ref["x0"]
    targets = torch.cat([ref["x0"][:, None], ref["targets"]], 1)
    mask = torch.ones(B, 33, dtype=D64)
    mask[:, 0] = 0
    b = Batch(TrialBatch(inputs, targets, mask, {}, 0.01, {}))
    V = {k: ref[f"V_{k}"] for k in ("A", "C", "W")}
    sk = prob.sketch(m, V, b, "manual")
    torch.testing.assert_close(sk.loss, ref["loss"][0], rtol=1e-12, atol=0)
    delta = direction(V, solve(sk, damping=1e-5).alpha)
    for k in ("A", "C", "W"):
        torch.testing.assert_close(delta[k] * (2 / 3), ref[f"h_{k}"], rtol=1e-9, atol=1e-12)


def test_cli_lorenz_upstream_pytorch_variant(tmp_path):
    from conftest import assert_user_error, run_cli

    r = run_cli("sofo-train", "--task", "lorenz", "--supervise", "all", "--target-noise", "0.0125", "--hidden", "8", "--batch", "4",
                "--eval-batch", "4", "-K", "8", "--iters", "2", "--eval-every", "1", "-q", "--out", tmp_path / "r")
    assert r.code == 0, r.stderr
    import h5py

    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        assert "supervise" in f.attrs["problem"] and "'all'" in f.attrs["problem"]
        assert np.isfinite(f["metrics/val_loss"][:]).all()
    assert_user_error(run_cli("sofo-train", "--task", "kalman", "--supervise", "all", "--out", tmp_path / "k"), "--task lorenz only")
    assert_user_error(run_cli("sofo-train", "--task", "lorenz", "--target-noise", "-1", "--out", tmp_path / "n"), "bad --target-noise")
