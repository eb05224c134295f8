"""rnntk.analysis.fixed_points against independent oracles: closed forms (linear maps and
fields), scipy.optimize.root from a grid of starts (a 2-D tanh network with a saddle and two
stable points), a 3-bit flip-flop network trained here (8 stable points whose readouts are the
8 sign patterns), the discrete and continuous conventions of one leaky network (same points,
eigenvalues related by λ_step = 1 + (dt/τ) λ), Jacobians vs torch.autograd.functional.jacobian and
eigenvalues vs numpy.linalg.eig, the batched search vs a loop over candidates, a slow point
known in closed form, and the uniqueness rounds vs a sequential q-ordered greedy pass."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import pytest
import scipy.optimize
import torch
from torch import nn

from rnntk.analysis.fixed_points import FixedPoints, fixed_points, residual_jacobians, unique_leaders
from rnntk.core.leaky_rnn import LeakyRNN
from rnntk.core.vanilla_rnn import VanillaRNN

D64 = torch.float64


class Discrete:
    """A discrete model of the contract from a plain function ``f(x, u)``."""

    time = "discrete"

    def __init__(self, f: Any, n: int, n_in: int = 1) -> None:
        self.f, self.n, self.n_in, self.n_out = f, n, n_in, n

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        return self.f(x, u)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def hparams(self) -> dict[str, Any]:
        return {}


class Continuous(Discrete):
    """A continuous model ``tau dx/dt = F(x, u)``, Euler step ``x + dt/tau F``."""

    time = "continuous"

    def __init__(self, F: Any, n: int, dt: float = 0.01, tau: float = 0.1) -> None:
        super().__init__(lambda x, u: x + dt / tau * F(x, u), n)
        self.F, self.dt, self.tau = F, dt, tau

    def rhs(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        return self.F(x, u)


def _eig_sorted(J: np.ndarray, key: str) -> np.ndarray:
    lam = np.linalg.eigvals(J)
    k = np.abs(lam) if key == "abs" else lam.real
    return lam[np.argsort(-k, kind="stable")]


def _match(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance from a point of a to its nearest point of b (and the sets have equal size)."""
    assert len(a) == len(b), (len(a), len(b))
    return float(np.linalg.norm(a[:, None] - b[None], axis=-1).min(1).max()) if len(a) else 0.0


# ------------------------------------------------------------------------------ linear systems
def test_linear_map_fixed_point_and_eigenvalues_in_closed_form():
    g = torch.Generator().manual_seed(0)
    n = 6
    A = torch.randn(n, n, generator=g, dtype=D64) * 0.6
    B = torch.randn(n, 2, generator=g, dtype=D64)
    c = torch.randn(n, generator=g, dtype=D64)
    u0 = torch.tensor([0.3, -1.2], dtype=D64)
    model = Discrete(lambda x, u: x @ A.T + u @ B.T + c, n, n_in=2)
    fp = fixed_points(model, torch.randn(64, n, generator=g, dtype=D64) * 3, u0)
    xstar = torch.linalg.solve(torch.eye(n, dtype=D64) - A, B @ u0 + c)
    assert len(fp) == 1
    torch.testing.assert_close(fp.xstar[0], xstar, rtol=0, atol=1e-12)
    assert float(fp.q[0]) < 1e-28
    lam = _eig_sorted(A.numpy(), "abs")
    np.testing.assert_allclose(fp.eigvals[0].numpy(), lam, atol=1e-12)
    k = int((np.abs(lam) > 1).sum())
    assert int(fp.n_unstable[0]) == k and fp.kind[0] == ("stable" if k == 0 else "unstable" if k == n else f"saddle-{k}")
    assert bool(fp.rotational[0]) == bool(abs(lam[0].imag) > 1e-9)
    torch.testing.assert_close(fp.input[0], u0)


def test_linear_field_continuous_closed_form_with_rotation():
    # tau dx/dt = M x + b with M = [[-0.5, -2], [2, -0.5]] (a stable spiral) (+) [[0.7]] (unstable)
    M = torch.tensor([[-0.5, -2.0, 0.0], [2.0, -0.5, 0.0], [0.0, 0.0, 0.7]], dtype=D64)
    b = torch.tensor([1.0, -0.5, 0.2], dtype=D64)
    tau = 0.05
    model = Continuous(lambda x, u: x @ M.T + b, 3, dt=0.005, tau=tau)
    fp = fixed_points(model, torch.randn(32, 3, generator=torch.Generator().manual_seed(1), dtype=D64))
    assert len(fp) == 1 and fp.time == "continuous"
    torch.testing.assert_close(fp.xstar[0], -torch.linalg.solve(M, b), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fp.eigvals[0].numpy(), _eig_sorted(M.numpy(), "real"), atol=1e-12)  # dF/dx, units 1/tau
    assert fp.kind == ["saddle-1"] and not bool(fp.rotational[0])  # the leading eigenvalue, 0.7, is real
    flip = Continuous(lambda x, u: x @ (-M).T + b, 3, tau=tau)  # now the spiral leads (unstable) and 0.7 -> -0.7
    fq = fixed_points(flip, torch.randn(32, 3, generator=torch.Generator().manual_seed(2), dtype=D64))
    assert fq.kind == ["saddle-2"] and bool(fq.rotational[0])


# ------------------------------------------------------------------ 2-D tanh network vs scipy
W2 = np.array([[2.0, 0.4], [0.3, 0.6]])
B2 = np.array([0.1, -0.05])


def _tanh2(x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
    return torch.tanh(x @ torch.as_tensor(W2).T.to(x) + torch.as_tensor(B2).to(x))


def _scipy_roots() -> np.ndarray:
    """Every root of tanh(W x + b) - x found by scipy.optimize.root (hybr) from a 21 x 21 grid."""
    f = lambda x: np.tanh(W2 @ x + B2) - x  # noqa: E731
    jac = lambda x: (1 - np.tanh(W2 @ x + B2) ** 2)[:, None] * W2 - np.eye(2)  # noqa: E731
    roots: list[np.ndarray] = []
    for a in np.linspace(-1.5, 1.5, 21):
        for b in np.linspace(-1.5, 1.5, 21):
            sol = scipy.optimize.root(f, [a, b], jac=jac, tol=1e-14)
            if sol.success and np.linalg.norm(f(sol.x)) < 1e-12 and not any(np.linalg.norm(sol.x - r) < 1e-6 for r in roots):
                roots.append(sol.x)
    return np.array(roots)


def test_two_d_tanh_network_saddle_and_two_stable_points_match_scipy():
    roots = _scipy_roots()
    assert len(roots) == 3  # the oracle itself: one saddle between two stable points
    g = torch.Generator().manual_seed(3)
    model = Discrete(_tanh2, 2)
    fp = fixed_points(model, torch.rand(256, 2, generator=g, dtype=D64) * 3 - 1.5)
    assert _match(fp.xstar.numpy(), roots) < 1e-12
    assert float(fp.q.max()) < 1e-28
    assert sorted(fp.kind) == ["saddle-1", "stable", "stable"]
    for x, lam in zip(fp.xstar.numpy(), fp.eigvals.numpy()):
        J = (1 - np.tanh(W2 @ x + B2) ** 2)[:, None] * W2
        np.testing.assert_allclose(lam, _eig_sorted(J, "abs"), atol=1e-12)


# ------------------------------------------------------------------ 3-bit flip-flop, trained here
class FlipFlop(nn.Module):
    """``h' = tanh(W h + U u + b)``, readout ``C h + d`` (FixedPointFinder's example network)."""

    time = "discrete"

    def __init__(self, n: int = 16, bits: int = 3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.n, self.n_in, self.n_out = n, bits, bits
        self.W = nn.Parameter(torch.randn(n, n, generator=g) * 0.9 / math.sqrt(n))
        self.U = nn.Parameter(torch.randn(n, bits, generator=g) / math.sqrt(bits))
        self.b = nn.Parameter(torch.zeros(n))
        self.C = nn.Parameter(torch.randn(bits, n, generator=g) / math.sqrt(n))
        self.d = nn.Parameter(torch.zeros(bits))

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        z = x @ self.W.T + self.b
        return torch.tanh(z if u is None else z + u @ self.U.T)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.C.T + self.d

    def hparams(self) -> dict[str, Any]:
        return {}

    def run(self, u: torch.Tensor) -> torch.Tensor:
        x, xs = torch.zeros(u.shape[0], self.n, dtype=u.dtype), []
        for t in range(u.shape[1]):
            x = self.step(x, u[:, t])
            xs.append(x)
        return torch.stack(xs, 1)


def _flip_flop(batch: int, steps: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    pulse = (torch.rand(batch, steps, 3, generator=g) < 0.5).to(D64)
    pulse[:, 0] = 1
    u = pulse * (torch.randint(0, 2, (batch, steps, 3), generator=g).to(D64) * 2 - 1)
    t = torch.arange(steps)[None, :, None].expand_as(u)
    return u, torch.gather(u, 1, torch.cummax(torch.where(u != 0, t, torch.zeros_like(t)), 1).values)


@pytest.fixture(scope="module")
def flip_flop() -> tuple[FlipFlop, torch.Tensor]:
    torch.manual_seed(0)
    net = FlipFlop().double()
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(300):
        u, y = _flip_flop(64, 32, g)
        loss = ((net.readout(net.run(u)) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    u, y = _flip_flop(64, 48, g)
    with torch.no_grad():
        traj = net.run(u)
        assert float(((net.readout(traj) - y) ** 2).mean()) < 0.02  # it learned the task
    return net, traj


def test_flip_flop_has_eight_stable_points_one_per_memory(flip_flop):
    net, traj = flip_flop
    g = torch.Generator().manual_seed(1)
    flat = traj.reshape(-1, net.n)
    states = flat[torch.randint(0, flat.shape[0], (512,), generator=g)]
    fp = fixed_points(net, states, torch.zeros(3), noise=0.5, generator=g)
    st = fp.is_stable & ~fp.is_slow
    assert int(st.sum()) == 8
    assert float(fp.q[st].max()) <= 1e-12
    with torch.no_grad():
        signs = torch.sign(net.readout(fp.xstar[st]))
    assert {tuple(s) for s in signs.tolist()} == {(a, b, c) for a in (-1.0, 1.0) for b in (-1.0, 1.0) for c in (-1.0, 1.0)}
    assert all(k.startswith("saddle") for k, s in zip(fp.kind, st.tolist()) if not s)  # the others: saddles between memories


def test_batched_search_equals_a_loop_over_candidates(flip_flop):
    net, traj = flip_flop
    g = torch.Generator().manual_seed(2)
    states = traj.reshape(-1, net.n)[torch.randint(0, traj.shape[0] * traj.shape[1], (24,), generator=g)]
    states = states + 0.3 * torch.randn(states.shape, generator=g, dtype=D64)
    zero = torch.zeros(3, dtype=D64)
    # without the joint Adam stage every row is independent: each candidate's point is the same alone
    kw: dict[str, Any] = dict(max_iters=0, outlier_distance_scale=0)
    batched = fixed_points(net, states, zero, **kw)
    looped = [fixed_points(net, s[None], zero, **kw) for s in states]
    pts = np.concatenate([f.xstar.numpy() for f in looped])
    uniq = pts[unique_leaders(torch.as_tensor(pts), torch.cat([f.q for f in looped]), 1e-3).numpy()]
    assert _match(batched.xstar.numpy(), uniq) < 1e-12 and _match(uniq, batched.xstar.numpy()) < 1e-12
    # with the joint Adam stage (one schedule for the batch), the same set of points
    full = fixed_points(net, states, zero)
    loop_full = np.concatenate([fixed_points(net, s[None], zero).xstar.numpy() for s in states])
    loop_full = loop_full[unique_leaders(torch.as_tensor(loop_full), torch.zeros(len(loop_full), dtype=D64), 1e-3).numpy()]
    assert _match(full.xstar.numpy(), loop_full) < 1e-10


# ------------------------------------------------------------ conventions, Jacobians, eigenvalues
def _leaky(seed: int = 0, n: int = 12) -> LeakyRNN:
    torch.manual_seed(seed)
    m = LeakyRNN(2, n, 1, dt=0.01, tau=0.1, g=2.0).double()
    with torch.no_grad():
        m.b.copy_(0.1 * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=D64))
    return m


def test_discrete_and_continuous_conventions_give_the_same_points():
    m = _leaky()
    g = torch.Generator().manual_seed(4)
    states = torch.randn(256, m.n, generator=g, dtype=D64) * 2
    u = torch.tensor([0.5, -0.2], dtype=D64)
    ct = fixed_points(m, states, u)  # LeakyRNN is continuous: rhs = 0
    dt = fixed_points(m, states, u, time="discrete")  # x = step(x) (the Euler map)
    assert ct.time == "continuous" and dt.time == "discrete" and len(ct) >= 3
    assert _match(ct.xstar.numpy(), dt.xstar.numpy()) < 1e-10
    order = np.linalg.norm(ct.xstar.numpy()[:, None] - dt.xstar.numpy()[None], axis=-1).argmin(1)
    for lam_c, lam_d in zip(ct.eigvals.numpy(), dt.eigvals.numpy()[order]):
        np.testing.assert_allclose(np.sort_complex(1 + m.dt / m.tau * lam_c), np.sort_complex(lam_d), atol=1e-10)  # λ_step = 1 + dt/τ λ
    assert [k for k in ct.kind] == [dt.kind[i] for i in order]


@pytest.mark.parametrize("which", ["vanilla (analytic tangent)", "leaky (reverse mode)", "leaky continuous"])
def test_jacobians_and_eigenvalues_match_autograd_and_numpy(which):
    g = torch.Generator().manual_seed(5)
    if which.startswith("vanilla"):
        m: Any = VanillaRNN(10, n_in=2, batch=1, g=1.8, generator=g).double()
        step = lambda x, u: m.step(x, u)  # noqa: E731
        time = "discrete"
    else:
        m = _leaky(1, 10)
        time = "continuous" if which.endswith("continuous") else "discrete"
        rhs = lambda x, u: -x + torch.tanh(x) @ m.W.T + u @ m.U.T + m.b  # noqa: E731
        step = (lambda x, u: m.step(x, u)) if time == "discrete" else rhs
    u = torch.tensor([0.3, 0.1], dtype=D64)
    fp = fixed_points(m, torch.randn(128, 10, generator=g, dtype=D64) * 2, u, time=time, keep_jacobians=True)
    assert len(fp) >= 1 and fp.jacobians is not None
    for x, J, lam in zip(fp.xstar, fp.jacobians, fp.eigvals):
        ref = torch.autograd.functional.jacobian(lambda s: step(s[None], u[None])[0], x)
        torch.testing.assert_close(J, ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(lam.numpy(), _eig_sorted(ref.numpy(), "abs" if time == "discrete" else "real"), atol=1e-10)
    X = torch.randn(7, 10, generator=g, dtype=D64)  # away from fixed points, batched
    Jb = residual_jacobians(
        m if which.startswith("vanilla") else __import__("rnntk.core.models", fromlist=["x"]).as_recurrent_model(m), time, X, u[None].expand(7, 2)
    )
    for x, J in zip(X, Jb):
        ref = torch.autograd.functional.jacobian(lambda s: step(s[None], u[None])[0] - (s if time == "discrete" else 0), x)
        torch.testing.assert_close(J, ref, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------ slow points, uniqueness
def test_slow_point_found_and_labelled():
    # x' = x + x^2 + c: no fixed point; q = (x^2 + c)^2 / 2 has its minimum c^2/2 at x = 0
    c = 1e-3
    model = Discrete(lambda x, u: x + x**2 + c, 1)
    fp = fixed_points(model, torch.linspace(-0.5, 0.3, 40, dtype=D64)[:, None])
    assert len(fp) == 1 and bool(fp.is_slow[0])
    assert abs(float(fp.xstar[0, 0])) < 1e-4
    assert float(fp.q[0]) == pytest.approx(c**2 / 2, rel=1e-6)
    assert len(fixed_points(model, torch.zeros(3, 1, dtype=D64), keep_slow=False)) == 0


def test_unique_leaders_equal_a_sequential_q_ordered_greedy_pass():
    g = torch.Generator().manual_seed(6)
    for _ in range(5):
        x = torch.randn(300, 2, generator=g, dtype=D64)
        q = torch.rand(300, generator=g, dtype=D64)
        tol = 0.3
        ref, taken = [], torch.zeros(300, dtype=torch.bool)
        for i in torch.argsort(q).tolist():  # the oracle: a Python loop in q order
            if not taken[i]:
                ref.append(i)
                taken |= (x - x[i]).norm(dim=1) <= tol
        assert sorted(unique_leaders(x, q, tol).tolist()) == sorted(ref)
    chain = torch.tensor([[0.0], [0.6], [1.2], [1.8]], dtype=D64)  # spaced 0.6 tol: no chaining
    assert unique_leaders(chain, torch.arange(4.0, dtype=D64), 1.0).tolist() == [0, 2]


def test_one_candidate_is_not_its_own_distance_outlier():
    # regression: with one candidate (or one state repeated) the outlier rule divided by a zero
    # mean distance and dropped every point
    model = Discrete(_tanh2, 2)
    for states in (torch.tensor([[0.9, 0.1]], dtype=D64), torch.tensor([[0.9, 0.1]] * 5, dtype=D64)):
        fp = fixed_points(model, states)
        assert len(fp) == 1 and float(fp.q[0]) < 1e-28


def test_float32_module_is_evaluated_in_a_float64_copy_and_left_unchanged():
    m = FlipFlop(8)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    fp = fixed_points(m, torch.randn(16, 8) * 0.1, torch.zeros(3))
    assert isinstance(fp, FixedPoints) and fp.xstar.dtype == D64 and len(fp) >= 1
    assert all(v.dtype == torch.float32 and torch.equal(v, before[k]) for k, v in m.state_dict().items())


def test_bad_shapes_and_conventions_are_value_errors():
    model = Discrete(_tanh2, 2)
    with pytest.raises(ValueError, match="states must be"):
        fixed_points(model, torch.zeros(4, 3, dtype=D64))
    with pytest.raises(ValueError, match="inputs must be"):
        fixed_points(model, torch.zeros(4, 2, dtype=D64), torch.zeros(2, dtype=D64))
    with pytest.raises(ValueError, match="no rhs"):
        fixed_points(model, torch.zeros(4, 2, dtype=D64), time="continuous")
