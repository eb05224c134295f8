"""Sequence-mode online_full on the LRU credits λ, γ and B in closed form (issue 12, item 6):
a reverse scan W_s = Σ_{t≥s} conj(δ_t) λ^{t−s} and G_B = γ Σ_s W_s u_sᵀ, never forming the
(batch, T, N, H) trace E^B. Oracles, float64: (1) autograd of a graph whose value is the
forward pass and whose only gradient paths are online_full's (spatial errors δ_t times the
layer's own forward sensitivity ∂h_t/∂θ); (2) the trace formula written out with explicit
traces (e^λ, e^γ, E^B by a Python loop) fed with δ_t from (1). And a structural check: no
tensor of b·T·N·H elements appears in any operation of the gradient computation."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from rnntk.online import ChunkLearner, loss_weights, online_gradients, step_losses
from rnntk.online.alignment import gradient_of
from rnntk.online.models.lru import linear_scan_loop
from rnntk.online.models.seq_model import build_seq_model

D64 = torch.float64


def _model(L=2, H=6, N=5, pooling="none", activation="full_glu", norm="pre", readout=0):
    return build_seq_model(d_in=3, n_classes=3, n_out=2, layers=L, d_model=H, d_hidden=N, dropout=0.0, activation=activation, norm=norm,
                           pooling=pooling, readout=readout, r_min=0.5, r_max=0.99, generator=torch.Generator().manual_seed(0)).double()


def _batch(b=3, T=13, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, T, 3, generator=g, dtype=D64)
    y = torch.randint(0, 3, (b, T, 2), generator=g)
    mask = (torch.rand(b, T, generator=g) < 0.7).to(D64)
    return x, y, mask


def _reference(m, x, y, mask):
    """online_full by autograd: each LRU layer's state is
    h = [λ ⊙ stop(h_{t−1}) + γ B u_t]_{λ,γ,B frozen}  +  (H(θ) − stop(H(θ))),  H = the scan of
    the layer with its parameters live and its input detached. The value is h; the gradient to
    u is the spatial one, the gradient to θ is Σ_t δ_t ∂h_t/∂θ with δ_t the spatial error.
    Returns ({name: grad}, [δ per layer], [(u, h_prev) per layer])."""
    m.zero_grad(set_to_none=True)
    w = loss_weights(mask)
    z = m.encoder(x)
    probes, ctx = [], []
    for lay in m.layers:
        rec = lay.rec
        u = lay.pre(z)
        with torch.no_grad():
            hv = linear_scan_loop(rec.lam(), rec.drive(u))
        hp = torch.cat([torch.zeros_like(hv[:, :1]), hv[:, :-1]], 1)
        spatial = rec.lam().detach() * hp + rec.drive(u, detach_params=True)
        live = linear_scan_loop(rec.lam(), rec.drive(u.detach()))
        probe = torch.zeros_like(hv, requires_grad=True)
        h = spatial + (live - live.detach()) + probe
        probes.append(probe)
        ctx.append((u.detach(), hp))
        z = lay.post(z, rec.readout(h, u))
    z, _ = m.pool(z)
    (w * step_losses(m.decode(z), y)).sum().backward()
    g = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad(set_to_none=True)
    return g, [p.grad for p in probes], ctx


def _trace_formula(rec, u, hp, delta):
    """The trace-based online_full of one LRU layer with explicit (b, T, N, H) traces."""
    with torch.no_grad():
        lam, gam, B = rec.lam(), rec.gamma(), rec.B()
        uc = u.to(B.dtype)
        eL = linear_scan_loop(lam, hp)
        eG = linear_scan_loop(lam, uc @ B.T)
        EB = linear_scan_loop(lam[:, None], gam[:, None] * uc.unsqueeze(2))  # (b, T, N, H)
        G_lam = (delta * eL.conj()).sum((0, 1))
        G_B = torch.einsum("btn,btnh->nh", delta, EB.conj())
    g_nu, g_th = torch.autograd.grad(rec.lam(), [rec.nu_log, rec.theta_log], grad_outputs=G_lam)
    return {"nu_log": g_nu, "theta_log": g_th, "gamma_log": gam * (delta.conj() * eG).real.sum((0, 1)), "B_re": G_B.real, "B_im": G_B.imag}


def _rel(a, b):
    return float((a - b).detach().norm()) / max(1e-300, float(b.detach().norm()))


CFGS = [("none", "full_glu", "pre", 0), ("pool_st", "gelu", "post", 4), ("last", "half_glu2", "none", 0)]


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: "-".join(map(str, c)))
def test_sequence_online_full_equals_autograd_and_trace_formula(cfg):
    pooling, act, norm, readout = cfg
    m = _model(L=2, pooling=pooling, activation=act, norm=norm, readout=readout)
    x, y, mask = _batch()
    ref, deltas, ctx = _reference(m, x, y, mask)
    got = gradient_of(m, (x, y, mask), "online_full", "sequence")
    for n in ref:
        assert _rel(got[n], ref[n]) <= 1e-12, (n, _rel(got[n], ref[n]))
    for k, (lay, d, (u, hp)) in enumerate(zip(m.layers, deltas, ctx)):
        tf = _trace_formula(lay.rec, u, hp, d)
        for name, v in tf.items():
            assert _rel(got[f"layers.{k}.rec.{name}"], v) <= 1e-12, (k, name)
    # the lower layer is not BPTT's (the oracle is not BPTT in disguise)
    bp = gradient_of(m, (x, y, mask), "bptt")
    assert _rel(got["layers.0.rec.B_re"], bp["layers.0.rec.B_re"]) > 1e-6


def test_chunks_carry_the_traces_exactly():
    """Sequence split into chunks of lengths 5, 1, 1, 6 (multi-step, one-step, multi-step):
    the carried e^λ, e^γ, E^B give the one-chunk gradient."""
    m = _model(L=2, pooling="pool_st")
    x, y, mask = _batch(T=13)
    full = gradient_of(m, (x, y, mask), "online_full", "sequence")
    m.zero_grad(set_to_none=True)
    lrn = ChunkLearner(m, "online_full")
    lrn.start(x.shape[0])
    w = loss_weights(mask)
    for a, b in ((0, 5), (5, 6), (6, 7), (7, 13)):
        lrn.chunk(x[:, a:b], y[:, a:b], w[:, a:b], flush=(b == 13))
    for n, p in m.named_parameters():
        assert _rel(p.grad, full[n]) <= 1e-12, n


class _Shapes(TorchDispatchMode):
    """Records the largest number of elements of any tensor an operation produces."""

    def __init__(self):
        super().__init__()
        self.max_numel, self.max_shape = 0, None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.numel() > self.max_numel:
                self.max_numel, self.max_shape = t.numel(), tuple(t.shape)
        return out


def test_sequence_online_full_forms_no_batch_time_state_input_tensor():
    """No operation of a sequence-mode online_full gradient (forward, backward, credit)
    produces a tensor as large as the (b, T, N, H) trace; BPTT's largest is the yardstick."""
    b, T, N, H = 3, 40, 12, 16
    m = build_seq_model(d_in=3, n_classes=3, n_out=2, layers=2, d_model=H, d_hidden=N, dropout=0.0, generator=torch.Generator().manual_seed(0))
    x, y, mask = _batch(b=b, T=T)
    x = x.float()
    seen = {}
    for rule in ("bptt", "online_full"):
        m.zero_grad(set_to_none=True)
        with _Shapes() as s:
            online_gradients(m, x, y, mask.float(), rule, "sequence")
        seen[rule] = (s.max_numel, s.max_shape)
    assert seen["online_full"][0] < b * T * N * H / 4, seen
    assert seen["online_full"][0] <= seen["bptt"][0], seen


# -- SnAp-1 of the linear-RNN and GRU baselines: the same closed form with time-varying decays --

def _snap_loop_reference(rec, u, hp, delta, parts):
    """SnAp-1 by explicit (b, N, M) traces stepped in a Python loop: J_t = d_t ⊙ J_{t−1} + g_t v_tᵀ,
    G = Σ_t δ_t ⊙ J_t (row-wise), from one layer's whole-sequence u, h_{t−1}, δ_t (and GRU gates)."""
    with torch.no_grad():
        if rec.kind == "rnn":
            d = torch.diagonal(rec.A) * rec.drho(hp)
            one = torch.ones_like(d)
            items = [("A", one, rec.rho(hp)), ("B", one, u)]
        else:
            r, z, n, Q = parts.r, parts.z, parts.n, parts.Q
            gZ = (n - hp) * z * (1 - z)
            gN = z * (1 - n * n)
            gR = gN * Q * r * (1 - r)
            gQ = gN * r
            dg = lambda name: torch.diagonal(getattr(rec, name))
            d = (1 - z) + gZ * dg("W_hz") + gQ * dg("W_hn") + gR * dg("W_hr")
            items = [("W_iz", gZ, u), ("b_iz", gZ, None), ("W_hz", gZ, hp), ("W_in", gN, u), ("b_in", gN, None),
                     ("W_ir", gR, u), ("b_ir", gR, None), ("W_hr", gR, hp), ("W_hn", gQ, hp), ("b_hn", gQ, None)]
        out = {}
        for name, g, v in items:
            vv = torch.ones_like(d[..., :1]) if v is None else v
            J = torch.zeros(d.shape[0], d.shape[2], vv.shape[2], dtype=d.dtype)
            G = torch.zeros(d.shape[2], vv.shape[2], dtype=d.dtype)
            for t in range(d.shape[1]):
                J = d[:, t, :, None] * J + g[:, t, :, None] * vv[:, t, None, :]
                G += torch.einsum("bn,bnm->nm", delta[:, t], J)
            out[name] = G[:, 0] if v is None else G
        return out


@pytest.mark.parametrize("arch", ["rnn", "gru"])
def test_snap_closed_form_equals_loop_traces_across_chunks(arch, monkeypatch):
    """Dense recurrent matrices (SnAp-1 is not BPTT there); chunks of 5, 1 and 7 steps."""
    H = N = 5
    m = build_seq_model(d_in=3, n_classes=3, n_out=2, layers=2, d_model=H, d_hidden=N, dropout=0.0, arch=arch, pooling="pool_st",
                        rnn_activation="tanh", generator=torch.Generator().manual_seed(0)).double()
    x, y, mask = _batch(T=13)
    rec_args = {k: [] for k in range(2)}
    real = ChunkLearner._credit

    def spy(self, l, rec, u, h_prev, delta, parts):
        rec_args[l].append((u.detach(), h_prev.detach(), delta.detach(), parts))
        return real(self, l, rec, u, h_prev, delta, parts)

    monkeypatch.setattr(ChunkLearner, "_credit", spy)
    m.zero_grad(set_to_none=True)
    lrn = ChunkLearner(m, "online_snap")
    lrn.start(x.shape[0])
    w = loss_weights(mask)
    for a, b in ((0, 5), (5, 6), (6, 13)):
        lrn.chunk(x[:, a:b], y[:, a:b], w[:, a:b])
    monkeypatch.undo()
    for k, lay in enumerate(m.layers):
        u, hp, dl = (torch.cat([r[i] for r in rec_args[k]], 1) for i in range(3))
        parts = None
        if arch == "gru":
            from rnntk.online.models.rnns import GRUParts
            parts = GRUParts(*(torch.cat([getattr(r[3], f).detach() for r in rec_args[k]], 1) for f in ("r", "z", "n", "Q", "R", "Z", "Npre")))
        ref = _snap_loop_reference(lay.rec, u, hp, dl, parts)
        for name, v in ref.items():
            assert _rel(getattr(lay.rec, name).grad, v) <= 1e-12, (arch, k, name)


@pytest.mark.parametrize("arch", ["rnn", "gru"])
def test_sequence_snap_forms_no_batch_time_state_input_tensor(arch):
    b, T, N = 3, 40, 16
    m = build_seq_model(d_in=3, n_classes=3, n_out=2, layers=2, d_model=N, d_hidden=N, dropout=0.0, arch=arch,
                        generator=torch.Generator().manual_seed(0))
    x, y, mask = _batch(b=b, T=T)
    with _Shapes() as s:
        online_gradients(m, x.float(), y, mask.float(), "online_snap", "sequence")
    assert s.max_numel < b * T * N * N / 4, (s.max_numel, s.max_shape)
