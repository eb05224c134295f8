"""Streaming online_full on the LRU has a hand-written per-step backward with deferred weight
gradients (``rnntk.online.streaming_backward.StreamingBackward.step``). Oracle: the generic autograd path of the same learner
(itself tested against BPTT and sequence mode), float64, over activations, norms, poolings,
readout and dropout, with T = 37 (two 16-step folds plus a partial block)."""

import pytest
import torch

from rnntk.online import online_gradients
from rnntk.online.alignment import gradient_of
from rnntk.online.models.seq_model import build_seq_model
from rnntk.online.streaming_backward import StreamingBackward

D64 = torch.float64
# every value of every option appears (the full 180-point grid passed at 1.8e-15 when written)
QUICK = [("full_glu", "pre", "none", 0, 0.0), ("gelu", "post", "pool_st", 4, 0.3), ("none", "none", "last", 0, 0.3),
         ("half_glu1", "pre", "last", 4, 0.0), ("half_glu2", "post", "none", 0, 0.3), ("full_glu", "none", "pool_st", 4, 0.3),
         ("gelu", "pre", "last", 0, 0.0), ("none", "post", "pool_st", 4, 0.0)]


def _grads(monkeypatch, cfg, fast: bool):
    act, norm, pooling, readout, drop = cfg
    m = build_seq_model(d_in=3, n_classes=3, n_out=2, layers=2, d_model=6, d_hidden=5, dropout=drop, activation=act, norm=norm,
                        pooling=pooling, readout=readout, generator=torch.Generator().manual_seed(0)).double()
    g = torch.Generator().manual_seed(1)
    b, T = 3, 37
    x = torch.randn(b, T, 3, generator=g, dtype=D64)
    y = torch.randint(0, 3, (b, T, 2), generator=g)
    mask = (torch.rand(b, T, generator=g) < 0.7).to(D64)
    masks = m.sample_masks(b, generator=g, dtype=D64) if drop else None
    calls = {"n": 0}
    if fast:
        real = StreamingBackward.step

        def counted(self, *a, **k):
            calls["n"] += 1
            return real(self, *a, **k)

        monkeypatch.setattr(StreamingBackward, "step", counted)
    else:
        monkeypatch.setattr(StreamingBackward, "applies", staticmethod(lambda model: False))
    grads = gradient_of(m, (x, y, mask), "online_full", "streaming", masks=masks)
    loss, _ = online_gradients(m, x, y, mask, "online_full", "streaming", masks=masks)
    monkeypatch.undo()
    assert (calls["n"] > 0) == fast, "the fast path must run exactly when asked for"
    return grads, float(loss)


def _check(monkeypatch, cfg):
    slow, l_slow = _grads(monkeypatch, cfg, fast=False)
    fast, l_fast = _grads(monkeypatch, cfg, fast=True)
    assert set(slow) == set(fast)
    for name in slow:
        err = float((slow[name] - fast[name]).norm()) / max(1e-30, float(slow[name].norm()))
        assert err <= 1e-12, (cfg, name, err)
    assert abs(l_slow - l_fast) <= 1e-12


@pytest.mark.parametrize("cfg", QUICK, ids=lambda c: "-".join(map(str, c)))
def test_fast_path_equals_autograd_path(monkeypatch, cfg):
    _check(monkeypatch, cfg)

