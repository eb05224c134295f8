"""Memory of a learning rule: bytes of tensors saved for backward (counted with
``torch.autograd.graph.saved_tensors_hooks``) plus bytes of traces and carried state, for one
gradient computation on a batch (spec §2.8, §9)."""

from __future__ import annotations

from typing import Any

import torch

from rnntk.online.learner import ChunkLearner, loss_weights
from rnntk.online.models.seq_model import SeqModel


class SavedBytes:
    """Context manager counting bytes of every tensor autograd saves for backward
    (``total``; reset with ``reset()``); a tensor saved twice is counted once per reset."""

    def __init__(self) -> None:
        self.total = 0
        self._seen: set[tuple[int, int, torch.dtype]] = set()

    def reset(self) -> None:
        self.total = 0
        self._seen = set()

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        key = (t.data_ptr(), t.numel(), t.dtype)
        if key not in self._seen:  # a view of a larger tensor counts its own elements only
            self._seen.add(key)
            self.total += t.numel() * t.element_size()
        return t

    def __enter__(self) -> "SavedBytes":
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)


def rule_memory(model: SeqModel, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, rule: str, exec: str = "sequence") -> dict[str, int]:
    """Peak bytes of one gradient computation of ``rule`` on (x, y, mask):
    ``saved`` (autograd, the largest chunk), ``traces`` (trace tensors formed in a chunk plus
    state carried between chunks, the largest) and ``total`` = their sum at the worst chunk.
    Gradients are accumulated into ``.grad`` as a side effect."""
    learner = ChunkLearner(model, rule)
    w = loss_weights(mask)
    learner.start(x.shape[0])
    chunks = [(0, x.shape[1])] if exec == "sequence" else [(t, t + 1) for t in range(x.shape[1])]
    peak = {"saved": 0, "traces": 0, "total": 0}
    counter = SavedBytes()
    for a, b in chunks:
        carried = learner.state_bytes()
        counter.reset()
        with counter:
            learner.chunk(x[:, a:b], y[:, a:b], w[:, a:b])
        tr = learner.trace_bytes + carried
        peak["saved"] = max(peak["saved"], counter.total)
        peak["traces"] = max(peak["traces"], tr)
        peak["total"] = max(peak["total"], counter.total + tr)
    return peak
