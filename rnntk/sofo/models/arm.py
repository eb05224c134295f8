"""A planar two-link arm (shoulder at the origin), as in SOFO's motor tasks.

Constants (SI): link lengths L1 = L2 = 0.30 m; I1 = 0.025, I2 = 0.045 kg·m²; M2 = 1.0 kg;
S2 = 0.16 m (elbow to centre of mass of link 2); joint viscosity B = [[0.05, 0.025],
[0.025, 0.05]]. With a1 = I1 + I2 + M2·L1², a2 = M2·L1·S2, a3 = I2:

    M(θ) = [[a1 + 2 a2 cos θ2, a3 + a2 cos θ2], [a3 + a2 cos θ2, a3]]
    c(θ, ω) = a2 sin θ2 · [−ω2 (2ω1 + ω2), ω1²]
    θ̈ = M⁻¹ (τ − c − B ω)

Explicit Euler at the network's dt, both updates from the old state. Angles in rad, torques
in N·m, positions in m. Every function works on trailing dimension 2 with any leading
batch dimensions; ``*_tangent`` functions propagate forward-mode tangents with extra leading
dimensions (e.g. K tangents) and are checked against ``torch.func.jvp`` in the tests.
"""

from __future__ import annotations

import math

import torch

L1 = L2 = 0.30
I1, I2, M2, S2 = 0.025, 0.045, 1.0, 0.16
A1 = I1 + I2 + M2 * L1**2
A2 = M2 * L1 * S2
A3 = I2
VISC = ((0.05, 0.025), (0.025, 0.05))
THETA0 = (math.radians(20.0), math.radians(140.0))  # start posture: hand at the central spot


def hand(theta: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """Hand position and velocity ``(..., 4) = (x, y, vx, vy)`` from angles and angular velocities."""
    t1, t12 = theta[..., 0], theta[..., 0] + theta[..., 1]
    c1, s1, c12, s12 = torch.cos(t1), torch.sin(t1), torch.cos(t12), torch.sin(t12)
    w1, w12 = omega[..., 0], omega[..., 0] + omega[..., 1]
    x = L1 * c1 + L2 * c12
    y = L1 * s1 + L2 * s12
    vx = -L1 * s1 * w1 - L2 * s12 * w12
    vy = L1 * c1 * w1 + L2 * c12 * w12
    return torch.stack([x, y, vx, vy], dim=-1)


def hand_tangent(theta: torch.Tensor, omega: torch.Tensor, dtheta: torch.Tensor, domega: torch.Tensor) -> torch.Tensor:
    """Forward-mode tangent of :func:`hand`; ``dtheta, domega: (K, ..., 2)`` → ``(K, ..., 4)``."""
    t1, t12 = theta[..., 0], theta[..., 0] + theta[..., 1]
    c1, s1, c12, s12 = torch.cos(t1), torch.sin(t1), torch.cos(t12), torch.sin(t12)
    w1, w12 = omega[..., 0], omega[..., 0] + omega[..., 1]
    d1, d12 = dtheta[..., 0], dtheta[..., 0] + dtheta[..., 1]
    e1, e12 = domega[..., 0], domega[..., 0] + domega[..., 1]
    dx = -L1 * s1 * d1 - L2 * s12 * d12
    dy = L1 * c1 * d1 + L2 * c12 * d12
    dvx = -L1 * (c1 * d1 * w1 + s1 * e1) - L2 * (c12 * d12 * w12 + s12 * e12)
    dvy = L1 * (-s1 * d1 * w1 + c1 * e1) + L2 * (-s12 * d12 * w12 + c12 * e12)
    return torch.stack([dx, dy, dvx, dvy], dim=-1)


def _mass(theta2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    c2 = torch.cos(theta2)
    m11 = A1 + 2 * A2 * c2
    m12 = A3 + A2 * c2
    m22 = torch.full_like(c2, A3)
    det = m11 * m22 - m12 * m12
    return m11, m12, m22, det


def acceleration(theta: torch.Tensor, omega: torch.Tensor, torque: torch.Tensor) -> torch.Tensor:
    """Angular acceleration θ̈ = M⁻¹(τ − c − Bω), ``(..., 2)``."""
    th2 = theta[..., 1]
    w1, w2 = omega[..., 0], omega[..., 1]
    m11, m12, m22, det = _mass(th2)
    s2 = torch.sin(th2)
    r1 = torque[..., 0] - A2 * s2 * (-w2 * (2 * w1 + w2)) - (VISC[0][0] * w1 + VISC[0][1] * w2)
    r2 = torque[..., 1] - A2 * s2 * (w1 * w1) - (VISC[1][0] * w1 + VISC[1][1] * w2)
    return torch.stack([(m22 * r1 - m12 * r2) / det, (-m12 * r1 + m11 * r2) / det], dim=-1)


def acceleration_tangent(
    theta: torch.Tensor, omega: torch.Tensor, torque: torch.Tensor, acc: torch.Tensor, dtheta: torch.Tensor, domega: torch.Tensor, dtorque: torch.Tensor
) -> torch.Tensor:
    """Tangent of :func:`acceleration`: d(θ̈) = M⁻¹ (dτ − dc − B dω − dM θ̈)."""
    th2 = theta[..., 1]
    w1, w2 = omega[..., 0], omega[..., 1]
    m11, m12, m22, det = _mass(th2)
    s2, c2 = torch.sin(th2), torch.cos(th2)
    dth2 = dtheta[..., 1]
    dw1, dw2 = domega[..., 0], domega[..., 1]
    # dc
    dc1 = A2 * c2 * dth2 * (-w2 * (2 * w1 + w2)) + A2 * s2 * (-(dw2 * (2 * w1 + w2) + w2 * (2 * dw1 + dw2)))
    dc2 = A2 * c2 * dth2 * (w1 * w1) + A2 * s2 * (2 * w1 * dw1)
    # dM θ̈ with dM = -a2 sin θ2 dθ2 [[2, 1], [1, 0]]
    dm = -A2 * s2 * dth2
    a1_, a2_ = acc[..., 0], acc[..., 1]
    q1 = dtorque[..., 0] - dc1 - (VISC[0][0] * dw1 + VISC[0][1] * dw2) - dm * (2 * a1_ + a2_)
    q2 = dtorque[..., 1] - dc2 - (VISC[1][0] * dw1 + VISC[1][1] * dw2) - dm * a1_
    return torch.stack([(m22 * q1 - m12 * q2) / det, (-m12 * q1 + m11 * q2) / det], dim=-1)


def inverse_dynamics(theta: torch.Tensor, omega: torch.Tensor, acc: torch.Tensor) -> torch.Tensor:
    """Torque that produces angular acceleration ``acc``: τ = M(θ) θ̈ + c(θ, ω) + B ω, ``(..., 2)``."""
    th2 = theta[..., 1]
    w1, w2 = omega[..., 0], omega[..., 1]
    m11, m12, m22, _ = _mass(th2)
    s2 = torch.sin(th2)
    t1 = m11 * acc[..., 0] + m12 * acc[..., 1] + A2 * s2 * (-w2 * (2 * w1 + w2)) + VISC[0][0] * w1 + VISC[0][1] * w2
    t2 = m12 * acc[..., 0] + m22 * acc[..., 1] + A2 * s2 * (w1 * w1) + VISC[1][0] * w1 + VISC[1][1] * w2
    return torch.stack([t1, t2], dim=-1)


def inverse_kinematics(pos: torch.Tensor) -> torch.Tensor:
    """Joint angles ``(..., 2)`` that put the hand at ``pos`` ``(..., 2)`` (m), with the elbow
    bent the same way as the start posture (0 < θ2 < π). Points beyond reach (|p| > L1 + L2)
    are first moved radially onto a circle just inside it (0.999 (L1 + L2))."""
    r = pos.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    pos = pos * (r.clamp_max(0.999 * (L1 + L2)) / r)
    x, y = pos[..., 0], pos[..., 1]
    c2 = ((x * x + y * y - L1 * L1 - L2 * L2) / (2 * L1 * L2)).clamp(-1.0, 1.0)
    th2 = torch.acos(c2)
    th1 = torch.atan2(y, x) - torch.atan2(L2 * torch.sin(th2), L1 + L2 * c2)
    return torch.stack([th1, th2], dim=-1)


def arm_step(theta: torch.Tensor, omega: torch.Tensor, torque: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One explicit Euler step: θ ← θ + dt·ω, ω ← ω + dt·θ̈ (both from the old state)."""
    acc = acceleration(theta, omega, torque)
    return theta + dt * omega, omega + dt * acc


def arm_step_tangent(
    theta: torch.Tensor, omega: torch.Tensor, torque: torch.Tensor, dtheta: torch.Tensor, domega: torch.Tensor, dtorque: torch.Tensor, dt: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Primal and tangent of :func:`arm_step`: returns ``(θ', ω', dθ', dω')``."""
    acc = acceleration(theta, omega, torque)
    dacc = acceleration_tangent(theta, omega, torque, acc, dtheta, domega, dtorque)
    return theta + dt * omega, omega + dt * acc, dtheta + dt * domega, domega + dt * dacc


def start_state(batch: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The start posture (θ1, θ2) = (20°, 140°) at rest, ``((B, 2), (B, 2))``."""
    theta = torch.tensor(THETA0, dtype=dtype, device=device).expand(batch, 2).contiguous()
    return theta, torch.zeros(batch, 2, dtype=dtype, device=device)


def central_spot() -> tuple[float, float]:
    """Hand position at the start posture: (0, 0.2052) m."""
    t1, t12 = THETA0[0], THETA0[0] + THETA0[1]
    return (L1 * math.cos(t1) + L2 * math.cos(t12), L1 * math.sin(t1) + L2 * math.sin(t12))
