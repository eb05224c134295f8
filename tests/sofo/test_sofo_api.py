"""SOFO's Python API (issue 12): frozen parameters and parameter groups, any differentiable loss
of the outputs, and SOFO's step handed to a torch optimizer / schedule.

Oracles: the closed-form GGN of the shipped MSE and cross-entropy, the dense autograd Hessian of
the loss in the outputs (torch.autograd.functional.hessian), dense Jacobians through a recurrent
rollout, and torch.optim.SGD's documented update rule.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd.functional import hessian, jacobian

from rnntk.sofo.optimizer import (
    MSE,
    SOFO,
    CrossEntropy,
    FunctionLoss,
    direction,
    flatten_tangents,
    sample_tangents,
    sketch_feedforward,
    sketch_recurrent,
    solve,
)

pytestmark = pytest.mark.filterwarnings("error:There is a performance drop")
D64 = torch.float64


def mlp(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).to(dtype)


def xy(seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 6, generator=g, dtype=dtype)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


# ------------------------------------------------------------------ 12.1 frozen parameters, groups
def test_frozen_parameter_is_left_bit_identical():
    """Regression (issue 12.1): SOFO(model) trained a weight with requires_grad=False (moved by 3.4)."""
    model = mlp()
    model[0].weight.requires_grad_(False)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = SOFO(model, n_tangents=16, lr=1.0, generator=torch.Generator().manual_seed(0))
    assert set(opt.params) == {"0.bias", "2.weight", "2.bias"} and opt.n_tangents == 16
    x, y = xy()
    info = opt.step_module(model, x, y, CrossEntropy())
    assert math.isfinite(info.loss) and info.step_norm > 0
    assert torch.equal(model[0].weight, before["0.weight"])
    for k in ("0.bias", "2.weight", "2.bias"):
        assert not torch.equal(dict(model.named_parameters())[k], before[k]), k
    # the same from a dict of named parameters, and K is capped at the trainable count
    opt2 = SOFO(dict(model.named_parameters()), n_tangents=10_000)
    assert "0.weight" not in opt2.params and opt2.n_tangents == 16 + 16 * 3 + 3


def test_frozen_block_equals_training_the_others_alone():
    """Oracle: with one block frozen, the step equals SOFO on the model with that block fixed
    (a closure over it), with the same tangent draws."""
    model = mlp(dtype=D64)
    model[2].bias.requires_grad_(False)
    x, y = xy(dtype=D64)
    frozen_bias = model[2].bias.detach().clone()
    trained = {k: v.detach().clone() for k, v in model.named_parameters() if k != "2.bias"}
    SOFO(model, n_tangents=12, damping=1e-3, generator=torch.Generator().manual_seed(4)).step_module(model, x, y, CrossEntropy())

    def f(q):
        h = torch.tanh(x @ q["0.weight"].T + q["0.bias"])
        return h @ q["2.weight"].T + frozen_bias

    ref = SOFO(trained, n_tangents=12, damping=1e-3, generator=torch.Generator().manual_seed(4))
    ref.step(lambda V: sketch_feedforward(f, {k: v for k, v in ref.params.items()}, V, CrossEntropy(), y))
    for k, v in trained.items():
        torch.testing.assert_close(dict(model.named_parameters())[k].detach(), v, rtol=0, atol=1e-13)


def test_frozen_blocks_in_a_recurrent_sketch_with_manual_tangent_step():
    """Frozen blocks reach a hand-written tangent step as zero tangents: same sketch as generic vmap(jvp)."""
    from rnntk.sofo.problems import KalmanProblem

    prob = KalmanProblem(hidden=6, steps=9)
    m = prob.make_model(torch.Generator().manual_seed(0)).double()
    b = prob.sample(4, torch.Generator().manual_seed(1))
    tr = b.trials
    tr.inputs, tr.targets, tr.mask = tr.inputs.double(), tr.targets.double(), tr.mask.double()
    names = list(dict(m.named_parameters()))
    sub = {k: v for k, v in m.params().items() if k != names[0]}
    V = sample_tangents(sub, 5, generator=torch.Generator().manual_seed(2))
    a, g = prob.sketch(m, V, b, "manual"), prob.sketch(m, V, b, "generic")
    torch.testing.assert_close(a.g_hat, g.g_hat, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(a.G_hat, g.G_hat, rtol=1e-10, atol=1e-13)


def test_parameter_groups_like_a_torch_optimizer():
    """Groups: per-group lr scales that group's block of the same step; lr 0 leaves it unchanged;
    unnamed parameters (model.parameters()) work with step_module."""
    x, y = xy(dtype=D64)
    steps = {}
    for name, lrs in (("one", (0.5, 0.5)), ("split", (0.5, 0.2)), ("zero", (0.0, 0.5))):
        model = mlp(dtype=D64)
        before = [p.detach().clone() for p in model.parameters()]
        groups = [{"params": model[0].parameters(), "lr": lrs[0]}, {"params": model[2].parameters(), "lr": lrs[1]}]
        opt = SOFO(groups, n_tangents=20, generator=torch.Generator().manual_seed(7))
        assert list(opt.params) == ["0", "1", "2", "3"]
        opt.step_module(model, x, y, CrossEntropy())
        steps[name] = [b - p.detach() for b, p in zip(before, model.parameters())]
    for i in range(2):
        torch.testing.assert_close(steps["split"][i], steps["one"][i], rtol=1e-12, atol=0)
        assert torch.count_nonzero(steps["zero"][i]) == 0
    for i in range(2, 4):
        torch.testing.assert_close(steps["split"][i], steps["one"][i] * 0.4, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(steps["zero"][i], steps["one"][i], rtol=1e-12, atol=0)


def test_bad_parameter_specs_are_refused():
    model = mlp()
    with pytest.raises(ValueError, match="more than one group"):
        SOFO([{"params": model.parameters()}, {"params": [model[0].weight]}])
    with pytest.raises(ValueError, match="unknown parameter-group option"):
        SOFO([{"params": model.parameters(), "momentum": 0.9}])
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        SOFO(model)
    with pytest.raises(ValueError, match="not parameters of the model"):
        SOFO({"w": torch.zeros(3)}).step_module(model, *xy(), CrossEntropy())


# ------------------------------------------------------------------ 12.3 any loss of the outputs
def _dense_ggn(loss_fn, y, dY, psd_blocks=False):
    """dY (K,B,D) · autograd Hessian of loss_fn at y · dYᵀ, optionally with each trial's D×D
    block projected on the PSD cone (the block-diagonal part only)."""
    B, D = y.shape
    H = hessian(lambda v: loss_fn(v.reshape(B, D)), y.reshape(-1))
    if psd_blocks:
        Hb = torch.stack([H[b * D:(b + 1) * D, b * D:(b + 1) * D] for b in range(B)])
        s, Q = torch.linalg.eigh(Hb)
        H = torch.block_diag(*((Q * s.clamp_min(0)[:, None, :]) @ Q.transpose(1, 2)))
    d = dY.reshape(dY.shape[0], -1)
    return d @ H @ d.T


def test_function_loss_equals_the_closed_form_mse_and_cross_entropy():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(7, 4, generator=g, dtype=D64)
    t = torch.randn(7, 4, generator=g, dtype=D64)
    w = torch.rand(7, generator=g, dtype=D64)
    lab = torch.randint(4, (7,), generator=g)
    dY = torch.randn(5, 7, 4, generator=g, dtype=D64)
    cases = [
        (MSE(0.7), FunctionLoss(lambda y, t, w: 0.7 / y.shape[0] * (w[:, None] * (y - t) ** 2).sum()), t, w),
        (MSE(1.0, mean_dims=True), FunctionLoss(lambda y, t: F.mse_loss(y, t)), t, None),
        (CrossEntropy(), FunctionLoss(lambda y, t: F.cross_entropy(y, t)), lab, None),
        (CrossEntropy(2.0), FunctionLoss(lambda y, t, w: 2.0 * (w * F.cross_entropy(y, t, reduction="none")).mean()), lab, w),
    ]
    for exact, anyl, tgt, wt in cases:
        for fl in (anyl, FunctionLoss(anyl.fn, per_trial=False)):
            torch.testing.assert_close(fl.value(y, tgt, wt), exact.value(y, tgt, wt), rtol=1e-13, atol=0)
            torch.testing.assert_close(fl.grad(y, tgt, wt), exact.grad(y, tgt, wt), rtol=1e-12, atol=1e-15)
            torch.testing.assert_close(fl.ggn(dY, y, tgt, wt), exact.ggn(dY, y, tgt, wt), rtol=1e-11, atol=1e-14)


def test_function_loss_equals_the_autograd_hessian():
    """Losses with no closed form here: Poisson NLL and log-cosh (convex), a non-convex one
    (PSD-projected per trial), and one that couples trials (per_trial=False; refused otherwise)."""
    g = torch.Generator().manual_seed(1)
    y = torch.randn(6, 3, generator=g, dtype=D64)
    t = torch.rand(6, 3, generator=g, dtype=D64) * 3
    dY = torch.randn(8, 6, 3, generator=g, dtype=D64)
    poisson = lambda y, t: F.poisson_nll_loss(y, t, log_input=True)
    logcosh = lambda y, t: torch.log(torch.cosh(y - t)).sum() / y.shape[0]
    for fn in (poisson, logcosh):
        dense = _dense_ggn(lambda v, fn=fn: fn(v, t), y, dY)
        torch.testing.assert_close(FunctionLoss(fn).ggn(dY, y, t), dense, rtol=1e-11, atol=1e-13)
        torch.testing.assert_close(FunctionLoss(fn, per_trial=False).ggn(dY, y, t), dense, rtol=1e-11, atol=1e-13)
        yy = y.clone().requires_grad_(True)
        (gr,) = torch.autograd.grad(fn(yy, t), yy)
        torch.testing.assert_close(FunctionLoss(fn).grad(y, t), gr, rtol=1e-12, atol=1e-15)
    wavy = lambda y, t: (torch.sin(3 * y) * t).sum() + (y[:, 0] * y[:, 1]).sum()
    torch.testing.assert_close(FunctionLoss(wavy).ggn(dY, y, t), _dense_ggn(lambda v: wavy(v, t), y, dY, psd_blocks=True), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(FunctionLoss(wavy, psd=False).ggn(dY, y, t), _dense_ggn(lambda v: wavy(v, t), y, dY), rtol=1e-10, atol=1e-12)
    coupled = lambda y, t: ((y - t).sum(0) ** 2).sum()
    with pytest.raises(ValueError, match="couples trials"):
        FunctionLoss(coupled).ggn(dY, y, t)
    torch.testing.assert_close(FunctionLoss(coupled, per_trial=False).ggn(dY, y, t), _dense_ggn(lambda v: coupled(v, t), y, dY), rtol=1e-11, atol=1e-12)


def test_recurrent_sketch_with_any_loss_equals_dense_pieces():
    """O2 with a user loss (Poisson NLL per step): ĝ = V·∇L (autograd through the rollout),
    Ĝ = V Jᵀ H J Vᵀ with H the dense autograd Hessian in the outputs; a plain callable works."""
    from test_sofo_core import (
        B,
        Dout,
        T,
        data,
        flat,
        rnn_params,
        rnn_step,
        rollout,
        unflat,
    )

    p = rnn_params()
    x, _, w, noise = data()
    tgt = torch.rand(B, T, Dout, generator=torch.Generator().manual_seed(3), dtype=D64) * 2
    fn = lambda y, t, w: (w * F.poisson_nll_loss(y, t, log_input=True, reduction="none").sum(-1)).mean()
    L = lambda q: sum(fn(rollout(q, x, noise)[:, s], tgt[:, s], w[:, s]) for s in range(T))
    theta = flat(p).clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(L(unflat(theta, p)), theta)
    J = jacobian(lambda v: rollout(unflat(v, p), x, noise).reshape(-1), flat(p))
    out = rollout(p, x, noise).reshape(-1)
    H = hessian(lambda v: sum(fn(v.reshape(B, T, Dout)[:, s], tgt[:, s], w[:, s]) for s in range(T)), out)
    V = sample_tangents(p, 9, generator=torch.Generator().manual_seed(4))
    Vf = flatten_tangents(V)
    dx0 = V["x0"][:, None, :].expand(9, B, -1).contiguous()
    sk = sketch_recurrent(rnn_step, p, V, p["x0"].expand(B, -1).contiguous(), x, tgt, w, fn, dstate0=dx0, noise=noise)
    torch.testing.assert_close(sk.loss, L(p), rtol=1e-12, atol=0)
    torch.testing.assert_close(sk.g_hat, Vf @ grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(sk.G_hat, Vf @ J.T @ H @ J @ Vf.T, rtol=0, atol=1e-11)


def test_step_module_trains_with_a_plain_callable_loss():
    model = mlp()
    x, y = xy()
    opt = SOFO(model, n_tangents=32, damping=0.1, generator=torch.Generator().manual_seed(0))
    first = opt.step_module(model, x, y, lambda z, t: F.cross_entropy(z, t, label_smoothing=0.1)).loss
    for _ in range(25):
        info = opt.step_module(model, x, y, lambda z, t: F.cross_entropy(z, t, label_smoothing=0.1))
    assert info.loss < 0.4 * first


# ------------------------------------------------------------------ 12.3 SOFO's step in any torch optimizer
def test_solve_and_direction_handed_to_torch_sgd_equal_sofo_step():
    """The README recipe: Δ from sample_tangents + sketch + solve + direction written into .grad;
    torch.optim.SGD(lr=η) then equals SOFO.step(lr=η); with momentum and a StepLR schedule it
    follows SGD's documented rule b ← μb + Δ, θ ← θ − η_t b."""
    x, y = xy(dtype=D64)
    model = mlp(dtype=D64)
    ref = mlp(dtype=D64)
    SOFO(ref, n_tangents=24, damping=1e-3, lr=0.3, generator=torch.Generator().manual_seed(5)).step_module(ref, x, y, CrossEntropy())

    params = dict(model.named_parameters())
    sgd = torch.optim.SGD(model.parameters(), lr=0.3)
    gen = torch.Generator().manual_seed(5)
    f = lambda q: torch.func.functional_call(model, q, (x,))
    V = sample_tangents(params, 24, generator=gen)
    sol = solve(sketch_feedforward(f, {k: v.detach() for k, v in params.items()}, V, CrossEntropy(), y), damping=1e-3)
    for k, d in direction(V, sol.alpha).items():
        params[k].grad = d
    sgd.step()
    for (k, a), b in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=1e-14)

    model = mlp(dtype=D64)
    params = dict(model.named_parameters())
    theta = {k: v.detach().clone() for k, v in params.items()}
    sgd = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(sgd, step_size=1, gamma=0.5)
    gen = torch.Generator().manual_seed(6)
    buf = None
    for it in range(3):
        V = sample_tangents(params, 24, generator=gen)
        sk = sketch_feedforward(f, {k: v.detach() for k, v in params.items()}, V, CrossEntropy(), y)
        delta = direction(V, solve(sk, damping=1e-3).alpha)
        for k, d in delta.items():
            params[k].grad = d
        sgd.step()
        sched.step()
        buf = delta if buf is None else {k: 0.9 * buf[k] + delta[k] for k in delta}
        theta = {k: theta[k] - 0.5 * 0.5**it * buf[k] for k in theta}
        for k in theta:
            torch.testing.assert_close(params[k].detach(), theta[k], rtol=1e-12, atol=1e-13)


def test_sofo_step_orthonormalising_in_the_sketch_equals_explicit_orthonormal_tangents():
    """SOFO.step draws the Gaussian G, sketches along G and orthonormalises in the K×K sketch
    (L⁻¹ĝ, L⁻¹ĜL⁻ᵀ, α = L⁻ᵀα'); oracle: the explicit orthonormal tangents L⁻¹G of
    sample_tangents with the same generator, then solve + direction (K ≤ P/8: Cholesky QR path)."""
    x, y = xy(dtype=D64)
    model, ref = mlp(dtype=D64), mlp(dtype=D64)
    opt = SOFO(model, n_tangents=16, damping=1e-3, lr=0.7, generator=torch.Generator().manual_seed(9))
    info = opt.step_module(model, x, y, CrossEntropy())
    params = {k: v.detach() for k, v in ref.named_parameters()}
    V = sample_tangents(params, 16, generator=torch.Generator().manual_seed(9))
    Vf = flatten_tangents(V)
    torch.testing.assert_close(Vf @ Vf.T, torch.eye(16, dtype=D64), rtol=0, atol=1e-13)
    sk = sketch_feedforward(lambda q: torch.func.functional_call(ref, q, (x,)), params, V, CrossEntropy(), y)
    sol = solve(sk, damping=1e-3)
    delta = direction(V, sol.alpha)
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), params[k] - 0.7 * delta[k], rtol=0, atol=1e-13)
    assert info.eig_max == pytest.approx(float(sol.eigvals.max()), rel=1e-10)
    assert info.g_hat_norm == pytest.approx(float(sk.g_hat.norm()), rel=1e-10)
    assert info.pred_decrease == pytest.approx(sol.pred_decrease, rel=1e-8)
