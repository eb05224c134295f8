"""The Linear Recurrent Unit (Orvieto et al. 2023) and the diagonal linear scan it runs on.

    λ = exp(−exp(nu_log) + i·exp(theta_log))            (N,) complex, |λ| < 1
    h_t = λ ⊙ h_{t−1} + γ ⊙ (B u_t),  γ = exp(gamma_log)  h_0 = 0 (or a carried state)
    y_t = Re(C h_t) + D ⊙ u_t

u: (batch, time, H) real; h: (batch, time, N) complex; y: (batch, time, H) real.
Parameters are real tensors (``nu_log, theta_log, gamma_log`` (N,), ``B_re, B_im`` (N, H),
``C_re, C_im`` (H, N), ``D`` (H,)); complex values are assembled on the fly.
Ring initialisation: |λ|² uniform on [r_min², r_max²], phase uniform on [0, max_phase],
γ = sqrt(1 − |λ|²) (spec §1.1).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn


def linear_scan(a: torch.Tensor, x: torch.Tensor, h0: Optional[torch.Tensor] = None, *, time_varying: bool = False) -> torch.Tensor:
    """All states of ``h_t = a_t ⊙ h_{t−1} + x_t`` (time is dim 1), by a parallel
    (Hillis–Steele, log₂T doubling steps) scan; differentiable by autograd.

    x: (batch, T, *feat); a: broadcastable to x's trailing dims (constant decay) or, with
    ``time_varying``, broadcastable to x itself; h0: (batch, *feat) or None (zeros).
    Returns (batch, T, *feat)."""
    T = x.shape[1]
    if h0 is not None:
        a0 = a[:, 0] if time_varying else a
        x = torch.cat([(x[:, :1] + (a0 * h0).unsqueeze(1)), x[:, 1:]], dim=1)
    if time_varying:
        a = a.expand_as(x) if a.shape != x.shape else a
        k = 1
        while k < T:
            x = torch.cat([x[:, :k], x[:, k:] + a[:, k:] * x[:, :-k]], dim=1)
            if 2 * k < T:
                a = torch.cat([a[:, :k], a[:, k:] * a[:, :-k]], dim=1)
            k *= 2
        return x
    k, ak = 1, a
    while k < T:
        x = torch.cat([x[:, :k], x[:, k:] + ak * x[:, :-k]], dim=1)
        ak = ak * ak
        k *= 2
    return x


def linear_scan_loop(a: torch.Tensor, x: torch.Tensor, h0: Optional[torch.Tensor] = None, *, time_varying: bool = False) -> torch.Tensor:
    """The same recurrence as :func:`linear_scan` by a Python loop over time (the oracle)."""
    h = torch.zeros_like(x[:, 0]) if h0 is None else h0
    out = []
    for t in range(x.shape[1]):
        h = (a[:, t] if time_varying else a) * h + x[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


def ring_init(
    n: int, r_min: float, r_max: float, max_phase: float, generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(nu_log, theta_log, gamma_log)``, each (n,): |λ|² uniform on [r_min², r_max²],
    phase uniform on [0, max_phase], γ = sqrt(1 − |λ|²). Uniform draws are clamped to
    [1e−7, 1) so that no log sees 0 and |λ| stays < 1."""
    if not 0.0 <= r_min < r_max <= 1.0:
        raise ValueError(f"need 0 <= r_min < r_max <= 1, got r_min={r_min}, r_max={r_max}")
    if not max_phase > 0:
        raise ValueError(f"max_phase must be > 0, got {max_phase}")
    u1 = torch.rand(n, generator=generator, dtype=torch.float64).clamp(1e-7, 1 - 1e-7)
    u2 = torch.rand(n, generator=generator, dtype=torch.float64).clamp(1e-7, 1 - 1e-7)
    r2 = u1 * (r_max**2 - r_min**2) + r_min**2
    r2 = r2.clamp(max=1 - 1e-7)
    nu = -0.5 * torch.log(r2)
    theta = max_phase * u2
    gamma = torch.sqrt(1 - r2)
    return nu.log().to(dtype), theta.log().to(dtype), gamma.log().to(dtype)


class _RealReadout(torch.autograd.Function):
    """y = h W + D ⊙ u for the real view h (rows, 2N) of the state, W = ``LRU.readout_weight()``
    (passed detached; C_re, C_im are given for their gradients): one graph node with the
    closed-form backward instead of the ~10 nodes of assembling W and the products."""

    @staticmethod
    def forward(ctx, h, u, W, C_re, C_im, D):  # type: ignore[override]
        ctx.save_for_backward(h, u, W, D)
        return torch.addmm(D * u, h, W)

    @staticmethod
    def backward(ctx, gy):  # type: ignore[override]
        h, u, W, D = ctx.saved_tensors
        gh = gy @ W.transpose(0, 1) if ctx.needs_input_grad[0] else None
        gu = gy * D if ctx.needs_input_grad[1] else None
        gC_re = gC_im = gD = None
        if ctx.needs_input_grad[3] or ctx.needs_input_grad[4]:
            gW = (gy.transpose(0, 1) @ h).view(gy.shape[1], -1, 2)  # (H, N, 2): ∂/∂(C_re, −C_im)
            gC_re, gC_im = gW[..., 0], -gW[..., 1]
        if ctx.needs_input_grad[5]:
            gD = (gy * u).sum(0)
        return gh, gu, None, gC_re, gC_im, gD


class LRU(nn.Module):
    """One LRU layer (see module doc). ``forward(u)`` → y (batch, T, H) by the parallel scan."""

    kind = "lru"
    rec_names = ("nu_log", "theta_log", "gamma_log", "B_re", "B_im")  # credited by the online rules

    def __init__(
        self, d_model: int, d_hidden: int, *, r_min: float = 0.0, r_max: float = 1.0, max_phase: float = 6.28, generator: Optional[torch.Generator] = None
    ) -> None:
        super().__init__()
        H, N = d_model, d_hidden
        self.d_model, self.d_hidden = H, N
        nu_log, theta_log, gamma_log = ring_init(N, r_min, r_max, max_phase, generator)
        self.nu_log = nn.Parameter(nu_log)
        self.theta_log = nn.Parameter(theta_log)
        self.gamma_log = nn.Parameter(gamma_log)
        self.B_re = nn.Parameter(torch.randn(N, H, generator=generator) / math.sqrt(2 * H))
        self.B_im = nn.Parameter(torch.randn(N, H, generator=generator) / math.sqrt(2 * H))
        self.C_re = nn.Parameter(torch.randn(H, N, generator=generator) / math.sqrt(N))
        self.C_im = nn.Parameter(torch.randn(H, N, generator=generator) / math.sqrt(N))
        self.D = nn.Parameter(torch.randn(H, generator=generator))

    # complex pieces ----------------------------------------------------------------
    def lam(self) -> torch.Tensor:
        """λ (N,) complex."""
        return torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))

    def gamma(self) -> torch.Tensor:
        """γ (N,) real."""
        return torch.exp(self.gamma_log)

    def B(self) -> torch.Tensor:
        return torch.complex(self.B_re, self.B_im)

    def C(self) -> torch.Tensor:
        return torch.complex(self.C_re, self.C_im)

    def drive(self, u: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """γ ⊙ (B u_t): (batch, T, N) complex."""
        B, g = self.B(), self.gamma()
        if detach_params:
            B, g = B.detach(), g.detach()
        return g * (u.to(B.dtype) @ B.transpose(0, 1))

    def readout(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """y_t = Re(C h_t) + D ⊙ u_t: (batch, T, H). h may also be the real view of the
        state, (batch, T, 2N) with (Re, Im) interleaved (see :meth:`drive_weight`)."""
        if not h.is_complex():
            return _RealReadout.apply(
                h.reshape(-1, 2 * self.d_hidden), u.reshape(-1, self.d_model), self.frozen("readout_weight"), self.C_re, self.C_im, self.D
            ).view(u.shape)
        return (h @ self.C().transpose(0, 1)).real + self.D * u

    def spatial(self, u: torch.Tensor, h_prev: torch.Tensor, *, freeze_recurrent: bool = False, freeze_input: bool = False) -> tuple[torch.Tensor, None]:
        """The online rules' spatial graph: h_t = λ ⊙ h_{t−1} + γ ⊙ (B u_t) with the previous
        states given, u (batch, T, H), h_prev (batch, T, N) → ((batch, T, N) complex, None: no
        intermediates). ``freeze_recurrent``: λ constant; ``freeze_input``: γ, B constant."""
        lam = self.lam()
        if freeze_recurrent:
            lam = lam.detach()
        return lam * h_prev + self.drive(u, detach_params=freeze_input), None

    def affine_step(self, h0: torch.Tensor, *, freeze_recurrent: bool = False, freeze_input: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the spatial graph in real arithmetic, for the state h0 (batch, N):
        (p (batch, 2N), W (H, 2N)) with the real view of h_t = p + u_t @ W, p = the real view of
        λ ⊙ h_{t−1} and W = :meth:`drive_weight`. Constants (``freeze_recurrent``: λ;
        ``freeze_input``: γ, B; W too when grad is disabled) come from :meth:`frozen`."""
        b, N = h0.shape
        lam = self.frozen("lam") if freeze_recurrent else self.lam()
        p = torch.view_as_real(lam * h0).view(b, 2 * N)
        W = self.frozen("drive_weight") if freeze_input or not torch.is_grad_enabled() else self.drive_weight()
        return p, W

    # real forms for the one-step path: a state h (batch, N) complex is used as its real view
    # (batch, 2N) = view_as_real(h) flattened, (Re h_n, Im h_n) interleaved
    def drive_weight(self) -> torch.Tensor:
        """(H, 2N) real: u @ W is the real view of γ ⊙ (B u)."""
        B = torch.stack([self.B_re, self.B_im], 1) * self.gamma()[:, None, None]  # (N, 2, H)
        return B.reshape(2 * self.d_hidden, self.d_model).transpose(0, 1)

    def B_weight(self) -> torch.Tensor:
        """(H, 2N) real: u @ W is the real view of B u."""
        return torch.stack([self.B_re, self.B_im], 1).reshape(2 * self.d_hidden, self.d_model).transpose(0, 1)

    def readout_weight(self) -> torch.Tensor:
        """(2N, H) real: (real view of h) @ W = Re(C h)."""
        return torch.stack([self.C_re, -self.C_im], -1).reshape(self.d_model, 2 * self.d_hidden).transpose(0, 1)

    def frozen(self, name: str) -> torch.Tensor:
        """``getattr(self, name)()`` detached, cached until a parameter changes: in-place
        updates (optimizers, ``load_state_dict``) bump the parameters' versions, a replaced
        parameter is another object. Writes through ``p.data`` are not seen: call
        :meth:`clear_frozen` after those (the online learner clears it at every ``start``)."""
        params = tuple(self.parameters())
        versions = tuple(p._version for p in params)
        cache = self.__dict__.setdefault("_frozen", {})
        hit = cache.get(name)
        if hit is not None and hit[1] == versions and all(p is q for p, q in zip(hit[0], params)):
            return hit[2]
        with torch.no_grad():
            v = getattr(self, name)().detach()
        cache[name] = (params, versions, v)
        return v

    def clear_frozen(self) -> None:
        self.__dict__.pop("_frozen", None)

    def states(self, u: torch.Tensor, h0: Optional[torch.Tensor] = None) -> torch.Tensor:
        """All states h (batch, T, N) complex by the parallel scan (differentiable)."""
        return linear_scan(self.lam(), self.drive(u), h0)

    def forward(self, u: torch.Tensor, h0: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.readout(self.states(u, h0), u)

    def zero_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        cdt = torch.complex128 if dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.d_hidden, device=device, dtype=cdt)
