"""Oracles for the SOFO Lorenz and ill-conditioned linear-regression generators (spec §3.3, §4, O11)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from rnntk.sofo.tasks.linreg import draw_teacher, ill_conditioned_regression, linreg_spectrum, population_mse
from rnntk.sofo.tasks.lorenz import _rk4_torch, lorenz_free_run_truth, lorenz_rhs, lorenz_rk4, lorenz_trials, make_lorenz_data

F64 = torch.float64
X0 = np.array([[1.0, 1.0, 1.0], [-5.0, 3.0, 20.0], [0.3, -0.2, 0.1], [-8.0, -8.0, 27.0]])


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def one_step(x: torch.Tensor, dt: float = 0.01) -> torch.Tensor:
    """One RK4 step of raw states (..., 3)."""
    return lorenz_rk4(x.reshape(-1, 3), 1, dt)[:, 1].reshape(x.shape)


# ----------------------------------------------------------------------------------------- Lorenz RK4

def _reference(t_eval: np.ndarray) -> np.ndarray:
    """solve_ivp (DOP853, rtol 1e-10) trajectories from X0 at t_eval: (n, len(t_eval), 3)."""
    f = lambda t, x: lorenz_rhs(torch.from_numpy(x)).numpy()  # noqa: E731
    return np.stack([
        solve_ivp(f, (0.0, t_eval[-1]), x, method="DOP853", rtol=1e-10, atol=1e-10, t_eval=t_eval).y.T for x in X0
    ])


def test_rk4_matches_solve_ivp_with_fourth_order_error():
    t_eval = np.linspace(0.0, 1.0, 11)
    ref = _reference(t_eval)
    errs = []
    for dt in (0.01, 0.005):
        n = int(round(1.0 / dt))
        traj = lorenz_rk4(torch.from_numpy(X0), n, dt).numpy()
        assert traj.shape == (len(X0), n + 1, 3)
        assert np.array_equal(traj[:, 0], X0)
        errs.append(np.linalg.norm(traj[:, :: n // 10] - ref, axis=-1).max(axis=1))  # max over t in [0, 1]
    # dt = 0.01: global error ~ C dt^4 with C ~ 1e5 here (measured 7e-6 .. 1e-3 for |x| ~ 20)
    assert errs[0].max() < 2e-3, errs[0]
    ratio = errs[0] / errs[1]  # O(dt^4): halving dt divides the error by ~16 (measured 15.8-16.6)
    assert np.all((ratio > 13) & (ratio < 20)), ratio


def test_rk4_numpy_and_torch_paths_agree():
    x0 = torch.from_numpy(X0)
    a = lorenz_rk4(x0, 300)
    b = _rk4_torch(x0, 300, 0.01, 10.0, 28.0, 8.0 / 3.0)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    c = lorenz_rk4(x0.clone().requires_grad_(True), 5)  # autograd -> torch path
    torch.testing.assert_close(c.detach(), a[:, :6], rtol=1e-12, atol=1e-12)
    assert lorenz_rk4(x0.float(), 10).dtype == torch.float32
    with pytest.raises(ValueError):
        lorenz_rk4(torch.zeros(3), 10)


# ----------------------------------------------------------------------------------------- Lorenz data

@pytest.fixture(scope="module")
def data():
    return make_lorenz_data(203, 33, n_runs=4, generator=gen(0))  # 51 chunks per run, last run 50


def test_lorenz_zscored(data):
    """O11: after z-scoring, every coordinate has mean 0 and std 1 over all data."""
    z = data.chunks.reshape(-1, 3)
    torch.testing.assert_close(z.mean(0), torch.zeros(3, dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(z.std(0, correction=0), torch.ones(3, dtype=F64), rtol=0, atol=1e-12)
    assert data.chunks.shape == (203, 33, 3) and data.chunk_len == 33
    torch.testing.assert_close(data.normalise(data.denormalise(data.chunks)), data.chunks)
    # the raw data is on the attractor: z spends its time around rho - 1 = 27, never near 0 (burn-in)
    raw = data.denormalise(data.chunks)
    assert 20 < data.mean[2] < 27 and raw[..., 2].min() > 1.0


def test_lorenz_chunks_are_consecutive(data):
    raw = data.denormalise(data.chunks)
    # within a chunk: each point is one RK4 step after the previous one
    torch.testing.assert_close(one_step(raw[:, :-1]), raw[:, 1:], rtol=1e-10, atol=1e-10)
    # across chunks of the same run: chunk i+1 starts one RK4 step after chunk i ends
    same = (data.run[1:] == data.run[:-1])
    assert same.sum() == 203 - 4
    assert torch.equal(data.start[1:][same], data.start[:-1][same] + 33)
    torch.testing.assert_close(one_step(raw[:-1, -1][same]), raw[1:, 0][same], rtol=1e-10, atol=1e-10)
    # different runs are independent (different first points)
    firsts = raw[data.start == 0, 0]
    assert firsts.shape == (4, 3) and torch.cdist(firsts, firsts).fill_diagonal_(1e9).min() > 1e-3


def test_lorenz_burn_in():
    """The first stored point is x0 ~ N(0, I) integrated burn_in / dt RK4 steps (upstream: no burn-in)."""
    d = make_lorenz_data(2, 5, n_runs=1, burn_in=2.0, generator=gen(3))
    x0 = torch.randn(1, 3, generator=gen(3), dtype=F64)
    torch.testing.assert_close(d.denormalise(d.chunks[0, 0]), lorenz_rk4(x0, 200)[0, -1], rtol=1e-10, atol=1e-10)
    d0 = make_lorenz_data(2, 5, n_runs=1, burn_in=0.0, generator=gen(3))
    torch.testing.assert_close(d0.denormalise(d0.chunks[0, 0]), x0[0], rtol=1e-12, atol=1e-12)


def test_lorenz_trials_final_mask(data):
    b = lorenz_trials(data, 16, generator=gen(1))
    assert b.inputs.shape == b.targets.shape == (16, 33, 3) and b.mask.shape == (16, 33) and b.dt == 0.01
    assert torch.equal(b.targets, data.chunks[b.table["chunk"]])
    assert torch.equal(b.inputs[:, 0], b.targets[:, 0]) and not b.inputs[:, 1:].any()
    # a single supervised step: index 32 (the state after 32 map applications; upstream compared with 31)
    assert torch.equal(b.mask.sum(1), torch.ones(16, dtype=b.mask.dtype))
    assert torch.equal(b.mask.argmax(1), torch.full((16,), 32))
    raw0 = data.denormalise(b.inputs[:, 0])
    torch.testing.assert_close(data.normalise(lorenz_rk4(raw0, 32)[:, -1]), b.targets[:, 32], rtol=1e-9, atol=1e-9)
    # "all": every map application t = 1..32 is scored
    a = lorenz_trials(data, 16, generator=gen(1), supervise="all")
    assert torch.equal(a.mask[:, 0], torch.zeros(16, dtype=F64)) and bool((a.mask[:, 1:] == 1).all())
    with pytest.raises(ValueError):
        lorenz_trials(data, 4, supervise="first")


def test_lorenz_target_noise(data):
    b = lorenz_trials(data, 64, generator=gen(2), supervise="all", target_noise=0.0125)
    assert torch.equal(b.extra["clean_targets"], data.chunks[b.table["chunk"]])
    noise = b.targets - b.extra["clean_targets"]
    assert 0.011 < float(noise.std()) < 0.014


def test_lorenz_determinism():
    d1 = make_lorenz_data(20, 33, n_runs=2, burn_in=1.0, generator=gen(7))
    d2 = make_lorenz_data(20, 33, n_runs=2, burn_in=1.0, generator=gen(7))
    d3 = make_lorenz_data(20, 33, n_runs=2, burn_in=1.0, generator=gen(8))
    assert torch.equal(d1.chunks, d2.chunks) and torch.equal(d1.mean, d2.mean) and torch.equal(d1.std, d2.std)
    assert not torch.equal(d1.chunks, d3.chunks)
    b1, b2 = lorenz_trials(d1, 8, generator=gen(1)), lorenz_trials(d2, 8, generator=gen(1))
    assert torch.equal(b1.inputs, b2.inputs) and torch.equal(b1.targets, b2.targets)
    f1, f2 = lorenz_free_run_truth(d1, 50, generator=gen(5)), lorenz_free_run_truth(d2, 50, generator=gen(5))
    assert torch.equal(f1, f2)


def test_lorenz_free_run_truth(data):
    tr = lorenz_free_run_truth(data, 300, generator=gen(11))
    assert tr.shape == (301, 3) and tr.dtype == F64
    raw = data.denormalise(tr)
    torch.testing.assert_close(one_step(raw[:-1]), raw[1:], rtol=1e-10, atol=1e-10)
    # held out: not a piece of the training runs, but on the same (z-scored) attractor
    assert torch.cdist(tr[:1], data.chunks.reshape(-1, 3)).min() > 1e-6
    assert tr.abs().max() < 4.0 and tr.mean(0).abs().max() < 1.0


def test_lorenz_float32(data):
    d = make_lorenz_data(10, 33, n_runs=2, burn_in=1.0, generator=gen(0), dtype=torch.float32)
    b = lorenz_trials(d, 4, generator=gen(0))
    assert d.chunks.dtype == b.inputs.dtype == b.mask.dtype == torch.float32


# -------------------------------------------------------------------------------------- linear regression

def test_linreg_shapes_and_exact_targets():
    b = ill_conditioned_regression(64, generator=gen(0))
    W = b.extra["teacher"]
    assert b.inputs.shape == (64, 1, 100) and b.targets.shape == (64, 1, 3) and b.mask.shape == (64, 1)
    assert b.dt is None and bool((b.mask == 1).all()) and b.inputs.dtype == torch.float32
    assert W.shape == (100, 3)
    assert torch.equal(b.targets[:, 0], b.inputs[:, 0] @ W)  # y = x W*, no noise
    # the teacher is drawn first from the generator; a passed teacher is reused as is
    assert torch.equal(W, draw_teacher(100, 3, generator=gen(0)))
    v = ill_conditioned_regression(32, generator=gen(1), teacher=W)
    assert torch.equal(v.extra["teacher"], W) and torch.equal(v.targets[:, 0], v.inputs[:, 0] @ W)
    with pytest.raises(ValueError):
        ill_conditioned_regression(8, teacher=torch.zeros(5, 3))


def test_linreg_input_covariance():
    n = 200_000
    b = ill_conditioned_regression(n, generator=gen(2), dtype=F64)
    s = linreg_spectrum(100, dtype=F64)
    assert torch.equal(s, b.extra["spectrum"]) and s[0] == 1 and s[1] == 0.5 and s[99] == 1 / (1 + 99**2)
    x = b.inputs[:, 0]
    C = x.T @ x / n  # zero-mean by construction
    se = torch.sqrt((torch.outer(s, s) + torch.diag(s**2)) / n)  # std of each sample-covariance entry
    z = ((C - torch.diag(s)) / se).abs()
    assert float(z.max()) < 6.0, float(z.max())
    assert float(z.mean()) < 1.0  # E|N(0,1)| = 0.80


def test_population_mse_matches_monte_carlo():
    b = ill_conditioned_regression(200_000, generator=gen(3), dtype=F64)
    Wt, s = b.extra["teacher"], b.extra["spectrum"]
    x, y = b.inputs[:, 0], b.targets[:, 0]
    W = Wt + torch.randn(100, 3, generator=gen(4), dtype=F64) * 0.5
    for M in (W, torch.zeros_like(W)):
        mc = ((x @ M - y) ** 2).mean()
        torch.testing.assert_close(mc, population_mse(M, Wt, s), rtol=0.02, atol=0)
    assert population_mse(Wt, Wt, s) == 0


def test_population_mse_of_zero_weights():
    s = linreg_spectrum(100, dtype=F64)
    # exact formula: (1/n_out) sum_ij s_i W*_ij^2; equals sum(s) * mean(W*^2) when |W*_ij| is constant
    Wt = draw_teacher(100, 3, generator=gen(5), dtype=F64)
    torch.testing.assert_close(population_mse(torch.zeros_like(Wt), Wt, s), (s[:, None] * Wt**2).sum(0).mean())
    W2 = torch.full((100, 3), 2.0, dtype=F64)
    torch.testing.assert_close(population_mse(torch.zeros_like(W2), W2, s), s.sum() * (W2**2).mean())
    # in expectation over teachers it is sum(s) ≈ 2.0666 (the spec's 1.93 is one draw)
    assert abs(float(s.sum()) - 2.0666) < 1e-3
    g = gen(6)
    draws = torch.stack([population_mse(torch.zeros(100, 3, dtype=F64), draw_teacher(100, 3, generator=g, dtype=F64), s) for _ in range(2000)])
    assert abs(float(draws.mean()) - float(s.sum())) < 0.1  # std of the mean ≈ 0.02
