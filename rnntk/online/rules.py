"""Learning rules of the online slice (spec §2, §7): one class per rule, chosen by name.

:class:`~rnntk.online.learner.ChunkLearner` runs the forward pass of a chunk and one backward
pass of its loss; a :class:`Rule` says how each recurrent layer takes part:

- ``spatial``: the layer's states are rebuilt on the *spatial graph*
  ``h_t = f(h_{t−1}.detach(), u_t)`` (every online rule) or differentiated through the
  recurrence (BPTT);
- ``freeze_recurrent`` / ``freeze_input``: which of the layer's parameters the spatial graph
  holds constant (the layers implement it: ``spatial``, ``affine_step``);
- ``traced``: the instantaneous error δ_t = ∂L/∂h_t is probed and, after the backward pass,
  :meth:`Rule.credit` adds the rule's trace-based gradient to ``.grad`` (state carried between
  chunks in a per-layer dict), :meth:`Rule.flush` finishes pending sums;
- ``streams``: whether the rule can run one step at a time (BPTT cannot).

Names: :data:`RULE_CLASSES` maps each rnntk name to its class, :data:`ALIASES` the upstream
spellings; :func:`make_rule` returns the rule object for a name (or checks an object) and an
architecture. On the LRU ``online_snap`` is ``online_full`` (SnAp-1 of a diagonal recurrence is
exact).
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional, Union

import torch
from torch import nn

from rnntk.online.models.lru import linear_scan
from rnntk.online.models.rnns import SnapItem
from rnntk.online.models.seq_model import ARCHS


def _acc(rec: nn.Module, name: str, g: torch.Tensor) -> None:
    """Add ``g`` to ``.grad`` of parameter ``name`` of ``rec`` (cast to its dtype)."""
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


class Rule:
    """What a learning rule provides to :class:`~rnntk.online.learner.ChunkLearner` (see the
    module doc). Subclasses set the class attributes and override :meth:`credit` /
    :meth:`flush` when they carry traces. ``c`` is the rule's state of one layer, carried
    between the chunks of a batch (an empty dict at ``start``)."""

    name: ClassVar[str] = ""
    fits: ClassVar[tuple[str, ...]] = ()  # architectures (layer kinds) the rule applies to
    exact_as: ClassVar[dict[str, str]] = {}  # arch -> the rule that this one equals there
    spatial: ClassVar[bool] = True
    freeze_recurrent: ClassVar[bool] = False
    freeze_input: ClassVar[bool] = False
    traced: ClassVar[bool] = False
    streams: ClassVar[bool] = True
    fast_path: ClassVar[bool] = False  # one-step chunks may use :mod:`rnntk.online.streaming_backward`

    def credit(self, c: dict[str, Any], rec: nn.Module, u: torch.Tensor, h_prev: torch.Tensor, delta: torch.Tensor, parts: Any) -> int:
        """After the backward pass of a chunk: add the trace-based gradient of layer ``rec`` to
        ``.grad`` and advance its traces in ``c``. u (batch, Tc, H) detached inputs, h_prev
        (batch, Tc, N) previous states, delta (batch, Tc, N) δ_t, parts: the layer's
        intermediates from ``spatial``. Returns the bytes of the tensors formed and carried
        (the rule's memory report). Default: no traces."""
        return 0

    def credit_step(self, c: dict[str, Any], rec: nn.Module, u: torch.Tensor, h_prev: torch.Tensor, delta: torch.Tensor) -> int:
        """:meth:`credit` of one time step: u (batch, H), h_prev and delta (batch, N)."""
        return self.credit(c, rec, u.unsqueeze(1), h_prev.unsqueeze(1), delta.unsqueeze(1), None)

    def flush(self, c: dict[str, Any], rec: nn.Module) -> None:
        """Add sums still pending in ``c`` to ``.grad`` (exact while the parameters are unchanged)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class BPTT(Rule):
    """Autograd through the whole recurrence (LRU: parallel scan); needs the whole sequence."""

    name = "bptt"
    fits = ("lru", "rnn", "gru")
    spatial = False
    streams = False


class OnlineTruncated(Rule):
    """Spatial autograd with the recurrent parameters live (1-step truncation)."""

    name = "online_truncated"
    fits = ("lru", "rnn", "gru")


class OnlineSpat(Rule):
    """Spatial autograd only: the recurrent parameters (λ / A / the GRU's hidden weights) get zero."""

    name = "online_spat"
    fits = ("lru", "rnn", "gru")
    freeze_recurrent = True


def snap_block(rec: nn.Module, c: dict[str, Any], d: torch.Tensor, delta: torch.Tensor, items: list[SnapItem]) -> int:
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


class OnlineSnap(Rule):
    """SnAp-1 (RNN, GRU): diagonal sensitivities of each unit to the weights feeding it,
    credited in closed form (:func:`snap_block`); the layer gives its decays and trace items
    (``snap1_terms``). On the LRU it is :class:`OnlineFull`."""

    name = "online_snap"
    fits = ("lru", "rnn", "gru")
    exact_as = {"lru": "online_full"}
    freeze_recurrent = True
    freeze_input = True
    traced = True

    def credit(self, c: dict[str, Any], rec: nn.Module, u: torch.Tensor, h_prev: torch.Tensor, delta: torch.Tensor, parts: Any) -> int:
        d, items = rec.snap1_terms(u, h_prev, parts)  # type: ignore[operator]
        return snap_block(rec, c, d, delta, items)


def _carried_EB(c: dict[str, Any]) -> Optional[torch.Tensor]:
    """The online_full B-trace E^B (N, batch, H) carried in ``c``, formed now from what
    :func:`lru_block` left (E^B_{t0}, λ^k, γ λ^{k−i} (N, k), U (batch, k, H)):
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


def lru_block(rec: nn.Module, c: dict[str, Any], U: torch.Tensor, Hp: torch.Tensor, Dl: torch.Tensor) -> int:
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
    (see :meth:`OnlineFull.flush`). Returns the bytes of the tensors it formed and carries."""
    with torch.no_grad():
        lam, gam = rec.frozen("lam"), rec.frozen("gamma")  # type: ignore[operator]
        b, k, H = U.shape
        N = lam.shape[0]
        U = U.to(gam.dtype)
        BU = torch.view_as_complex((U.reshape(b * k, H) @ rec.frozen("B_weight")).view(b, k, N, 2))  # type: ignore[operator]  # B u_i
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
            c["G_lam"].add_(G_lam)
            c["G_gam"].add_(G_gam)
            c["G_Bc"].add_(G_B)
        else:
            c.update(G_lam=G_lam, G_gam=G_gam, G_Bc=G_B)
        return sum(_nbytes(t) for t in (W, BU, Pw, c["eL"], c["eG"], EB))


class OnlineFull(Rule):
    """LRU: forward sensitivities e^λ, e^γ, E^B carried in time (exact per layer), credited in
    closed form over blocks of steps (:func:`lru_block`). One-step chunks are queued and folded
    ``block`` at a time; :meth:`flush` folds the rest and writes ``.grad``."""

    name = "online_full"
    fits = ("lru",)
    freeze_recurrent = True
    freeze_input = True
    traced = True
    fast_path = True
    block: int = 16  # streaming: one-step chunks folded into the traces at once

    def credit(self, c: dict[str, Any], rec: nn.Module, u: torch.Tensor, h_prev: torch.Tensor, delta: torch.Tensor, parts: Any) -> int:
        if u.shape[1] == 1:
            return self.credit_step(c, rec, u[:, 0], h_prev[:, 0], delta[:, 0])
        self._drain(c, rec)  # a multi-step chunk (sequence mode): the same closed form over the whole chunk
        return lru_block(rec, c, u, h_prev, delta)

    def credit_step(self, c: dict[str, Any], rec: nn.Module, u: torch.Tensor, h_prev: torch.Tensor, delta: torch.Tensor) -> int:
        """One time step (streaming): u (batch, H), h_{t−1} (batch, N) and δ_t (batch, N) are
        queued in ``c["pend"]``; every ``block`` steps (and at :meth:`flush`) :func:`lru_block`
        advances the traces over the queued steps at once. Returns the bytes of the traces
        carried (e^λ, e^γ, E^B)."""
        q = c.setdefault("pend", [])
        q.append((u, h_prev, delta))
        if len(q) >= self.block:
            self._drain(c, rec)
        b, N, H = u.shape[0], h_prev.shape[1], u.shape[1]
        return b * N * (H + 2) * h_prev.element_size()

    @staticmethod
    def _drain(c: dict[str, Any], rec: nn.Module) -> None:
        q = c.get("pend")
        if q:
            U, Hp, Dl = (torch.stack(v, 1) for v in zip(*q))
            c["pend"] = []
            lru_block(rec, c, U, Hp, Dl)

    def flush(self, c: dict[str, Any], rec: nn.Module) -> None:
        self._drain(c, rec)
        if "G_lam" not in c:
            return
        G_lam, G_gam, G_Bc = c.pop("G_lam"), c.pop("G_gam"), c.pop("G_Bc")
        g_nu, g_th = torch.autograd.grad(rec.lam(), [rec.nu_log, rec.theta_log], grad_outputs=G_lam)  # type: ignore[operator]
        _acc(rec, "nu_log", g_nu)
        _acc(rec, "theta_log", g_th)
        _acc(rec, "gamma_log", rec.gamma().detach() * G_gam)  # type: ignore[operator]
        _acc(rec, "B_re", G_Bc[:, 0])
        _acc(rec, "B_im", -G_Bc[:, 1])


RULE_CLASSES: dict[str, type[Rule]] = {c.name: c for c in (OnlineFull, OnlineSnap, OnlineTruncated, OnlineSpat, BPTT)}
RULES = tuple(RULE_CLASSES)
ALIASES = {
    "online_spatial": "online_spat",
    "online_1truncated": "online_truncated",
    "online_snap1": "online_snap",
    "spatial": "online_spat",
    "truncated": "online_truncated",
    "full": "online_full",
    "snap": "online_snap",
    "snap1": "online_snap",
}
# per architecture, the rules that apply: BPTT first, then the online rules in RULES order
FITS = {a: tuple(sorted((n for n, c in RULE_CLASSES.items() if a in c.fits), key=lambda n: RULE_CLASSES[n].spatial)) for a in ARCHS}


def canonical_rule(rule: str) -> str:
    """The rnntk name of ``rule`` (upstream spellings accepted); ValueError if unknown."""
    r = ALIASES.get(rule, rule)
    if r not in RULE_CLASSES:
        raise ValueError(
            f"unknown rule '{rule}' (choose one of {', '.join(RULES)}; upstream spellings "
            f"{', '.join(k for k in ALIASES if k.startswith('online'))} are accepted)"
        )
    return r


def resolve_rule(rule: str, arch: str) -> str:
    """The name of the rule the learner runs for ``arch``: on the LRU, ``online_snap`` is
    ``online_full`` (SnAp-1 of a diagonal recurrence is exact). ValueError naming what fits otherwise."""
    r = canonical_rule(rule)
    if arch not in RULE_CLASSES[r].fits:
        fits = "; ".join(f"{a}: {', '.join(v)}" for a, v in FITS.items())
        raise ValueError(f"rule {r} does not apply to --arch {arch} ({fits})")
    return RULE_CLASSES[r].exact_as.get(arch, r)


def make_rule(rule: Union[str, Rule], arch: str) -> Rule:
    """The rule object that runs ``rule`` (a name, see :func:`resolve_rule`, or a :class:`Rule`)
    on architecture ``arch`` ("lru", "rnn", "gru"); ValueError if it does not apply."""
    if isinstance(rule, Rule):
        if arch not in rule.fits:
            raise ValueError(f"rule {rule.name} does not apply to --arch {arch} (it fits {', '.join(rule.fits)})")
        same = rule.exact_as.get(arch)
        return rule if same is None else RULE_CLASSES[same]()
    return RULE_CLASSES[resolve_rule(rule, arch)]()
