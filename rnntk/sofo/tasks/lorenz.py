"""Lorenz attractor (SOFO spec §3.3; upstream ``examples/lorenz{,_common}.ml``, ``pytorch/lorenz.py``).

System (time in Lorenz time units, state unitless):
    dx/dt = sigma (y - x),  dy/dt = x (rho - z) - y,  dz/dt = x y - beta z,
with sigma = 10, rho = 28, beta = 8/3, integrated by classical RK4 at dt = 0.01.

Data: ``n_runs`` independent long runs from x0 ~ N(0, I) are simulated (batched), each cut into
consecutive, non-overlapping chunks of ``chunk_len`` points (chunk k of a run holds trajectory points
k*chunk_len .. (k+1)*chunk_len - 1, so the first point of chunk k+1 is one RK4 step after the last point
of chunk k). Every coordinate is z-scored over all stored points; the mean/std are kept.

Deviations from upstream, deliberately:
- **Burn-in.** Upstream starts recording at x0 ~ N(0, I), so the first chunks hold the transient onto
  the attractor. We first integrate ``burn_in`` time units (default 10, i.e. 1000 steps) and discard them.
- **Off-by-one.** Upstream compares the state after 32 map applications with chunk index 31. Here output
  index t is the state after t map applications, and the sparse target is chunk index ``chunk_len - 1``
  (= 32 for 33-point chunks), i.e. the true state 32 steps after the chunk's first point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from rnntk.core.trials import TrialBatch

SIGMA = 10.0
RHO = 28.0
BETA = 8.0 / 3.0

Supervise = Literal["final", "all"]


def lorenz_rhs(x: torch.Tensor, sigma: float = SIGMA, rho: float = RHO, beta: float = BETA) -> torch.Tensor:
    """Lorenz vector field. x: (..., 3) -> (..., 3), per time unit."""
    a, b, c = x.unbind(-1)
    return torch.stack((sigma * (b - a), a * (rho - c) - b, a * b - beta * c), dim=-1)


def lorenz_rk4(
    x0: torch.Tensor,
    steps: int,
    dt: float = 0.01,
    sigma: float = SIGMA,
    rho: float = RHO,
    beta: float = BETA,
) -> torch.Tensor:
    """Classical RK4, batched over initial conditions.

    x0: (B, 3) initial states; steps: number of RK4 steps; dt: step in Lorenz time units.
    Returns (B, steps + 1, 3) with index 0 equal to x0 (same dtype/device as x0). On CPU without
    autograd the time loop runs in NumPy (identical arithmetic, ~4x faster); otherwise in torch.
    """
    if x0.ndim != 2 or x0.shape[-1] != 3:
        raise ValueError(f"x0 must be (B, 3), got {tuple(x0.shape)}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if x0.device.type == "cpu" and not x0.requires_grad and x0.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(_rk4_numpy(x0.numpy(), steps, dt, sigma, rho, beta))
    return _rk4_torch(x0, steps, dt, sigma, rho, beta)


def _rk4_torch(x0: torch.Tensor, steps: int, dt: float, sigma: float, rho: float, beta: float) -> torch.Tensor:
    """RK4 with torch ops (any device, differentiable). (B, 3) -> (B, steps + 1, 3)."""
    out = torch.empty(x0.shape[0], steps + 1, 3, dtype=x0.dtype, device=x0.device)
    out[:, 0] = x0
    x, h = x0, dt
    for t in range(steps):
        k1 = lorenz_rhs(x, sigma, rho, beta)
        k2 = lorenz_rhs(x + 0.5 * h * k1, sigma, rho, beta)
        k3 = lorenz_rhs(x + 0.5 * h * k2, sigma, rho, beta)
        k4 = lorenz_rhs(x + h * k3, sigma, rho, beta)
        x = x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        out[:, t + 1] = x
    return out


def _rk4_numpy(x0: np.ndarray, steps: int, dt: float, sigma: float, rho: float, beta: float) -> np.ndarray:
    """The same RK4 in NumPy (same operation order, so the same result bit for bit in float64), about
    4x faster on CPU for the small per-step arrays of the time loop. (B, 3) -> (B, steps + 1, 3)."""
    dtype = x0.dtype.type
    sigma_, rho_, beta_, h = dtype(sigma), dtype(rho), dtype(beta), dtype(dt)
    half, sixth, two = dtype(0.5), dtype(dt / 6.0), dtype(2.0)

    def f(x: np.ndarray) -> np.ndarray:
        a, b, c = x[:, 0], x[:, 1], x[:, 2]
        return np.stack((sigma_ * (b - a), a * (rho_ - c) - b, a * b - beta_ * c), axis=-1)

    out = np.empty((x0.shape[0], steps + 1, 3), dtype=x0.dtype)
    out[:, 0] = x = x0
    for t in range(steps):
        k1 = f(x)
        k2 = f(x + half * h * k1)
        k3 = f(x + half * h * k2)
        k4 = f(x + h * k3)
        x = x + sixth * (k1 + two * k2 + two * k3 + k4)
        out[:, t + 1] = x
    return out


def _burned_in_start(n: int, dt: float, burn_in: float, generator: torch.Generator | None) -> torch.Tensor:
    """x0 ~ N(0, I) (float64, (n, 3)) integrated for ``burn_in`` time units; returns the final states."""
    if burn_in < 0:
        raise ValueError(f"burn_in must be >= 0, got {burn_in}")
    x0 = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    n_burn = int(round(burn_in / dt))
    return lorenz_rk4(x0, n_burn, dt)[:, -1] if n_burn > 0 else x0


@dataclass
class LorenzData:
    """Z-scored Lorenz chunks plus what is needed to map back and to extend.

    chunks:  (n_chunks, chunk_len, 3)  z-scored states, (raw - mean) / std
    mean:    (3,)  per-coordinate mean of the raw stored points
    std:     (3,)  per-coordinate std (population, correction=0) of the raw stored points
    run:     (n_chunks,) int64  which independent long run the chunk comes from
    start:   (n_chunks,) int64  index of the chunk's first point within its run (after burn-in)
    dt:      RK4 step (Lorenz time units)
    burn_in: discarded transient (time units)
    noisy:   (n_chunks, chunk_len, 3) or None  the chunks plus N(0, target_noise²) noise drawn once
             (a fixed noisy data set, as upstream's PyTorch ``lorenz.py``); used as training targets
    target_noise: the noise std of ``noisy`` (z-scored units), 0 without
    """

    chunks: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    run: torch.Tensor
    start: torch.Tensor
    dt: float
    burn_in: float
    noisy: torch.Tensor | None = None
    target_noise: float = 0.0

    @property
    def n_chunks(self) -> int:
        return int(self.chunks.shape[0])

    @property
    def chunk_len(self) -> int:
        return int(self.chunks.shape[1])

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Raw states (..., 3) -> z-scored."""
        return (x - self.mean.to(x)) / self.std.to(x)

    def denormalise(self, z: torch.Tensor) -> torch.Tensor:
        """Z-scored states (..., 3) (e.g. model predictions) -> raw Lorenz units."""
        return z * self.std.to(z) + self.mean.to(z)


def make_lorenz_data(
    n_chunks: int,
    chunk_len: int = 33,
    *,
    dt: float = 0.01,
    burn_in: float = 10.0,
    n_runs: int = 8,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    target_noise: float = 0.0,
) -> LorenzData:
    """Simulate ``n_runs`` burned-in long runs and cut them into ``n_chunks`` consecutive chunks.

    Each run is ceil(n_chunks / n_runs) * chunk_len points long (after ``burn_in`` time units are
    discarded; upstream has no burn-in); the chunks are taken run by run and the surplus of the last
    runs is dropped. Upstream's 8 workers correspond to ``n_runs = 8``. Simulation is in float64; the
    z-scoring statistics are computed over the kept points in float64, then everything is cast to
    ``dtype``. Draws 3 * n_runs normals from ``generator`` (the initial conditions), then, with
    ``target_noise`` > 0, the noise of ``noisy`` (z-scored chunks + N(0, target_noise²), drawn once
    per stored point, as upstream's PyTorch ``lorenz.py`` does with σ = 0.0125).
    """
    if n_chunks < 1 or chunk_len < 2 or n_runs < 1:
        raise ValueError(f"need n_chunks >= 1, chunk_len >= 2, n_runs >= 1, got {n_chunks}, {chunk_len}, {n_runs}")
    if not target_noise >= 0:
        raise ValueError(f"target_noise must be >= 0, got {target_noise}")
    n_runs = min(n_runs, n_chunks)
    per_run = math.ceil(n_chunks / n_runs)
    x_start = _burned_in_start(n_runs, dt, burn_in, generator)
    traj = lorenz_rk4(x_start, per_run * chunk_len - 1, dt)  # (R, per_run * chunk_len, 3)
    raw = traj.reshape(n_runs * per_run, chunk_len, 3)[:n_chunks]
    idx = torch.arange(n_runs * per_run)[:n_chunks]
    flat = raw.reshape(-1, 3)
    mean, std = flat.mean(0), flat.std(0, correction=0)
    z = (raw - mean) / std
    noisy = None
    if target_noise > 0:
        noisy = (z + target_noise * torch.randn(z.shape, generator=generator, dtype=torch.float64)).to(dtype)
    return LorenzData(
        chunks=z.to(dtype),
        mean=mean.to(dtype),
        std=std.to(dtype),
        run=idx // per_run,
        start=(idx % per_run) * chunk_len,
        dt=dt,
        burn_in=burn_in,
        noisy=noisy,
        target_noise=float(target_noise),
    )


def lorenz_trials(
    data: LorenzData,
    batch: int,
    *,
    generator: torch.Generator | None = None,
    supervise: Supervise = "final",
    target_noise: float = 0.0,
) -> TrialBatch:
    """Draw ``batch`` chunks uniformly at random (with replacement) as trials of T = chunk_len steps.

    Layout: output index t is the model's state after t map applications from the chunk's first point.
      inputs  (B, T, 3)  z-scored initial state at t = 0, zeros for t >= 1 (an RNN reads its initial
                          condition as a pulse; an autonomous map takes y_0 = inputs[:, 0])
      targets (B, T, 3)  the z-scored chunk (targets[:, 0] == inputs[:, 0]); the data set's fixed
                          noisy copy ``data.noisy`` when it has one (inputs stay noise-free)
      mask    (B, T)     "final": a single 1 at t = T - 1 (= 32 for 33-point chunks; upstream's 31 is
                          an off-by-one, see module doc); "all": ones for t >= 1 (every map application,
                          as in the PyTorch/JAX variants; t = 0 is the input itself and is not scored)
      table   {"chunk": (B,) int64 index into data.chunks}
      extra   {"clean_targets": (B, T, 3)} when the targets are noisy: ``data.noisy`` (noise fixed
               per stored point, as upstream) or ``target_noise`` > 0 here (fresh N(0, target_noise²)
               noise on every draw)
      dt      data.dt (Lorenz time units per step)
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if supervise not in ("final", "all"):
        raise ValueError(f"supervise must be 'final' or 'all', got {supervise!r}")
    idx = torch.randint(data.n_chunks, (batch,), generator=generator)
    chunk = data.chunks[idx]  # (B, T, 3)
    B, T, _ = chunk.shape
    inputs = torch.zeros_like(chunk)
    inputs[:, 0] = chunk[:, 0]
    mask = torch.zeros(B, T, dtype=chunk.dtype)
    if supervise == "final":
        mask[:, -1] = 1.0
    else:
        mask[:, 1:] = 1.0
    extra: dict[str, torch.Tensor] = {}
    targets = chunk
    if data.noisy is not None:
        extra["clean_targets"] = chunk
        targets = data.noisy[idx]
    if target_noise > 0:
        extra["clean_targets"] = chunk
        targets = targets + target_noise * torch.randn(chunk.shape, generator=generator, dtype=chunk.dtype)
    return TrialBatch(inputs, targets, mask, {"chunk": idx}, dt=data.dt, extra=extra)


def lorenz_free_run_truth(
    data: LorenzData,
    steps: int,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A held-out true trajectory for free-run evaluation, z-scored with ``data``'s statistics.

    A fresh initial condition x0 ~ N(0, I) is burned in for ``data.burn_in`` time units, then
    integrated ``steps`` RK4 steps of ``data.dt``. Returns (steps + 1, 3) in ``data.chunks.dtype``;
    index 0 is the initial condition to seed the free run with, index t the true state t steps later.
    """
    x_start = _burned_in_start(1, data.dt, data.burn_in, generator)
    traj = lorenz_rk4(x_start, steps, data.dt)[0]
    return data.normalise(traj.to(data.chunks.dtype))
