"""The hand-written streaming backward of an LRU stack under ``online_full`` (spec §2, §9).

In streaming mode (one-step chunks) :class:`~rnntk.online.learner.ChunkLearner` hands each step
to :meth:`StreamingBackward.step` when the rule allows it (``Rule.fast_path``) and the model's
pooling does (:meth:`StreamingBackward.applies`): the forward pass of the step without autograd
(the same operations as the learner's), then the backward pass by hand through the
non-recurrent parts (decoder, readout, GLU/MLP, LRU readout, LayerNorm, encoder). Only input
cotangents are formed per step; the weight gradients of the linear maps, the LRU readout and
the LayerNorms are queued and added to ``.grad`` every ``fold_every`` steps as one matmul over
the stacked steps (:meth:`StreamingBackward.fold`). δ_t of each LRU layer goes to the rule's
``credit_step`` (the online_full traces, :class:`~rnntk.online.rules.OnlineFull`).
Oracle: the learner's autograd path (tests/online/test_streaming_backward.py).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from rnntk.online.losses import step_losses
from rnntk.online.rules import Rule, _acc


class StreamingBackward:
    """The hand-written backward of one streaming step (see the module doc) for ``rule`` (whose
    ``credit_step`` takes each LRU layer's δ_t), with its queue of deferred weight gradients."""

    fold_every = 16  # steps whose deferred weight gradients are added to .grad at once

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.queue: dict[Any, tuple[str, list[tuple[torch.Tensor, ...]]]] = {}  # module -> (kind, per-step factors)
        self.steps = 0

    @staticmethod
    def applies(model: Any) -> bool:
        """Whether :meth:`step` serves ``model`` now: pooling none, last or pool_st, grad enabled."""
        return model.pooling in ("none", "last", "pool_st") and torch.is_grad_enabled()

    def queued_bytes(self) -> int:
        """Bytes of the deferred weight-gradient factors not yet folded into ``.grad``."""
        return sum(v.numel() * v.element_size() for _, items in self.queue.values() for step in items for v in step)

    def defer(self, kind: str, mod: Any, *tensors: torch.Tensor) -> None:
        """Queue one step's factors of the weight gradient of ``mod``: ``lin`` (x, δ), ``ro``
        (LRU readout: real h, u, δ), ``ln`` (LayerNorm: input, mean, rstd, δ)."""
        ent = self.queue.get(mod)
        if ent is None:
            self.queue[mod] = (kind, [tensors])
        else:
            ent[1].append(tensors)

    def fold(self) -> None:
        """Add the deferred weight gradients of the queued steps to ``.grad``: per
        layer one matmul over the stacked (steps·batch) rows, dW = Σ_t δ_tᵀ x_t."""
        dq, self.queue, self.steps = self.queue, {}, 0
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
    def _ln(mod: Any, z: torch.Tensor) -> tuple:
        return torch.native_layer_norm(z, mod.normalized_shape, mod.weight, mod.bias, mod.eps)

    def _ln_back(self, mod: Any, g: torch.Tensor, z: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor) -> torch.Tensor:
        self.defer("ln", mod, z, mean, rstd, g)
        return torch.ops.aten.native_layer_norm_backward(g, z, mod.normalized_shape, mean, rstd, mod.weight, mod.bias, [True, False, False])[0]

    def _lin_back(self, mod: Any, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        self.defer("lin", mod, x, g)
        return g @ mod.weight

    def step(self, lrn: Any, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One streaming step of learner ``lrn`` (its model, states ``h``, dropout ``masks``,
        ``pool_carry``, per-layer ``carry``; ``trace_bytes`` is increased) without autograd: the
        forward pass of ``ChunkLearner.chunk`` (same operations) with the activations kept, then
        the backward pass by hand through the non-recurrent parts (decoder, GLU/MLP, readout,
        LayerNorm, encoder). Only input cotangents are formed per step; the weight gradients are
        queued (:meth:`defer`) and added to ``.grad`` every ``fold_every`` steps (:meth:`fold`),
        like the LRU traces (``OnlineFull.block``). δ_t of each LRU layer goes to the rule's
        ``credit_step``. x (batch, 1, d_in), y (batch, 1, n_out) int64, w (batch, 1) loss weights.
        Returns (loss of the step (scalar), log-probs (batch, 1, n_out, K))."""
        m = lrn.model
        b = x.shape[0]
        acts = []
        with torch.no_grad():
            x2 = x.reshape(b, -1).clone()
            enc = m.encoder
            z = torch.addmm(enc.bias, x2, enc.weight.t()) if enc.bias is not None else x2 @ enc.weight.t()
            for l, lay in enumerate(m.layers):
                rec = lay.rec
                mk = lrn.masks[l]
                m1, m2 = (None, None) if mk is None else (mk[0].reshape(b, -1), mk[1].reshape(b, -1))
                zin = z
                ln_pre = None
                if lay.norm_kind == "pre":
                    u, mean, rstd = self._ln(lay.norm, zin)
                    ln_pre = (mean, rstd)
                else:
                    u = zin
                h0 = lrn.h[l]
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
                lrn.h[l] = torch.view_as_complex(hr.view(b, N, 2))
                z = out
            if m.pooling == "pool_st":
                z3, lrn.pool_carry = m.pool(z.unsqueeze(1), lrn.pool_carry)
                zp = z3[:, 0]
            else:
                zp = z
                lrn.pool_carry = (z, 0.0)
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
                        self.defer("lin", lay.out2, g, da2)
                        dg = dg.addmm_(da2, lay.out2.weight)
                    elif a == "half_glu1":
                        dg = torch.addmm(dzz * s, da2, lay.out2.weight)
                        self.defer("lin", lay.out2, g, da2)
                    else:
                        dg = self._lin_back(lay.out2, g, da2)
                    if m1 is not None:
                        dg = dg * m1
                    dy = torch.ops.aten.gelu_backward(dg, yr, approximate="tanh")
                    if a == "half_glu2":
                        dy = dy + dzz * s
                self.defer("ro", rec, hr, u, dy)
                dh = dy @ Wc.t()  # δ_t (real view)
                du = torch.addmm(dy * rec.D, dh, Wd.t())
                N = h0.shape[1]
                lrn.trace_bytes += self.rule.credit_step(lrn.carry[l], rec, u, h0, torch.view_as_complex(dh.view(b, N, 2)))
                if ln_pre is not None:
                    du = self._ln_back(lay.norm, du, zin, *ln_pre)
                dz = dz + du
            self.defer("lin", m.encoder, x2, dz)
            self.steps += 1
            if self.steps >= self.fold_every:
                self.fold()
        return loss, logp.unsqueeze(1)
