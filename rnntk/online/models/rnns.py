"""Baseline recurrent layers of the online-learning comparison (spec §1.4).

LinearRNN:  h_t = A ρ(h_{t−1}) + B u_t,   y_t = C h_t + D ⊙ u_t   (ρ = linear, tanh or relu)
GRUCell:    r = σ(W_ir u + b_ir + W_hr h),  z = σ(W_iz u + b_iz + W_hz h),
            n = tanh(W_in u + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 − z) ⊙ h + z ⊙ n,  y = h'

u: (batch, T, H); h: (batch, T, N) real. The GRU's output is its state, so N must equal H.
``states(u, h0)`` runs the recurrence by a loop over time (nonlinear; differentiable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn


def _trunc_normal(shape: tuple[int, ...], std: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Normal(0, std²) truncated to ±2 std (resampling), as Flax's truncated initialisers."""
    x = torch.randn(*shape, generator=generator)
    bad = x.abs() > 2
    while bad.any():
        x[bad] = torch.randn(int(bad.sum()), generator=generator)
        bad = x.abs() > 2
    return x * std


SnapItem = tuple[str, Optional[torch.Tensor], Optional[torch.Tensor]]  # (parameter name, g, v) of a SnAp-1 trace

RHO = {
    "linear": (lambda h: h, lambda h: torch.ones_like(h)),
    "tanh": (torch.tanh, lambda h: 1 - torch.tanh(h) ** 2),
    "relu": (torch.relu, lambda h: (h > 0).to(h.dtype)),
}


class LinearRNN(nn.Module):
    """Dense RNN with output read from the pre-activation state (see module doc)."""

    kind = "rnn"
    rec_names = ("A", "B")

    def __init__(self, d_model: int, d_hidden: int, *, activation: str = "linear", generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        if activation not in RHO:
            raise ValueError(f"unknown RNN activation '{activation}' (linear, tanh, relu)")
        H, N = d_model, d_hidden
        self.d_model, self.d_hidden, self.activation = H, N, activation
        self.A = nn.Parameter(_trunc_normal((N, N), 1.0, generator) / math.sqrt(N))
        self.B = nn.Parameter(torch.randn(N, H, generator=generator) / math.sqrt(H))
        self.C = nn.Parameter(torch.randn(H, N, generator=generator) / math.sqrt(N))
        self.D = nn.Parameter(torch.randn(H, generator=generator))

    def rho(self, h: torch.Tensor) -> torch.Tensor:
        return RHO[self.activation][0](h)

    def drho(self, h: torch.Tensor) -> torch.Tensor:
        return RHO[self.activation][1](h)

    def step(self, u: torch.Tensor, h_prev: torch.Tensor, detach_A: bool = False, detach_B: bool = False) -> torch.Tensor:
        """One step (or many steps at once, given each step's previous state):
        ``A ρ(h_prev) + B u``; u (..., H), h_prev (..., N) → (..., N)."""
        A = self.A.detach() if detach_A else self.A
        B = self.B.detach() if detach_B else self.B
        return self.rho(h_prev) @ A.transpose(0, 1) + u @ B.transpose(0, 1)

    def spatial(self, u: torch.Tensor, h_prev: torch.Tensor, *, freeze_recurrent: bool = False, freeze_input: bool = False) -> tuple[torch.Tensor, None]:
        """The online rules' spatial graph (:meth:`step` with the previous states given):
        ``freeze_recurrent``: A constant; ``freeze_input``: B constant. Returns (h, None)."""
        return self.step(u, h_prev, detach_A=freeze_recurrent, detach_B=freeze_input), None

    def snap1_terms(self, u: torch.Tensor, h_prev: torch.Tensor, parts: None = None) -> tuple[torch.Tensor, list[SnapItem]]:
        """SnAp-1 of h_t = A ρ(h_{t−1}) + B u_t: the decays d_t = diag(A) ⊙ ρ'(h_{t−1}) (batch, T, N)
        and the trace items (name, g, v) of :func:`rnntk.online.rules.snap_block` (g None: ones)."""
        d = torch.diagonal(self.A.detach()) * self.drho(h_prev)
        return d, [("A", None, self.rho(h_prev)), ("B", None, u)]

    def states(self, u: torch.Tensor, h0: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(batch, T, N) by a loop over time."""
        h = self.zero_state(u.shape[0], u.device, u.dtype) if h0 is None else h0
        out = []
        for t in range(u.shape[1]):
            h = self.step(u[:, t], h)
            out.append(h)
        return torch.stack(out, 1)

    def readout(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return h @ self.C.transpose(0, 1) + self.D * u

    def forward(self, u: torch.Tensor, h0: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.readout(self.states(u, h0), u)

    def zero_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros(batch, self.d_hidden, device=device, dtype=dtype)


@dataclass
class GRUParts:
    """Intermediates of one GRU step (each (..., N)): gates r, z, candidate n, the hidden
    pre-activation Q = W_hn h + b_hn, pre-activations R, Z, Npre of r, z, n."""

    r: torch.Tensor
    z: torch.Tensor
    n: torch.Tensor
    Q: torch.Tensor
    R: torch.Tensor
    Z: torch.Tensor
    Npre: torch.Tensor


class GRUCell(nn.Module):
    """GRU layer (see module doc); input kernels LeCun-normal, hidden kernels orthogonal,
    biases zero (Flax's GRUCell defaults)."""

    kind = "gru"
    input_names = ("W_ir", "W_iz", "W_in", "b_ir", "b_iz", "b_in")
    hidden_names = ("W_hr", "W_hz", "W_hn", "b_hn")
    rec_names = input_names + hidden_names

    def __init__(self, d_model: int, d_hidden: int, *, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        if d_hidden != d_model:
            raise ValueError(f"a GRU layer outputs its state: d_hidden ({d_hidden}) must equal d_model ({d_model})")
        H = N = d_model
        self.d_model, self.d_hidden = H, N
        for name in ("W_ir", "W_iz", "W_in"):
            setattr(self, name, nn.Parameter(_trunc_normal((N, H), 1.0 / math.sqrt(H) / 0.87962566, generator)))
        for name in ("W_hr", "W_hz", "W_hn"):
            q, r = torch.linalg.qr(torch.randn(N, N, generator=generator))
            setattr(self, name, nn.Parameter(q * torch.sign(torch.diagonal(r))))
        for name in ("b_ir", "b_iz", "b_in", "b_hn"):
            setattr(self, name, nn.Parameter(torch.zeros(N)))

    def step(self, u: torch.Tensor, h: torch.Tensor, detach: tuple[str, ...] = ()) -> tuple[torch.Tensor, GRUParts]:
        """One step (or many, given each step's previous state): u (..., H), h (..., N) →
        (h' (..., N), intermediates). ``detach``: parameter names treated as constants."""
        p = {k: (getattr(self, k).detach() if k in detach else getattr(self, k)) for k in self.rec_names}
        R = u @ p["W_ir"].T + p["b_ir"] + h @ p["W_hr"].T
        Z = u @ p["W_iz"].T + p["b_iz"] + h @ p["W_hz"].T
        Q = h @ p["W_hn"].T + p["b_hn"]
        r, z = torch.sigmoid(R), torch.sigmoid(Z)
        Npre = u @ p["W_in"].T + p["b_in"] + r * Q
        n = torch.tanh(Npre)
        return (1 - z) * h + z * n, GRUParts(r, z, n, Q, R, Z, Npre)

    def spatial(self, u: torch.Tensor, h_prev: torch.Tensor, *, freeze_recurrent: bool = False, freeze_input: bool = False) -> tuple[torch.Tensor, GRUParts]:
        """The online rules' spatial graph (:meth:`step` with the previous states given):
        ``freeze_recurrent``: the hidden weights constant; ``freeze_input``: the input weights
        and biases constant. Returns (h, intermediates)."""
        detach = (self.hidden_names if freeze_recurrent else ()) + (self.input_names if freeze_input else ())
        return self.step(u, h_prev, detach=detach)

    def snap1_terms(self, u: torch.Tensor, h_prev: torch.Tensor, parts: GRUParts) -> tuple[torch.Tensor, list[SnapItem]]:
        """SnAp-1 of the GRU: the decays d_t = ∂h_t/∂h_{t−1} diagonal (batch, T, N) and the trace
        items (name, g, v) of :func:`rnntk.online.rules.snap_block`, from the step's intermediates."""
        r, z, n, Q = parts.r.detach(), parts.z.detach(), parts.n.detach(), parts.Q.detach()
        gZ = (n - h_prev) * z * (1 - z)
        gN = z * (1 - n * n)
        gR = gN * Q * r * (1 - r)
        gQ = gN * r
        dg = lambda name: torch.diagonal(getattr(self, name).detach())  # noqa: E731
        d = (1 - z) + gZ * dg("W_hz") + gQ * dg("W_hn") + gR * dg("W_hr")  # (b, T, N)
        items: list[SnapItem] = [
            ("W_iz", gZ, u),
            ("b_iz", gZ, None),
            ("W_hz", gZ, h_prev),
            ("W_in", gN, u),
            ("b_in", gN, None),
            ("W_ir", gR, u),
            ("b_ir", gR, None),
            ("W_hr", gR, h_prev),
            ("W_hn", gQ, h_prev),
            ("b_hn", gQ, None),
        ]
        return d, items

    def states(self, u: torch.Tensor, h0: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.zero_state(u.shape[0], u.device, u.dtype) if h0 is None else h0
        out = []
        for t in range(u.shape[1]):
            h, _ = self.step(u[:, t], h)
            out.append(h)
        return torch.stack(out, 1)

    def readout(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return h

    def forward(self, u: torch.Tensor, h0: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.states(u, h0)

    def zero_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros(batch, self.d_hidden, device=device, dtype=dtype)
