"""A continuous-time leaky rate RNN, Euler-discretised.

    tau dx/dt = -x + W phi(x) + U u + b,     r = phi(x),     y = C r + d

so that ``x_{t+1} = x_t + (dt/tau) (-x_t + W r_t + U u_t + b)``. ``dt`` and ``tau`` in seconds.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "softplus": nn.functional.softplus}


class LeakyRNN(nn.Module):
    """Leaky rate RNN. ``forward(u)`` with ``u: (batch, time, n_in)`` returns
    ``(y: (batch, time, n_out), r: (batch, time, n_hidden))`` (outputs and rates).

    g: gain of the recurrent init, ``W ~ N(0, g^2/N)``.
    """

    def __init__(self, n_in: int, n_hidden: int, n_out: int, *, dt: float = 0.01, tau: float = 0.1, g: float = 0.9, activation: str = "tanh") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}")
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out
        self.dt, self.tau, self.g, self.activation = float(dt), float(tau), float(g), activation
        self.W = nn.Parameter(torch.randn(n_hidden, n_hidden) * g / math.sqrt(n_hidden))
        self.U = nn.Parameter(torch.randn(n_hidden, n_in) / math.sqrt(n_in))
        self.b = nn.Parameter(torch.zeros(n_hidden))
        self.C = nn.Parameter(torch.randn(n_out, n_hidden) / math.sqrt(n_hidden))
        self.d = nn.Parameter(torch.zeros(n_out))

    def hparams(self) -> dict:
        """Constructor arguments (for checkpoints)."""
        return dict(n_in=self.n_in, n_hidden=self.n_hidden, n_out=self.n_out, dt=self.dt, tau=self.tau, g=self.g, activation=self.activation)

    @property
    def n(self) -> int:
        return self.n_hidden

    def initial_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.n_hidden, dtype=self.W.dtype, device=self.W.device)

    def step(self, x: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """One Euler step of the currents x (B, N) with input u (B, n_in) or None."""
        drive = self.b if u is None else u @ self.U.T + self.b
        return x + self.dt / self.tau * (-x + ACTIVATIONS[self.activation](x) @ self.W.T + drive)

    def forward(self, u: torch.Tensor, x0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        phi = ACTIVATIONS[self.activation]
        B, T, _ = u.shape
        x = torch.zeros(B, self.n_hidden, dtype=u.dtype, device=u.device) if x0 is None else x0
        alpha = self.dt / self.tau
        drive = u @ self.U.T + self.b  # (B, T, N), all input terms at once
        rates = []
        for t in range(T):
            r = phi(x)
            x = x + alpha * (-x + r @ self.W.T + drive[:, t])
            rates.append(phi(x))
        r = torch.stack(rates, dim=1)
        return r @ self.C.T + self.d, r
