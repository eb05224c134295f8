"""GQ adjoint on torchdiffeq's own gradient-test problems (spec §5.4), float64.

Oracle: direct backpropagation through ``torchdiffeq.odeint`` (dopri5, rtol = atol = 1e-12),
i.e. autograd through the whole computation. The problems are torchdiffeq's test shapes,
written here from their equations: "constant" (dy/dt = a + (y − (a t + b))⁵ with the exact
solution y = a t + b), "sine" (dy/dt = 2y/t + t⁴ sin 2t − t² + 4t³) and "linear" (dy/dt = A y,
10-D), on t = linspace(1, 8, 10) with random cotangents; and the cubic oscillator
dy/dt = y³ A of torchdiffeq's README.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from rnntk.ode.gq_adjoint import odeint_adjoint_gq

DT = torch.float64


class Constant(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.2, dtype=DT))
        self.b = nn.Parameter(torch.tensor(3.0, dtype=DT))

    def forward(self, t, y):
        return self.a + (y - (self.a * t + self.b)) ** 5

    def y0(self, t0):
        return (self.a * t0 + self.b).detach().reshape(1)


class Sine(nn.Module):
    def forward(self, t, y):
        return 2 * y / t + t**4 * torch.sin(2 * t) - t**2 + 4 * t**3

    def y0(self, t0):
        t = t0
        y = (-0.5 * t**4 * torch.cos(2 * t) + 0.5 * t**3 * torch.sin(2 * t) + 0.25 * t**2 * torch.cos(2 * t)
             - t**3 + 2 * t**4 + (math.pi - 0.25) * t**2)
        return y.detach().reshape(1)


class Linear(nn.Module):
    def __init__(self, dim: int = 10) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        U = torch.randn(dim, dim, generator=g, dtype=DT) * 0.1
        self.A = nn.Parameter(2 * U - (U + U.T))

    def forward(self, t, y):
        return self.A @ y

    def y0(self, t0):
        return torch.ones(self.A.shape[0], dtype=DT)


PROBLEMS = {"constant": Constant, "sine": Sine, "linear": Linear}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _grads(func: nn.Module, y0: torch.Tensor, t: torch.Tensor, c: torch.Tensor, solve):
    y0 = y0.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    y = solve(func, y0, t)
    params = list(func.parameters())
    g = torch.autograd.grad((y * c).sum(), [y0, t, *params], allow_unused=True)
    return [torch.zeros_like(p) if v is None else v for p, v in zip([y0, t, *params], g)]


def _flat(gs) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in gs]) if gs else torch.zeros(1, dtype=DT)


@pytest.fixture(scope="module")
def references():
    out = {}
    for name, cls in PROBLEMS.items():
        func = cls()
        t = torch.linspace(1.0, 8.0, 10, dtype=DT)
        y0 = func.y0(t[0])
        c = torch.randn(len(t), *y0.shape, generator=torch.Generator().manual_seed(1), dtype=DT)
        ref = _grads(func, y0, t, c, lambda f, y, tt: odeint(f, y, tt, rtol=1e-12, atol=1e-12, method="dopri5"))
        out[name] = (func, y0, t, c, ref)
    return out


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("method,rtol,options", [("dopri5", 1e-9, None), ("dopri8", 1e-9, None),
                                                 ("bosh3", 1e-6, None), ("adaptive_heun", 1e-4, None),
                                                 ("rk4", None, {"step_size": 0.01})])
def test_gradients_match_direct_backprop(references, problem, method, rtol, options):
    """y0, t and θ gradients of GQ (gtol 0.2; rtol 1e-9 and atol 1e-12 for the higher-order
    solvers, looser for bosh3 / adaptive_heun, whose step counts explode at 1e-9) against the
    float64 direct oracle: y0 and t to 1e-5, θ to 5e-3 (spec §5.4), or, where the solver's own
    error is larger (low-order solvers), in the band of the peers at the same settings: within
    10× the worst of direct backprop and torchdiffeq's odeint_adjoint (full and seminorm) through
    the same solver. (torchdiffeq 0.2.5 has no tsit5 solver.)"""
    func, y0, t, c, ref = references[problem]
    kw = dict(rtol=rtol, atol=1e-12) if rtol is not None else {}
    g = _grads(func, y0, t, c, lambda f, y, tt: odeint_adjoint_gq(f, y, tt, gtol=0.2, method=method,
                                                                 options=options, **kw))
    peers = [_grads(func, y0, t, c, lambda f, y, tt: odeint(f, y, tt, method=method, options=options, **kw))]
    if rtol is not None and rtol > 1e-9:
        for norm in (None, {"norm": "seminorm"}):
            peers.append(_grads(func, y0, t, c, lambda f, y, tt: odeint_adjoint(
                f, y, tt, method=method, options=options, adjoint_options=norm,
                adjoint_params=tuple(f.parameters()), **kw)))
    for i, name in ((0, "y0"), (1, "t")):
        err, err_p = _rel(g[i], ref[i]), max(_rel(p[i], ref[i]) for p in peers)
        assert err <= max(1e-5, 10 * err_p), (name, err, err_p)
    if len(ref) > 2:  # all parameters as one vector (constant: dL/db is ~0 on the exact solution)
        err, err_p = _rel(_flat(g[2:]), _flat(ref[2:])), max(_rel(_flat(p[2:]), _flat(ref[2:])) for p in peers)
        assert err <= max(5e-3, 10 * err_p), ("theta", err, err_p)


class Cubic(nn.Module):
    """dy/dt = y³ A (torchdiffeq's README example) with a submodule that f never uses."""

    def __init__(self) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=DT))
        self.unused = nn.Linear(2, 2).to(DT)

    def forward(self, t, y):
        return (y**3) @ self.A


def test_cubic_oscillator_and_unused_submodule():
    """Oracle: direct backprop (dopri5, 1e-12). GQ at torchdiffeq's default tolerances, gtol 0.2:
    y0 to 3e-4, t to 1e-4, A to 2e-3 (spec §5.4b); an unused submodule gets exactly zero."""
    func = Cubic()
    t = torch.linspace(0.0, 25.0, 10, dtype=DT)
    y0 = torch.tensor([[2.0, 0.0]], dtype=DT)
    c = torch.randn(len(t), 1, 2, generator=torch.Generator().manual_seed(2), dtype=DT)
    ref = _grads(func, y0, t, c, lambda f, y, tt: odeint(f, y, tt, rtol=1e-12, atol=1e-12))
    g = _grads(func, y0, t, c, lambda f, y, tt: odeint_adjoint_gq(f, y, tt, gtol=0.2))
    errs = [_rel(g[0], ref[0]), _rel(g[1], ref[1]), _rel(g[2], ref[2])]
    assert errs[0] <= 3e-4 and errs[1] <= 1e-4 and errs[2] <= 2e-3, errs
    assert all(float(v.abs().max()) == 0.0 for v in g[3:]), "unused parameters must get exactly zero"
