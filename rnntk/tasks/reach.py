"""Reaching tasks for the two-link arm: ``double-reach`` and ``single-reach`` (SOFO).

Every constant follows the upstream motor task (see the method note). Time in seconds;
event times are rounded to the nearest step (upstream truncates, e.g. 0.7 s at 2 ms → 349).

double reach, 6 input channels, T = duration/dt steps:
  go1 ~ 0.2 + U(0, 0.4) s (upstream's comment says "exponential, mean 300 ms"; its code
  draws this uniform); go2 = go1 + 0.7 s. Two targets, each central spot + r(cos φ, sin φ),
  φ ~ U(−36°, 216°), r ~ U(0.20, 0.50) m (about 13% lie beyond reach, |p| > 0.6 m: kept, and
  counted in the trial table).
  inputs: t < go1: (1, 1, t1x, t1y, t2x, t2y); go1 ≤ t < go2: (0, 1, 0, 0, 0, 0); then 0.
  targets (x, y, vx, vy): the central spot while t < go1 (weight 1); target 1 for
  go1 + 0.6 s < t ≤ go2 (weight 4); target 2 for t > go2 + 0.6 s (weight 4); weight 0
  otherwise. Velocity targets are 0.
single reach, 3 inputs: idle U(0.1, 0.5) s with input (1, central spot), preparation
  U(0.2, 0.8) s with input (1, target), then movement (input 0). Weight 1 on the central
  spot until go, 0 for 0.6 s, then 4 on the target.
Loss (upstream ``squared_loss``): L = (10/T) Σ_t (1/B) Σ_b w_tb (‖p − p*‖² + ‖ṗ‖²), i.e.
:class:`rnntk.methods.sofo.MSE` with scale 10/T on the 4 hand outputs.
"""

from __future__ import annotations


import torch

from ..nets.arm import central_spot
from .base import TrialBatch

REACH_MAX = 0.6  # m: L1 + L2


def _targets(batch: int, generator: torch.Generator | None, dtype: torch.dtype) -> torch.Tensor:
    cx, cy = central_spot()
    phi = torch.deg2rad(-36.0 + 252.0 * torch.rand(batch, generator=generator, dtype=torch.float64))
    r = 0.20 + 0.30 * torch.rand(batch, generator=generator, dtype=torch.float64)
    return torch.stack([cx + r * torch.cos(phi), cy + r * torch.sin(phi)], dim=-1).to(dtype)


def _steps(seconds: torch.Tensor, dt: float) -> torch.Tensor:
    return torch.round(seconds / dt).long()


def double_reach_trials(batch: int, *, dt: float = 0.002, duration: float = 2.0, generator: torch.Generator | None = None,
                        dtype: torch.dtype = torch.float32) -> TrialBatch:
    """Sample ``batch`` double-reach trials: inputs (B, T, 6), targets (B, T, 4), mask (B, T)."""
    T = int(round(duration / dt))
    go1_s = 0.2 + 0.4 * torch.rand(batch, generator=generator, dtype=torch.float64)
    go2_s = go1_s + 0.7
    tg1 = _targets(batch, generator, dtype)
    tg2 = _targets(batch, generator, dtype)
    g1, g2, hold = _steps(go1_s, dt), _steps(go2_s, dt), int(round(0.6 / dt))
    t = torch.arange(T)[None, :]
    prep = t < g1[:, None]
    mid = (t >= g1[:, None]) & (t < g2[:, None])
    u = torch.zeros(batch, T, 6, dtype=dtype)
    u[..., 0] = prep.to(dtype)
    u[..., 1] = (prep | mid).to(dtype)
    u[..., 2:] = prep[..., None].to(dtype) * torch.cat([tg1, tg2], -1)[:, None, :]
    ph1 = (t > (g1 + hold)[:, None]) & (t <= g2[:, None])
    ph2 = t > (g2 + hold)[:, None]
    w = prep.to(dtype) + 4.0 * ph1.to(dtype) + 4.0 * ph2.to(dtype)
    cx, cy = central_spot()
    pos = torch.tensor([cx, cy], dtype=dtype).expand(batch, T, 2).clone()
    pos = torch.where(ph1[..., None], tg1[:, None, :], pos)
    pos = torch.where(ph2[..., None], tg2[:, None, :], pos)
    targets = torch.cat([pos, torch.zeros(batch, T, 2, dtype=dtype)], -1)
    table = {
        "go1_s": go1_s, "go2_s": go2_s,
        "target1_x": tg1[:, 0], "target1_y": tg1[:, 1], "target2_x": tg2[:, 0], "target2_y": tg2[:, 1],
        "unreachable1": tg1.norm(dim=-1) > REACH_MAX, "unreachable2": tg2.norm(dim=-1) > REACH_MAX,
    }
    return TrialBatch(u, targets, w, table, dt=dt)


def single_reach_trials(batch: int, *, dt: float = 0.002, duration: float = 2.0, generator: torch.Generator | None = None,
                        dtype: torch.dtype = torch.float32) -> TrialBatch:
    """Sample ``batch`` single-reach trials: inputs (B, T, 3), targets (B, T, 4), mask (B, T)."""
    T = int(round(duration / dt))
    idle_s = 0.1 + 0.4 * torch.rand(batch, generator=generator, dtype=torch.float64)
    go_s = idle_s + 0.2 + 0.6 * torch.rand(batch, generator=generator, dtype=torch.float64)
    tg = _targets(batch, generator, dtype)
    i1, go, hold = _steps(idle_s, dt), _steps(go_s, dt), int(round(0.6 / dt))
    t = torch.arange(T)[None, :]
    idle = t < i1[:, None]
    prep = (t >= i1[:, None]) & (t < go[:, None])
    cx, cy = central_spot()
    centre = torch.tensor([cx, cy], dtype=dtype)
    u = torch.zeros(batch, T, 3, dtype=dtype)
    u[..., 0] = (idle | prep).to(dtype)
    u[..., 1:] = idle[..., None].to(dtype) * centre + prep[..., None].to(dtype) * tg[:, None, :]
    move = t > (go + hold)[:, None]
    w = (t < go[:, None]).to(dtype) + 4.0 * move.to(dtype)
    pos = torch.where(move[..., None], tg[:, None, :], centre.expand(batch, T, 2))
    targets = torch.cat([pos, torch.zeros(batch, T, 2, dtype=dtype)], -1)
    table = {"idle_s": idle_s, "go_s": go_s, "target_x": tg[:, 0], "target_y": tg[:, 1], "unreachable": tg.norm(dim=-1) > REACH_MAX}
    return TrialBatch(u, targets, w, table, dt=dt)


def loss_scale(steps: int) -> float:
    """Upstream's loss scale 10/T."""
    return 10.0 / steps

