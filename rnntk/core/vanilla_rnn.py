"""The discrete-time rate RNN of gradient flossing (Engelken 2023), with an optional leak.

    x_t = (1 − α) x_{t−1} + α (J φ(x_{t−1}) + b + W_in u_t / S)      α = 1: upstream
    z_t = w_out · x_t + c                                           (readout of the pre-activation)

x: (B, N) pre-activations ("currents"); u: (B, S) inputs; z: (B, R) logits.
Init (upstream): J = g·G/√N + ḡ/N (gaussian) or g·Q (orthogonal); W_in ~ in_scale·N(0, 1);
w_out ~ out_scale·N(0, 1); b ~ bias_scale·U[0, 1); c = 0.001; x0 ~ N(0, 1) relaxed by 100
autonomous steps, one trainable initial state per batch row.
The step Jacobian is A_t = (1 − α) I + α J diag(φ'(x_{t−1})); :meth:`tangent` applies it to a
basis Q without forming it; φ' of tanh is computed as sech²(x), which stays > 0 in float32 far
beyond where 1 − tanh² rounds to 0.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import nn


def _sech2(x: torch.Tensor) -> torch.Tensor:
    return 1.0 / torch.cosh(x.clamp(-44.0, 44.0)) ** 2


ACT = {
    "tanh": (torch.tanh, _sech2),
    "relu": (torch.relu, lambda x: (x > 0).to(x.dtype)),
    "softplus": (nn.functional.softplus, torch.sigmoid),
}


class VanillaRNN(nn.Module):
    """Discrete tanh RNN (see module doc). ``forward(u)`` with u (B, T, S) returns logits
    (B, T, R) and states (B, T, N)."""

    def __init__(
        self,
        n: int = 80,
        n_in: int = 1,
        n_out: int = 1,
        *,
        batch: int = 16,
        g: float = 1.0,
        gbar: float = 0.0,
        init: str = "gaussian",
        alpha: float = 1.0,
        bias_scale: float = 0.1,
        in_scale: float = 1.0,
        out_scale: float = 1.0,
        activation: str = "tanh",
        relax_steps: int = 100,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        if init not in ("gaussian", "orthogonal"):
            raise ValueError("init must be gaussian or orthogonal")
        if activation not in ACT:
            raise ValueError(f"activation must be one of {sorted(ACT)}")
        self.n, self.n_in, self.n_out, self.batch = int(n), int(n_in), int(n_out), int(batch)
        self.g, self.gbar, self.init, self.alpha = float(g), float(gbar), init, float(alpha)
        self.bias_scale, self.in_scale, self.out_scale, self.activation = float(bias_scale), float(in_scale), float(out_scale), activation
        self.relax_steps = int(relax_steps)
        gen = generator
        if init == "gaussian":
            J = g * torch.randn(n, n, generator=gen) / math.sqrt(n) + gbar / n
        else:
            Q, R = torch.linalg.qr(torch.randn(n, n, generator=gen))
            J = g * Q * torch.sign(torch.diagonal(R))
        self.J = nn.Parameter(J)
        self.W_in = nn.Parameter(in_scale * torch.randn(n, n_in, generator=gen))
        self.b = nn.Parameter(bias_scale * torch.rand(n, generator=gen))
        self.w_out = nn.Parameter(out_scale * torch.randn(n_out, n, generator=gen))
        self.c = nn.Parameter(torch.full((n_out,), 0.001))
        x0 = torch.randn(batch, n, generator=gen)
        with torch.no_grad():
            for _ in range(relax_steps):
                x0 = self.step(x0, None)
        self.x0 = nn.Parameter(x0)

    def hparams(self) -> dict[str, Any]:
        return dict(
            n=self.n,
            n_in=self.n_in,
            n_out=self.n_out,
            batch=self.batch,
            g=self.g,
            gbar=self.gbar,
            init=self.init,
            alpha=self.alpha,
            bias_scale=self.bias_scale,
            in_scale=self.in_scale,
            out_scale=self.out_scale,
            activation=self.activation,
            relax_steps=self.relax_steps,
        )

    def initial_state(self, batch: int) -> torch.Tensor:
        """The trainable initial states, cycled if more trials than rows are asked for."""
        if batch <= self.x0.shape[0]:
            return self.x0[:batch]
        reps = math.ceil(batch / self.x0.shape[0])
        return self.x0.repeat(reps, 1)[:batch]

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        """x (B, N), u (B, S) or None → next state (B, N)."""
        phi = ACT[self.activation][0]
        drive = phi(x) @ self.J.T + self.b
        if u is not None:
            drive = drive + u @ self.W_in.T / self.n_in
        return (1 - self.alpha) * x + self.alpha * drive if self.alpha != 1.0 else drive

    def tangent(self, x: torch.Tensor, Q: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """A_t Q = (1 − α) Q + α J (φ'(x)[:, None] ⊙ Q), x (B, N) the previous state, Q (B, N, k)."""
        dphi = ACT[self.activation][1](x)
        JQ = self.J @ (dphi[..., :, None] * Q)
        return (1 - self.alpha) * Q + self.alpha * JQ if self.alpha != 1.0 else JQ

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w_out.T + self.c

    def forward(self, u: torch.Tensor, x0: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.initial_state(u.shape[0]) if x0 is None else x0
        xs = []
        for t in range(u.shape[1]):
            x = self.step(x, u[:, t])
            xs.append(x)
        states = torch.stack(xs, 1)
        return self.readout(states), states
