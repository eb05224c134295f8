"""Tests for rnntk.ode.gq_adjoint (Gauss–Legendre quadrature adjoint), float64.

Every test names its oracle; none compares the implementation with itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from torchdiffeq import odeint

from rnntk.ode.gq_adjoint import gauss_legendre, gq_node_counts, odeint_adjoint_gq

DT = torch.float64


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _gl_remainder(n: int, a: float, b: float) -> float:
    """Closed-form GL error for F(x) = x^{2n}: (b−a)^{2n+1}(n!)^4/((2n+1)((2n)!)^3) · F^{(2n)},
    with F^{(2n)} = (2n)! constant (spec 1.2)."""
    return (b - a) ** (2 * n + 1) * math.factorial(n) ** 4 / ((2 * n + 1) * math.factorial(2 * n) ** 3) * math.factorial(2 * n)


# ---------------------------------------------------------------------------------------------
# quadrature
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_gauss_legendre_exact_to_degree_2n_minus_1_and_remainder(n):
    """Oracle: exact integrals of monomials; the closed-form remainder at degree 2n."""
    a, b = -0.3, 1.7
    x, w = gauss_legendre(n, a, b)
    assert x.dtype == np.float64 and w.dtype == np.float64 and len(x) == n
    assert np.all(np.diff(x) > 0) and abs(w.sum() - (b - a)) < 1e-13
    for k in range(2 * n):
        exact = (b ** (k + 1) - a ** (k + 1)) / (k + 1)
        assert abs(np.sum(w * x**k) - exact) <= 1e-12 * max(1.0, abs(exact))
    k = 2 * n
    exact = (b ** (k + 1) - a ** (k + 1)) / (k + 1)
    err = exact - np.sum(w * x**k)
    assert err == pytest.approx(_gl_remainder(n, a, b), rel=1e-8, abs=1e-12 * max(1.0, abs(exact)))


def test_gauss_legendre_reference_values_and_orientation():
    """Oracle: textbook 3-point rule (0, ±√(3/5); 8/9, 5/9) and ∫_b^a = −∫_a^b."""
    x, w = gauss_legendre(3)
    np.testing.assert_allclose(x, [-math.sqrt(0.6), 0.0, math.sqrt(0.6)], atol=1e-15)
    np.testing.assert_allclose(w, [5 / 9, 8 / 9, 5 / 9], atol=1e-15)
    xr, wr = gauss_legendre(4, 2.0, 0.0)
    assert np.all(np.diff(xr) < 0) and wr.sum() == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="n must be"):
        gauss_legendre(0)


class _Poly(nn.Module):
    """dx/dt = Σ_k θ_k t^k (independent of x)."""

    def __init__(self, deg: int):
        super().__init__()
        self.theta = nn.Parameter(torch.ones(deg + 1, dtype=DT))
        self.deg = deg

    def forward(self, t, x):
        pw = t ** torch.arange(self.deg + 1, dtype=DT)
        return (self.theta * pw).sum().reshape(1).expand_as(x)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_ode_quadrature_exactness_through_solver(n):
    """Oracle: L = x(1) for dx/dt = Σ θ_k t^k gives dL/dθ_k = 1/(k+1); with gq_nodes = n it is
    exact for k ≤ 2n−1 and misses by exactly the GL remainder at k = 2n (spec oracle 3)."""
    f = _Poly(2 * n)
    x0 = torch.zeros(1, dtype=DT, requires_grad=True)
    t = torch.tensor([0.0, 1.0], dtype=DT)
    y = odeint_adjoint_gq(f, x0, t, rtol=1e-10, atol=1e-12, gq_nodes=n)
    y[-1].sum().backward()
    g = f.theta.grad.numpy()
    exact = 1.0 / np.arange(1, 2 * n + 2)
    np.testing.assert_allclose(g[: 2 * n], exact[: 2 * n], rtol=0, atol=1e-12)
    assert exact[2 * n] - g[2 * n] == pytest.approx(_gl_remainder(n, 0.0, 1.0), rel=1e-8, abs=1e-14)
    assert float(x0.grad) == pytest.approx(1.0, abs=1e-12)


def test_node_count_rule():
    """Oracle: spec 1.3 by hand: ceil(gtol·NFE·Δt/T) clamped to [nmin, nmax], cap hits counted."""
    counts, caps = gq_node_counts(100, [0.0, 0.1, 0.5, 1.0], gtol=0.1, nmin=2, nmax=4)
    assert counts == [2, 4, 4] and caps == 1  # raw 1, 4, 5
    counts, caps = gq_node_counts(14, [1.0, 0.0], gtol=0.1, nmin=1, nmax=64)
    assert counts == [2] and caps == 0  # ceil(1.4) = 2, decreasing t
    assert gq_node_counts(14, [0.0, 1.0, 2.0], gtol=0.1, nmin=2, nmax=64, nodes=7) == ([7, 7], 0)


# ---------------------------------------------------------------------------------------------
# analytic ODE oracles
# ---------------------------------------------------------------------------------------------
class _Exp(nn.Module):
    def __init__(self, a: float):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=DT))

    def forward(self, t, z):
        return self.a * z


def test_exponential_closed_form_including_time_gradient():
    """Oracle: dz/dt = az, L = z(T)²: dL/da = 2T z0² e^{2aT}, dL/dz0 = 2 z0 e^{2aT},
    dL/dT = 2a z0² e^{2aT}, dL/dt0 = −dL/dT (spec oracle 1)."""
    a, z0v, T = 0.2, 10.0, 20.0
    f = _Exp(a)
    z0 = torch.tensor([z0v], dtype=DT, requires_grad=True)
    t = torch.tensor([0.0, T], dtype=DT, requires_grad=True)
    z = odeint_adjoint_gq(f, z0, t, rtol=1e-9, atol=1e-12)
    (z[-1] ** 2).sum().backward()
    e = math.exp(2 * a * T)
    assert float(f.a.grad) == pytest.approx(2 * T * z0v**2 * e, rel=1e-7)
    assert float(z0.grad) == pytest.approx(2 * z0v * e, rel=1e-7)
    assert float(t.grad[1]) == pytest.approx(2 * a * z0v**2 * e, rel=1e-7)
    assert float(t.grad[0]) == pytest.approx(-2 * a * z0v**2 * e, rel=1e-7)


def _linear_problem(d=6, seed=0):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((d, d))
    A = U - U.T - 0.2 * np.eye(d)
    lin = nn.Linear(d, d, bias=False).to(DT)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(A))
    func = lambda t, x: lin(x)  # noqa: E731
    return A, lin, func, rng


class _Lin(nn.Module):
    def __init__(self, lin):
        super().__init__()
        self.lin = lin

    def forward(self, t, x):
        return self.lin(x)


@pytest.mark.parametrize("rtol", [1e-7, 1e-9])
def test_linear_ode_frechet_single_output(rtol):
    """Oracle: x' = Ax, L = gᵀx(T): dL/dA = T·L_exp(T Aᵀ, g x0ᵀ) (scipy expm_frechet) and
    dL/dx0 = e^{AᵀT} g; relative error ≤ 10·rtol (spec oracle 2)."""
    A, lin, _, rng = _linear_problem()
    T = 3.0
    x0n, gn = rng.standard_normal(6), rng.standard_normal(6)
    x0 = torch.tensor(x0n, requires_grad=True)
    y = odeint_adjoint_gq(_Lin(lin), x0, torch.tensor([0.0, T], dtype=DT), rtol=rtol, atol=rtol * 1e-2)
    (y[-1] @ torch.from_numpy(gn)).backward()
    _, frechet = scipy.linalg.expm_frechet(T * A.T, np.outer(gn, x0n))
    dA = T * frechet
    dx0 = scipy.linalg.expm(A.T * T) @ gn
    assert _rel(lin.weight.grad, torch.from_numpy(dA)) <= 10 * rtol
    assert _rel(x0.grad, torch.from_numpy(dx0)) <= 10 * rtol


@pytest.mark.parametrize("decreasing", [False, True])
def test_linear_ode_frechet_several_outputs(decreasing):
    """Oracle: L = Σ_k g_kᵀ x(t_k) gives dL/dA = Σ_k s_k L_exp(s_k Aᵀ, g_k x0ᵀ), s_k = t_k − t_0,
    dL/dx0 = Σ_k e^{Aᵀ s_k} g_k; the same with a decreasing grid (s_k < 0)."""
    A, lin, _, rng = _linear_problem(seed=1)
    tn = np.array([0.0, 0.4, 1.1, 2.0, 3.0])
    if decreasing:
        tn = 1.0 - tn
    G = rng.standard_normal((len(tn), 6))
    x0n = rng.standard_normal(6)
    x0 = torch.tensor(x0n, requires_grad=True)
    rtol = 1e-9
    y, stats = odeint_adjoint_gq(_Lin(lin), x0, torch.tensor(tn), rtol=rtol, atol=1e-11, return_stats=True)
    (y * torch.from_numpy(G)).sum().backward()
    dA = np.zeros((6, 6))
    dx0 = np.zeros(6)
    for k in range(len(tn)):
        s = tn[k] - tn[0]
        dA += s * scipy.linalg.expm_frechet(s * A.T, np.outer(G[k], x0n))[1]
        dx0 += scipy.linalg.expm(A.T * s) @ G[k]
    assert _rel(lin.weight.grad, torch.from_numpy(dA)) <= 10 * rtol
    assert _rel(x0.grad, torch.from_numpy(dx0)) <= 10 * rtol
    assert stats.restarts == len(tn) - 1 and len(stats.nodes_per_interval) == len(tn) - 1


# ---------------------------------------------------------------------------------------------
# MLP vector field against direct backprop through torchdiffeq.odeint
# ---------------------------------------------------------------------------------------------
class _MLP(nn.Module):
    def __init__(self, d=3, width=16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d + 1, width), nn.Tanh(), nn.Linear(width, d))

    def forward(self, t, y):
        return self.net(torch.cat([y, t.reshape(1, 1).expand(y.shape[0], 1)], 1))


@pytest.fixture(scope="module")
def mlp_problem():
    torch.manual_seed(0)
    f = _MLP().to(DT)
    y0 = torch.randn(5, 3, dtype=DT)
    refs = {}
    for name, t in (("inc", torch.linspace(0.0, 1.5, 4, dtype=DT)), ("dec", torch.linspace(1.5, 0.0, 4, dtype=DT))):
        c = torch.randn(len(t), 5, 3, dtype=DT)
        y0r = y0.clone().requires_grad_(True)
        ys = odeint(f, y0r, t, rtol=1e-12, atol=1e-12, method="dopri5")
        refs[name] = (t, c, torch.autograd.grad((ys * c).sum(), [y0r, *f.parameters()]))
    return f, y0, refs


def _grads(f, y0, t, c, solver):
    y0r = y0.clone().requires_grad_(True)
    ys = solver(f, y0r, t)
    return torch.autograd.grad((ys * c).sum(), [y0r, *f.parameters()])


@pytest.mark.parametrize("direction", ["inc", "dec"])
@pytest.mark.parametrize("method,tol", [("dopri5", 1e-10), ("dopri5", 1e-7), ("bosh3", 1e-8),
                                        ("adaptive_heun", 1e-7), ("dopri8", 1e-9)])
def test_mlp_matches_direct_backprop(mlp_problem, method, tol, direction):
    """Oracle: direct backprop through torchdiffeq.odeint (dopri5, rtol = atol = 1e-12). GQ at
    (method, tol) with gtol = 1 (enough nodes that the quadrature is not the bottleneck) must be
    within 10·tol, or no worse than 2× direct backprop through the same solver at the same
    tolerance (low-order solvers' own error exceeds 10·tol)."""
    f, y0, refs = mlp_problem
    t, c, ref = refs[direction]
    gq = _grads(f, y0, t, c, lambda f_, y_, t_: odeint_adjoint_gq(f_, y_, t_, rtol=tol, atol=tol, method=method, gtol=1.0))
    direct = _grads(f, y0, t, c, lambda f_, y_, t_: odeint(f_, y_, t_, rtol=tol, atol=tol, method=method))
    err_gq = max(_rel(a, b) for a, b in zip(gq, ref))
    err_direct = max(_rel(a, b) for a, b in zip(direct, ref))
    assert err_gq <= max(10 * tol, 2 * err_direct), (err_gq, err_direct)
    assert not hasattr(f, "nfe")


@pytest.mark.parametrize("tol,bound", [(1e-3, 1e-2), (1e-10, 1e-6)])
def test_mlp_default_gtol_is_quadrature_limited(mlp_problem, tol, bound):
    """Oracle: direct backprop at 1e-12. With the gtol rule alone (gq_nodes=None) at gtol = 0.1 a
    high-order solver takes so few steps that the n_k ≥ 2 nodes set the error (spec oracle 5:
    ≤ 10·tol at tol 1e-3); raising gtol (more nodes) must shrink it, while the y0 gradient (no
    quadrature) is unchanged. The default gq_nodes="auto" is within 10·tol, or where the solve
    itself limits the error (tol 1e-10), no worse than the rule with 10× more nodes."""
    f, y0, refs = mlp_problem
    t, c, ref = refs["inc"]
    errs = []
    for gtol in (0.1, 1.0):
        g = _grads(f, y0, t, c, lambda f_, y_, t_: odeint_adjoint_gq(f_, y_, t_, rtol=tol, atol=tol, gtol=gtol,
                                                                     gq_nodes=None))
        errs.append([_rel(a, b) for a, b in zip(g, ref)])
    g = _grads(f, y0, t, c, lambda f_, y_, t_: odeint_adjoint_gq(f_, y_, t_, rtol=tol, atol=tol))
    assert max(_rel(a, b) for a, b in zip(g, ref)) <= max(10 * tol, 1.1 * max(errs[1]))  # solver-limited at 1e-10
    assert max(errs[0]) <= bound
    assert errs[0][0] == pytest.approx(errs[1][0], rel=1e-6)
    if tol < 1e-6:
        assert max(errs[1]) <= max(errs[0]) / 5


@pytest.mark.parametrize("direction", ["inc", "dec"])
def test_mlp_rk4_step_size_matches_direct(mlp_problem, direction):
    """Oracle: direct backprop through rk4 with the same step_size (nodes read by linear
    interpolation, 2nd order: ≤ 1e-5 relative at step 0.01)."""
    f, y0, refs = mlp_problem
    t, c, _ = refs[direction]
    opt = dict(step_size=0.01)
    gq = _grads(f, y0, t, c, lambda f_, y_, t_: odeint_adjoint_gq(f_, y_, t_, method="rk4", options=opt))
    direct = _grads(f, y0, t, c, lambda f_, y_, t_: odeint(f_, y_, t_, method="rk4", options=opt))
    assert max(_rel(a, b) for a, b in zip(gq, direct)) <= 1e-5


def test_mlp_time_gradient_matches_direct(mlp_problem):
    """Oracle: direct backprop through dopri5 at 1e-12 for dL/dt (closed forms of spec 1.1)."""
    f, y0, refs = mlp_problem
    t, c, _ = refs["inc"]
    out = []
    for solver in (lambda tt: odeint(f, y0, tt, rtol=1e-12, atol=1e-12),
                   lambda tt: odeint_adjoint_gq(f, y0, tt, rtol=1e-10, atol=1e-10)):
        tt = t.clone().requires_grad_(True)
        out.append(torch.autograd.grad((solver(tt) * c).sum(), tt)[0])
    assert _rel(out[1], out[0]) <= 1e-7


def test_tuple_state_matches_direct(mlp_problem):
    """Oracle: direct backprop, with the state split into a tuple (x[:, :2], x[:, 2:])."""
    f, y0, refs = mlp_problem
    t, c, _ = refs["inc"]

    class Split(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, t, xs):
            d = self.inner(t, torch.cat(xs, 1))
            return d[:, :2], d[:, 2:]

    g = Split(f)

    def run(solver):
        a, b = y0[:, :2].clone().requires_grad_(True), y0[:, 2:].clone().requires_grad_(True)
        ya, yb = solver(g, (a, b), t)
        loss = (torch.cat([ya, yb], 2) * c).sum()
        return torch.autograd.grad(loss, [a, b, *g.parameters()])

    ref = run(lambda f_, y_, t_: odeint(f_, y_, t_, rtol=1e-12, atol=1e-12))
    gq = run(lambda f_, y_, t_: odeint_adjoint_gq(f_, y_, t_, rtol=1e-10, atol=1e-10, gtol=1.0))
    assert max(_rel(a, b) for a, b in zip(gq, ref)) <= 1e-8


# ---------------------------------------------------------------------------------------------
# stats, counting, contract
# ---------------------------------------------------------------------------------------------
def test_stats_and_no_nfe_attribute():
    """Oracle: counts by an independent counter in a test module; dopri5 costs 6 calls per step
    plus 2 for the initial step, so NFE_fwd ≡ 2 (mod 6) without rejections."""
    torch.manual_seed(1)
    f = _MLP().to(DT)
    calls = {"n": 0}

    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = f

        def forward(self, t, y):
            calls["n"] += 1
            return self.f(t, y)

    g = Counting()
    y0 = torch.randn(4, 3, dtype=DT, requires_grad=True)
    y, st = odeint_adjoint_gq(g, y0, torch.linspace(0, 1, 3, dtype=DT), rtol=1e-6, atol=1e-8,
                              return_stats=True, gq_nmin=3, gq_nodes=None)
    n_fwd = calls["n"]
    assert st.nfe_forward == n_fwd > 0 and st.nfe_backward is None
    y.sum().backward()
    assert not hasattr(g, "nfe") and not hasattr(f, "nfe")
    assert st.nfe_backward > 0 and st.restarts == 2 and st.cap_hits == 0
    assert len(st.nodes_per_interval) == 2 and min(st.nodes_per_interval) >= 3
    assert st.nfe_param_vjp == sum(st.nodes_per_interval)
    # the nodes of an interval go through one vmapped call of f
    assert st.param_vjp_calls == st.restarts == 2
    # all backward calls of f: augmented dynamics + parameter VJPs at the nodes
    assert calls["n"] - n_fwd == st.nfe_backward + st.param_vjp_calls


def test_auto_nodes_accounting_and_no_resolve(mlp_problem):
    """Oracle: the gtol rule's run on the same problem. gq_nodes="auto" solves each interval once
    (the same backward NFE as the rule: the extra nodes are read off the solver's interpolants),
    evaluates the nodes of all intervals in one vmapped call per rule and round (a pair round's
    n- and (n−1)-point nodes in one call when they hold few state numbers), starts from the
    rule's count, and its accepted estimate is within tolerance."""
    f, y0, refs = mlp_problem
    t, c, ref = refs["inc"]
    st = {}
    for nodes in (None, "auto"):
        y, st[nodes] = odeint_adjoint_gq(f, y0, t, rtol=1e-9, atol=1e-9, gq_nodes=nodes, return_stats=True)
        (y * c).sum().backward()
    rule, auto = st[None], st["auto"]
    assert auto.nfe_backward == rule.nfe_backward and auto.nfe_forward == rule.nfe_forward
    assert 1 + auto.refinements <= auto.param_vjp_calls <= 2 * (1 + auto.refinements)
    assert all(a >= r for a, r in zip(auto.nodes_per_interval, rule.nodes_per_interval))
    assert auto.nfe_param_vjp >= sum(2 * n - 1 for n in auto.nodes_per_interval)
    assert auto.quad_error_ratio <= 1.0 and auto.cap_hits == 0


def test_auto_nodes_chunked_vjp_same_gradient(mlp_problem, monkeypatch):
    """Oracle: the unchunked run. With a tiny chunk budget the auto quadrature's node VJPs go
    through many vmapped calls (bounded memory) and give the same gradient to rounding."""
    import rnntk.ode.gq_adjoint as gq

    f, y0, refs = mlp_problem
    t, c, _ = refs["inc"]
    out = []
    for budget in (gq._CHUNK_NUMBERS, 40):
        monkeypatch.setattr(gq, "_CHUNK_NUMBERS", budget)
        y, st = odeint_adjoint_gq(f, y0, t, rtol=1e-9, atol=1e-9, return_stats=True)
        out.append((torch.autograd.grad((y * c).sum(), list(f.parameters())), st.param_vjp_calls))
    assert out[1][1] > out[0][1]
    assert max(_rel(a, b) for a, b in zip(out[1][0], out[0][0])) <= 1e-12


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("path", ["vmap", "chunked", "node-by-node"])
def test_auto_pair_sums_match_node_by_node_autograd(path, shared, monkeypatch):
    """Oracle: plain autograd, one node at a time, Σ_j w_j ∂(a_jᵀ f(τ_j, x_j))/∂θ with numpy's
    Gauss–Legendre weights. A pair round returns G_n and the norms of G_{n−1} − G_n, either from
    one vmapped evaluation of the n- and (n−1)-point nodes of every interval and two VJPs (the
    difference straight from the cotangents w_{n−1} a and −w_n a; few state numbers) or from one
    evaluation and VJP per rule; both must equal the node-by-node sums, also when the VJP is
    chunked or the field is evaluated node by node. The
    states x(t) and adjoints a(t) are analytic curves standing in for the backward solve's
    interpolants; intervals run backwards in time, as in the sweep."""
    import rnntk.ode.gq_adjoint as gq

    torch.manual_seed(3)
    f = _MLP().to(DT)
    params = tuple(f.parameters())
    B, d = 5, 3
    cx, ca = torch.randn(2, B, d, dtype=DT), torch.randn(2, B, d, dtype=DT)

    def at(taus):
        tt = torch.as_tensor(np.asarray(taus), dtype=DT).view(-1, 1, 1)
        return (torch.sin(tt * cx[0] + cx[1]),), (torch.cos(tt * ca[0]) + ca[1],)

    intervals = [(1.5, 0.9, at), (0.9, 0.2, at), (0.2, 0.0, at)]
    hi, lo = [3, 4, 1], [2, 3, 0]

    def oracle(counts):
        tot = [torch.zeros_like(p) for p in params]
        for (t_from, t_to, _), n in zip(intervals, counts):
            if n == 0:
                continue
            z, w = np.polynomial.legendre.leggauss(n)
            for zj, wj in zip(z, w):
                tau = 0.5 * (t_from + t_to) + 0.5 * (t_to - t_from) * zj
                (x,), (a,) = at([tau])
                with torch.enable_grad():
                    out = (f(torch.tensor(tau, dtype=DT), x[0]) * a[0]).sum()
                    g = torch.autograd.grad(out, params)
                for acc, gi in zip(tot, g):  # ∫_{t_to}^{t_from}: weights (t_from − t_to)/2 · w_j
                    acc += 0.5 * (t_from - t_to) * wj * gi
        return tot

    if path == "chunked":
        monkeypatch.setattr(gq, "_CHUNK_NUMBERS", 40)
    monkeypatch.setattr(gq, "_SHARED_PAIR_NUMBERS", 10**9 if shared else 0)
    cfg = {"vmap_ok": path != "node-by-node"}
    tally = dict(calls=0, evals=0)
    f_tuple = gq._as_tuple_fn(f, False)
    g_hi, e_norms = gq._rule_sums(intervals, hi, lo, f_tuple, params, cfg, tally)
    want_hi, want_lo = oracle(hi), oracle(lo)
    for a, b in zip(g_hi, want_hi):
        assert _rel(a, b) <= 1e-13
    for en, b, c in zip(e_norms, want_lo, want_hi):
        assert float(en) == pytest.approx(float((b - c).norm()), rel=1e-12)
    assert tally["evals"] == sum(hi) + sum(lo)
    want_calls = {"vmap": 1 if shared else 2, "chunked": tally["calls"], "node-by-node": sum(hi) + sum(lo)}[path]
    assert tally["calls"] == want_calls and (path != "chunked" or tally["calls"] > 1)


def test_unvmappable_field_falls_back_node_by_node(mlp_problem):
    """Oracle: direct backprop. A field that calls .item() cannot be vmapped; the node VJPs are
    then evaluated one node at a time, with the same gradient."""
    f, y0, refs = mlp_problem
    t, c, ref = refs["inc"]

    class ItemField(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = f

        def forward(self, t_, y):
            return self.f(t_, y) * (1.0 if float(t_.item()) >= -1e9 else 0.0)

    holder = {}

    def solver(f_, y_, t_):
        y, holder["st"] = odeint_adjoint_gq(ItemField(), y_, t_, rtol=1e-9, atol=1e-9, gtol=0.5,
                                            return_stats=True, gq_nodes=None)
        return y

    g = _grads(f, y0, t, c, solver)
    st = holder["st"]
    assert st.param_vjp_calls == st.nfe_param_vjp == sum(st.nodes_per_interval) > st.restarts
    assert max(_rel(a, b) for a, b in zip(g, ref)) <= 1e-5


def test_cap_hits_reported():
    """Oracle: gq_nmax = 2 with a forward NFE far above 20 must bind on both intervals."""
    torch.manual_seed(2)
    f = _MLP().to(DT)
    y0 = torch.randn(2, 3, dtype=DT, requires_grad=True)
    y, st = odeint_adjoint_gq(f, y0, torch.linspace(0, 2, 3, dtype=DT), rtol=1e-10, atol=1e-10,
                              gq_nmax=2, return_stats=True)
    y.sum().backward()
    assert st.nodes_per_interval == [2, 2] and st.cap_hits == 2


@pytest.mark.parametrize("kwargs,match", [
    (dict(gtol=0.0), "gtol"), (dict(gtol=-1.0), "gtol"), (dict(gq_nodes=0), "gq_nodes"),
    (dict(gq_nmin=0), "gq_nmin"), (dict(gq_nmin=5, gq_nmax=4), "gq_nmax"),
    (dict(trajectory="dense"), "trajectory"), (dict(method="tsit9"), "method"),
    (dict(adjoint_method="rk4", options=dict(step_size=0.1)), "adjoint_options"),
])
def test_argument_contract(kwargs, match):
    f = _MLP().to(DT)
    y0 = torch.zeros(1, 3, dtype=DT)
    with pytest.raises(ValueError, match=match):
        odeint_adjoint_gq(f, y0, torch.tensor([0.0, 1.0], dtype=DT), **kwargs)


def test_argument_contract_t_and_func():
    f = _MLP().to(DT)
    y0 = torch.zeros(1, 3, dtype=DT)
    with pytest.raises(ValueError, match="monotone"):
        odeint_adjoint_gq(f, y0, torch.tensor([0.0, 1.0, 0.5], dtype=DT))
    with pytest.raises(ValueError, match="^t must"):
        odeint_adjoint_gq(f, y0, torch.tensor([[0.0, 1.0]], dtype=DT))
    with pytest.raises(ValueError, match="adjoint_params"):
        odeint_adjoint_gq(lambda t, y: -y, y0, torch.tensor([0.0, 1.0], dtype=DT))
    with pytest.raises(ValueError, match="store"):
        odeint_adjoint_gq(f, (y0, y0), torch.tensor([0.0, 1.0], dtype=DT), trajectory="store")


# ---------------------------------------------------------------------------------------------
# trajectory="store"
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["inc", "dec"])
def test_store_mlp_matches_direct(mlp_problem, direction):
    """Oracle: direct backprop through dopri5 at 1e-12 (y0, params and t gradients)."""
    f, y0, refs = mlp_problem
    t, c, _ = refs[direction]

    def run(solver):
        y, tt = y0.clone().requires_grad_(True), t.clone().requires_grad_(True)
        return torch.autograd.grad((solver(f, y, tt) * c).sum(), [y, tt, *f.parameters()])

    ref = run(lambda f_, y_, t_: odeint(f_, y_, t_, rtol=1e-12, atol=1e-12))
    st = run(lambda f_, y_, t_: odeint_adjoint_gq(f_, y_, t_, rtol=1e-10, atol=1e-10, gtol=1.0,
                                                  trajectory="store"))
    assert max(_rel(a, b) for a, b in zip(st, ref)) <= 1e-8


class _Leaky(nn.Module):
    """Rate RNN τ dx/dt = −x + W tanh x + b (contracting for small τ)."""

    def __init__(self, n: int, tau: float):
        super().__init__()
        self.W = nn.Parameter(torch.randn(n, n, dtype=DT) * 1.5 / math.sqrt(n))
        self.b = nn.Parameter(0.1 * torch.randn(n, dtype=DT))
        self.tau = tau

    def forward(self, t, x):
        return (-x + torch.tanh(x) @ self.W.T + self.b) / self.tau


def test_store_leaky_rnn_contracting():
    """Oracle: direct backprop at rtol 1e-11. At T/τ = 50, recompute (backward reconstruction of
    x) loses the gradient (spec 1.4 table: 2e-3 to 1e-2), store keeps ≤ 1e-6 (spec oracle 6)."""
    torch.manual_seed(0)
    f = _Leaky(20, 0.02)
    y0 = torch.randn(4, 20, dtype=DT)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=DT)
    c = torch.randn(3, 4, 20, dtype=DT)
    ref = _grads(f, y0, t, c, lambda f_, y_, t_: odeint(f_, y_, t_, rtol=1e-11, atol=1e-11))
    errs = {}
    for traj in ("recompute", "store"):
        g = _grads(f, y0, t, c, lambda f_, y_, t_: odeint_adjoint_gq(f_, y_, t_, rtol=1e-9, atol=1e-9,
                                                                     gtol=0.5, trajectory=traj))
        errs[traj] = max(_rel(a, b) for a, b in zip(g, ref))
    assert errs["store"] <= 1e-6, errs
    assert errs["recompute"] >= 1e-4, errs


def test_store_needs_a_dense_output_solver(mlp_problem):
    f, y0, refs = mlp_problem
    t = refs["inc"][0]
    with pytest.raises(ValueError, match="trajectory='store' needs method='dopri5'"):
        odeint_adjoint_gq(f, y0, t, method="adaptive_heun", trajectory="store")
