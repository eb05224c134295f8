"""Online gradient computation for :class:`~rnntk.online.models.seq_model.SeqModel` (spec §2).

Every online rule runs the ordinary forward pass but differentiates the *spatial graph*: each
recurrent layer's state is rebuilt as ``h_t = f(h_{t−1}.detach(), u_t)`` so that backprop
through the loss gives the instantaneous error ``δ_t = ∂L/∂h_t`` along same-time paths only
(PyTorch's complex convention, ``δ = ∂L/∂Re h + i ∂L/∂Im h``). The rules differ in how the
recurrent parameters are credited:

- ``bptt``: autograd through the whole recurrence (LRU: parallel scan).
- ``online_spat``: spatial autograd only (λ / A / GRU hidden weights get zero).
- ``online_truncated``: spatial autograd with the recurrent parameters live (1-step truncation).
- ``online_full`` (LRU): forward sensitivities e^λ, e^γ, E^B carried in time (exact per layer).
- ``online_snap`` (RNN, GRU): SnAp-1 — diagonal sensitivities of each unit to the weights
  feeding it.

One code path serves both execution modes: a sequence is processed in *chunks*; the
*sequence* mode is one chunk of length T (vectorised over time), the *streaming* mode is T
chunks of length 1 (graph freed after each step, state and traces carried: memory constant in
T). Both give the same gradients (oracle O10). No rule forms a (batch, T, N, H) trace in
either mode: the credit of a chunk is a reverse scan of the errors and one matmul per
parameter (online_full on the LRU: ``ChunkLearner._lru_block``; SnAp-1: :func:`_snap_block`).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from rnntk.online.models.lru import linear_scan
from rnntk.online.models.seq_model import SeqModel
from rnntk.online.rules import resolve_rule


def loss_weights(mask: torch.Tensor, batch_size: Optional[int] = None) -> torch.Tensor:
    """Per-step loss weights (batch, T) from a 0/1 mask (batch, T): each sequence's active
    steps share weight 1, divided by the batch size (upstream's normalisation)."""
    b = mask.shape[0] if batch_size is None else batch_size
    return mask / mask.sum(1, keepdim=True).clamp(min=1) / b


def step_losses(logp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per (sequence, step), averaged over the n_out choices:
    logp (batch, T, n_out, K), y (batch, T, n_out) int64 → (batch, T)."""
    return -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(-1)


def _acc(rec: nn.Module, name: str, g: torch.Tensor) -> None:
    p = getattr(rec, name)
    g = g.to(p.dtype)
    p.grad = g.clone() if p.grad is None else p.grad + g


def _nbytes(v: Any) -> int:
    """Bytes of a tensor, or of the tensors in a (nested) tuple or list; 0 for anything else."""
    if isinstance(v, torch.Tensor):
        return v.numel() * v.element_size()
    if isinstance(v, (tuple, list)):
        return sum(_nbytes(x) for x in v)
    return 0


def _carried_EB(c: dict[str, Any]) -> Optional[torch.Tensor]:
    """The online_full B-trace E^B (N, batch, H) carried in ``c``, formed now from what
    ``ChunkLearner._lru_block`` left (E^B_{t0}, λ^k, γ λ^{k−i} (N, k), U (batch, k, H)):
    E^B = λ^k E^B_{t0} + Σ_i γ λ^{k−i} u_i. None before the first block."""
    pend = c.pop("EB_next", None)
    if pend is not None:
        EB, pk, coef, U = pend
        b, k, H = U.shape
        Uk = U.transpose(0, 1).reshape(k, b * H).to(coef.dtype)
        if EB is None:
            EB = (coef @ Uk).view(coef.shape[0], b, H)
        else:
            EB.mul_(pk[:, None, None])
            EB.view(coef.shape[0], b * H).addmm_(coef, Uk)
        c["EB"] = EB
    return c.get("EB")


def _snap_block(
    rec: nn.Module, c: dict[str, Any], d: torch.Tensor, delta: torch.Tensor, items: list[tuple[str, Optional[torch.Tensor], Optional[torch.Tensor]]]
) -> int:
    """SnAp-1 credit of one chunk in closed form, added to ``.grad`` of ``rec``. Each item
    (name, g, v) is a trace J_t = d_t ⊙ J_{t−1} + g_t v_tᵀ (rows n, (batch, N, M); v None: the
    bias trace (batch, N); g None: ones) credited with Σ_t δ_t ⊙ J_t. With
    W_s = Σ_{t≥s} δ_t Π_{s<r≤t} d_r (one reverse time-varying scan over (batch, T, N), shared by
    all items) the credit is Σ_{b,s} (W_s ⊙ g_s) v_sᵀ (one matmul) plus Σ_b (W_1 ⊙ d_1) ⊙ J_0 for
    the carried J_0 = ``c[name]``, which is then advanced to
    J ← (Π_r d_r) J_0 + Σ_s (Π_{r>s} d_r ⊙ g_s) v_sᵀ (one batched matmul): the
    (batch, T, N, M) traces are never formed. d, delta, g: (batch, T, N); v: (batch, T, M).
    Returns the bytes of the tensors it formed and carries."""
    with torch.no_grad():
        b, T, N = d.shape
        d_next = torch.cat([d[:, 1:], torch.ones_like(d[:, :1])], 1)  # d_{s+1} (1 past the end)
        W = linear_scan(d_next.flip(1), delta.flip(1), time_varying=True).flip(1)  # W_s = δ_s + d_{s+1} W_{s+1}
        P = torch.cumprod(d_next.flip(1), 1).flip(1)  # Π_{r>s} d_r
        D0 = W[:, 0] * d[:, 0]  # Σ_t δ_t Π_{r≤t} d_r: the weight of J_0
        Ptot = P[:, 0] * d[:, 0]  # Π_r d_r
        nbytes = sum(_nbytes(t) for t in (W, P))
        for name, g, v in items:
            Wg = W if g is None else W * g
            Pg = P if g is None else P * g
            J0 = c.get(name)
            if v is None:
                G = Wg.sum((0, 1))
                J = Pg.sum(1)
                if J0 is not None:
                    G = G + (D0 * J0).sum(0)
                    J = J + Ptot * J0
            else:
                v = v.detach()
                G = Wg.reshape(b * T, N).transpose(0, 1) @ v.reshape(b * T, -1)
                J = torch.bmm(Pg.transpose(1, 2), v)
                if J0 is not None:
                    G = G + torch.einsum("bn,bnm->nm", D0, J0)
                    J = J + Ptot.unsqueeze(-1) * J0
            _acc(rec, name, G)
            c[name] = J
            nbytes += _nbytes(J)
        return nbytes


class ChunkLearner:
    """Processes one batch of sequences chunk by chunk, accumulating ``.grad`` of ``model``.

    ``start(batch)`` resets states and traces; ``chunk(x, y, w)`` with x (batch, Tc, d_in),
    y (batch, Tc, n_out) int64 and loss weights w (batch, Tc) runs the forward pass, the
    backward pass of ``Σ w·ℓ`` and the rule's trace updates, and returns (loss, log-probs)."""

    lru_block = 16  # online_full streaming: one-step chunks folded into the LRU traces at once (see _lru_block)

    def __init__(self, model: SeqModel, rule: str) -> None:
        self.model = model
        self.recs = model.recs
        self.rule = resolve_rule(rule, model.arch)
        self.trace_bytes = 0  # bytes of trace tensors formed in the last chunk (memory reports)
        self._records: list = []
        self.pend: list[list] = [[] for _ in self.recs]
        self._dq: dict = {}
        self._nq = 0

    def start(self, batch: int, masks: Optional[list] = None) -> None:
        p = next(self.model.parameters())
        for rec in self.model.recs:
            if hasattr(rec, "clear_frozen"):
                rec.clear_frozen()
        self.h = [rec.zero_state(batch, p.device, p.dtype) for rec in self.model.recs]
        self.carry: list[dict[str, torch.Tensor]] = [{} for _ in self.model.recs]
        self.pend: list[list] = [[] for _ in self.model.recs]  # online_full one-step chunks not yet folded into the traces
        self.pool_carry: Any = None
        self.masks = masks or [None] * len(self.model.layers)
        self.t = 0
        self._dq: dict = {}  # deferred weight gradients of the streaming fast path (see _fast_step)
        self._nq = 0

    def state_bytes(self) -> int:
        """Bytes of everything carried between chunks (states, traces, pooling sum)."""
        n = _nbytes(self.h) + _nbytes(self.pend)
        n += sum(_nbytes(v) for c in self.carry for v in c.values())
        n += sum(v.numel() * v.element_size() for _, items in self._dq.values() for step in items for v in step)
        if self.pool_carry is not None:
            n += self.pool_carry[0].numel() * self.pool_carry[0].element_size()
        return n

    # -- the spatial graph of one recurrent layer ------------------------------------
    def _spatial(self, rec: nn.Module, u: torch.Tensor, h_prev: torch.Tensor) -> tuple[torch.Tensor, Any]:
        r = self.rule
        if rec.kind == "lru":
            lam = rec.lam()
            if r == "online_truncated":
                return lam * h_prev + rec.drive(u), None
            if r == "online_spat":
                return lam.detach() * h_prev + rec.drive(u), None
            return lam.detach() * h_prev + rec.drive(u, detach_params=True), None
        if rec.kind == "rnn":
            if r == "online_truncated":
                return rec.step(u, h_prev), None
            return rec.step(u, h_prev, detach_A=True, detach_B=(r == "online_snap")), None
        if r == "online_truncated":
            return rec.step(u, h_prev)[0], None
        if r == "online_spat":
            return rec.step(u, h_prev, detach=rec.hidden_names)[0], None
        h, parts = rec.step(u, h_prev, detach=rec.rec_names)
        return h, parts

    # -- trace credit after the spatial backward ----------------------------------------
    def _credit(self, l: int, rec: nn.Module, u: torch.Tensor, h_prev: torch.Tensor, delta: torch.Tensor, parts: Any) -> None:
        c = self.carry[l]
        u = u.detach()
        nbytes = 0
        if rec.kind == "lru" and u.shape[1] == 1:
            nbytes = self._credit_lru_step(l, rec, u[:, 0], h_prev[:, 0], delta[:, 0])
        elif rec.kind == "lru":  # a multi-step chunk (sequence mode): the same closed form over the whole chunk
            self._drain(l, rec)
            nbytes = self._lru_block(rec, c, u, h_prev, delta)
        elif rec.kind == "rnn":
            a = torch.diagonal(rec.A.detach()) * rec.drho(h_prev)  # (b, T, N)
            nbytes = _snap_block(rec, c, a, delta, [("A", None, rec.rho(h_prev)), ("B", None, u)])
        else:  # GRU SnAp-1
            P = parts
            r, z, n, Q = P.r.detach(), P.z.detach(), P.n.detach(), P.Q.detach()
            gZ = (n - h_prev) * z * (1 - z)
            gN = z * (1 - n * n)
            gR = gN * Q * r * (1 - r)
            gQ = gN * r
            dg = lambda name: torch.diagonal(getattr(rec, name).detach())  # noqa: E731
            d = (1 - z) + gZ * dg("W_hz") + gQ * dg("W_hn") + gR * dg("W_hr")  # (b, T, N)
            nbytes = _snap_block(
                rec,
                c,
                d,
                delta,
                [
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
                ],
            )
        self.trace_bytes += nbytes

    def layer(self, l: int, rec: nn.Module, u: torch.Tensor, backward: bool = True) -> torch.Tensor:
        """States h (batch, Tc, N) of recurrent layer ``l`` for input u (batch, Tc, H), built
        for the rule (BPTT: through the recurrence; online: spatial graph), carrying state."""
        h0 = self.h[l]
        if self.rule == "bptt":
            h = rec.states(u, h0)
            self.h[l] = h[:, -1].detach()
            return h
        if u.shape[1] == 1 and rec.kind == "lru":
            return self._lru_step(l, rec, u, backward)
        if u.shape[1] == 1:  # one step (streaming): the spatial state is the state itself
            h_prev = h0.unsqueeze(1)
            h, parts = self._spatial(rec, u, h_prev)
            hv = h.detach()
        else:
            with torch.no_grad():
                hv = rec.states(u.detach(), h0)
            h_prev = torch.cat([h0.unsqueeze(1), hv[:, :-1]], 1)
            h, parts = self._spatial(rec, u, h_prev)
        probe = None
        if backward and self.rule in ("online_full", "online_snap"):
            probe = torch.zeros_like(h, requires_grad=True)  # its gradient is δ_t (upstream's trick)
            h = h + probe
        self._records.append((l, rec, probe, u, h_prev, parts))
        self.h[l] = hv[:, -1]
        return h

    def _lru_step(self, l: int, rec: nn.Module, u: torch.Tensor, backward: bool) -> torch.Tensor:
        """One streaming step of an LRU layer on the spatial graph, in real arithmetic: returns
        the real view (batch, 1, 2N) of h_t = λ ⊙ h_{t−1} + γ ⊙ (B u_t) (see ``LRU.drive_weight``).
        Parameters that the rule does not differentiate (λ; γ, B for online_full) come from
        ``LRU.frozen``. For online_full the real view of λ ⊙ h_{t−1} is the probe: its gradient
        is the real view of δ_t."""
        r, h0 = self.rule, self.h[l]
        b, N = h0.shape
        lam = rec.lam() if r == "online_truncated" else rec.frozen("lam")
        ph = torch.view_as_real(lam * h0).view(b, 2 * N)
        full = r in ("online_full", "online_snap")
        Wd = rec.frozen("drive_weight") if full or not torch.is_grad_enabled() else rec.drive_weight()
        probe = None
        if full and backward:
            probe = ph.requires_grad_()
        h = torch.addmm(ph, u.reshape(b, -1), Wd)
        self._records.append((l, rec, probe, u, h0.unsqueeze(1), None))
        self.h[l] = torch.view_as_complex(h.detach().view(b, N, 2))
        return h.view(b, 1, 2 * N)

    def credit(self) -> None:
        """After ``loss.backward()``: add the trace-based gradients (online_full, online_snap)."""
        if self.rule in ("online_full", "online_snap"):
            for l, rec, probe, u, h_prev, parts in self._records:
                delta = probe.grad if probe.grad is not None else torch.zeros_like(probe)
                if rec.kind == "lru" and not delta.is_complex():  # real view (batch, 2N) from _lru_step
                    delta = torch.view_as_complex(delta.view(delta.shape[0], 1, -1, 2))
                self._credit(l, rec, u, h_prev, delta, parts)
        self._records = []

    def _credit_lru_step(self, l: int, rec: nn.Module, u: torch.Tensor, hp: torch.Tensor, d: torch.Tensor) -> int:
        """online_full for one time step (streaming). The step's u (batch, H), h_{t−1} = hp
        (batch, N) and δ_t = d (batch, N) are queued; every ``lru_block`` steps (and at
        :meth:`flush`) :meth:`_lru_block` advances the traces over the queued steps at once.
        Returns the bytes of the traces carried (e^λ, e^γ, E^B)."""
        q = self.pend[l]
        q.append((u, hp, d))
        if len(q) >= self.lru_block:
            self._drain(l, rec)
        b, N, H = u.shape[0], hp.shape[1], u.shape[1]
        return b * N * (H + 2) * hp.element_size()

    def _drain(self, l: int, rec: nn.Module) -> None:
        q = self.pend[l]
        if q:
            U, Hp, Dl = (torch.stack(v, 1) for v in zip(*q))
            self.pend[l] = []
            self._lru_block(rec, self.carry[l], U, Hp, Dl)

    @staticmethod
    def _lru_block(rec: nn.Module, c: dict[str, Any], U: torch.Tensor, Hp: torch.Tensor, Dl: torch.Tensor) -> int:
        """online_full over k steps in closed form (λ, γ, B fixed over them): k queued one-step
        chunks (streaming) or one k-step chunk (sequence mode, k = T). U (batch, k, H) inputs,
        Hp (batch, k, N) h_{t−1}, Dl (batch, k, N) δ_t. With
        E^B_{t0+j} = λ^j E^B_{t0} + γ Σ_{i≤j} λ^{j−i} u_i, the sum Σ_j Σ_b conj(δ_j) E^B_j is
        Σ_b (Σ_j conj(δ_j) λ^j) E^B_{t0} (one batched matmul over the carried trace) plus
        γ Σ_{b,i} W_i u_iᵀ with W_i = Σ_{j≥i} conj(δ_j) λ^{j−i} (a reverse scan over (batch, k, N),
        then one matmul); e^λ, e^γ likewise with Σ_i W_i ⊙ h_{i−1} and Σ_i W_i ⊙ B u_i. The
        (batch, k, N, H) trace is never formed. The carried trace E^B ← λ^k E^B + γ Σ_i λ^{k−i} u_i
        (N, batch, H) is formed only when a later block needs it (:func:`_carried_EB`), so a
        single-chunk sequence never builds it. Sums go to ``c["G_lam"|"G_gam"|"G_Bc"]``
        (see :meth:`flush`). Returns the bytes of the tensors it formed and carries."""
        with torch.no_grad():
            lam, gam = rec.frozen("lam"), rec.frozen("gamma")
            b, k, H = U.shape
            N = lam.shape[0]
            U = U.to(gam.dtype)
            BU = torch.view_as_complex((U.reshape(b * k, H) @ rec.frozen("B_weight")).view(b, k, N, 2))  # B u_i
            Pw = torch.cumprod(torch.cat([torch.ones_like(lam[None]), lam.expand(k, N)]), 0)  # Pw[j] = λ^j, j = 0..k
            Pr = Pw[:k].flip(0)  # λ^{k−i}, i = 1..k
            W = linear_scan(lam, Dl.conj().flip(1)).flip(1)  # W_i = Σ_{j≥i} conj(δ_j) λ^{j−i}
            Dp = lam * W[:, 0]  # Σ_j conj(δ_j) λ^j, (b, N)

            def csum(z: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:  # complex sum via the real view
                return torch.view_as_complex(torch.view_as_real(z).sum(dims))

            def advance(name: str, x: torch.Tensor) -> torch.Tensor:
                # Σ_j conj(δ_j) e_j = Dp e_0 + Σ_i W_i x_i; e_k = λ^k e_0 + Σ_i λ^{k−i} x_i
                e0 = c.get(name)
                s = csum(W * x, (0, 1))
                ek = csum(x * Pr, (1,))
                if e0 is not None:
                    s = s + csum(Dp * e0, (0,))
                    ek = ek + Pw[k] * e0
                c[name] = ek
                return s

            G_lam = advance("eL", Hp).conj()
            G_gam = advance("eG", BU).real
            R = torch.view_as_real(W).reshape(b * k, 2 * N).transpose(0, 1) @ U.reshape(b * k, H)  # (2N, H)
            G_B = R.view(N, 2, H).mul_(gam[:, None, None])  # (Re, Im) of Σ_b Σ_j conj(δ_j) E^B_j = conj(G_B), (N, 2, H)
            EB = _carried_EB(c)
            if EB is not None:
                R = torch.bmm(torch.view_as_real(Dp).permute(1, 2, 0), torch.view_as_real(EB).view(N, b, 2 * H)).view(N, 2, H, 2)
                G_B[:, 0] += R[:, 0, :, 0] - R[:, 1, :, 1]
                G_B[:, 1] += R[:, 0, :, 1] + R[:, 1, :, 0]
            c.pop("EB", None)
            c["EB_next"] = (EB, Pw[k], gam[:, None] * Pr.transpose(0, 1), U)  # E^B after the block, formed on demand
            if "G_lam" in c:
                c["G_lam"].add_(G_lam), c["G_gam"].add_(G_gam), c["G_Bc"].add_(G_B)
            else:
                c.update(G_lam=G_lam, G_gam=G_gam, G_Bc=G_B)
            return sum(_nbytes(t) for t in (W, BU, Pw, c["eL"], c["eG"], EB))

    def flush(self) -> None:
        """Turn the pending online_full sums of one-step chunks into ``.grad`` (exact as long
        as the parameters did not change since they were accumulated)."""
        self._fold()
        for l, rec in enumerate(self.recs):
            self._drain(l, rec)
            c = self.carry[l]
            if "G_lam" not in c:
                continue
            G_lam, G_gam, G_Bc = c.pop("G_lam"), c.pop("G_gam"), c.pop("G_Bc")
            g_nu, g_th = torch.autograd.grad(rec.lam(), [rec.nu_log, rec.theta_log], grad_outputs=G_lam)
            _acc(rec, "nu_log", g_nu)
            _acc(rec, "theta_log", g_th)
            _acc(rec, "gamma_log", rec.gamma().detach() * G_gam)
            _acc(rec, "B_re", G_Bc[:, 0])
            _acc(rec, "B_im", -G_Bc[:, 1])

    # -- streaming fast path (online_full on an LRU stack, one-step chunks) ---------------
    def _fast_ok(self) -> bool:
        m = self.model
        return self.rule == "online_full" and m.arch == "lru" and m.pooling in ("none", "last", "pool_st") and torch.is_grad_enabled()

    def _defer(self, kind: str, mod: nn.Module, *tensors: torch.Tensor) -> None:
        ent = self._dq.get(mod)
        if ent is None:
            self._dq[mod] = (kind, [tensors])
        else:
            ent[1].append(tensors)

    def _fold(self) -> None:
        """Add the deferred weight gradients of the fast path's queued steps to ``.grad``: per
        layer one matmul over the stacked (steps·batch) rows, dW = Σ_t δ_tᵀ x_t."""
        dq, self._dq, self._nq = self._dq, {}, 0
        for mod, (kind, items) in dq.items():
            cols = [v[0] if len(v) == 1 else torch.cat(v, 0) for v in zip(*items)]
            if kind == "lin":
                X, G = cols
                _acc(mod, "weight", G.transpose(0, 1) @ X)
                if mod.bias is not None:
                    _acc(mod, "bias", G.sum(0))
            elif kind == "ro":  # LRU readout y = h W + D ⊙ u, W = readout_weight (2N, H): ∂/∂(C_re, −C_im)
                Hr, U, G = cols
                gW = (G.transpose(0, 1) @ Hr).view(G.shape[1], -1, 2)
                _acc(mod, "C_re", gW[..., 0])
                _acc(mod, "C_im", -gW[..., 1])
                _acc(mod, "D", (G * U).sum(0))
            else:  # LayerNorm
                Z, M, R, G = cols
                _, gw, gb = torch.ops.aten.native_layer_norm_backward(
                    G, Z, mod.normalized_shape, M, R, mod.weight, mod.bias, [False, mod.weight is not None, mod.bias is not None]
                )
                if gw is not None:
                    _acc(mod, "weight", gw)
                if gb is not None:
                    _acc(mod, "bias", gb)

    @staticmethod
    def _ln(mod: nn.Module, z: torch.Tensor) -> tuple:
        return torch.native_layer_norm(z, mod.normalized_shape, mod.weight, mod.bias, mod.eps)

    def _ln_back(self, mod: nn.Module, g: torch.Tensor, z: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor) -> torch.Tensor:
        self._defer("ln", mod, z, mean, rstd, g)
        return torch.ops.aten.native_layer_norm_backward(g, z, mod.normalized_shape, mean, rstd, mod.weight, mod.bias, [True, False, False])[0]

    def _lin_back(self, mod: nn.Module, x: torch.Tensor, g: torch.Tensor, need_input: bool = True) -> Optional[torch.Tensor]:
        self._defer("lin", mod, x, g)
        return g @ mod.weight if need_input else None

    def _fast_step(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One streaming step of online_full without autograd: the forward pass of
        :meth:`chunk` (same operations) with the activations kept, then the backward pass by
        hand through the non-recurrent parts (decoder, GLU/MLP, readout, LayerNorm, encoder).
        Only input cotangents are formed per step; the weight gradients of the linear maps,
        the LRU readout and the LayerNorms are queued and added to ``.grad`` every
        ``lru_block`` steps as one matmul over the stacked steps (:meth:`_fold`), like the LRU
        traces (:meth:`_lru_block`). δ_t of each LRU layer goes to :meth:`_credit_lru_step`."""
        m = self.model
        b = x.shape[0]
        acts = []
        with torch.no_grad():
            x2 = x.reshape(b, -1).clone()
            enc = m.encoder
            z = torch.addmm(enc.bias, x2, enc.weight.t()) if enc.bias is not None else x2 @ enc.weight.t()
            for l, lay in enumerate(m.layers):
                rec = lay.rec
                mk = self.masks[l]
                m1, m2 = (None, None) if mk is None else (mk[0].reshape(b, -1), mk[1].reshape(b, -1))
                zin = z
                ln_pre = None
                if lay.norm_kind == "pre":
                    u, mean, rstd = self._ln(lay.norm, zin)
                    ln_pre = (mean, rstd)
                else:
                    u = zin
                h0 = self.h[l]
                N = h0.shape[1]
                ph = torch.view_as_real(rec.frozen("lam") * h0).view(b, 2 * N)
                Wd = rec.frozen("drive_weight")
                hr = torch.addmm(ph, u, Wd)
                Wc = rec.frozen("readout_weight")
                yr = torch.addmm(rec.D * u, hr, Wc)
                a = lay.activation
                sv: tuple = ()
                if a == "none":
                    zz = yr
                elif a == "gelu":
                    g = F.gelu(yr, approximate="tanh")
                    zz = g if m1 is None else g * m1
                else:
                    g = F.gelu(yr, approximate="tanh")
                    if m1 is not None:
                        g = g * m1
                    s = torch.sigmoid(F.linear(g, lay.out2.weight, lay.out2.bias))
                    if a == "full_glu":
                        a1 = F.linear(g, lay.out1.weight, lay.out1.bias)
                        zz = a1 * s
                    elif a == "half_glu1":
                        a1 = g
                        zz = g * s
                    else:
                        a1 = yr
                        zz = yr * s
                    if m2 is not None:
                        zz = zz * m2
                    sv = (g, a1, s)
                out = zin + zz
                ln_post = None
                if lay.norm_kind == "post":
                    pre_out = out
                    out, mean2, rstd2 = self._ln(lay.norm, pre_out)
                    ln_post = (pre_out, mean2, rstd2)
                acts.append((zin, u, ln_pre, h0, hr, Wd, Wc, yr, m1, m2, sv, ln_post))
                self.h[l] = torch.view_as_complex(hr.view(b, N, 2))
                z = out
            if m.pooling == "pool_st":
                z3, self.pool_carry = m.pool(z.unsqueeze(1), self.pool_carry)
                zp = z3[:, 0]
            else:
                zp = z
                self.pool_carry = (z, 0.0)
            zr = zp
            if m.readout is not None:
                zr = torch.relu(F.linear(zp, m.readout.weight, m.readout.bias))
            dec = m.decoder
            logits = F.linear(zr, dec.weight, dec.bias)
            K = m.n_classes
            no = logits.shape[1] // K
            logp = torch.log_softmax(logits.view(b, no, K), -1)
            loss = (w * step_losses(logp.unsqueeze(1), y)).sum()
            yi, wb = y.reshape(b, no, 1), w.reshape(b, 1)

            # backward: loss = Σ_b w_b · mean_j(−logp[b, j, y_bj]) → ∂/∂logits = (w_b / n_out)(softmax − onehot)
            c = (wb / no).to(logp.dtype).view(b, 1, 1)
            dl = torch.exp(logp).mul_(c)
            dl.scatter_add_(-1, yi, (-c).expand(b, no, 1))
            dl = dl.view(b, no * K)
            dz = self._lin_back(dec, zr, dl)
            if m.readout is not None:
                dz = torch.ops.aten.threshold_backward(dz, zr, 0)
                dz = self._lin_back(m.readout, zp, dz)
            # pool_st: identity in the backward pass
            for l in range(len(m.layers) - 1, -1, -1):
                lay = m.layers[l]
                rec = lay.rec
                zin, u, ln_pre, h0, hr, Wd, Wc, yr, m1, m2, sv, ln_post = acts[l]
                if ln_post is not None:
                    dz = self._ln_back(lay.norm, dz, *ln_post)
                a = lay.activation
                if a == "none":
                    dy = dz
                elif a == "gelu":
                    dy = torch.ops.aten.gelu_backward(dz if m1 is None else dz * m1, yr, approximate="tanh")
                else:
                    dzz = dz if m2 is None else dz * m2
                    g, a1, s = sv
                    da2 = torch.ops.aten.sigmoid_backward(dzz * a1, s)
                    if a == "full_glu":
                        dg = self._lin_back(lay.out1, g, dzz * s)
                        self._defer("lin", lay.out2, g, da2)
                        dg = dg.addmm_(da2, lay.out2.weight)
                    elif a == "half_glu1":
                        dg = torch.addmm(dzz * s, da2, lay.out2.weight)
                        self._defer("lin", lay.out2, g, da2)
                    else:
                        dg = self._lin_back(lay.out2, g, da2)
                    if m1 is not None:
                        dg = dg * m1
                    dy = torch.ops.aten.gelu_backward(dg, yr, approximate="tanh")
                    if a == "half_glu2":
                        dy = dy + dzz * s
                self._defer("ro", rec, hr, u, dy)
                dh = dy @ Wc.t()  # δ_t (real view)
                du = torch.addmm(dy * rec.D, dh, Wd.t())
                N = h0.shape[1]
                self.trace_bytes += self._credit_lru_step(l, rec, u, h0, torch.view_as_complex(dh.view(b, N, 2)))
                if ln_pre is not None:
                    du = self._ln_back(lay.norm, du, zin, *ln_pre)
                dz = dz + du
            self._defer("lin", m.encoder, x2, dz)
            self._nq += 1
            if self._nq >= self.lru_block:
                self._fold()
        return loss, logp.unsqueeze(1)

    def chunk(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, backward: bool = True, flush: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk (see class doc). Returns (loss of the chunk (scalar, detached), log-probs).
        ``flush=False`` leaves online_full's one-step sums pending (call :meth:`flush`)."""
        m = self.model
        self.trace_bytes = 0
        self._records = []
        if backward and x.shape[1] == 1 and self._fast_ok():
            loss, logp = self._fast_step(x, y, w)
            self.t += 1
            if flush:
                self.flush()
            return loss, logp
        z = m.encoder(x)
        for l, lay in enumerate(m.layers):
            u = lay.pre(z)
            h = self.layer(l, lay.rec, u, backward)
            z = lay.post(z, lay.rec.readout(h, u), self.masks[l])
        z, self.pool_carry = m.pool(z, self.pool_carry)
        logp = m.decode(z)
        loss = (w * step_losses(logp, y)).sum()
        if backward:
            loss.backward()
            self.credit()
            if flush:
                self.flush()
        self.t += x.shape[1]
        return loss.detach(), logp.detach()


def layer_gradients(rec: nn.Module, u: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor], rule: str) -> torch.Tensor:
    """One recurrent layer alone: accumulate ``rule``'s gradient of ``loss_fn(y)`` into the
    layer's ``.grad`` (y = the layer's output (batch, T, H) for input u (batch, T, H); the
    loss must read y only through same-time paths, e.g. a sum of per-step losses).
    Returns the loss."""
    lrn = ChunkLearner.__new__(ChunkLearner)
    lrn.model, lrn.recs, lrn.rule, lrn.trace_bytes, lrn._records = None, [rec], resolve_rule(rule, rec.kind), 0, []
    lrn.h = [rec.zero_state(u.shape[0], u.device, u.dtype)]
    lrn.carry, lrn.pend, lrn._dq, lrn._nq = [{}], [[]], {}, 0
    h = lrn.layer(0, rec, u)
    loss = loss_fn(rec.readout(h, u))
    loss.backward()
    lrn.credit()
    lrn.flush()
    return loss.detach()


def online_gradients(
    model: SeqModel,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    rule: str,
    exec: str = "sequence",
    masks: Optional[list] = None,
    weights: Optional[torch.Tensor] = None,
    check: Optional[Callable[[], None]] = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Accumulate the gradient estimate of ``rule`` into ``.grad`` of ``model``'s parameters.

    x: (batch, T, d_in); y: (batch, T, n_out) int64 targets (dense labels); mask: (batch, T)
    0/1 loss mask (ignored when ``weights`` (batch, T) is given). ``exec``: ``sequence`` (one
    vectorised pass) or ``streaming`` (one step at a time, constant memory). With pooling
    ``pool`` the model makes one prediction per sequence from y[:, -1] (sequence mode only).
    masks: dropout masks from ``model.sample_masks``. check: called before every streamed step
    (a run's interrupt check; it may raise to stop). Returns (loss, {"logp": log-probs}).
    """
    if exec not in ("sequence", "streaming"):
        raise ValueError(f"unknown exec '{exec}' (sequence, streaming)")
    learner = ChunkLearner(model, rule)
    w = loss_weights(mask) if weights is None else weights
    if model.pooling == "pool":
        if exec == "streaming":
            raise ValueError("pooling 'pool' makes the error exist only at the end of the sequence; it cannot stream (use pool_st or sequence mode)")
        y, w = y[:, -1:], torch.full_like(w[:, -1:], 1.0 / x.shape[0])
    if exec == "streaming" and learner.rule == "bptt":
        raise ValueError("bptt cannot stream: it needs the whole sequence (use exec='sequence')")
    learner.start(x.shape[0], masks)
    if exec == "sequence":
        loss, logp = learner.chunk(x, y, w)
        return loss, {"logp": logp}
    total = torch.zeros((), dtype=x.dtype, device=x.device)
    outs = []
    for t in range(x.shape[1]):
        if check is not None:
            check()
        lt, lp = learner.chunk(x[:, t : t + 1], y[:, t : t + 1], w[:, t : t + 1], flush=(t == x.shape[1] - 1))
        total = total + lt
        outs.append(lp)
    return total, {"logp": torch.cat(outs, 1)}


class StreamingLearner:
    """Step-by-step online learning: ``step(x_t, y_t, w_t)`` per time step, ``finish()`` at
    the end of the sequences (``.grad`` is complete after ``finish()`` or an update). Memory is
    constant in the number of steps.

    x_t: (batch, d_in); y_t: (batch, n_out) int64; w_t: (batch,) loss weight of this step
    (0 = not scored; :func:`loss_weights` gives upstream's normalisation from a full mask).
    With ``optimizer`` and ``update_every = K > 0`` the parameters are updated every K steps
    (extension, not upstream); otherwise gradients accumulate until the caller steps."""

    def __init__(
        self, model: SeqModel, rule: str, optimizer: Optional[torch.optim.Optimizer] = None, update_every: int = 0, masks: Optional[list] = None
    ) -> None:
        if model.pooling == "pool":
            raise ValueError("pooling 'pool' cannot stream (use pool_st)")
        self.learner = ChunkLearner(model, rule)
        if self.learner.rule == "bptt":
            raise ValueError("bptt cannot stream: it needs the whole sequence")
        self.optimizer, self.update_every, self.masks = optimizer, int(update_every), masks
        self.loss = 0.0
        self.started = False

    def step(self, x_t: torch.Tensor, y_t: torch.Tensor, w_t: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Process one time step; returns (weighted loss of the step, log-probs (batch, n_out, K))."""
        if not self.started:
            self.learner.start(x_t.shape[0], self.masks)
            self.started = True
        lt, lp = self.learner.chunk(x_t.unsqueeze(1), y_t.unsqueeze(1), w_t.unsqueeze(1), flush=False)
        self.loss += float(lt)
        if self.optimizer is not None and self.update_every and self.learner.t % self.update_every == 0:
            self.learner.flush()
            self.optimizer.step()
            self.optimizer.zero_grad()
        return float(lt), lp[:, 0]

    def finish(self) -> float:
        """End of the sequences: a pending update is applied (with an optimizer), states reset.
        Returns the summed weighted loss."""
        self.learner.flush()
        if self.optimizer is not None and self.update_every and self.learner.t % self.update_every:
            self.optimizer.step()
            self.optimizer.zero_grad()
        out, self.loss, self.started = self.loss, 0.0, False
        return out
