"""SOFO's learned map for the Lorenz attractor: y_{t+1} = y_t A + relu([y_t, 1] C) W.

y: (B, 3) z-scored state; A (3, 3) init I; C (4, h) std 1/2 (last row: bias); W (h, 3) std
0.1/√h (upstream: 400 hidden units, std 0.1/20).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import nn

Params = dict[str, torch.Tensor]


class LorenzMap(nn.Module):
    def __init__(self, hidden: int = 400, d: int = 3, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.hidden, self.d = int(hidden), int(d)
        self.A = nn.Parameter(torch.eye(d))
        self.C = nn.Parameter(torch.randn(d + 1, hidden, generator=generator) * 0.5)
        self.W = nn.Parameter(torch.randn(hidden, d, generator=generator) * 0.1 / math.sqrt(hidden))

    def hparams(self) -> dict[str, Any]:
        return dict(hidden=self.hidden, d=self.d)

    def params(self) -> Params:
        return {k: v.detach() for k, v in self.named_parameters()}

    def step(self, p: Params, y: torch.Tensor, u: Any = None, noise: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One map application; the new state is also the output."""
        h = torch.relu(y @ p["C"][:-1] + p["C"][-1])
        y1 = y @ p["A"] + h @ p["W"]
        return y1, y1

    def tangent_step(
        self, p: Params, y: torch.Tensor, dy: torch.Tensor, V: Params, u: Any = None, noise: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hand-written K-batched tangents of :meth:`step` (dy: (K, B, d))."""
        arg = y @ p["C"][:-1] + p["C"][-1]
        gate = (arg > 0).to(y.dtype)
        h = gate * arg
        dh = gate * (dy @ p["C"][:-1] + torch.einsum("bi,kij->kbj", y, V["C"][:, :-1]) + V["C"][:, -1][:, None, :])
        y1 = y @ p["A"] + h @ p["W"]
        dy1 = dy @ p["A"] + torch.einsum("bi,kij->kbj", y, V["A"]) + dh @ p["W"] + torch.einsum("bi,kij->kbj", h, V["W"])
        return y1, y1, dy1, dy1

    def rollout(self, p: Params, y0: torch.Tensor, steps: int) -> torch.Tensor:
        """(B, 3) → (B, steps + 1, 3), index t = state after t applications (differentiable)."""
        ys = [y0]
        y = y0
        for _ in range(steps):
            y, _ = self.step(p, y)
            ys.append(y)
        return torch.stack(ys, 1)
