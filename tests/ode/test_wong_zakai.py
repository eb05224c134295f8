"""Wong–Zakai / KL-noise SDE path (spec §2, oracle 7(a)); float64 throughout."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchdiffeq import odeint

from rnntk.ode.gq_adjoint import odeint_adjoint_gq
from rnntk.ode.wong_zakai import KLNoise, WongZakaiSDE, kl_variance_fraction, sdeint_baseline

DT = torch.float64
MU, SIGMA, T, NCOS = 0.3, 0.5, 1.0, 10


class _Lin(nn.Module):
    """x ↦ a·x with a learnable scalar a (GBM drift μx or diffusion σx)."""

    def __init__(self, a: float):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=DT))

    def forward(self, t, x):
        return self.a * x


class _MLP(nn.Module):
    def __init__(self, d: int, h: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(torch.randn(d + 1, h, generator=g, dtype=DT) / math.sqrt(d + 1))
        self.b1 = nn.Parameter(0.1 * torch.randn(h, generator=g, dtype=DT))
        self.w2 = nn.Parameter(torch.randn(h, d, generator=g, dtype=DT) / math.sqrt(h))

    def forward(self, t, x):
        tt = torch.as_tensor(t, dtype=DT).expand(*x.shape[:-1], 1)
        return torch.tanh(torch.cat([x, tt], -1) @ self.w1 + self.b1) @ self.w2


def _mean_var_check(sample: torch.Tensor, mean: float, var: float, nse: float = 4.0):
    m, v, n = sample.mean().item(), sample.var().item(), sample.numel()
    se_m, se_v = math.sqrt(var / n), var * math.sqrt(2.0 / (n - 1))
    assert abs(m - mean) < nse * se_m, (m, mean, se_m)
    assert abs(v - var) < nse * se_v, (v, var, se_v)
    return m, v


def test_kl_variance_and_derivative():
    """KL series: Var W_N(t1) = (2c/π²) Σ (n−½)^{-2} (98.0 % of c at N=10); Ẇ_N = d/dt W_N."""
    t0, t1 = 0.5, 2.5
    c = t1 - t0
    assert kl_variance_fraction(10) == pytest.approx(0.9797, abs=5e-4)
    assert kl_variance_fraction(1) == pytest.approx(0.8106, abs=5e-4)
    noise = KLNoise(10, t0, t1, generator=0)
    noise.resample((20000,), dtype=DT)
    assert noise.xi.shape == (10, 20000)
    _mean_var_check(noise.value(t1), 0.0, c * kl_variance_fraction(10))
    assert noise.value(t0).abs().max().item() == 0.0
    # Var W_N(t) at an interior time: Σ 2c sin²(ω_n s)/(ω_n c)²
    s = 0.7
    om = [(n - 0.5) * math.pi / c for n in range(1, 11)]
    v_mid = sum(2 * c * math.sin(w * s) ** 2 / (w * c) ** 2 for w in om)
    _mean_var_check(noise.value(t0 + s), 0.0, v_mid)
    # derivative by central differences
    h = 1e-5
    for tt in (t0 + 0.1, 1.3, t1 - 0.2):
        fd = (noise.value(tt + h) - noise.value(tt - h)) / (2 * h)
        assert torch.allclose(noise.derivative(tt), fd, rtol=1e-7, atol=1e-6)
    # einsum over a multi-dim state shape
    noise.resample((3, 4))
    assert noise.derivative(torch.tensor(1.0, dtype=DT)).shape == (3, 4)
    assert "xi" not in noise.state_dict()


def test_gbm_kl_ode_oracle_7a():
    """Oracle 7(a): Stratonovich GBM dx/dt = μx + σx Ẇ_N, 4000 draws batched as state, dopri5.
    E log x(T) = μT, Var log x(T) = σ²(2T/π²)Σ(n−½)^{-2} = 0.2449; pathwise log x(T) = μT + σW_N(T)."""
    M = 4000
    sde = WongZakaiSDE(_Lin(MU), _Lin(SIGMA), KLNoise(NCOS, 0.0, T, generator=7))
    sde.resample((M,), dtype=DT)
    x0 = torch.ones(M, dtype=DT)
    with torch.no_grad():
        xT = odeint(sde, x0, torch.tensor([0.0, T], dtype=DT), method="dopri5", rtol=1e-8, atol=1e-10)[-1]
        logx = xT.log()
        exact_path = MU * T + SIGMA * sde.noise.value(T)
    assert torch.allclose(logx, exact_path, atol=1e-5)
    var = SIGMA ** 2 * T * kl_variance_fraction(NCOS)
    assert var == pytest.approx(0.2449, abs=1e-4)
    m, v = _mean_var_check(logx, MU * T, var)
    print(f"7(a) KL-ODE: mean {m:.4f} (0.3), var {v:.4f} ({var:.4f})")


def test_transfer_to_torchsde_stratonovich_vs_ito():
    """Same drift/diffusion modules in real torchsde: Stratonovich mean μT, Itô shifted by −σ²T/2."""
    M = 4000
    sde = WongZakaiSDE(_Lin(MU), _Lin(SIGMA), KLNoise(NCOS, 0.0, T, generator=1))
    strat = sde.to_sde()
    assert strat.drift is sde.drift and strat.diffusion is sde.diffusion
    assert (strat.sde_type, strat.noise_type) == ("stratonovich", "diagonal")
    y0 = torch.ones(M, 1, dtype=DT)
    ts = torch.tensor([0.0, T], dtype=DT)
    var = SIGMA ** 2 * T
    with torch.no_grad():
        ys = sdeint_baseline(sde, y0, ts, method="reversible_heun", dt=0.01, seed=3)
        assert ys.shape == (2, M, 1)
        ms, _ = _mean_var_check(ys[-1].log(), MU * T, var)
        ys2 = sdeint_baseline(sde, y0, ts, method="reversible_heun", dt=0.01, seed=3)
        assert torch.equal(ys, ys2)
        # same Brownian path (seed), same f and g, declared Itô: E log x(T) = (μ − σ²/2)T
        yi = sdeint_baseline(sde.to_sde("ito"), y0, ts, method="euler", dt=0.01, seed=3)
        mi, _ = _mean_var_check(yi[-1].log(), (MU - SIGMA ** 2 / 2) * T, var)
    shift = (ys[-1].log() - yi[-1].log()).mean().item()  # pathwise, so far tighter than the means
    assert shift == pytest.approx(SIGMA ** 2 * T / 2, abs=5e-3)
    print(f"transfer: stratonovich mean {ms:.4f} (0.300), ito mean {mi:.4f} (0.175), shift {shift:.4f}")


def test_sdeint_adjoint_baseline_runs():
    """sdeint_adjoint baseline (adjoint_reversible_heun) gives parameter gradients."""
    sde = WongZakaiSDE(_Lin(MU), _Lin(SIGMA), KLNoise(NCOS, 0.0, T, generator=1))
    y0 = torch.ones(64, 1, dtype=DT)
    ts = torch.tensor([0.0, T], dtype=DT)
    ys = sdeint_baseline(sde, y0, ts, dt=0.05, seed=5, adjoint=True)
    ys[-1].sum().backward()
    assert sde.drift.a.grad is not None and torch.isfinite(sde.drift.a.grad)
    ref = sdeint_baseline(sde, y0, ts, dt=0.05, seed=5).detach()
    assert torch.allclose(ys.detach(), ref, rtol=1e-10, atol=1e-12)


def test_gq_adjoint_gradients_match_direct():
    """GQ adjoint through the KL-noise ODE (small MLP f, g; fixed ξ) vs backprop through odeint."""
    B, d = 4, 3
    sde = WongZakaiSDE(_MLP(d, 16, 0), _MLP(d, 16, 1), KLNoise(5, 0.0, 1.0, generator=11))
    sde.resample((B, d), dtype=DT)
    y0 = torch.randn(B, d, generator=torch.Generator().manual_seed(2), dtype=DT)
    t = torch.linspace(0.0, 1.0, 4, dtype=DT)
    cot = torch.randn(len(t), B, d, generator=torch.Generator().manual_seed(3), dtype=DT)
    params = tuple(sde.parameters())

    def grads(solve):
        y = y0.clone().requires_grad_(True)
        ys = solve(y)
        return torch.autograd.grad((ys * cot).sum(), (y, *params))

    ref = grads(lambda y: odeint(sde, y, t, rtol=1e-12, atol=1e-12, method="dopri5"))
    gq = grads(lambda y: odeint_adjoint_gq(sde, y, t, rtol=1e-10, atol=1e-11, method="dopri5",
                                           gtol=1.0, adjoint_params=params))
    errs = [((a - b).norm() / b.norm()).item() for a, b in zip(gq, ref)]
    assert max(errs) <= 1e-5, errs
    print(f"GQ vs direct max rel err {max(errs):.2e}")


def test_determinism_and_global_rng_untouched():
    """Same generator seed → same ξ; torch's global RNG state is never touched."""
    state = torch.get_rng_state()
    a = KLNoise(10, 0.0, 1.0, generator=torch.Generator().manual_seed(42))
    b = KLNoise(10, 0.0, 1.0, generator=42)
    xa, xb = a.resample((5, 2)).clone(), b.resample((5, 2)).clone()
    assert a.seed == b.seed == 42
    assert torch.equal(xa, xb)
    assert not torch.equal(a.resample((5, 2)), xa)  # a fresh draw each resample
    c = KLNoise(10, 0.0, 1.0)  # no generator: own nondeterministic one, still not the global RNG
    c.resample((3,))
    sde = WongZakaiSDE(_Lin(MU), _Lin(SIGMA), KLNoise(3, 0.0, 1.0, generator=0))
    sde.resample((8,), dtype=DT)
    sde(torch.tensor(0.3, dtype=DT), torch.ones(8, dtype=DT))
    assert torch.equal(torch.get_rng_state(), state)


def test_contract_errors():
    with pytest.raises(ValueError, match="n_cos"):
        KLNoise(0)
    with pytest.raises(ValueError, match="t0"):
        KLNoise(3, 1.0, 1.0)
    with pytest.raises(RuntimeError, match="resample"):
        KLNoise(3).derivative(0.5)
    with pytest.raises(ValueError, match="sde_type"):
        WongZakaiSDE(_Lin(1.0), _Lin(1.0), KLNoise(3, generator=0)).to_sde("ita")
