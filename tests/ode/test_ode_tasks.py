"""Oracles for the neural-ODE/SDE trial generators (rnntk.ode.tasks; GQ spec §3, §5 7(b))."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad, solve_ivp

from rnntk.core.trials import TrialBatch
from rnntk.ode.tasks import g1d, leaky_rnn_trajectories, nested_spheres, ou_moments, ou_paths, sines


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_nested_spheres_radii_and_balance() -> None:
    """Oracle: class 0 has r < 0.4, class 1 has 0.7 < r < 0.9; exactly n per class; shapes."""
    tb = nested_spheres(500, generator=gen(1), dtype=torch.float64)
    assert isinstance(tb, TrialBatch)
    assert tb.inputs.shape == (1000, 1, 2) and tb.targets.shape == (1000, 1, 1)
    assert torch.all(tb.mask == 1)
    lab = tb.table["label"]
    assert lab.shape == (1000,) and int((lab == 0).sum()) == 500 and int((lab == 1).sum()) == 500
    assert torch.equal(tb.targets[:, 0, 0], lab.to(torch.float64))
    r = tb.inputs[:, 0].norm(dim=1)
    assert torch.all(r[lab == 0] < 0.4)
    assert torch.all((r[lab == 1] > 0.7) & (r[lab == 1] < 0.9))
    # uniform in the disc: E r^2 = 0.4^2 / 2 for class 0 (loose check)
    assert abs(float((r[lab == 0] ** 2).mean()) - 0.08) < 0.01
    # shuffled, not sorted by class
    assert 0 < int((lab[:500] == 0).sum()) < 500


@pytest.mark.parametrize("irregular", [False, True])
def test_sines_exact_solution(irregular: bool) -> None:
    """Oracle: x(t) = A sin t + B cos t with (B, A) = (x0, v0); irregular times sorted, t0 = 0."""
    tb = sines(15, 50, irregular=irregular, generator=gen(2), dtype=torch.float64)
    assert tb.inputs.shape == (15, 1, 2) and tb.targets.shape == (15, 50, 1)
    t = tb.extra["times"]
    assert t.shape == (15, 50)
    x0, v0 = tb.inputs[:, 0, 0:1], tb.inputs[:, 0, 1:2]
    assert torch.all(x0.abs() <= 1) and torch.all(v0.abs() <= 1)
    ref = v0 * torch.sin(t) + x0 * torch.cos(t)
    torch.testing.assert_close(tb.targets[..., 0], ref, rtol=0, atol=1e-14)
    assert torch.all(t[:, 0] == 0)
    assert torch.all(t[:, 1:] >= t[:, :-1]) and torch.all(t <= 2 * math.pi)
    if irregular:
        assert tb.dt is None
        assert not torch.equal(t[0], t[1])
    else:
        torch.testing.assert_close(t[3], torch.linspace(0, 2 * math.pi, 50, dtype=torch.float64))
        assert torch.equal(t[0], t[-1])
    # x'' = -x via the exact second derivative of the fit (numerical check on a regular grid)
    if not irregular:
        h = float(t[0, 1])
        d2 = (tb.targets[:, 2:, 0] - 2 * tb.targets[:, 1:-1, 0] + tb.targets[:, :-2, 0]) / h**2
        assert float((d2 + tb.targets[:, 1:-1, 0]).abs().max()) < 2e-2


def test_ou_moments_listed_values() -> None:
    """Oracle 7(b): v(1) = 0.418, v(5) = 3.54, v(10) = 11.53; closed form equals quadrature."""
    ts = [1.0, 5.0, 10.0]
    m, v = ou_moments(torch.tensor([0.0, 2.0]), ts)
    assert m.shape == (2, 3) and v.shape == (3,)
    np.testing.assert_allclose(v.numpy(), [0.418, 3.54, 11.53], atol=6e-3)
    q = [quad(lambda s, t=t: math.exp(-0.2 * (t - s)) * (0.6 + 0.15 * s) ** 2, 0, t)[0] for t in ts]
    np.testing.assert_allclose(v.numpy(), q, rtol=1e-12)
    for y0 in (0.0, 2.0):
        mq = [y0 * math.exp(-0.1 * t) + quad(lambda s, t=t: math.exp(-0.1 * (t - s)) * 0.2 * s, 0, t)[0] for t in ts]
        np.testing.assert_allclose(m[int(y0 > 0)].numpy(), mq, rtol=1e-12)


def test_ou_paths_match_exact_moments() -> None:
    """Oracle 7(b): torchsde OU paths vs exact mean/variance at t = 1, 5, 10 within 4 SE."""
    times = torch.linspace(0, 10, 101, dtype=torch.float64)
    y0 = torch.tensor([-2.0, 1.5], dtype=torch.float64)
    n = 2000
    y = ou_paths(y0, n, times, generator=gen(3))
    assert y.shape == (2, n, 101)
    torch.testing.assert_close(y[:, :, 0], y0[:, None].expand(2, n))
    m, v = ou_moments(y0, times)
    for i in (10, 50, 100):
        for k in range(2):
            s = y[k, :, i]
            se_m = math.sqrt(float(v[i]) / n)
            se_v = float(v[i]) * math.sqrt(2.0 / (n - 1))
            assert abs(float(s.mean()) - float(m[k, i])) < 4 * se_m, (i, k, float(s.mean()), float(m[k, i]))
            assert abs(float(s.var()) - float(v[i])) < 4 * se_v, (i, k, float(s.var()), float(v[i]))


def test_ou_paths_deterministic_and_srk() -> None:
    """Same generator seed -> identical paths; another seed differs; srk runs and is close in mean."""
    times = torch.linspace(0, 2, 21, dtype=torch.float64)
    a = ou_paths([0.5], 50, times, generator=gen(7))
    b = ou_paths([0.5], 50, times, generator=gen(7))
    c = ou_paths([0.5], 50, times, generator=gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = ou_paths([0.5], 50, times, generator=gen(7), method="srk")
    assert d.shape == a.shape and torch.isfinite(d).all()


def test_g1d_targets() -> None:
    """Oracle: y = -x, x in [-1, 1], shapes (N, 1, 1)."""
    tb = g1d(256, generator=gen(4))
    assert tb.inputs.shape == (256, 1, 1) and tb.targets.shape == (256, 1, 1)
    assert torch.equal(tb.targets, -tb.inputs)
    assert torch.all(tb.inputs.abs() <= 1) and float(tb.inputs.std()) > 0.4


def test_leaky_rnn_vs_solve_ivp() -> None:
    """Oracle: dopri5 trajectory equals scipy solve_ivp (DOP853, rtol 1e-12) on one trajectory."""
    times = torch.linspace(0, 5, 26, dtype=torch.float64)
    tau = 0.5
    tb = leaky_rnn_trajectories(4, 10, times, tau=tau, generator=gen(5), dtype=torch.float64)
    assert tb.inputs.shape == (4, 1, 10) and tb.targets.shape == (4, 26, 10)
    W, b = tb.extra["W"].numpy(), tb.extra["b"].numpy()
    assert W.shape == (10, 10) and b.shape == (10,)
    torch.testing.assert_close(tb.targets[:, 0], tb.inputs[:, 0])

    def rhs(t: float, x: np.ndarray) -> np.ndarray:
        return (-x + W @ np.tanh(x) + b) / tau

    sol = solve_ivp(rhs, (0, 5), tb.inputs[2, 0].numpy(), method="DOP853", t_eval=times.numpy(), rtol=1e-12, atol=1e-12)
    err = np.abs(sol.y.T - tb.targets[2].numpy()).max()
    assert err < 1e-7, err
    assert float(tb.targets[2].std()) > 0.1  # not trivially decayed


def test_determinism_same_seed() -> None:
    """Same generator seed -> identical batches for every task; different seed -> different."""
    times = torch.linspace(0, 1, 5)
    for make in (
        lambda g: nested_spheres(20, generator=g).inputs,
        lambda g: sines(3, 7, irregular=True, generator=g).targets,
        lambda g: g1d(9, generator=g).inputs,
        lambda g: leaky_rnn_trajectories(2, 5, times, generator=g).targets,
    ):
        x, y, z = make(gen(11)), make(gen(11)), make(gen(12))
        assert torch.equal(x, y) and not torch.equal(x, z)


def test_no_global_rng_use() -> None:
    """Generators do not touch torch's global RNG."""
    torch.manual_seed(123)
    before = torch.get_rng_state()
    nested_spheres(10, generator=gen())
    sines(2, 4, irregular=True, generator=gen())
    g1d(3, generator=gen())
    ou_paths([0.0], 5, torch.linspace(0, 1, 3, dtype=torch.float64), generator=gen())
    leaky_rnn_trajectories(2, 3, torch.linspace(0, 1, 3), generator=gen())
    assert torch.equal(before, torch.get_rng_state())
