"""Adaptive Kalman task generator and NumPy KF baselines (SOFO spec §3.2, oracle O11).

Independent oracles: an exact DP for the switch-count law, the stationary law N(b, 1) and the
one-step dynamics residual, dense Gaussian conditioning for the filter, and the discrete Riccati
equation (scipy) for the steady-state posterior variance.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from rnntk.core.trials import TrialBatch
from rnntk.sofo.tasks.kalman import kalman_filter_estimates, kalman_filter_mse, kalman_trials, scalar_kalman_filter, sigma_eps_of

B_BIG, T = 4000, 500


@pytest.fixture(scope="module")
def big() -> TrialBatch:
    return kalman_trials(B_BIG, T, generator=torch.Generator().manual_seed(1234))


def _np(batch: TrialBatch) -> dict[str, np.ndarray]:
    d = {k: v.numpy().astype(np.float64) for k, v in batch.extra.items() if k != "switch"}
    d.update(x=batch.targets[..., 0].double().numpy(), y=batch.inputs[..., 0].double().numpy(), switch=batch.extra["switch"].numpy())
    return d


def switch_count_law(steps: int, min_dwell: int, p: float) -> np.ndarray:
    """Exact P(n_switches = k) by dynamic programming over (context age capped at min_dwell, count)."""
    P = np.zeros((min_dwell + 1, steps // (min_dwell + 1) + 2))
    P[0, 0] = 1.0  # the unstored initial stationary draw: age 0
    for _ in range(steps):
        N = np.zeros_like(P)
        N[1:] += P[:-1]  # too young: keep, age + 1
        N[min_dwell] += P[min_dwell] * (1 - p)  # eligible, kept
        N[0, 1:] += P[min_dwell, :-1] * p  # switch: age 0, count + 1
        P = N
    return P.sum(axis=0)


# --- generator -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_dtypes(dtype):
    tb = kalman_trials(3, 17, generator=torch.Generator().manual_seed(0), dtype=dtype)
    assert tb.inputs.shape == (3, 17, 1) and tb.targets.shape == (3, 17, 1) and tb.mask.shape == (3, 17)
    assert tb.inputs.dtype == tb.targets.dtype == tb.mask.dtype == dtype
    assert torch.all(tb.mask == 1) and tb.dt is None and tb.batch == 3 and tb.steps == 17
    for k in ("tau", "b", "beta"):
        assert tb.extra[k].shape == (3, 17) and tb.extra[k].dtype == dtype
    assert tb.extra["switch"].shape == (3, 17) and tb.extra["switch"].dtype == torch.bool
    assert tb.table["n_switches"].shape == (3,) and tb.table["first_switch"].shape == (3,)


def test_same_seed_same_batch_different_seed_differs():
    def make(seed):
        return kalman_trials(8, 300, generator=torch.Generator().manual_seed(seed), min_dwell=20, switch_prob=0.05)
    a, b, c = make(7), make(7), make(8)
    for name in ("inputs", "targets", "mask"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    for k in a.extra:
        assert torch.equal(a.extra[k], b.extra[k])
    assert torch.equal(a.table["n_switches"], b.table["n_switches"])
    assert not torch.equal(a.inputs, c.inputs) and not torch.equal(a.extra["tau"], c.extra["tau"])


def test_switch_timing_exact_with_certain_switch():
    # initial draw at age 0 (unstored); stored t=0..2 are ages 1..3; switch at t=3, then every 4 steps
    tb = kalman_trials(5, 16, generator=torch.Generator().manual_seed(0), min_dwell=3, switch_prob=1.0)
    expect = torch.zeros(16, dtype=torch.bool)
    expect[[3, 7, 11, 15]] = True
    assert torch.equal(tb.extra["switch"], expect.expand(5, 16))
    assert torch.equal(tb.table["n_switches"], torch.full((5,), 4))
    assert torch.equal(tb.table["first_switch"], torch.full((5,), 3))
    none = kalman_trials(5, 16, generator=torch.Generator().manual_seed(0), min_dwell=3, switch_prob=0.0)
    assert not none.extra["switch"].any() and torch.equal(none.table["first_switch"], torch.full((5,), -1))


def test_context_constant_between_switches_and_in_bounds(big):
    d = _np(big)
    sw = d["switch"]
    assert not sw[:, 0].any()
    for k, (lo, hi) in {"tau": (1, 10), "b": (-3, 3), "beta": (0.1, 3)}.items():
        v = d[k]
        assert v.min() >= lo and v.max() <= hi
        changed = v[:, 1:] != v[:, :-1]
        assert np.array_equal(changed, sw[:, 1:])  # changes exactly at switches (a.s.)


def test_min_dwell_and_switch_count(big):
    sw = big.extra["switch"].numpy()
    b_idx, t_idx = np.nonzero(sw)
    # first switch no earlier than min_dwell; later ones at least min_dwell + 1 apart
    first = big.table["first_switch"].numpy()
    assert np.all((first == -1) | (first >= 100))
    same = b_idx[1:] == b_idx[:-1]
    assert np.all(np.diff(t_idx)[same] >= 101)
    assert np.array_equal(big.table["n_switches"].numpy(), sw.sum(1))

    law = switch_count_law(T, 100, 0.01)
    k = np.arange(law.size)
    mean, var = (law * k).sum(), (law * k**2).sum() - (law * k).sum() ** 2
    assert abs(mean - 2.126) < 1e-3  # spec: ~2.1 switches per trial at T = 500
    emp = big.table["n_switches"].double()
    assert abs(emp.mean().item() - mean) < 4 * np.sqrt(var / B_BIG)
    # the whole law: each count's frequency within 4 binomial SEs
    freq = np.bincount(emp.long().numpy(), minlength=law.size)[: law.size] / B_BIG
    assert np.all(np.abs(freq - law) < 4 * np.sqrt(law * (1 - law) / B_BIG) + 1e-3)


def test_stationary_moments_and_dynamics(big):
    d = _np(big)
    z = d["x"] - d["b"]  # should be N(0, 1) at every step, whatever the context
    assert abs(z.mean()) < 0.02 and abs(z.var() - 1) < 0.03
    for sel in (d["tau"] < 3, d["tau"] > 7, d["b"] > 1.5, d["b"] < -1.5):
        assert abs(z[sel].mean()) < 0.04 and abs(z[sel].var() - 1) < 0.05
    slope = np.polyfit(d["b"].ravel(), d["x"].ravel(), 1)
    assert abs(slope[0] - 1) < 0.01 and abs(slope[1]) < 0.02
    # one-step residual on non-switch steps: (x_{t+1} - x_t - (b - x_t)/tau) / sigma_eps ~ N(0, 1), white
    keep = ~d["switch"][:, 1:]
    tau, b = d["tau"][:, 1:], d["b"][:, 1:]
    eps = (d["x"][:, 1:] - d["x"][:, :-1] - (b - d["x"][:, :-1]) / tau) / sigma_eps_of(tau)
    e = eps[keep]
    assert abs(e.mean()) < 0.01 and abs(e.var() - 1) < 0.01
    assert abs(np.corrcoef(eps[:, 1:][keep[:, 1:] & keep[:, :-1]], eps[:, :-1][keep[:, 1:] & keep[:, :-1]])[0, 1]) < 0.01
    # observation noise
    xi = (d["y"] - d["x"]) / d["beta"]
    assert abs(xi.mean()) < 0.01 and abs(xi.var() - 1) < 0.01
    # on a switch the new x is a fresh stationary draw, independent of the previous x
    sw = d["switch"]
    zs, zp = z[:, 1:][sw[:, 1:]], (d["x"][:, :-1] - d["b"][:, :-1])[sw[:, 1:]]
    assert abs(zs.var() - 1) < 0.1 and abs(np.corrcoef(zs, zp)[0, 1]) < 0.06


# --- baselines (spec O11) ---------------------------------------------------------------------------

def test_baselines_reproduce_o11(big):
    opt = kalman_filter_mse(big, "optimal")
    rnd = kalman_filter_mse(big, "random_params", rng=np.random.default_rng(5))
    obs = kalman_filter_mse(big, "observation")
    print(f"\nO11 at B={B_BIG}, T={T}: optimal {opt:.4f}  random_params {rnd:.4f}  observation {obs:.4f}")
    assert abs(opt - 0.49) < 0.03
    assert abs(rnd - 1.36) < 0.08
    assert abs(obs - 3.0) < 0.2
    assert abs(obs - (3**3 - 0.1**3) / (3 * 2.9)) < 0.1  # E[beta^2] = 3.103 for beta ~ U(0.1, 3)
    assert opt < rnd < obs
    est = kalman_filter_estimates(big, "optimal")
    assert est.shape == (B_BIG, T) and est.dtype == np.float64
    assert np.allclose(np.mean((est - big.targets[..., 0].double().numpy()) ** 2), opt)
    # random_params is reproducible from its rng
    r1 = kalman_filter_estimates(big, "random_params", rng=np.random.default_rng(3))
    r2 = kalman_filter_estimates(big, "random_params", rng=np.random.default_rng(3))
    assert np.array_equal(r1, r2)
    with pytest.raises(ValueError):
        kalman_filter_mse(big, "nope")  # type: ignore[arg-type]


def _fixed_context_batch(y: np.ndarray, x: np.ndarray, tau, b, beta, switch: np.ndarray) -> TrialBatch:
    Bn, Tn = y.shape
    full = lambda v: torch.as_tensor(np.broadcast_to(v, (Bn, Tn)).copy(), dtype=torch.float64)
    return TrialBatch(
        torch.as_tensor(y).unsqueeze(-1), torch.as_tensor(x).unsqueeze(-1), torch.ones(Bn, Tn, dtype=torch.float64),
        extra={"tau": full(tau), "b": full(b), "beta": full(beta), "switch": torch.as_tensor(switch)},
    )


def test_filter_equals_dense_gaussian_conditioning():
    """x_hat_t = E[x_t | y_0..y_t] and P_t = Var[x_t | y_0..y_t], computed by brute force, with one switch."""
    rng = np.random.default_rng(0)
    Tn, s = 14, 6  # context 1 on [0, s), context 2 on [s, Tn)
    ctx = [(4.0, 1.2, 1.5), (2.5, -2.0, 0.4)]
    tau, b, beta = (np.array([ctx[t >= s][i] for t in range(Tn)]) for i in range(3))
    # stationary AR(1) covariances within each context, independent across the switch
    a = 1 - 1 / tau
    Cx = np.zeros((Tn, Tn))
    for i in range(Tn):
        for j in range(Tn):
            if (i >= s) == (j >= s):
                Cx[i, j] = a[i] ** abs(i - j)
    Cy = Cx + np.diag(beta**2)
    y = rng.multivariate_normal(b, Cy, size=3)
    switch = np.zeros((3, Tn), dtype=bool)
    switch[:, s] = True
    m, P = scalar_kalman_filter(y, np.broadcast_to(a, y.shape), np.broadcast_to(b / tau, y.shape),
                                np.broadcast_to(sigma_eps_of(tau) ** 2, y.shape), np.broadcast_to(beta**2, y.shape),
                                np.broadcast_to(b, y.shape), switch)
    for t in range(Tn):
        K = np.linalg.solve(Cy[: t + 1, : t + 1], Cx[t, : t + 1])
        assert np.allclose(m[:, t], b[t] + (y[:, : t + 1] - b[: t + 1]) @ K, atol=1e-10)
        assert np.allclose(P[:, t], Cx[t, t] - Cx[t, : t + 1] @ K, atol=1e-10)
    tb = _fixed_context_batch(y, y, tau, b, beta, switch)
    assert np.allclose(kalman_filter_estimates(tb, "optimal"), m)


def test_steady_state_matches_riccati_and_empirical_mse():
    tau, b, beta = 4.0, 1.0, 1.5
    a, q, r = 1 - 1 / tau, sigma_eps_of(tau) ** 2, beta**2
    P_pred = scipy.linalg.solve_discrete_are(np.array([[a]]), np.array([[1.0]]), np.array([[q]]), np.array([[r]]))[0, 0]
    c = r * (1 - a**2) - q  # closed form of P = a^2 P r / (P + r) + q
    assert np.isclose(P_pred, (-c + np.sqrt(c**2 + 4 * q * r)) / 2, rtol=1e-10)
    P_post = P_pred * r / (P_pred + r)

    # independent simulation of the fixed context (no switches)
    rng = np.random.default_rng(1)
    Bn, Tn = 200, 2000
    x = np.empty((Bn, Tn))
    xt = b + rng.standard_normal(Bn)
    for t in range(Tn):
        xt = xt + (b - xt) / tau + np.sqrt(q) * rng.standard_normal(Bn)
        x[:, t] = xt
    y = x + beta * rng.standard_normal((Bn, Tn))
    tb = _fixed_context_batch(y, x, tau, b, beta, np.zeros((Bn, Tn), dtype=bool))
    full = lambda v: np.full((Bn, Tn), v)
    _, P = scalar_kalman_filter(y, full(a), full(b / tau), full(q), full(r), full(b), np.zeros((Bn, Tn), bool))
    assert np.allclose(P[:, -1], P_post, rtol=1e-12)
    est = kalman_filter_estimates(tb, "optimal")
    mse = np.mean((est[:, 50:] - x[:, 50:]) ** 2)
    assert abs(mse / P_post - 1) < 0.03, (mse, P_post)


def test_generator_fixed_context_mse_matches_per_trial_riccati():
    """On generator data with no switches, the optimal MSE equals the mean per-trial Riccati posterior variance."""
    tb = kalman_trials(1000, 400, generator=torch.Generator().manual_seed(9), dtype=torch.float64, min_dwell=10**6)
    assert not tb.extra["switch"].any()
    tau, beta = tb.extra["tau"][:, 0].numpy(), tb.extra["beta"][:, 0].numpy()
    a, q, r = 1 - 1 / tau, sigma_eps_of(tau) ** 2, beta**2
    c = r * (1 - a**2) - q
    P_pred = (-c + np.sqrt(c**2 + 4 * q * r)) / 2
    P_post = P_pred * r / (P_pred + r)
    est = kalman_filter_estimates(tb, "optimal")
    mse = np.mean((est[:, 100:] - tb.targets[:, 100:, 0].numpy()) ** 2)
    assert abs(mse / P_post.mean() - 1) < 0.03, (mse, P_post.mean())
