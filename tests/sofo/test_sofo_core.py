"""SOFO core against independent oracles (spec O1–O9, O12), all in float64.

Oracles: dense Jacobians from torch.autograd.functional.jacobian, autograd gradients through
the whole rollout, torch.linalg.lstsq, the autograd Hessian of F.cross_entropy, and the
algebraic identities of the damped subspace step.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd.functional import jacobian
from torch.overrides import TorchFunctionMode

from rnntk.sofo.optimizer import (
    MSE,
    SOFO,
    CrossEntropy,
    Sketch,
    direction,
    flatten_tangents,
    generic_tangent_step,
    n_params,
    sample_tangents,
    sketch_feedforward,
    sketch_recurrent,
    solve,
)

pytestmark = pytest.mark.filterwarnings("error:There is a performance drop")
D64 = torch.float64
N, I, Dout, B, T = 6, 2, 3, 5, 7


def rnn_params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "W": torch.randn(N, N, generator=g, dtype=D64) * 0.8 / math.sqrt(N),
        "U": torch.randn(N, I, generator=g, dtype=D64),
        "b": torch.randn(N, generator=g, dtype=D64) * 0.1,
        "C": torch.randn(Dout, N, generator=g, dtype=D64) / math.sqrt(N),
        "x0": torch.randn(N, generator=g, dtype=D64) * 0.3,
    }


def rnn_step(p, h, x, noise):
    """Leaky tanh RNN with additive noise (same noise for every tangent)."""
    h1 = 0.8 * h + 0.2 * torch.tanh(h @ p["W"].T + x @ p["U"].T + p["b"]) + noise
    return h1, h1 @ p["C"].T


def data(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, I, generator=g, dtype=D64)
    y = torch.randn(B, T, Dout, generator=g, dtype=D64)
    w = (torch.rand(B, T, generator=g, dtype=D64) > 0.3).to(D64) * 2.0
    noise = 0.05 * torch.randn(B, T, N, generator=g, dtype=D64)
    return x, y, w, noise


def rollout(p, x, noise):
    h = p["x0"].expand(B, N)
    ys = []
    for t in range(T):
        h, yt = rnn_step(p, h, x[:, t], noise[:, t])
        ys.append(yt)
    return torch.stack(ys, 1)  # (B, T, D)


def total_loss(p, x, y, w, noise, loss):
    out = rollout(p, x, noise)
    return sum(loss.value(out[:, t], y[:, t], w[:, t]) for t in range(T))


def flat(p):
    return torch.cat([v.reshape(-1) for v in p.values()])


def unflat(v, like):
    out, i = {}, 0
    for k, t in like.items():
        out[k] = v[i : i + t.numel()].reshape(t.shape)
        i += t.numel()
    return out


def dense_pieces(p, x, y, w, noise, loss_scale=1.0):
    """Dense J (B*T*D, P), gradient g (P,), GGN G (P, P) of the weighted MSE."""
    f = lambda v: rollout(unflat(v, p), x, noise).reshape(-1)
    J = jacobian(f, flat(p))
    loss = MSE(loss_scale)
    theta = flat(p).clone().requires_grad_(True)
    L = total_loss(unflat(theta, p), x, y, w, noise, loss)
    (g,) = torch.autograd.grad(L, theta)
    hdiag = (2 * loss_scale / B) * w[..., None].expand(B, T, Dout).reshape(-1)
    G = J.T @ (hdiag[:, None] * J)
    return J, g, G, L.detach()


def recurrent_sketch(p, V, loss=None, scale=1.0, tangent_step=None):
    x, y, w, noise = data()
    K = next(iter(V.values())).shape[0]
    dx0 = V["x0"][:, None, :].expand(K, B, N).contiguous()
    return sketch_recurrent(rnn_step, p, V, p["x0"].expand(B, N).contiguous(), x, y, w, loss or MSE(scale), dstate0=dx0, noise=noise, tangent_step=tangent_step)


# ---------------------------------------------------------------- O1 JVPs
def test_O1_batched_jvps_equal_jacobian_times_tangents():
    p = rnn_params()
    x, y, w, noise = data()
    J, *_ = dense_pieces(p, x, y, w, noise)
    V = sample_tangents(p, 9, kind="normalized", generator=torch.Generator().manual_seed(3))
    tstep = generic_tangent_step(rnn_step)
    h = p["x0"].expand(B, N).contiguous()
    dh = V["x0"][:, None, :].expand(9, B, N).contiguous()
    dys = []
    for t in range(T):
        h, _, dh, dy = tstep(p, h, dh, V, x[:, t], noise[:, t])
        dys.append(dy)
    dY = torch.stack(dys, 2)  # (K, B, T, D)
    expected = (J @ flatten_tangents(V).T).T.reshape(9, B, T, Dout)
    torch.testing.assert_close(dY, expected, rtol=0, atol=1e-13)


# ---------------------------------------------------------------- O2 sketches
def test_O2_sketch_equals_V_grad_and_V_G_Vt():
    p = rnn_params()
    x, y, w, noise = data()
    _, g, G, L = dense_pieces(p, x, y, w, noise, loss_scale=0.7)
    V = sample_tangents(p, 11, generator=torch.Generator().manual_seed(4))
    Vf = flatten_tangents(V)
    sk = recurrent_sketch(p, V, scale=0.7)
    torch.testing.assert_close(sk.loss, L, rtol=1e-13, atol=0)
    torch.testing.assert_close(sk.g_hat, Vf @ g, rtol=0, atol=1e-12)
    torch.testing.assert_close(sk.G_hat, Vf @ G @ Vf.T, rtol=0, atol=1e-12)


def test_sketch_runs_without_autograd_graph():
    p = {k: v.requires_grad_(True) for k, v in rnn_params().items()}
    V = sample_tangents(p, 4, generator=torch.Generator().manual_seed(0))
    sk = recurrent_sketch(p, V)
    assert not sk.loss.requires_grad and not sk.G_hat.requires_grad and sk.G_hat.is_inference()


# ---------------------------------------------------------------- O3 full rank
@pytest.mark.parametrize("gamma", [1e-3, 0.3])
def test_O3_full_rank_recurrent_equals_dense_damped_ggn_step(gamma):
    p = rnn_params()
    x, y, w, noise = data()
    _, g, G, _ = dense_pieces(p, x, y, w, noise)
    P = n_params(p)
    V = sample_tangents(p, P, kind="orthonormal", generator=torch.Generator().manual_seed(5))
    sol = solve(recurrent_sketch(p, V), damping=gamma)
    delta = flat(direction(V, sol.alpha))
    lam = gamma * torch.linalg.eigvalsh(G).max()
    expected = torch.linalg.solve(G + lam * torch.eye(P, dtype=D64), g)
    torch.testing.assert_close(delta, expected, rtol=1e-9, atol=1e-11)


def mlp_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(8, 3, generator=g, dtype=D64)
    p = {"W1": torch.randn(4, 3, generator=g, dtype=D64), "b1": torch.zeros(4, dtype=D64), "W2": torch.randn(2, 4, generator=g, dtype=D64)}
    f = lambda q: torch.tanh(X @ q["W1"].T + q["b1"]) @ q["W2"].T
    Y = torch.randn(8, 2, generator=g, dtype=D64)
    return p, f, Y


def test_O3_full_rank_feedforward_equals_dense():
    p, f, Y = mlp_problem()
    P = n_params(p)
    V = sample_tangents(p, P, generator=torch.Generator().manual_seed(1))
    loss = MSE(1.0)
    sol = solve(sketch_feedforward(f, p, V, loss, Y), damping=1e-2)
    fl = lambda v: f(unflat(v, p)).reshape(-1)
    J = jacobian(fl, flat(p))
    G = J.T @ J * (2 / 8)
    theta = flat(p).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss.value(f(unflat(theta, p)), Y), theta)
    lam = 1e-2 * torch.linalg.eigvalsh(G).max()
    torch.testing.assert_close(flat(direction(V, sol.alpha)), torch.linalg.solve(G + lam * torch.eye(P, dtype=D64), g), rtol=1e-9, atol=1e-11)


# ---------------------------------------------------------------- O4 least squares
def linear_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(40, 5, generator=g, dtype=D64) * torch.tensor([3.0, 1.0, 0.3, 0.1, 0.03], dtype=D64)
    Y = torch.randn(40, 2, generator=g, dtype=D64)
    p = {"W": torch.randn(2, 5, generator=g, dtype=D64), "b": torch.randn(2, dtype=D64)}
    f = lambda q: X @ q["W"].T + q["b"]
    return p, f, X, Y


def test_O4_one_undamped_full_rank_step_solves_least_squares():
    p, f, X, Y = linear_problem()
    opt = SOFO({k: v.clone() for k, v in p.items()}, n_tangents=n_params(p), damping=0.0, lr=1.0, generator=torch.Generator().manual_seed(2))
    opt.step(lambda V: sketch_feedforward(f, opt.params, V, MSE(), Y))
    A = torch.cat([X, torch.ones(40, 1, dtype=D64)], 1)
    sol = torch.linalg.lstsq(A, Y).solution  # (6, 2)
    torch.testing.assert_close(opt.params["W"], sol[:5].T, rtol=0, atol=1e-10)
    torch.testing.assert_close(opt.params["b"], sol[5], rtol=0, atol=1e-10)


def test_O4_subspace_step_is_the_optimum_within_span_V():
    p, f, X, Y = linear_problem(1)
    V = sample_tangents(p, 4, generator=torch.Generator().manual_seed(3))
    sol = solve(sketch_feedforward(f, p, V, MSE(), Y), damping=0.0)
    new = flat(p) - flat(direction(V, sol.alpha))
    # oracle: min_a ‖A(θ − Vᵀa) − Y‖² by lstsq on the reduced problem
    Vf = flatten_tangents(V)
    fl = lambda v: f(unflat(v, p)).reshape(-1)
    J = jacobian(fl, flat(p))  # linear model: J is constant
    r0 = fl(flat(p)) - Y.reshape(-1)
    a = torch.linalg.lstsq(J @ Vf.T, r0[:, None]).solution[:, 0]
    torch.testing.assert_close(new, flat(p) - Vf.T @ a, rtol=0, atol=1e-10)


# ---------------------------------------------------------------- O5 invariances
def _delta(p, V, gamma, scale=1.0):
    return flat(direction(V, solve(recurrent_sketch(p, V, scale=scale), damping=gamma).alpha))


def _mix(V, R):
    Vf = R @ flatten_tangents(V)
    out, i = {}, 0
    for k, v in V.items():
        n = v[0].numel()
        out[k] = Vf[:, i : i + n].reshape(v.shape).contiguous()
        i += n
    return out


def test_O5_invariances():
    p = rnn_params()
    V = sample_tangents(p, 8, generator=torch.Generator().manual_seed(6))
    base = _delta(p, V, 1e-2)
    Q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(7), dtype=D64))
    torch.testing.assert_close(_delta(p, _mix(V, Q), 1e-2), base, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(_delta(p, {k: 3.7 * v for k, v in V.items()}, 1e-2), base, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(_delta(p, V, 1e-2, scale=25.0), base, rtol=1e-9, atol=1e-12)
    R = torch.randn(8, 8, generator=torch.Generator().manual_seed(8), dtype=D64) + 3 * torch.eye(8, dtype=D64)
    torch.testing.assert_close(_delta(p, _mix(V, R), 0.0), _delta(p, V, 0.0), rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------- O6 descent, O7 damping limits
def test_O6_descent_direction_and_predicted_decrease():
    p = rnn_params()
    x, y, w, noise = data()
    _, g, _, L0 = dense_pieces(p, x, y, w, noise)
    for seed in range(5):
        V = sample_tangents(p, 6, generator=torch.Generator().manual_seed(seed))
        sol = solve(recurrent_sketch(p, V), damping=1e-3)
        delta = flat(direction(V, sol.alpha))
        assert float(g @ delta) > 0 and sol.pred_decrease >= 0
        q = unflat(flat(p) - 0.1 * delta, p)
        assert float(total_loss(q, x, y, w, noise, MSE())) < float(L0)


def test_O7_large_damping_gives_forward_gradient_and_zero_damping_never_nan():
    p = rnn_params()
    x, y, w, noise = data()
    _, g, _, _ = dense_pieces(p, x, y, w, noise)
    V = sample_tangents(p, 6, generator=torch.Generator().manual_seed(9))
    sol = solve(recurrent_sketch(p, V), damping=1e8)
    Vf = flatten_tangents(V)
    torch.testing.assert_close(sol.lam * flat(direction(V, sol.alpha)), Vf.T @ Vf @ g, rtol=1e-6, atol=1e-9)
    # rank-deficient Ĝ: duplicate tangents and an all-zero one, γ = 0
    Vd = {k: torch.cat([v[:3], v[:3], torch.zeros_like(v[:1])]) for k, v in V.items()}
    sol0 = solve(recurrent_sketch(p, Vd), damping=0.0)
    assert torch.isfinite(sol0.alpha).all()
    sk = Sketch(torch.tensor(1.0), torch.zeros(3, dtype=D64), torch.zeros(3, 3, dtype=D64))
    assert torch.equal(solve(sk, damping=0.0).alpha, torch.zeros(3, dtype=D64))


# ---------------------------------------------------------------- O8 cross-entropy
def test_O8_cross_entropy_curvature_matches_autograd_hessian():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 5, generator=g, dtype=D64)
    labels = torch.tensor([0, 3, 1, 4])
    dY = torch.randn(6, 4, 5, generator=g, dtype=D64)
    ce = CrossEntropy()
    Hfull = torch.autograd.functional.hessian(lambda q: F.cross_entropy(q.reshape(4, 5), labels, reduction="mean"), z.reshape(-1))
    d = dY.reshape(6, -1)
    torch.testing.assert_close(ce.ggn(dY, z, labels), d @ Hfull @ d.T, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(Hfull @ torch.ones(20, dtype=D64), torch.zeros(20, dtype=D64), rtol=0, atol=1e-14)
    zz = z.clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(F.cross_entropy(zz, labels), zz)
    torch.testing.assert_close(ce.grad(z, labels), gr, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(ce.value(z, labels), F.cross_entropy(z, labels), rtol=1e-12, atol=0)


def test_sofo_trains_a_classifier_through_step_module():
    torch.manual_seed(0)
    X = torch.randn(64, 4)
    labels = (X[:, 0] + X[:, 1] > 0).long() + (X[:, 2] > 1).long()
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    opt = SOFO(model, n_tangents=32, damping=1e-2, lr=1.0, generator=torch.Generator().manual_seed(0))
    first = opt.step_module(model, X, labels, CrossEntropy()).loss
    for _ in range(30):
        info = opt.step_module(model, X, labels, CrossEntropy())
    assert info.loss < 0.5 * first


# ---------------------------------------------------------------- O9 sampling
def test_O9_tangent_statistics():
    p = {"a": torch.zeros(4, 3), "b": torch.zeros(4)}
    P = n_params(p)
    V = sample_tangents(p, 5, kind="orthonormal", generator=torch.Generator().manual_seed(0))
    Vf = flatten_tangents(V)
    torch.testing.assert_close(Vf @ Vf.T, torch.eye(5), rtol=0, atol=1e-6)
    acc = torch.zeros(P, P, dtype=D64)
    gen = torch.Generator().manual_seed(1)
    n = 4000
    for _ in range(n):
        v = flatten_tangents(sample_tangents(p, 4, kind="normalized", generator=gen)).to(D64)
        acc += v.T @ v
    mean = acc / n
    torch.testing.assert_close(torch.diagonal(mean), torch.full((P,), 4 / P, dtype=D64), rtol=0, atol=0.02)
    for kind in ("rank1", "block"):
        V = sample_tangents(p, 5, kind=kind, generator=torch.Generator().manual_seed(2))
        assert torch.allclose(flatten_tangents(V).norm(dim=1), torch.ones(5), atol=1e-6)
        assert V["a"].shape == (5, 4, 3) and V["b"].shape == (5, 4)
    Vb = sample_tangents(p, 5, kind="block", generator=torch.Generator().manual_seed(2))
    nz_a = (Vb["a"].reshape(5, -1).abs().sum(1) > 0)
    nz_b = (Vb["b"].abs().sum(1) > 0)
    assert not torch.any(nz_a & nz_b) and int(nz_a.sum()) == 3 and int(nz_b.sum()) == 2  # one per block, the other 3 split 12:4
    with pytest.raises(ValueError, match="K <= P"):
        sample_tangents(p, P + 1)


class _OpLog(TorchFunctionMode):
    """Records (dtype, numel) of every tensor an op returns inside the ``with`` block."""

    def __init__(self):
        super().__init__()
        self.out = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        r = func(*args, **(kwargs or {}))
        for t in r if isinstance(r, tuple) else (r,):
            if isinstance(t, torch.Tensor):
                self.out.append((t.dtype, t.numel()))
        return r


def test_orthonormal_tangents_work_in_the_working_dtype():
    """Regression (issue 12.2): the orthonormal sampler made a float64 P×K Gaussian and QR'd it
    (13.1 s of a 13.7 s step at P = 101,770, K = 340). Now nothing float64 larger than K×K is
    made for float32 parameters, and V Vᵀ = I_K to float32 precision."""
    p = {"W1": torch.zeros(40, 30), "b1": torch.zeros(40), "W2": torch.zeros(5, 40), "b2": torch.zeros(5)}
    K = 24  # P = 1445 >= 8K: the Cholesky QR path
    with _OpLog() as log:
        V = sample_tangents(p, K, generator=torch.Generator().manual_seed(0))
    big64 = [n for dt, n in log.out if dt == D64 and n > K * K]
    assert not big64, f"float64 tensors of size {big64} in the sampler"
    assert all(v.dtype == torch.float32 for v in V.values())
    Vf = flatten_tangents(V)
    torch.testing.assert_close(Vf @ Vf.T, torch.eye(K), rtol=0, atol=1e-6)


@pytest.mark.parametrize("K", [7, 40])  # Cholesky QR path (8K <= P) and Householder path
def test_orthonormal_tangents_are_the_q_factor_of_the_same_gaussian(K):
    """Oracle: the sampler's V equals the Q factor (positive diagonal R) of the dense float64 QR of
    the same Gaussian draws, so the distribution is Haar (as with the old float64 QR)."""
    p = {"W": torch.zeros(9, 7, dtype=D64), "b": torch.zeros(9, dtype=D64)}
    V = sample_tangents(p, K, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    G = torch.cat([torch.randn(K, 63, generator=g, dtype=D64), torch.randn(K, 9, generator=g, dtype=D64)], 1)
    Q, R = torch.linalg.qr(G.T)
    Q = Q * torch.sign(torch.diagonal(R))[None, :]
    torch.testing.assert_close(flatten_tangents(V), Q.T, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- O12 determinism
def test_O12_same_seed_same_trajectory():
    def run():
        p = {k: v.clone() for k, v in rnn_params().items()}
        opt = SOFO(p, n_tangents=6, damping=1e-3, lr=0.5, generator=torch.Generator().manual_seed(11))
        return [opt.step(lambda V: recurrent_sketch(opt.params, V)).loss for _ in range(4)]

    assert run() == run()


def test_nonfinite_sketch_leaves_parameters_untouched():
    p = {"w": torch.ones(3, dtype=D64)}
    opt = SOFO(p, n_tangents=2)
    bad = lambda V: Sketch(torch.tensor(float("inf"), dtype=D64), torch.ones(2, dtype=D64), torch.full((2, 2), float("nan"), dtype=D64))
    info = opt.step(bad)
    assert math.isnan(info.loss) and math.isnan(info.eig_max)
    assert torch.equal(p["w"], torch.ones(3, dtype=D64))


def test_problem_interface_is_enforced():
    from rnntk.sofo.problems import Problem

    class Incomplete(Problem):
        def make_model(self, generator):
            return torch.nn.Linear(1, 1)

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()
