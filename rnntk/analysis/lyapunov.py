"""Lyapunov spectra of recurrent networks by QR re-orthonormalisation (Benettin), batched over
trajectories and differentiable with autograd (the basis of gradient flossing).

For a map x_t = F(x_{t−1}, u_t) with step Jacobian A_t = ∂x_t/∂x_{t−1}, k orthonormal
directions Q (N × k) are pushed through A_t; every ``t_ons`` steps Q, R = qr(Q) and, after
``warmup`` steps, log|diag R| is accumulated. The i-th exponent is the time average
λ_i = Σ log|R_ii| / (n·dt) (per step for dt = 1, per second for dt in seconds).

A_t Q is computed by the model's ``tangent(x_prev, Q)`` when it has one (no N×N Jacobian,
no diag matrices), else by ``torch.func.jvp`` vmapped over the k columns.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch.func import jvp, vmap

StepFn = Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
TangentFn = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


@dataclass
class LyapunovResult:
    """exponents: (..., k), sorted as the QR produces them (descending for long runs);
    log_r: (n_windows, ..., k) the log|R_ii| of every accumulated QR (the running estimate
    after window j is ``log_r[:j+1].sum(0) / ((j+1)·t_ons·dt)``); steps: accumulated steps."""

    exponents: torch.Tensor
    log_r: torch.Tensor
    steps: int
    dt: float
    windows: Optional[torch.Tensor] = None  # (n_windows,) steps covered by each QR window

    def running(self) -> torch.Tensor:
        """Running estimate (n_windows, ..., k), to plot convergence."""
        w = self.windows if self.windows is not None else torch.full((self.log_r.shape[0],), self.steps / max(self.log_r.shape[0], 1))
        shape = (-1,) + (1,) * (self.log_r.dim() - 1)
        return self.log_r.cumsum(0) / (w.to(self.log_r).cumsum(0).reshape(shape) * self.dt)


def generic_tangent(step: StepFn) -> TangentFn:
    """A_t Q by forward-mode AD: one jvp per column, vmapped (never an N×N Jacobian)."""

    def tangent(x: torch.Tensor, Q: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        f = lambda s: step(s, u)
        return vmap(lambda q: jvp(f, (x,), (q,))[1], in_dims=-1, out_dims=-1)(Q)

    return tangent


def initial_basis(n: int, k: int, *, generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
    """An orthonormal N × k basis: reduced QR of a Gaussian matrix (fixed by ``generator``),
    drawn on ``generator``'s device (on ``device`` without one), returned on ``device``."""
    G = torch.randn(n, k, generator=generator, dtype=torch.float64, device=generator.device if generator is not None else device)
    Q, R = torch.linalg.qr(G)
    Q = Q * torch.sign(torch.diagonal(R))
    return Q.to(dtype=dtype, device=device)


def lyapunov_spectrum(
    model_or_step: Any,
    inputs: Optional[torch.Tensor],
    k: int,
    *,
    x0: Optional[torch.Tensor] = None,
    steps: Optional[int] = None,
    tangent: Optional[TangentFn] = None,
    warmup: int = 0,
    t_ons: int = 1,
    dt: float = 1.0,
    q0: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    clamp: Optional[float] = None,
    check: Optional[Callable[[], None]] = None,
) -> LyapunovResult:
    """The first ``k`` Lyapunov exponents along trajectories, batched.

    model_or_step: a model with ``step(x, u) -> x'`` (and optionally ``tangent(x_prev, Q, u)``
      and ``initial_state(batch)``), or a plain ``step(x, u)`` function.
    inputs: (B, T, S) driving inputs, or None for an autonomous map (then give ``steps``).
    x0: (B, N) initial states (default: the model's ``initial_state(B)``).
    q0: (N, k) or (B, N, k) initial orthonormal basis (default: :func:`initial_basis` from
      ``generator``; the same for every trajectory).
    warmup: steps during which x and Q evolve but nothing is accumulated.
    check: called at every step (e.g. a run's interrupt check, which may raise to stop).
    Gradients flow through the whole computation (states, Jacobian products, every QR).
    Returns :class:`LyapunovResult` with exponents (B, k) per trajectory.
    """
    step = getattr(model_or_step, "step", model_or_step)
    if tangent is None:
        tangent = getattr(model_or_step, "tangent", None) or generic_tangent(step)
    if inputs is not None:
        B, T = inputs.shape[0], inputs.shape[1]
    else:
        if steps is None or x0 is None:
            raise ValueError("an autonomous run needs x0 and steps")
        B, T = x0.shape[0], int(steps)
    if x0 is None:
        if not hasattr(model_or_step, "initial_state"):
            raise ValueError("give x0 (the model has no initial_state)")
        x0 = model_or_step.initial_state(B)
    assert x0 is not None and tangent is not None  # narrowing for the type checker
    N = x0.shape[-1]
    if not 1 <= k <= N:
        raise ValueError(f"need 1 <= k <= N = {N}, got k = {k}")
    if t_ons < 1:
        raise ValueError("t_ons must be >= 1")
    if T <= warmup:
        raise ValueError(f"{T} steps leave no window to accumulate after warmup={warmup}")
    dtype = x0.dtype
    if q0 is None:
        q0 = initial_basis(N, k, generator=generator, dtype=dtype, device=x0.device)
    Q = q0.expand(B, N, k) if q0.dim() == 2 else q0
    tiny = clamp if clamp is not None else (1e-30 if dtype == torch.float64 else 1e-20)
    x = x0
    diags = []
    windows = []
    n_acc = 0
    last = 0
    for t in range(T):
        if check is not None:
            check()
        u = inputs[:, t] if inputs is not None else None
        Q = tangent(x, Q, u)
        x = step(x, u)
        n = t + 1
        # QR every t_ons steps, and also at the end of warm-up and at the last step, so that
        # any t_ons accumulates exactly the steps warmup+1..T (equal to t_ons = 1 in exact
        # arithmetic: the diagonal of a product of triangular factors is the product of theirs)
        if n % t_ons == 0 or n == warmup or n == T:
            # the signs of diag R (QR is unique only up to them) change neither λ nor its
            # gradient, since only log|R_ii| enters: no sign fixing, fewer ops per step
            Q, R = torch.linalg.qr(Q)
            if n > warmup:
                diags.append(torch.diagonal(R, dim1=-2, dim2=-1))
                windows.append(n - max(last, warmup))
                n_acc += windows[-1]
            last = n
    log_r = torch.log(torch.stack(diags, 0).abs().clamp_min(tiny))  # one batched op for all windows
    return LyapunovResult(log_r.sum(0) / (n_acc * dt), log_r, n_acc, dt, torch.tensor(windows, dtype=torch.float64))


def long_term_jacobian_singular_values(
    model_or_step: Any,
    inputs: Optional[torch.Tensor],
    horizons: list[int],
    *,
    x0: torch.Tensor,
    tangent: Optional[TangentFn] = None,
    check: Optional[Callable[[], None]] = None,
) -> torch.Tensor:
    """Singular values of T_{t,0} = A_t ⋯ A_1 at each horizon t (float64, no QR), for one
    trajectory: x0 (1, N), inputs (1, T, S). Returns (len(horizons), N), descending.
    A module is copied to float64 for this (small singular values underflow in float32).
    ``check`` is called at every step (it may raise to stop)."""
    if isinstance(model_or_step, torch.nn.Module):
        model_or_step = copy.deepcopy(model_or_step).double()
    step = getattr(model_or_step, "step", model_or_step)
    if tangent is None:
        tangent = getattr(model_or_step, "tangent", None) or generic_tangent(step)
    assert tangent is not None  # narrowing for the type checker
    N = x0.shape[-1]
    P = torch.eye(N, dtype=torch.float64, device=x0.device)[None]
    x = x0.to(torch.float64)
    out = []
    wanted = sorted(set(int(h) for h in horizons))
    for t in range(max(wanted)):
        if check is not None:
            check()
        u = inputs[:, t].to(torch.float64) if inputs is not None else None
        P = tangent(x, P, u)
        x = step(x, u)
        if t + 1 in wanted:  # a product that overflowed has no SVD: NaN singular values (the caller's guard)
            finite = bool(torch.isfinite(P).all())
            out.append(torch.linalg.svdvals(P[0]) if finite else torch.full((N,), float("nan"), dtype=torch.float64, device=P.device))
    return torch.stack(out, 0)


def condition_numbers(sv: torch.Tensor, k: int) -> torch.Tensor:
    """κ_k = σ_1/σ_k from singular values (..., N)."""
    return sv[..., 0] / sv[..., k - 1].clamp_min(1e-300)


def lyapunov_time(lam1: float) -> float:
    """1/|λ_1|, in the exponents' time unit (inf for λ_1 = 0)."""
    return math.inf if lam1 == 0 else 1.0 / abs(lam1)
