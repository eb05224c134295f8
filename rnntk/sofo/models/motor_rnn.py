"""The rate RNN that drives the two-link arm (SOFO's motor tasks).

State: network currents z (B, n), arm angles θ (B, 2) and angular velocities ω (B, 2).
Per step (dt, τ in seconds, a = dt/τ), with multiplicative rate noise η (B, n):

    r = η ⊙ relu(z)                                   rates (noisy)
    torque = r C                                      (B, 2), no bias
    z' = (1 − a) z + a ([r, 1] W + u B_in + [θ, ω] F)  arm state fed back before the update
    (θ', ω') = Euler(θ, ω, torque)                    see rnntk.sofo.models.arm
    y = hand(θ', ω')                                  (B, 4): x, y, vx, vy — what the loss sees

Parameters (upstream init, std): z0 (n,) zeros, learned, shared by all trials; W (n+1, n)
std 0.5/(√n·√(n+1)), its last row the bias; B_in (n_in, n) std 0.1/√n_in; F (4, n) std 0.1
(the four feedback vectors f1..f4); C (n, 2) std 0.1/n. Deliberately weak, non-chaotic:
the recurrent block W[:n] has spectral radius ≈ 0.5/√(n+1) (0.09 at n = 32). ``init_gain=g``
(rnntk's option, not upstream's) rescales that same draw to std g/√n, spectral radius ≈ g;
the bias row and every other parameter keep upstream's init.
Noise: η ~ U(1 − σ, 1 + σ) clipped at 0, σ = 0.2·√(τ/dt), fresh per step, trial and unit.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import nn

from rnntk.sofo.models import arm

Params = dict[str, torch.Tensor]


def noise_sigma(tau: float, dt: float) -> float:
    """Multiplicative rate-noise half-width σ = 0.2·√(τ/dt) (upstream)."""
    return 0.2 * math.sqrt(tau / dt)


def rate_noise(batch: int, steps: int, n: int, sigma: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Multiplicative noise η (B, T, n) ~ U(1 − σ, 1 + σ) clipped at 0 (all ones for σ = 0)."""
    dev = generator.device if generator is not None else None  # drawn on the generator's device
    if sigma == 0:
        return torch.ones(batch, steps, n, device=dev)
    u = torch.rand(batch, steps, n, generator=generator, device=dev)
    return (1 - sigma + 2 * sigma * u).clamp_min(0.0)


class MotorRNN(nn.Module):
    """Rate RNN + arm. Functional API (``step``, ``tangent_step``, ``rollout``) takes an
    explicit params dict so that SOFO (forward mode) and Adam (autograd) share one model."""

    def __init__(
        self,
        n_in: int = 6,
        n: int = 64,
        *,
        dt: float = 0.002,
        tau: float = 0.02,
        noise: bool = True,
        generator: Optional[torch.Generator] = None,
        init_gain: Optional[float] = None,
    ) -> None:
        super().__init__()
        self.n_in, self.n, self.dt, self.tau, self.noise = int(n_in), int(n), float(dt), float(tau), bool(noise)
        g = generator
        self.z0 = nn.Parameter(torch.zeros(n))
        W = torch.randn(n + 1, n, generator=g) * 0.5 / (math.sqrt(n) * math.sqrt(n + 1))
        if init_gain is not None:  # same draw, recurrent block rescaled to std g/√n (spectral radius ≈ g)
            W[:-1] *= float(init_gain) * math.sqrt(n + 1) / 0.5
        self.W = nn.Parameter(W)
        self.B_in = nn.Parameter(torch.randn(n_in, n, generator=g) * 0.1 / math.sqrt(n_in))
        self.F = nn.Parameter(torch.randn(4, n, generator=g) * 0.1)
        self.C = nn.Parameter(torch.randn(n, 2, generator=g) * 0.1 / n)

    def hparams(self) -> dict[str, Any]:
        return dict(n_in=self.n_in, n=self.n, dt=self.dt, tau=self.tau, noise=self.noise)

    @property
    def sigma(self) -> float:
        return noise_sigma(self.tau, self.dt)

    def params(self) -> Params:
        """The parameters as a plain dict (detached views, for forward-mode use)."""
        return {k: v.detach() for k, v in self.named_parameters()}

    def sample_noise(self, batch: int, steps: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """η (B, T, n): U(1 − σ, 1 + σ) clipped at 0, or ones when noise is off."""
        return rate_noise(batch, steps, self.n, self.sigma if self.noise else 0.0, generator)

    def initial_state(self, p: Params, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        theta, omega = arm.start_state(batch, p["z0"].dtype, p["z0"].device)
        return p["z0"].expand(batch, self.n).contiguous(), theta, omega

    def initial_tangent(self, V: Params, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tangents of the initial state: dz0 = V_z0 broadcast over trials; the arm starts fixed."""
        K = V["z0"].shape[0]
        z = V["z0"][:, None, :].expand(K, batch, self.n).contiguous()
        zeros = torch.zeros(K, batch, 2, dtype=z.dtype, device=z.device)
        return z, zeros, zeros.clone()

    def step(self, p: Params, state: tuple[torch.Tensor, ...], u: torch.Tensor, eta: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """One time step; returns the new state and the hand (x, y, vx, vy) after it."""
        z, theta, omega = state
        a = self.dt / self.tau
        r = eta * torch.relu(z)
        torque = r @ p["C"]
        fb = torch.cat([theta, omega], dim=-1)
        z1 = (1 - a) * z + a * (r @ p["W"][:-1] + p["W"][-1] + u @ p["B_in"] + fb @ p["F"])
        theta1, omega1 = arm.arm_step(theta, omega, torque, self.dt)
        return (z1, theta1, omega1), arm.hand(theta1, omega1)

    def tangent_step(
        self, p: Params, state: tuple[torch.Tensor, ...], dstate: tuple[torch.Tensor, ...], V: Params, u: torch.Tensor, eta: torch.Tensor
    ) -> tuple[Any, torch.Tensor, Any, torch.Tensor]:
        """Hand-written K-batched forward tangents of :meth:`step` (tested equal to vmap(jvp)).

        dstate: (dz (K, B, n), dθ (K, B, 2), dω (K, B, 2)); V: parameter tangents (K, *shape).
        """
        z, theta, omega = state
        dz, dtheta, domega = dstate
        a = self.dt / self.tau
        gate = eta * (z > 0).to(z.dtype)
        r = gate * z
        dr = gate * dz
        torque = r @ p["C"]
        dtorque = dr @ p["C"] + torch.einsum("bn,knj->kbj", r, V["C"])
        fb = torch.cat([theta, omega], dim=-1)
        dfb = torch.cat([dtheta, domega], dim=-1)
        z1 = (1 - a) * z + a * (r @ p["W"][:-1] + p["W"][-1] + u @ p["B_in"] + fb @ p["F"])
        dz1 = (1 - a) * dz + a * (
            dr @ p["W"][:-1]
            + torch.einsum("bi,kij->kbj", r, V["W"][:, :-1])
            + V["W"][:, -1][:, None, :]
            + torch.einsum("bi,kij->kbj", u, V["B_in"])
            + dfb @ p["F"]
            + torch.einsum("bi,kij->kbj", fb, V["F"])
        )
        theta1, omega1, dtheta1, domega1 = arm.arm_step_tangent(theta, omega, torque, dtheta, domega, dtorque, self.dt)
        y = arm.hand(theta1, omega1)
        dy = arm.hand_tangent(theta1, omega1, dtheta1, domega1)
        return (z1, theta1, omega1), y, (dz1, dtheta1, domega1), dy

    def rollout(self, p: Params, u: torch.Tensor, eta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run a whole batch (differentiable): u (B, T, n_in), η (B, T, n) →
        hand (B, T, 4), rates r (B, T, n), torque (B, T, 2)."""
        B, T, _ = u.shape
        state = self.initial_state(p, B)
        hands, rates, torques = [], [], []
        for t in range(T):
            z = state[0]
            r = eta[:, t] * torch.relu(z)
            rates.append(r)
            torques.append(r @ p["C"])
            state, y = self.step(p, state, u[:, t], eta[:, t])
            hands.append(y)
        return {"hand": torch.stack(hands, 1), "rates": torch.stack(rates, 1), "torque": torch.stack(torques, 1)}
