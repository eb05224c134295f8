"""The leaky-ReLU RNN of SOFO's adaptive Kalman filtering task.

Input per step u_t = (y_t, 1, first_t), where y_t is the observation and first_t = 1 only at
t = 0. With pre_t = relu(z_{t−1} C + [y_t, 1] B):

    z_0 = pre_0                       (first step: z = relu([y, 1] B))
    z_t = (1 − α) z_{t−1} + α pre_t   (α = 0.25)
    x̂_t = z_t O                       (read-out, (B, 1))

Init (upstream): C (n, n) std 1/√n; B (2, n) std 1/√2; O = B[0]ᵀ/‖B[0]‖² (about "repeat the
observation").
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import nn

Params = dict[str, torch.Tensor]


class KalmanRNN(nn.Module):
    """Leaky ReLU RNN (functional ``step``/``tangent_step`` over an explicit params dict)."""

    def __init__(self, n: int = 100, alpha: float = 0.25, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.n, self.alpha = int(n), float(alpha)
        self.C = nn.Parameter(torch.randn(n, n, generator=generator) / math.sqrt(n))
        B = torch.randn(2, n, generator=generator) / math.sqrt(2)
        self.B = nn.Parameter(B)
        self.O = nn.Parameter((B[0] / B[0].pow(2).sum())[:, None].clone())

    def hparams(self) -> dict[str, Any]:
        return dict(n=self.n, alpha=self.alpha)

    def params(self) -> Params:
        return {k: v.detach() for k, v in self.named_parameters()}

    def initial_state(self, p: Params, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.n, dtype=p["C"].dtype, device=p["C"].device)

    def step(self, p: Params, z: torch.Tensor, u: torch.Tensor, noise: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        first = u[:, 2:3]
        pre = torch.relu(z @ p["C"] + u[:, :2] @ p["B"])
        z1 = first * pre + (1 - first) * ((1 - self.alpha) * z + self.alpha * pre)
        return z1, z1 @ p["O"]

    def tangent_step(
        self, p: Params, z: torch.Tensor, dz: torch.Tensor, V: Params, u: torch.Tensor, noise: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hand-written K-batched tangents of :meth:`step` (dz: (K, B, n))."""
        first = u[:, 2:3]
        arg = z @ p["C"] + u[:, :2] @ p["B"]
        gate = (arg > 0).to(z.dtype)
        pre = gate * arg
        darg = dz @ p["C"] + torch.einsum("bi,kij->kbj", z, V["C"]) + torch.einsum("bi,kij->kbj", u[:, :2], V["B"])
        dpre = gate * darg
        z1 = first * pre + (1 - first) * ((1 - self.alpha) * z + self.alpha * pre)
        dz1 = first * dpre + (1 - first) * ((1 - self.alpha) * dz + self.alpha * dpre)
        return z1, z1 @ p["O"], dz1, dz1 @ p["O"] + torch.einsum("bi,kij->kbj", z1, V["O"])

    def rollout(self, p: Params, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u (B, T, 3) → estimates x̂ (B, T, 1) and states z (B, T, n) (differentiable)."""
        z = self.initial_state(p, u.shape[0])
        xs, zs = [], []
        for t in range(u.shape[1]):
            z, x = self.step(p, z, u[:, t])
            xs.append(x)
            zs.append(z)
        return torch.stack(xs, 1), torch.stack(zs, 1)
