"""SOFO on ConstrainedRNN (issue 18.2/18.5): the hand-written constrained tangent step equals
vmap(jvp) of the constrained step (the generic path); the sketch's gradient equals autograd's
gradient projected on the tangents; Dale's law, masks, no autapses and fixed weights hold EXACTLY
after 50 SOFO steps. Oracles: torch.func.jvp/vmap, torch.autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnntk.core.constrained_rnn import ConstrainedRNN
from rnntk.core.trials import TrialBatch
from rnntk.sofo.constrained import sketch_constrained
from rnntk.sofo.optimizer import MSE, SOFO, CrossEntropy, generic_tangent_step

N, NI, NO, B, T = 12, 3, 2, 6, 8


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def model(tmp_path, **kw) -> ConstrainedRNN:
    rng = np.random.default_rng(1)
    mask_rec = rng.random((N, N)) < 0.6
    np.savez(tmp_path / "c.npz", mask_rec=mask_rec, fixed_rec=mask_rec & (rng.random((N, N)) < 0.2), fixed_out=np.eye(NO, N, dtype=bool))
    kw = {"dale_ratio": 0.75, "connectivity": str(tmp_path / "c.npz"), "autapses": False, "dt": 0.02, "tau": 0.1, "g": 1.2, "activation": "softplus", **kw}
    return ConstrainedRNN(NI, N, NO, generator=gen(), **kw)


def trials(seed: int) -> TrialBatch:
    g = gen(seed)
    u = torch.randn(B, T, NI, generator=g)
    y = torch.stack([u[..., 0].cumsum(1) * 0.1, u[..., 1]], -1)
    return TrialBatch(u, y, torch.ones(B, T))


def test_manual_tangent_step_equals_vmap_jvp(tmp_path):
    m = model(tmp_path, rec_noise=0.1, input_noise=0.05)
    p = {k: v.detach() for k, v in m.named_parameters()}
    with torch.no_grad():
        p["theta_rec"][::2] *= -1  # negative theta: |theta| flips the tangent's sign there
    K = 5
    V = {k: torch.randn(K, *v.shape, generator=gen(2)) for k, v in p.items()}
    x = torch.randn(B, N, generator=gen(3))
    dx = torch.randn(K, B, N, generator=gen(4))
    u = torch.randn(B, NI, generator=gen(5))
    xi = torch.randn(B, N + NI, generator=gen(6))
    manual = m.tangent_step(p, x, dx, V, u, xi)
    oracle = generic_tangent_step(m.step_output)(p, x, dx, V, u, xi)
    for a, b in zip(manual, oracle):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_sketch_manual_equals_generic_and_its_gradient_is_autograd(tmp_path):
    m = model(tmp_path, rec_noise=0.1)
    tr = trials(7)
    noise = m.sample_noise(B, T, gen(8))
    p = {k: v for k, v in m.named_parameters()}
    V = {k: torch.randn(6, *v.shape, generator=gen(9)) for k, v in p.items()}
    loss = MSE(1.0 / T)
    a = sketch_constrained(m, V, tr, loss, noise, impl="manual")
    b = sketch_constrained(m, V, tr, loss, noise, impl="generic")
    torch.testing.assert_close(a.g_hat, b.g_hat, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(a.G_hat, b.G_hat, rtol=1e-5, atol=1e-7)
    y, _ = m(tr.inputs, noise)
    L = sum(loss.value(y[:, t], tr.targets[:, t]) for t in range(T))  # the loss summed over the steps
    grads = torch.autograd.grad(L, list(p.values()))
    g_ref = sum(torch.einsum("k...,...->k", V[k], g) for k, g in zip(p, grads))
    torch.testing.assert_close(a.g_hat.float(), g_ref, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(a.loss.float(), L.detach(), rtol=1e-5, atol=1e-7)


def test_sofo_50_steps_keep_signs_masks_and_fixed_weights_exactly(tmp_path):
    m = model(tmp_path, rec_noise=0.05, input_noise=0.05)
    before = {k[2:]: w.detach().clone() for k, w in m.effective().items()}
    opt = SOFO(m, n_tangents=16, damping=1e-2, lr=0.3, generator=gen(10))
    g = gen(11)
    loss = CrossEntropy(1.0 / T)
    losses = []
    for i in range(50):
        tr = trials(100 + i)
        tr = TrialBatch(tr.inputs, (tr.targets[..., 0] > 0).long(), tr.mask)  # a class per step
        info = opt.step(lambda V, tr=tr: sketch_constrained(m, V, tr, loss, m.sample_noise(B, T, g)))
        losses.append(info.loss)
    W = m.effective()
    for b in ("in", "rec", "out"):
        w = W[f"W_{b}"].detach()
        off = ~getattr(m, f"mask_{b}")
        assert torch.equal(w[off], torch.zeros_like(w[off]))
        fixed = getattr(m, f"fixed_{b}")
        assert torch.equal(w[fixed], before[b][fixed])
    rec = W["W_rec"].detach()
    assert torch.equal(rec.diagonal(), torch.zeros(N))
    assert bool(((rec * m.dale_sign) >= 0).all())
    free = m.free_mask("rec")
    assert not torch.equal(rec[free], before["rec"][free])  # SOFO did move the free weights
    assert sum(losses[-10:]) < sum(losses[:10])


# ------------------------------------------------------------------ the reach tasks' network
def reach_problem(tmp_path, **kw):
    from rnntk.sofo.problems import ReachProblem

    c = {"dale_ratio": 0.8, "connectivity": str(tmp_path / "c.npz"), "autapses": False, **kw}
    model(tmp_path)  # writes c.npz (12 units)
    return ReachProblem("single-reach", hidden=N, dt=0.01, tau=0.02, duration=0.2, noise=True, constraints=c)


def assert_motor_constraints(m, before) -> None:
    W = m.core.effective()
    for b in ("in", "rec", "out"):
        w = W[f"W_{b}"].detach()
        off = ~getattr(m.core, f"mask_{b}")
        assert torch.equal(w[off], torch.zeros_like(w[off]))
        fixed = getattr(m.core, f"fixed_{b}")
        assert torch.equal(w[fixed], before[b][fixed])
    rec = W["W_rec"].detach()
    assert torch.equal(rec.diagonal(), torch.zeros(N))
    assert bool(((rec * m.core.dale_sign) >= 0).all())
    mp = m.motor_params(m.params())  # what the arm network multiplies: row-vector W[:-1] = W_rec^T
    assert torch.equal(mp["W"][:-1], rec.T)
    free = m.core.free_mask("rec")
    assert not torch.equal(rec[free], before["rec"][free])


def test_reach_constrained_manual_tangents_equal_vmap_jvp(tmp_path):
    from rnntk.sofo.models.constrained_motor import ConstrainedMotorRNN

    prob = reach_problem(tmp_path)
    m = prob.make_model(gen(0))
    assert isinstance(m, ConstrainedMotorRNN)
    b = prob.sample(3, gen(1))
    p = m.params()
    with torch.no_grad():
        p["core.theta_rec"][::2] *= -1
    V = {k: torch.randn(4, *v.shape, generator=gen(2)) for k, v in p.items() if not k.startswith("core.b")}
    state, dstate = m.initial_state(p, 3), m.initial_tangent(V, 3)
    args = (p, state, dstate, V, b.trials.inputs[:, 0], b.noise[:, 0])
    manual = m.tangent_step(*args)
    oracle = generic_tangent_step(m.step)(*args)
    flat = lambda out: [*out[0], out[1], *out[2], out[3]]  # noqa: E731 - (state, y, dstate, dy), states are tuples
    for a, o in zip(flat(manual), flat(oracle)):
        torch.testing.assert_close(a, o, rtol=1e-5, atol=1e-6)
    sk_m, sk_g = prob.sketch(m, V, b, "manual"), prob.sketch(m, V, b, "generic")
    torch.testing.assert_close(sk_m.g_hat, sk_g.g_hat, rtol=1e-5, atol=1e-8)
    L = prob.loss(m, b)  # autograd through the constrained rollout
    params = dict(m.named_parameters())
    keys = [k for k in V if params[k].requires_grad]
    grads = torch.autograd.grad(L, [params[k] for k in keys])
    g_ref = sum(torch.einsum("k...,...->k", V[k], g) for k, g in zip(keys, grads))
    torch.testing.assert_close(sk_m.g_hat.float(), g_ref, rtol=1e-4, atol=1e-6)


def test_reach_constraints_hold_exactly_after_50_sofo_and_50_adam_steps(tmp_path):
    prob = reach_problem(tmp_path)
    g = gen(3)
    for optim in ("sofo", "adam"):
        m = prob.make_model(gen(0))
        before = {k[2:]: w.detach().clone() for k, w in m.core.effective().items()}
        if optim == "sofo":
            opt = SOFO(dict(m.named_parameters()), n_tangents=16, damping=1e-3, lr=0.5, generator=gen(4))
            assert "core.b" not in opt.params and "core.theta_rec" in opt.params  # SOFO perturbs the free parameters only
        else:
            adam = torch.optim.Adam(m.parameters(), lr=1e-2)
        for _ in range(50):
            b = prob.sample(4, g)
            if optim == "sofo":
                opt.step(lambda V, b=b, m=m: prob.sketch(m, V, b, "auto"))
            else:
                loss = prob.loss(m, b)
                adam.zero_grad()
                loss.backward()
                adam.step()
        assert_motor_constraints(m, before)


def test_reach_constrained_model_round_trips_and_speaks_the_contract(tmp_path):
    from rnntk.core.models import as_recurrent_model, load_model
    from rnntk.engine.checkpoint import save_checkpoint

    prob = reach_problem(tmp_path)
    m = prob.make_model(gen(0))
    save_checkpoint(tmp_path / "model.pt", model=m, hparams=m.hparams())
    (tmp_path / "c.npz").unlink()
    back = load_model(tmp_path / "model.pt")
    b = prob.sample(3, gen(5))
    torch.testing.assert_close(
        back.rollout(back.params(), b.trials.inputs, b.noise)["hand"], m.rollout(m.params(), b.trials.inputs, b.noise)["hand"], rtol=0, atol=0
    )
    c = as_recurrent_model(back)
    assert torch.equal(c.recurrent_weight(), back.core.effective()["W_rec"])
    x, u = torch.randn(3, N, generator=gen(6)), torch.randn(3, c.n_in, generator=gen(7))
    ones = torch.ones(3, N)
    ref = back.step(back.params(), (x, u[:, -4:-2], u[:, -2:]), u[:, : c.n_in - 4], ones)[0][0]
    torch.testing.assert_close(c.step(x, u), ref)


def test_cli_constraints_reach_the_reach_network_and_bad_input_is_one_line(tmp_path):
    import h5py
    from conftest import assert_user_error, run_cli

    tiny = ["--hidden", "10", "--batch", "4", "-K", "8", "--duration", "0.2", "--eval-batch", "4", "--save-traces", "2"]
    r = run_cli(
        "sofo-train",
        "--task",
        "single-reach",
        "--optimizer",
        "both",
        "--iters",
        "3",
        *tiny,
        "--dale-ratio",
        "0.8",
        "--connectivity",
        "0.5",
        "--no-autapses",
        "--out",
        tmp_path / "r",
    )
    assert r.code == 0, r.stderr
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        for pre in ("", "adam_model/"):
            W, s, mask = (f[f"model/{pre}core.{k}"][()] for k in ("W_rec", "dale_sign", "mask_rec"))
            assert ((W * s) >= 0).all() and (W[~mask] == 0).all() and (np.diag(W) == 0).all()
        assert f["model"].attrs["model_class"] == "ConstrainedMotorRNN"
    for args, needle in (
        (["--connectivity", "1.5"], "--connectivity"),
        (["--connectivity", str(tmp_path / "none.npz")], "file not found"),
        (["--dale-ratio", "2"], "--dale-ratio"),
        (["--task", "kalman", "--dale-ratio", "0.8"], "not kalman"),
        (["--rec-noise", "0.1"], "--rec-noise"),
    ):
        assert_user_error(run_cli("sofo-train", "--iters", "1", *tiny, *args, "--out", tmp_path / "bad"), needle)


def test_neurogym_task_builds_the_constrained_network_and_its_sketch_is_vmap_jvp():
    pytest.importorskip("neurogym")
    from rnntk.sofo.problems import make_problem

    c = {"dale_ratio": 0.8, "connectivity": 0.5, "autapses": False, "rec_noise": 0.05, "input_noise": 0.01}
    prob = make_problem("neurogym:PerceptualDecisionMaking-v0", hidden=N, constraints=c)
    assert prob.has_manual_tangents
    m = prob.make_model(gen(0))
    assert isinstance(m, ConstrainedRNN) and m.activation == "softplus"
    b = prob.sample(4, gen(1))
    assert b.noise is not None and b.noise.shape == (4, b.trials.steps, N + m.n_in)
    V = {k: torch.randn(6, *v.shape, generator=gen(2)) for k, v in m.named_parameters()}
    a, o = prob.sketch(m, V, b, "manual"), prob.sketch(m, V, b, "generic")
    torch.testing.assert_close(a.g_hat, o.g_hat, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(a.G_hat, o.G_hat, rtol=1e-5, atol=1e-8)
    L = prob.loss(m, b)  # autograd through the same noisy rollout
    grads = torch.autograd.grad(L, list(m.parameters()))
    g_ref = sum(torch.einsum("k...,...->k", V[k], g) for k, g in zip(dict(m.named_parameters()), grads))
    torch.testing.assert_close(a.g_hat.float(), g_ref, rtol=1e-4, atol=1e-6)


def test_step_cap_defaults_to_auto_with_constraints_only():
    """--max-step-norm unset: AUTO_STEP_CAP with any constraint, 0 (off) without; an explicit value wins."""
    from rnntk.sofo.config import AUTO_STEP_CAP, TrainConfig

    assert AUTO_STEP_CAP > 0
    assert TrainConfig(task="neurogym:PerceptualDecisionMaking-v0", dale_ratio=0.8).max_step_norm == AUTO_STEP_CAP
    assert TrainConfig(task="single-reach", connectivity=0.5).max_step_norm == AUTO_STEP_CAP
    assert TrainConfig(task="neurogym:PerceptualDecisionMaking-v0").max_step_norm == 0.0
    assert TrainConfig().max_step_norm == 0.0
    assert TrainConfig(task="neurogym:PerceptualDecisionMaking-v0", dale_ratio=0.8, max_step_norm=0.0).max_step_norm == 0.0


def test_cli_neurogym_with_dale_and_defaults_stays_finite(tmp_path, cli_in_process):
    """Issue 18: ``sofo-train --task neurogym:PerceptualDecisionMaking-v0 --dale-ratio 0.8`` with the
    CLI's SOFO defaults (K, damping, lr, auto step cap) at the benchmark's dt 20 ms stays finite and
    never raises the training loss above its start. Uncapped (``--max-step-norm 0``, the former
    default) the Gauss–Newton steps along the sketch's weakly curved directions push W_rec's spectral
    radius past 1, the softplus rates overflow, and the run stops non-finite (exit 3) within 12 iterations."""
    pytest.importorskip("neurogym")
    import h5py

    args = ["sofo-train", "--task", "neurogym:PerceptualDecisionMaking-v0", "--task-kwargs", '{"dt": 20}', "--dale-ratio", "0.8"]
    args += ["--iters", "12", "--eval-every", "6", "--eval-batch", "16", "--save-traces", "0"]
    r = cli_in_process(*args, "--out", tmp_path / "r")
    assert r.code == 0, r.stderr
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        loss, step = f["metrics/loss"][()], f["metrics/step_norm"][()]
    assert len(loss) == 12 and np.isfinite(loss).all() and np.isfinite(step).all()
    assert float(np.max(loss)) <= float(loss[0]) * 1.01
    r0 = cli_in_process(*args, "--max-step-norm", "0", "--out", tmp_path / "r0")
    assert r0.code == 3, "the uncapped run no longer overflows: re-check whether the auto cap is still needed"


def test_benchmark_builds_sofo_as_sofo_train_does():
    """benchmarks/sofo_neurogym.py's SOFO arm is ``make_sofo`` (sofo-train's own builder), so
    'SOFO with sofo-train's defaults' cannot drift from the command: K, damping and its mode, lr,
    tangent kind and the auto step cap with Dale's law."""
    import ast
    from pathlib import Path

    from rnntk.core.constrained_rnn import ConstrainedRNN
    from rnntk.sofo.config import AUTO_STEP_CAP, TrainConfig
    from rnntk.sofo.train import make_sofo

    cfg = TrainConfig(task="single-reach", dale_ratio=0.8, n_tangents=7, damping=0.03, lr=0.5, damping_mode="relative-min")
    g = torch.Generator().manual_seed(0)
    m = ConstrainedRNN(2, 6, 2, dale_ratio=0.8, generator=g)
    opt = make_sofo(m, cfg, g)
    assert (opt.n_tangents, opt.damping, opt.lr, opt.tangents, opt.damping_mode) == (7, 0.03, 0.5, cfg.tangents, "relative_min")
    assert opt.max_step_norm == AUTO_STEP_CAP and opt.generator is g
    bench = ast.parse((Path(__file__).resolve().parents[2] / "benchmarks" / "sofo_neurogym.py").read_text())
    calls = {n.func.id for n in ast.walk(bench) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "make_sofo" in calls and "SOFO" not in calls
