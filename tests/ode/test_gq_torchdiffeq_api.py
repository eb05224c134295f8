"""``odeint_adjoint_gq`` accepts what torchdiffeq's ``odeint_adjoint`` accepts (issue 12, items 8-11).

Oracles: torchdiffeq 0.2.5's own ``odeint`` (direct backprop) and ``odeint_adjoint`` run side by
side on the same problem; closed-form integrals for the quadrature error control; torchdiffeq's
``test_against_dopri5`` (tests/gradient_tests.py, TestCompareAdjointGradient) ported with its
tolerances unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint, odeint_event

from rnntk.ode.gq_adjoint import odeint_adjoint_gq

DT = torch.float64


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


class _MLP(nn.Module):
    def __init__(self, d: int = 3, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d + 1, width), nn.Tanh(), nn.Linear(width, d))

    def forward(self, t, y):
        return self.net(torch.cat([y, t.reshape(1, 1).expand(y.shape[0], 1)], 1))


class _Split(nn.Module):
    """The MLP field on a tuple state (y[:, :1], y[:, 1:])."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, t, ys):
        d = self.inner(t, torch.cat(ys, 1))
        return d[:, :1], d[:, 1:]


def _grads(solve, f: nn.Module, y0, t: torch.Tensor, c: torch.Tensor):
    """Gradients of Σ c·y(t) with respect to y0 (each part of a tuple) and f's parameters."""
    ys = tuple(v.clone().requires_grad_(True) for v in (y0 if isinstance(y0, tuple) else (y0,)))
    y = solve(f, ys if isinstance(y0, tuple) else ys[0], t)
    y = torch.cat(y, -1) if isinstance(y, tuple) else y
    params = [p for p in f.parameters() if p.requires_grad]
    g = torch.autograd.grad((y * c).sum(), [*ys, *params], allow_unused=True)
    return [torch.zeros_like(v) if gv is None else gv for v, gv in zip([*ys, *params], g)]


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    f = _MLP().to(DT)
    y0 = torch.randn(4, 3, dtype=DT)
    t = torch.linspace(0.0, 1.5, 4, dtype=DT)
    c = torch.randn(len(t), 4, 3, generator=torch.Generator().manual_seed(3), dtype=DT)
    ref = _grads(lambda f_, y_, t_: odeint(f_, y_, t_, rtol=1e-12, atol=1e-12), f, y0, t, c)
    return f, y0, t, c, ref


def _rms(v):
    return v.pow(2).mean().sqrt()


# ---------------------------------------------------------------------------------------------
# item 8: every adjoint option torchdiffeq's odeint_adjoint accepts
# ---------------------------------------------------------------------------------------------
ADJOINT_OPTION_CASES = {
    "seminorm": dict(adjoint_options={"norm": "seminorm"}),
    "custom_adjoint_norm": dict(adjoint_options={"norm": lambda tt: max(_rms(v) for v in tt[1:])}),
    "forward_norm_only": dict(options={"norm": lambda v: v.abs().max()}),
    "forward_norm_and_seminorm": dict(options={"norm": lambda v: v.abs().max()}, adjoint_options={"norm": "seminorm"}),
    "adjoint_tolerances": dict(rtol=1e-6, atol=1e-8, adjoint_rtol=1e-9, adjoint_atol=1e-10),
    "adjoint_method_bosh3": dict(adjoint_method="bosh3", adjoint_rtol=1e-8, adjoint_atol=1e-10),
    # fixed grid: no error-controlled node values, so "auto" uses the gtol rule; 8 nodes here
    "adjoint_method_rk4": dict(adjoint_method="rk4", adjoint_options={"step_size": 0.01, "interp": "cubic"}),
    "adjoint_step_options": dict(adjoint_options={"first_step": 0.05, "max_num_steps": 10_000, "safety": 0.8,
                                                  "ifactor": 5.0, "dfactor": 0.3, "dtype": torch.float64,
                                                  "norm": "seminorm"}),
    "adjoint_step_t": dict(adjoint_options={"step_t": torch.tensor([0.7, 1.1], dtype=DT), "norm": "seminorm"}),
}


@pytest.mark.parametrize("case", list(ADJOINT_OPTION_CASES))
def test_adjoint_options_like_torchdiffeq(mlp, case):
    """Oracle: direct backprop at 1e-12, and torchdiffeq's odeint_adjoint with the same keyword
    arguments: GQ must run with them and land within 10x of torchdiffeq's adjoint error (or 1e-6)."""
    f, y0, t, c, ref = mlp
    kw = dict(rtol=1e-8, atol=1e-10)
    kw.update(ADJOINT_OPTION_CASES[case])
    td = _grads(lambda f_, y_, t_: odeint_adjoint(f_, y_, t_, **kw), f, y0, t, c)
    gq_kw = {"gq_nodes": 8} if case == "adjoint_method_rk4" else {}
    gq = _grads(lambda f_, y_, t_: odeint_adjoint_gq(f_, y_, t_, **kw, **gq_kw), f, y0, t, c)
    err_td = max(_rel(a, b) for a, b in zip(td, ref))
    err_gq = max(_rel(a, b) for a, b in zip(gq, ref))
    assert err_gq <= max(1e-6, 10 * err_td), (err_gq, err_td)


def test_adjoint_options_tuple_state_and_tuple_tolerances(mlp):
    """Oracle: direct backprop; a tuple state with per-component tolerances, a custom forward norm
    over the tuple and the seminorm backward. (torchdiffeq's own odeint_adjoint rejects tuple
    tolerances: its backward state has more components than the tuple.)"""
    f, y0, t, c, ref = mlp
    g = _Split(f)
    parts = (y0[:, :1].clone(), y0[:, 1:].clone())
    kw = dict(rtol=(1e-8, 1e-9), atol=(1e-10, 1e-10), options={"norm": lambda ys: max(v.abs().max() for v in ys)},
              adjoint_options={"norm": "seminorm"})
    gq = _grads(lambda f_, y_, t_: odeint_adjoint_gq(f_, y_, t_, **kw), g, parts, t, c)
    gq = [torch.cat(gq[:2], 1), *gq[2:]]
    assert max(_rel(a, b) for a, b in zip(gq, ref)) <= 1e-6


def test_custom_adjoint_norm_is_used_with_torchdiffeq_layout(mlp):
    """A callable adjoint norm is called on torchdiffeq's layout (t-adjoint, y, adj_y, *adj_params);
    GQ integrates no t- or θ-adjoint, so the first is a zero scalar and the parameter part is
    empty. A norm that ignores the adjoint (x only) must change the backward solve."""
    f, y0, t, c, _ = mlp
    seen = []

    def norm(tt):
        seen.append(tuple(v.shape for v in tt))
        return _rms(tt[1])

    y, st = odeint_adjoint_gq(f, y0.clone().requires_grad_(True), t, rtol=1e-8, atol=1e-10,
                              adjoint_options={"norm": norm}, return_stats=True)
    (y * c).sum().backward()
    assert seen and all(s == (torch.Size([]), y0.shape, y0.shape) for s in seen)
    y2, st2 = odeint_adjoint_gq(f, y0.clone().requires_grad_(True), t, rtol=1e-8, atol=1e-10,
                                adjoint_options={"norm": "seminorm"}, return_stats=True)
    (y2 * c).sum().backward()
    assert st.nfe_backward != st2.nfe_backward


def test_adjoint_norm_must_be_seminorm_or_callable(mlp):
    f, y0, t, _, _ = mlp
    with pytest.raises(ValueError, match="norm"):
        odeint_adjoint_gq(f, y0, t, adjoint_options={"norm": "semi"})


def test_adjoint_params_subset(mlp):
    """Oracle: direct backprop. With adjoint_params = the last layer only (torchdiffeq's
    semantics), only those parameters receive gradients; the others get None."""
    f, y0, t, c, ref = mlp
    last = tuple(f.net[2].parameters())
    for p in f.parameters():
        p.grad = None
    y = odeint_adjoint_gq(f, y0, t, rtol=1e-10, atol=1e-10, adjoint_params=last)
    (y * c).sum().backward()
    assert all(p.grad is None for p in f.net[0].parameters())
    assert _rel(f.net[2].weight.grad, ref[3]) <= 1e-6 and _rel(f.net[2].bias.grad, ref[4]) <= 1e-6
    for p in f.parameters():
        p.grad = None


# ---------------------------------------------------------------------------------------------
# item 9: user callbacks (forward and _adjoint) are called as torchdiffeq calls them
# ---------------------------------------------------------------------------------------------
class _Logged(nn.Module):
    """The MLP field with all six torchdiffeq callbacks, logging (name, t0, dt, state)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.log: list = []

    def forward(self, t, y):
        return self.inner(t, y)

    def _rec(self, name, t0, y0, dt):
        self.log.append((name, float(t0), float(dt), y0))

    def callback_step(self, t0, y0, dt):
        self._rec("step", t0, y0, dt)

    def callback_accept_step(self, t0, y0, dt):
        self._rec("accept", t0, y0, dt)

    def callback_reject_step(self, t0, y0, dt):
        self._rec("reject", t0, y0, dt)

    def callback_step_adjoint(self, t0, y0, dt):
        self._rec("step_adjoint", t0, y0, dt)

    def callback_accept_step_adjoint(self, t0, y0, dt):
        self._rec("accept_adjoint", t0, y0, dt)

    def callback_reject_step_adjoint(self, t0, y0, dt):
        self._rec("reject_adjoint", t0, y0, dt)


@pytest.mark.parametrize("direction", ["inc", "dec"])
def test_callbacks_match_torchdiffeq_call_pattern(mlp, direction):
    """Oracle: torchdiffeq's odeint_adjoint with the seminorm backward (GQ's backward state is
    [x, a], which is what torchdiffeq's seminorm controls steps on). On one output interval the
    forward solves are the same solve, so the forward callbacks must be called identically (same
    names, times, steps); the backward solves then take the same accepted and rejected steps, and
    the state handed to the _adjoint callbacks holds the same x and adjoint a. A large first step
    forces rejections in both directions. The field is autonomous: torchdiffeq's backward state
    also carries the t-adjoint (in its seminorm), which is zero only when f does not depend on t."""
    _, y0, _, _, _ = mlp
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 3)).to(DT)

    def f(t, y):
        return net(y)
    t = torch.tensor([0.0, 2.0], dtype=DT) if direction == "inc" else torch.tensor([2.0, 0.0], dtype=DT)
    kw = dict(rtol=1e-7, atol=1e-9, options={"first_step": 1.5}, adjoint_options={"first_step": 1.5, "norm": "seminorm"})
    logs = []
    for solver in (odeint_adjoint, odeint_adjoint_gq):
        g = _Logged(f)
        y = solver(g, y0.clone().requires_grad_(True), t, adjoint_params=tuple(net.parameters()), **kw)
        y[-1].pow(2).sum().backward()
        logs.append(g.log)
    td, gq = logs
    for name in ("step", "accept", "reject"):
        a = [(t0, dt) for n, t0, dt, _ in td if n == name]
        b = [(t0, dt) for n, t0, dt, _ in gq if n == name]
        assert a == b and len(a) > 0, name
    for name in ("step_adjoint", "accept_adjoint", "reject_adjoint"):
        a = [(t0, dt, s) for n, t0, dt, s in td if n == name]
        b = [(t0, dt, s) for n, t0, dt, s in gq if n == name]
        assert len(a) == len(b) > 0, (name, len(a), len(b))
        for (ta, da, sa), (tb, db, sb) in zip(a, b):
            # with decreasing t, torchdiffeq's backward runs in negated time and hands that to
            # the _adjoint callbacks; GQ hands them the caller's time
            sign = 1.0 if direction == "inc" else -1.0
            assert sign * ta == pytest.approx(tb, abs=1e-9) and da == pytest.approx(db, rel=1e-9)
            # torchdiffeq: (t-adjoint, y, adj_y, *θ-adjoint); GQ: (x, a)
            assert isinstance(sb, tuple) and len(sb) == 2
            assert torch.allclose(sa[1], sb[0], rtol=1e-9, atol=1e-12)
            assert torch.allclose(sa[2], sb[1], rtol=1e-9, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Solver 'rk4' does not support callbacks:UserWarning")
def test_callbacks_fixed_grid_and_store(mlp):
    """Oracle: torchdiffeq's odeint_adjoint. rk4 with step_size 0.1 on [0, 1.5]: callback_step is
    called once per grid step forwards and backwards (15 each) in both. trajectory='store' calls
    the forward callbacks as the plain dopri5 solve does."""
    f, y0, t, _, _ = mlp
    counts = []
    for solver in (odeint_adjoint, odeint_adjoint_gq):
        g = _Logged(f)
        y = solver(g, y0.clone().requires_grad_(True), t, method="rk4", options={"step_size": 0.1})
        y.sum().backward()
        counts.append({n: sum(1 for e in g.log if e[0] == n) for n in ("step", "step_adjoint")})
    assert counts[0] == counts[1] == {"step": 15, "step_adjoint": 15}
    logs = []
    for kw in (dict(), dict(trajectory="store")):
        g = _Logged(f)
        y = odeint_adjoint_gq(g, y0.clone().requires_grad_(True), t, rtol=1e-7, atol=1e-9, **kw)
        y.sum().backward()
        logs.append(g.log)
    fwd = [[(n, t0, dt) for n, t0, dt, _ in lg if not n.endswith("adjoint")] for lg in logs]
    assert fwd[0] == fwd[1] and fwd[0]
    assert any(e[0] == "accept_adjoint" for e in logs[1])


# ---------------------------------------------------------------------------------------------
# item 10: event_fn
# ---------------------------------------------------------------------------------------------
class _Fall(nn.Module):
    """A ball under gravity with linear drag: d(h, v)/dt = (v, −g − k v); θ = (g, k)."""

    def __init__(self):
        super().__init__()
        self.g = nn.Parameter(torch.tensor(9.81, dtype=DT))
        self.k = nn.Parameter(torch.tensor(0.3, dtype=DT))

    def forward(self, t, y):
        v = y[..., 1:]
        return torch.cat([v, -self.g - self.k * v], -1)


def _hit_ground(t, y):
    return y[..., 0]


@pytest.mark.parametrize("reverse", [False, True])
def test_event_fn_return_convention_and_gradients(reverse):
    """Oracle: torchdiffeq's odeint_event with (a) direct odeint and (b) its odeint_adjoint as the
    interface: event time, state at the event and the gradients of a loss of both (through the
    event time, via odeint_event's implicit-function rerouting) with respect to y0 and θ."""
    res = []
    for interface in (odeint, odeint_adjoint, odeint_adjoint_gq):
        f = _Fall()
        y0 = torch.tensor([10.0, 2.0], dtype=DT, requires_grad=True)
        t0 = torch.tensor(0.0, dtype=DT)
        event_t, sol = odeint_event(f, y0, t0, event_fn=_hit_ground, odeint_interface=interface, reverse_time=reverse,
                                    rtol=1e-10, atol=1e-12)
        loss = event_t ** 2 + sol[-1][1] ** 2
        res.append((float(event_t.detach()), sol.detach(), torch.autograd.grad(loss, [y0, f.g, f.k])))
    (t_d, s_d, g_d), (_, _, g_a), (t_q, s_q, g_q) = res
    assert t_q == pytest.approx(t_d, rel=1e-10) and torch.allclose(s_q, s_d, rtol=1e-10, atol=1e-10)
    for a, b, c in zip(g_q, g_d, g_a):
        assert _rel(a, b) <= 1e-7 and _rel(c, b) <= 1e-7


def test_event_fn_direct_call_like_torchdiffeq():
    """Oracle: torchdiffeq's odeint_adjoint(..., event_fn=...): the same (event_t, solution) pair,
    solution of length 2; gradients of the solution (not through the event time, as torchdiffeq)
    with respect to y0, θ and t[0] agree."""
    out = []
    for solver in (odeint_adjoint, odeint_adjoint_gq):
        f = _Fall()
        y0 = torch.tensor([10.0, 2.0], dtype=DT, requires_grad=True)
        t = torch.tensor([0.0, 1.0], dtype=DT, requires_grad=True)
        event_t, sol = solver(f, y0, t, event_fn=_hit_ground, rtol=1e-10, atol=1e-12)
        assert sol.shape == (2, 2) and event_t.shape == ()
        g = torch.autograd.grad(sol[-1].pow(2).sum() + sol[-1, 1], [y0, f.g, f.k, t])
        out.append((float(event_t.detach()), sol.detach(), g))
    (ta, sa, ga), (tb, sb, gb) = out
    assert ta == pytest.approx(tb, rel=1e-12) and torch.allclose(sa, sb, rtol=1e-12)
    for a, b in zip(ga, gb):
        assert _rel(b, a) <= 1e-7
    assert float(gb[3][1]) == 0.0  # the event time gets no gradient here (torchdiffeq's convention)


def test_event_fn_store_refused():
    f = _Fall()
    with pytest.raises(ValueError, match="event_fn"):
        odeint_adjoint_gq(f, torch.tensor([1.0, 0.0], dtype=DT), torch.tensor([0.0, 1.0], dtype=DT),
                          event_fn=_hit_ground, trajectory="store")


# ---------------------------------------------------------------------------------------------
# item 11: quadrature error control (gq_nodes="auto") and torchdiffeq's test_against_dopri5
# ---------------------------------------------------------------------------------------------
class _Osc(nn.Module):
    """dx/dt = (θ₁ − θ₂) cos(ω t) at θ₁ = θ₂ = 1: the field is zero, so the forward solve is
    trivial (few steps, hence few nodes by the gtol rule), while for L = x(T) the gradient
    dL/dθ₁ = −dL/dθ₂ = ∫_0^T cos(ωt) dt = sin(ωT)/ω is an oscillatory integral."""

    def __init__(self, omega: float):
        super().__init__()
        self.theta = nn.Parameter(torch.ones(2, dtype=DT))
        self.omega = omega

    def forward(self, t, x):
        return ((self.theta[0] - self.theta[1]) * torch.cos(self.omega * t)).expand_as(x)


@pytest.mark.parametrize("rtol", [1e-4, 1e-8])
def test_auto_nodes_meet_the_tolerance(rtol):
    """Oracle: ∫_0^T cos(ωt) dt = sin(ωT)/ω. The gtol rule (gq_nodes=None) gives the trivial
    forward solve few nodes and a large quadrature error; gq_nodes='auto' (the default) adds nodes
    until the error is within the tolerance (10× margin for the estimate's pessimism)."""
    omega, T = 40.0, 1.0
    exact = torch.tensor([1.0, -1.0], dtype=DT) * math.sin(omega * T) / omega
    errs = {}
    for nodes in (None, "auto", "default"):
        f = _Osc(omega)
        kw = {} if nodes == "default" else {"gq_nodes": nodes}
        x, st = odeint_adjoint_gq(f, torch.zeros(1, dtype=DT), torch.tensor([0.0, T], dtype=DT), rtol=rtol,
                                  atol=rtol * 1e-2, return_stats=True, **kw)
        x[-1].sum().backward()
        errs[nodes] = (float((f.theta.grad - exact).abs().max()), st)
    assert errs[None][0] > 1e2 * rtol * float(exact[0].abs())
    err, st = errs["auto"]
    assert err <= 10 * rtol * float(exact[0].abs()) + rtol * 1e-2, (err, st)
    assert st.nodes_per_interval[0] > errs[None][1].nodes_per_interval[0] and st.cap_hits == 0
    assert st.quad_error_ratio <= 1.0 and st.refinements >= 1
    assert errs["default"][0] == err  # "auto" is the default


def _gl_cos(n: int, omega: float, T: float) -> float:
    """The n-point Gauss–Legendre sum of ∫_0^T cos(ωt) dt (numpy's nodes; 0 for n = 0)."""
    if n == 0:
        return 0.0
    z, w = np.polynomial.legendre.leggauss(n)
    return float(np.sum(0.5 * T * w * np.cos(omega * 0.5 * T * (1.0 + z))))


@pytest.mark.parametrize("omega,nodes,evals,rounds", [(0.25, 3, 3 + 3, 2), (3.0, 4, 3 + 7, 2)])
def test_auto_estimate_is_the_rule_difference(omega, nodes, evals, rounds):
    """Oracle: the closed-form Gauss–Legendre sums G_n of ∫_0^1 cos(ωt) dt (the integrand of
    _Osc's θ-gradient, whose adjoint is exactly 1) and the exact sin(ω)/ω. From n = 2 (gtol
    0.01) the first round compares G_1 with G_2. At ω = 0.25 that estimate is 2.6× the
    tolerance: one more node is predicted to suffice, so the next round evaluates only the 3
    nodes of G_3 and compares them with G_2 (6 node evaluations; doubling to G_4 against G_3
    took 10). At ω = 3 the first estimate is 446× the tolerance, so the next round is a pair,
    G_4 against G_3. The accepted estimate equals the closed-form difference of the two rules,
    which bounds the true error of the returned sum."""
    rtol, atol, T = 1e-3, 1e-6, 1.0
    f = _Osc(omega)
    x, st = odeint_adjoint_gq(f, torch.zeros(1, dtype=DT), torch.tensor([0.0, T], dtype=DT), rtol=rtol, atol=atol, gtol=0.01, return_stats=True)
    x[-1].sum().backward()
    assert st.nodes_per_interval == [nodes] and st.refinements == rounds - 1 and st.cap_hits == 0
    assert st.nfe_param_vjp == evals and st.param_vjp_calls == rounds
    g_hi, g_lo = _gl_cos(nodes, omega, T), _gl_cos(nodes - 1, omega, T)
    assert float(f.theta.grad[0]) == pytest.approx(g_hi, rel=1e-12) and float(f.theta.grad[1]) == pytest.approx(-g_hi, rel=1e-12)
    # θ = (θ₁, θ₂) gets (G, −G): norm-wise ratio |ΔG|·√2 / (atol·√2 + rtol·|G|·√2)
    assert st.quad_error_ratio == pytest.approx(abs(g_lo - g_hi) / (atol + rtol * abs(g_hi)), rel=1e-6)
    assert st.quad_error_ratio <= 1.0
    exact = math.sin(omega * T) / omega
    assert abs(g_hi - exact) <= abs(g_lo - g_hi)


def _cubic_problem(dtype):
    class Odefunc(nn.Module):
        def __init__(self):
            super().__init__()
            self.A = nn.Parameter(torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=dtype))
            self.unused_module = nn.Linear(2, 5).to(dtype)

        def forward(self, t, y):
            return torch.mm(y**3, self.A)

    y0 = torch.tensor([[2.0, 0.0]], dtype=dtype, requires_grad=True)
    t_points = torch.linspace(0.0, 25.0, 10, dtype=dtype, requires_grad=True)
    return Odefunc(), y0, t_points


@pytest.mark.parametrize("dtype,t_grad,seed", [(torch.float32, True, 0), (torch.float32, False, 1),
                                               (torch.float64, True, 2)])
def test_torchdiffeq_test_against_dopri5(dtype, t_grad, seed):
    """Port of torchdiffeq's tests/gradient_tests.py::TestCompareAdjointGradient::
    test_against_dopri5 with odeint_adjoint replaced by odeint_adjoint_gq at its DEFAULT options
    and the tolerances unchanged: max |Δ| of dL/dy0, dL/dt, dL/dA against direct backprop through
    dopri5 (default rtol/atol) ≤ 3e-4, 1e-4, 2e-3; the unused submodule gets exactly zero.
    Upstream's problem is in the default dtype (float32); float64 is run too. Upstream's random
    cotangents are unseeded; here seeded (three seeds over the cases)."""
    torch.manual_seed(seed)
    func, y0, t_points = _cubic_problem(dtype)
    t_points.requires_grad_(t_grad)
    ys = odeint_adjoint_gq(func, y0, t_points, method="dopri5")
    gradys = torch.rand_like(ys) * 0.1
    ys.backward(gradys)
    adj_y0_grad, adj_t_grad, adj_A_grad = y0.grad, t_points.grad if t_grad else None, func.A.grad
    assert float(func.unused_module.weight.grad.abs().max()) == 0
    assert float(func.unused_module.bias.grad.abs().max()) == 0

    func, y0, t_points = _cubic_problem(dtype)
    ys = odeint(func, y0, t_points, method="dopri5")
    ys.backward(gradys)
    assert float((y0.grad - adj_y0_grad).abs().max()) < 3e-4
    if t_grad:
        assert float((t_points.grad - adj_t_grad).abs().max()) < 1e-4
    assert float((func.A.grad - adj_A_grad).abs().max()) < 2e-3
