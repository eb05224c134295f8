"""Training pieces of ``rnntk online-lru``: upstream's optimiser groups, the schedule, the
recorded traces and the evaluation."""

import math

import pytest
import torch

from rnntk.online.train import evaluate, hidden_traces, lr_factor, make_optimizer
from rnntk.online.models.seq_model import build_seq_model
from rnntk.online.tasks.copy import copy_task


def _model(arch="lru", **kw):
    return build_seq_model(d_in=8, n_classes=2, n_out=7, arch=arch, layers=2, d_model=6, d_hidden=6, dropout=0.0,
                           generator=torch.Generator().manual_seed(0), **kw)


def _groups(opt):
    return {g["name"]: (g["lr"], g["weight_decay"], {id(p) for p in g["params"]}) for g in opt.param_groups}


def test_optimizer_groups_as_upstream():
    m = _model()
    ids = {n: id(p) for n, p in m.named_parameters()}
    g = _groups(make_optimizer(m, 1e-3, 5e-4, 0.05, "standard"))
    rec = {ids[n] for n in ids if n.rsplit(".", 1)[-1] in ("nu_log", "theta_log", "gamma_log", "B_re", "B_im")}
    assert g["rec"][2] == rec and g["rec"][:2] == (5e-4, 0.0)  # λ, γ, B: reduced lr, never decayed
    assert ids["layers.0.rec.C_re"] in g["other"][2] and g["other"][:2] == (1e-3, 0.05)
    g = _groups(make_optimizer(m, 1e-3, 5e-4, 0.05, "b_fast_decay"))
    bees = {ids[n] for n in ids if n.endswith(("B_re", "B_im"))}
    assert g["B"] == (1e-3, 0.05, bees) and not (bees & g["rec"][2])
    g = _groups(make_optimizer(m, 1e-3, 5e-4, 0.05, "b_decay"))
    assert g["B"][:2] == (5e-4, 0.05)
    g = _groups(make_optimizer(_model("rnn"), 1e-3, 1e-3, 0.1, "standard"))
    assert len(g["rec"][2]) == 4  # A, B of two layers
    g = _groups(make_optimizer(_model("gru"), 1e-3, 1e-3, 0.1, "standard"))
    assert set(g) == {"other"}  # upstream's names match no GRU parameter: all AdamW


def test_schedule_warmup_then_cosine():
    assert lr_factor(0, 100, 10, "cosine", 0.0) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "cosine", 0.0) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10, "cosine", 0.0) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "cosine", 0.0) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(50, 100, 0, "constant", 0.0) == 1.0


def test_trace_norm_is_the_online_full_B_trace():
    """/traces/trace_norm equals ‖E^B_t‖ of the recursion E_t = λ E_{t−1} + γ u_tᵀ (loop)."""
    m = _model().double()
    x = copy_task(2, 3, generator=torch.Generator().manual_seed(1)).x.double()
    tr = hidden_traces(m, x)
    assert tr["trace_norm"].shape == (2, x.shape[1], 2) and tr["hidden"].shape == (2, x.shape[1], 6)
    assert torch.allclose(hidden_traces(m, x, block=2)["trace_norm"], tr["trace_norm"], rtol=1e-12)  # blocks carry the trace
    with torch.no_grad():
        lay = m.layers[0]
        u = lay.pre(m.encoder(x))
        lam, gam = lay.rec.lam(), lay.rec.gamma()
        E = torch.zeros(2, 6, 6, dtype=lam.dtype)
        for t in range(x.shape[1]):
            E = lam[:, None] * E + gam[:, None] * u[:, t].unsqueeze(1)
            assert torch.allclose(tr["trace_norm"][:, t, 0].double(), E.abs().pow(2).sum((1, 2)).sqrt(), rtol=1e-5)


def test_evaluate_scores_only_the_output_window():
    """Accuracy is the mean bit accuracy over the masked steps; chance for a fresh model."""
    m = _model()
    d = copy_task(64, 4, generator=torch.Generator().manual_seed(2))
    r = evaluate(m, d, 32, torch.device("cpu"), torch.float32)
    assert 0.3 < r["acc"] < 0.7 and math.isfinite(r["loss"])
    per = r["loss_per_step"]
    assert torch.isnan(per[:-4]).all() and torch.isfinite(per[-4:]).all()
