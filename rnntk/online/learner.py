"""Online gradient computation for :class:`~rnntk.online.models.seq_model.SeqModel` (spec §2).

Every online rule runs the ordinary forward pass but differentiates the *spatial graph*: each
recurrent layer's state is rebuilt as ``h_t = f(h_{t−1}.detach(), u_t)`` so that backprop
through the loss gives the instantaneous error ``δ_t = ∂L/∂h_t`` along same-time paths only
(PyTorch's complex convention, ``δ = ∂L/∂Re h + i ∂L/∂Im h``). The rules differ in how the
recurrent parameters are credited; each is a class of :mod:`rnntk.online.rules` (``bptt``,
``online_spat``, ``online_truncated``, ``online_full`` (LRU), ``online_snap`` (RNN, GRU)), and
the learner only asks it what to do (see :class:`~rnntk.online.rules.Rule`). The layers build
their own spatial graph (``spatial``, the LRU's ``affine_step``) and SnAp-1 terms.

One code path serves both execution modes: a sequence is processed in *chunks*; the
*sequence* mode is one chunk of length T (vectorised over time), the *streaming* mode is T
chunks of length 1 (graph freed after each step, state and traces carried: memory constant in
T). Both give the same gradients (oracle O10). No rule forms a (batch, T, N, H) trace in
either mode: the credit of a chunk is a reverse scan of the errors and one matmul per
parameter (:func:`~rnntk.online.rules.lru_block`, :func:`~rnntk.online.rules.snap_block`).
Streaming online_full on an LRU stack has a hand-written backward
(:mod:`rnntk.online.streaming_backward`).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import torch

from rnntk.online.losses import loss_weights, step_losses
from rnntk.online.models.seq_model import SeqModel
from rnntk.online.rules import Rule, _nbytes, make_rule
from rnntk.online.streaming_backward import StreamingBackward

__all__ = ["ChunkLearner", "StreamingLearner", "layer_gradients", "loss_weights", "online_gradients", "step_losses"]


class ChunkLearner:
    """Processes one batch of sequences chunk by chunk, accumulating ``.grad`` of ``model``
    with learning rule ``rule`` (a :class:`~rnntk.online.rules.Rule`, or its name).

    ``start(batch)`` resets states and traces; ``chunk(x, y, w)`` with x (batch, Tc, d_in),
    y (batch, Tc, n_out) int64 and loss weights w (batch, Tc) runs the forward pass, the
    backward pass of ``Σ w·ℓ`` and the rule's trace updates, and returns (loss, log-probs)."""

    def __init__(self, model: SeqModel, rule: Union[str, Rule]) -> None:
        self.model = model
        self.recs = model.recs
        self.rule = make_rule(rule, model.arch)
        self.trace_bytes = 0  # bytes of trace tensors formed in the last chunk (memory reports)
        self._records: list = []
        self.carry: list[dict[str, Any]] = [{} for _ in self.recs]
        self.fast = StreamingBackward(self.rule)

    def start(self, batch: int, masks: Optional[list] = None) -> None:
        p = next(self.model.parameters())
        recs: list[Any] = self.model.recs
        for rec in recs:
            if hasattr(rec, "clear_frozen"):
                rec.clear_frozen()
        self.h = [rec.zero_state(batch, p.device, p.dtype) for rec in recs]
        self.carry = [{} for _ in recs]  # the rule's state of each layer, carried between chunks
        self.pool_carry: Any = None
        self.masks = masks or [None] * len(self.model.layers)
        self.t = 0
        self.fast = StreamingBackward(self.rule)  # deferred weight gradients of the streaming backward

    def state_bytes(self) -> int:
        """Bytes of everything carried between chunks (states, traces, pooling sum)."""
        n = _nbytes(self.h)
        n += sum(_nbytes(v) for c in self.carry for v in c.values())
        n += self.fast.queued_bytes()
        if self.pool_carry is not None:
            n += self.pool_carry[0].numel() * self.pool_carry[0].element_size()
        return n

    def _credit(self, l: int, rec: Any, u: torch.Tensor, h_prev: torch.Tensor, delta: torch.Tensor, parts: Any) -> None:
        """The rule's trace credit of one layer's chunk (after the spatial backward)."""
        self.trace_bytes += self.rule.credit(self.carry[l], rec, u.detach(), h_prev, delta, parts)

    def layer(self, l: int, rec: Any, u: torch.Tensor, backward: bool = True) -> torch.Tensor:
        """States h (batch, Tc, N) of recurrent layer ``l`` for input u (batch, Tc, H), built
        for the rule (BPTT: through the recurrence; online: spatial graph), carrying state."""
        rule, h0 = self.rule, self.h[l]
        if not rule.spatial:
            h = rec.states(u, h0)
            self.h[l] = h[:, -1].detach()
            return h
        if u.shape[1] == 1 and hasattr(rec, "affine_step"):
            return self._affine_step(l, rec, u, backward)
        if u.shape[1] == 1:  # one step (streaming): the spatial state is the state itself
            h_prev = h0.unsqueeze(1)
            h, parts = rec.spatial(u, h_prev, freeze_recurrent=rule.freeze_recurrent, freeze_input=rule.freeze_input)
            hv = h.detach()
        else:
            with torch.no_grad():
                hv = rec.states(u.detach(), h0)
            h_prev = torch.cat([h0.unsqueeze(1), hv[:, :-1]], 1)
            h, parts = rec.spatial(u, h_prev, freeze_recurrent=rule.freeze_recurrent, freeze_input=rule.freeze_input)
        probe = None
        if backward and rule.traced:
            probe = torch.zeros_like(h, requires_grad=True)  # its gradient is δ_t (upstream's trick)
            h = h + probe
        self._records.append((l, rec, probe, u, h_prev, parts if rule.traced else None))
        self.h[l] = hv[:, -1]
        return h

    def _affine_step(self, l: int, rec: Any, u: torch.Tensor, backward: bool) -> torch.Tensor:
        """One streaming step of a layer whose step is affine in real arithmetic (the LRU's
        ``affine_step``): returns the real view (batch, 1, 2N) of its complex state
        h_t = p + u_t W. For a traced rule p (the real view of λ ⊙ h_{t−1}) is the probe: its
        gradient is the real view of δ_t."""
        h0 = self.h[l]
        b = h0.shape[0]
        p, W = rec.affine_step(h0, freeze_recurrent=self.rule.freeze_recurrent, freeze_input=self.rule.freeze_input)
        probe = None
        if self.rule.traced and backward:
            probe = p.requires_grad_()
        h = torch.addmm(p, u.reshape(b, -1), W)
        self._records.append((l, rec, probe, u, h0.unsqueeze(1), None))
        self.h[l] = torch.view_as_complex(h.detach().view(b, -1, 2))
        return h.view(b, 1, -1)

    def credit(self) -> None:
        """After ``loss.backward()``: add the trace-based gradients (traced rules)."""
        if self.rule.traced:
            for l, rec, probe, u, h_prev, parts in self._records:
                delta = probe.grad if probe.grad is not None else torch.zeros_like(probe)
                if h_prev.is_complex() and not delta.is_complex():  # real view (batch, 2N) from _affine_step
                    delta = torch.view_as_complex(delta.view(delta.shape[0], 1, -1, 2))
                self._credit(l, rec, u, h_prev, delta, parts)
        self._records = []

    def flush(self) -> None:
        """Turn the rule's pending sums of one-step chunks into ``.grad`` (exact as long as
        the parameters did not change since they were accumulated)."""
        self.fast.fold()
        for l, rec in enumerate(self.recs):
            self.rule.flush(self.carry[l], rec)

    def chunk(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, backward: bool = True, flush: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk (see class doc). Returns (loss of the chunk (scalar, detached), log-probs).
        ``flush=False`` leaves the rule's one-step sums pending (call :meth:`flush`)."""
        m: Any = self.model
        self.trace_bytes = 0
        self._records = []
        if backward and x.shape[1] == 1 and self.rule.fast_path and self.fast.applies(m):
            loss, logp = self.fast.step(self, x, y, w)
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


def layer_gradients(rec: Any, u: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor], rule: Union[str, Rule]) -> torch.Tensor:
    """One recurrent layer alone: accumulate ``rule``'s gradient of ``loss_fn(y)`` into the
    layer's ``.grad`` (y = the layer's output (batch, T, H) for input u (batch, T, H); the
    loss must read y only through same-time paths, e.g. a sum of per-step losses).
    Returns the loss."""
    lrn: Any = ChunkLearner.__new__(ChunkLearner)
    lrn.model, lrn.recs, lrn.rule, lrn.trace_bytes, lrn._records = None, [rec], make_rule(rule, str(rec.kind)), 0, []
    lrn.h = [rec.zero_state(u.shape[0], u.device, u.dtype)]
    lrn.carry, lrn.fast = [{}], StreamingBackward(lrn.rule)
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
    rule: Union[str, Rule],
    exec: str = "sequence",
    masks: Optional[list] = None,
    weights: Optional[torch.Tensor] = None,
    check: Optional[Callable[[], None]] = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Accumulate the gradient estimate of ``rule`` (a :class:`~rnntk.online.rules.Rule` or its
    name) into ``.grad`` of ``model``'s parameters.

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
    if exec == "streaming" and not learner.rule.streams:
        raise ValueError(f"{learner.rule.name} cannot stream: it needs the whole sequence (use exec='sequence')")
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
        self, model: SeqModel, rule: Union[str, Rule], optimizer: Optional[torch.optim.Optimizer] = None, update_every: int = 0, masks: Optional[list] = None
    ) -> None:
        if model.pooling == "pool":
            raise ValueError("pooling 'pool' cannot stream (use pool_st)")
        self.learner = ChunkLearner(model, rule)
        if not self.learner.rule.streams:
            raise ValueError(f"{self.learner.rule.name} cannot stream: it needs the whole sequence")
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
