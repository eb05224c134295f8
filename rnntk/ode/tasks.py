"""Trial generators for neural-ODE/SDE training (GQ adjoint spec §3; issue 7).

Tasks (all vectorised over trials; all randomness comes from the passed ``torch.Generator``):

- :func:`nested_spheres` -- 2-D points in two concentric classes (classification, t in [0, 1]).
- :func:`sines` -- harmonic oscillator x'' = -x observed at regular or irregular times.
- :func:`ou_paths` / :func:`ou_moments` -- time-dependent Ornstein-Uhlenbeck process simulated
  with torchsde, and its exact mean and variance.
- :func:`g1d` -- the 1-D map [-1, 1] -> [1, -1] (y = -x).
- :func:`leaky_rnn_trajectories` -- ground-truth trajectories of a leaky rate RNN (dopri5).

Times are in the task's own (dimensionless) time units unless stated otherwise.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from rnntk.core.trials import TrialBatch

__all__ = [
    "G1D_AUG_DIMS",
    "SPHERES_AUG_DIMS",
    "nested_spheres",
    "sines",
    "OUSDE",
    "ou_paths",
    "ou_moments",
    "g1d",
    "leaky_rnn_trajectories",
    "RATE_RNN_TRAIN",
    "ou_times",
    "ou_initial",
    "rate_rnn_times",
]

#: Zero dimensions the upstream g1d model appends to the 1-D state (state dim 1 + 3 = 4).
G1D_AUG_DIMS: int = 3
#: Zero dimensions the upstream nested-spheres model appends to the 2-D point (state dim 5).
SPHERES_AUG_DIMS: int = 3
#: Trajectories in ode-train's rate-rnn training set.
RATE_RNN_TRAIN: int = 32


def ou_times(ntimes: int) -> torch.Tensor:
    """ode-train's ou output times: ``ntimes`` points evenly over [0, 10] (the process's own time unit)."""
    return torch.linspace(0.0, 10.0, ntimes)


def ou_initial(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` initial values ``y0 ~ U(-3, 3)`` of ode-train's ou task, shape ``(n,)``."""
    return torch.rand(n, generator=generator) * 6 - 3


def rate_rnn_times(ntimes: int) -> torch.Tensor:
    """ode-train's rate-rnn output times: ``ntimes`` points evenly over [0, 1] s."""
    return torch.linspace(0.0, 1.0, ntimes)


def _seed_from(generator: torch.Generator | None) -> int:
    """Draw a non-negative 63-bit integer seed from ``generator`` (used for torchsde entropy)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator, dtype=torch.int64).item())


# --------------------------------------------------------------------------------------------------
# Nested spheres
# --------------------------------------------------------------------------------------------------


def nested_spheres(
    n_per_class: int,
    *,
    inner: float = 0.4,
    outer: tuple[float, float] = (0.7, 0.9),
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> TrialBatch:
    """Nested-spheres classification data (upstream ``make_nested_spheres_data.py``).

    Points are drawn uniformly in [-1, 1]^2 and kept by rejection: class 0 if r < ``inner``,
    class 1 if ``outer[0]`` < r < ``outer[1]`` (r = Euclidean norm). Sampling is vectorised: a
    block of candidates is oversampled, then the first ``n_per_class`` of each class are kept
    (another block is drawn only in the rare case that one block is not enough). The batch is
    shuffled with the same generator. The model is expected to append ``SPHERES_AUG_DIMS`` zeros.

    Returns a :class:`TrialBatch` with
      inputs:  (N, 1, 2) points, N = 2 * n_per_class
      targets: (N, 1, 1) labels as float (0. or 1.)
      mask:    (N, 1, 1) ones
      table:   {"label": (N,) int64}
      dt:      None (no physical time; the ODE runs on t in [0, 1])
    """
    if n_per_class < 0:
        raise ValueError("n_per_class must be >= 0")
    lo, hi = outer
    if not (0 < inner <= lo < hi):
        raise ValueError("need 0 < inner <= outer[0] < outer[1]")
    # Acceptance probabilities (areas inside the square, exact when hi <= 1).
    p0 = math.pi * inner**2 / 4
    p1 = math.pi * (min(hi, 1.0) ** 2 - lo**2) / 4
    block = int(math.ceil(1.5 * n_per_class / max(min(p0, p1), 1e-3))) + 64
    got0: list[torch.Tensor] = []
    got1: list[torch.Tensor] = []
    n0 = n1 = 0
    while n0 < n_per_class or n1 < n_per_class:
        pts = torch.rand(block, 2, generator=generator, dtype=torch.float64) * 2 - 1
        r = pts.norm(dim=1)
        c0 = pts[r < inner]
        c1 = pts[(r > lo) & (r < hi)]
        got0.append(c0)
        got1.append(c1)
        n0 += c0.shape[0]
        n1 += c1.shape[0]
    x0 = torch.cat(got0)[:n_per_class]
    x1 = torch.cat(got1)[:n_per_class]
    x = torch.cat([x0, x1])
    labels = torch.cat([torch.zeros(n_per_class, dtype=torch.int64), torch.ones(n_per_class, dtype=torch.int64)])
    perm = torch.randperm(2 * n_per_class, generator=generator)
    x, labels = x[perm], labels[perm]
    inputs = x.to(dtype).unsqueeze(1)
    targets = labels.to(dtype).reshape(-1, 1, 1)
    return TrialBatch(inputs, targets, torch.ones_like(targets), {"label": labels}, dt=None)


# --------------------------------------------------------------------------------------------------
# Sines
# --------------------------------------------------------------------------------------------------


def sines(
    n_traj: int,
    n_times: int,
    *,
    irregular: bool = False,
    t_end: float = 2 * math.pi,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> TrialBatch:
    """Harmonic-oscillator series x'' = -x (upstream ``make_sine_data.py``).

    x(t) = A sin t + B cos t with (B, A) = (x0, v0) ~ U(-1, 1)^2 (x0: position, v0: velocity).
    Regular: times = linspace(0, t_end, n_times), shared by all series. Irregular: per series,
    t[0] = 0 and t[1:] = sorted U(0, t_end) draws (n_times - 1 of them).

    Returns a :class:`TrialBatch` with
      inputs:  (N, 1, 2) initial state [x0, v0]
      targets: (N, T, 1) x(t) at the observation times, T = n_times
      mask:    (N, T, 1) ones
      table:   {"x0": (N,), "v0": (N,)}
      dt:      t_end / (T - 1) for regular times, None for irregular
      extra:   {"times": (N, T)} observation times (time units: radians of the oscillator phase)
    """
    if n_times < 1:
        raise ValueError("n_times must be >= 1")
    x0v0 = torch.rand(n_traj, 2, generator=generator, dtype=torch.float64) * 2 - 1
    if irregular:
        u = torch.rand(n_traj, n_times - 1, generator=generator, dtype=torch.float64) * t_end
        times = torch.cat([torch.zeros(n_traj, 1, dtype=torch.float64), u.sort(dim=1).values], dim=1)
        dt = None
    else:
        times = torch.linspace(0.0, t_end, n_times, dtype=torch.float64).expand(n_traj, n_times).clone()
        dt = t_end / (n_times - 1) if n_times > 1 else None
    b, a = x0v0[:, 0:1], x0v0[:, 1:2]
    x = a * torch.sin(times) + b * torch.cos(times)
    targets = x.to(dtype).unsqueeze(-1)
    return TrialBatch(
        x0v0.to(dtype).unsqueeze(1),
        targets,
        torch.ones_like(targets),
        {"x0": x0v0[:, 0].to(dtype), "v0": x0v0[:, 1].to(dtype)},
        dt=dt,
        extra={"times": times.to(dtype)},
    )


# --------------------------------------------------------------------------------------------------
# Ornstein-Uhlenbeck
# --------------------------------------------------------------------------------------------------


class OUSDE(torch.nn.Module):
    """torchsde SDE for dy = (mu t - theta y) dt + (sigma + phi t) dW (state dim 1).

    The noise is additive (g independent of y), so Ito and Stratonovich coincide; we declare
    ``sde_type="ito"``, ``noise_type="diagonal"``. f, g take y of shape (batch, 1).
    """

    sde_type = "ito"
    noise_type = "diagonal"

    def __init__(self, mu: float, theta: float, sigma: float, phi: float) -> None:
        super().__init__()
        self.mu, self.theta, self.sigma, self.phi = mu, theta, sigma, phi

    def f(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Drift mu t - theta y, shape (batch, 1)."""
        return self.mu * t - self.theta * y

    def g(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Diffusion sigma + phi t (diagonal), shape (batch, 1)."""
        return (self.sigma + self.phi * t) * torch.ones_like(y)


def ou_paths(
    y0: torch.Tensor | Sequence[float],
    n_paths: int,
    times: torch.Tensor | Sequence[float],
    *,
    mu: float = 0.2,
    theta: float = 0.1,
    sigma: float = 0.6,
    phi: float = 0.15,
    generator: torch.Generator | None = None,
    dt: float = 0.01,
    method: str = "euler",
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Sample paths of the time-dependent OU process with ``torchsde.sdeint``.

    dy = (mu t - theta y) dt + (sigma + phi t) dW, y(times[0]) = y0 (upstream ``make_ou_data.py``
    uses mu=0.2, theta=0.1, sigma=0.6, phi=0.15, t in [0, 10] on 101 points, y0 ~ U(-3, 3)).
    Every initial value gets ``n_paths`` independent paths. The Brownian motion is a
    ``torchsde.BrownianInterval`` whose entropy is drawn from ``generator`` (no global RNG).
    ``method`` is any torchsde solver valid for Ito additive/diagonal noise ("euler", "milstein",
    "srk"); fixed step ``dt`` (time units of ``times``).

    Args:
      y0: (n_init,) initial values.
      times: (T,) increasing observation times; times[0] is the initial time.
    Returns:
      (n_init, n_paths, T) tensor of y at ``times`` (column 0 equals y0).
    """
    import torchsde

    y0_t = torch.as_tensor(y0, dtype=dtype).reshape(-1)
    ts = torch.as_tensor(times, dtype=dtype).reshape(-1)
    n_init, n_t = y0_t.shape[0], ts.shape[0]
    batch = n_init * n_paths
    y0b = y0_t.repeat_interleave(n_paths).reshape(batch, 1)
    bm = torchsde.BrownianInterval(
        t0=float(ts[0]),
        t1=float(ts[-1]),
        size=(batch, 1),
        dtype=dtype,
        entropy=_seed_from(generator),
        levy_area_approximation="space-time" if method == "srk" else "none",
    )
    sde = OUSDE(mu, theta, sigma, phi)
    with torch.no_grad():
        ys = torchsde.sdeint(sde, y0b, ts, bm=bm, method=method, dt=dt)  # (T, batch, 1)
    assert isinstance(ys, torch.Tensor)
    return ys[..., 0].T.reshape(n_init, n_paths, n_t)


def ou_moments(
    y0: torch.Tensor | Sequence[float] | float,
    times: torch.Tensor | Sequence[float],
    *,
    mu: float = 0.2,
    theta: float = 0.1,
    sigma: float = 0.6,
    phi: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact mean and variance of the OU process of :func:`ou_paths` started at t = 0.

    m(t) = y0 e^{-theta t} + mu (t/theta - (1 - e^{-theta t}) / theta^2)
    v(t) = int_0^t e^{-2 theta (t-s)} (sigma + phi s)^2 ds   (independent of y0)
    The variance uses the closed form, with k = 2 theta and p(s) = (sigma + phi s)^2:
    v(t) = [p/k - p'/k^2 + p''/k^3](t) - e^{-k t} [p/k - p'/k^2 + p''/k^3](0).
    (Defaults give v(1) = 0.418, v(5) = 3.54, v(10) = 11.53.)

    Args:
      y0: scalar or (n_init,) initial values.
      times: (T,) times >= 0.
    Returns:
      mean (n_init, T) (or (T,) for scalar y0) and variance (T,), float64.
    """
    t = torch.as_tensor(times, dtype=torch.float64)
    y = torch.as_tensor(y0, dtype=torch.float64)
    e = torch.exp(-theta * t)
    mean = y.unsqueeze(-1) * e + mu * (t / theta - (1 - e) / theta**2)
    k = 2 * theta

    def prim(s: torch.Tensor) -> torch.Tensor:
        p = (sigma + phi * s) ** 2
        dp = 2 * phi * (sigma + phi * s)
        ddp = 2 * phi**2
        return p / k - dp / k**2 + ddp / k**3

    var = prim(t) - torch.exp(-k * t) * prim(torch.zeros_like(t))
    return mean, var


# --------------------------------------------------------------------------------------------------
# g1d
# --------------------------------------------------------------------------------------------------


def g1d(
    n: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> TrialBatch:
    """The 1-D map task (upstream ``experiments/g1d.py``): learn [-1, 1] -> [1, -1], y = -x.

    A 1-D ODE flow cannot realise x -> -x (trajectories would cross), so the upstream model
    appends ``G1D_AUG_DIMS`` = 3 zero dimensions to the state (state dim 4) and reads out the
    first coordinate; the augmentation is the model's job, not the data's.

    Returns a :class:`TrialBatch` with
      inputs:  (N, 1, 1) x ~ U(-1, 1)
      targets: (N, 1, 1) y = -x
      mask:    (N, 1, 1) ones
      dt:      None (the ODE runs on t in [0, 1])
    """
    x = torch.rand(n, 1, 1, generator=generator, dtype=dtype) * 2 - 1
    y = -x
    return TrialBatch(x, y, torch.ones_like(y), {}, dt=None)


# --------------------------------------------------------------------------------------------------
# Leaky rate RNN
# --------------------------------------------------------------------------------------------------


def leaky_rnn_trajectories(
    n_traj: int,
    n_units: int,
    times: torch.Tensor | Sequence[float],
    *,
    tau: float = 1.0,
    g: float = 1.5,
    b_std: float = 0.1,
    x0_std: float = 1.0,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> TrialBatch:
    """Ground-truth trajectories of a leaky continuous-time rate RNN.

    tau dx/dt = -x + W tanh(x) + b, with one network shared by all trajectories:
    W ~ N(0, g^2 / n_units) (g = 1.5: chaotic regime), b ~ N(0, b_std^2), x0 ~ N(0, x0_std^2 I)
    per trajectory. Integrated in float64 with torchdiffeq dopri5 at rtol/atol (tight by
    default), then cast to ``dtype``. ``tau`` and ``times`` share one time unit.

    Args:
      times: (T,) increasing output times; times[0] is the time of x0.
    Returns a :class:`TrialBatch` with
      inputs:  (N, 1, n) x0
      targets: (N, T, n) x(times)
      mask:    (N, T, n) ones
      dt:      None
      extra:   {"W": (n, n), "b": (n,), "times": (T,)}
    """
    from torchdiffeq import odeint

    n = n_units
    ts = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    W = torch.randn(n, n, generator=generator, dtype=torch.float64) * (g / math.sqrt(n))
    b = torch.randn(n, generator=generator, dtype=torch.float64) * b_std
    x0 = torch.randn(n_traj, n, generator=generator, dtype=torch.float64) * x0_std

    def f(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (-x + torch.tanh(x) @ W.T + b) / tau

    with torch.no_grad():
        xs = odeint(f, x0, ts, method="dopri5", rtol=rtol, atol=atol)  # (T, N, n)
    assert isinstance(xs, torch.Tensor)
    targets = xs.permute(1, 0, 2).to(dtype).contiguous()
    return TrialBatch(
        x0.to(dtype).unsqueeze(1),
        targets,
        torch.ones_like(targets),
        {},
        dt=None,
        extra={"W": W.to(dtype), "b": b.to(dtype), "times": ts.to(dtype)},
    )
