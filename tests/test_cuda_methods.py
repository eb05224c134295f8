"""Every method on CUDA: the CPU oracles rerun on the device, device placement of what a run
creates, and CPU-vs-CUDA agreement on the same seed.

Tests are parametrised over ``DEVICES``: ``cpu`` always runs (so the test code itself is checked
on every machine), ``cuda`` is marked ``cuda`` and skipped without a GPU (never fails on CPU).
``python -m pytest -m cuda`` runs only the CUDA cases (benchmarks/gpu.sh does).

Agreement: a CUDA generator draws its own stream (Philox), not the CPU's (Mersenne twister),
so per-step randomness drawn on the device (tangents, noise, dropout, start vectors) differs
from the CPU's by design. Agreement tests therefore feed both devices the *same* inputs (drawn
once on the CPU from one seed) and compare the numerics, within the tolerance each test states.

Placement on CPU: runs on the ``meta`` device record where every random tensor is drawn
(:class:`DrawLog`), so "drawn on the CPU, then copied" is caught without a GPU.
"""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

HAS_CUDA = torch.cuda.is_available()
CUDA = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")]
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=CUDA)]
D64 = torch.float64
RANDOM = {torch.randn, torch.rand, torch.randint, torch.randperm, torch.normal, torch.rand_like, torch.randn_like}


class DrawLog(TorchFunctionMode):
    """Records the device of every random tensor created inside the ``with`` block."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: list[torch.device] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in RANDOM and isinstance(out, torch.Tensor):
            self.devices.append(out.device)
        return out


FACTORIES = frozenset({torch.zeros, torch.empty, torch.ones, torch.rand, torch.randn, torch.full, torch.zeros_like, torch.empty_like})


class BasisLog(TorchFunctionMode):
    """Records the device of every tensor whose last dimension is ``n`` made by a factory
    function (zeros, empty, rand, ...) inside the ``with`` block: Krylov bases and start vectors."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.devices = n, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in FACTORIES and isinstance(out, torch.Tensor) and out.dim() >= 1 and out.shape[-1] == self.n:
            self.devices.append(out.device)
        return out


def node_log(monkeypatch) -> list[torch.device]:
    """Patches ``torch.as_tensor`` (the GQ adjoint builds its quadrature nodes and weights with
    it) to record the device of every tensor of more than one element it makes; a patch, not a
    function mode, because modes do not reach autograd's backward threads."""
    devices: list[torch.device] = []
    orig = torch.as_tensor

    def as_tensor(*args, **kwargs):
        out = orig(*args, **kwargs)
        if out.numel() > 1:
            devices.append(out.device)
        return out

    monkeypatch.setattr(torch, "as_tensor", as_tensor)
    return devices


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp(min=1e-300))


def _on(t, dev: str) -> bool:
    return t.device.type == torch.device(dev).type


# ------------------------------------------------------------------------------------------ engine
@pytest.mark.parametrize("dev", DEVICES)
def test_run_device_generator_lives_on_the_run_device(tmp_path, dev):
    """Run.device_generator draws on run.device; on the CPU it IS run.generator (CPU streams
    unchanged); on CUDA its state is checkpointed and restored (exact resume)."""
    from rnntk.engine import Run

    with Run.open(tmp_path / "r", command="t", seed=3, device=dev, progress="none") as run:
        g = run.device_generator
        assert g.device.type == dev
        if dev == "cpu":
            assert g is run.generator
        else:
            assert "device_generator" in run._rng_state()
        x = torch.randn(4, generator=g, device=g.device)
        assert _on(x, dev)


def _device_train(out, dev, n_steps, *, resume=False, crash_at=None):
    """A tiny loop whose data and noise come from the run's device generator every step."""
    from torch import nn

    from rnntk.engine import Run

    with Run.open(out, command="tiny", config={}, seed=5, device=dev, progress="none", resume=resume, log_every=2,
                  checkpoint_every=4) as run:
        net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)).to(dev)
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        run.track(net, opt, hparams={})
        g = run.device_generator
        for step in run.steps(n_steps):
            x = torch.randn(16, 4, generator=g, device=g.device)
            y = x.sum(1, keepdim=True) + 0.1 * torch.randn(16, 1, generator=g, device=g.device)
            loss = ((net(x) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.log(step, loss=loss)
            if crash_at is not None and step == crash_at:
                raise RuntimeError("simulated crash")


@pytest.mark.parametrize("dev", DEVICES)
def test_resume_on_device_is_bit_identical(tmp_path, dev):
    """Crash after a checkpoint, --resume: the device generator's state comes back with the
    checkpoint, so the resumed run's metrics equal an uninterrupted run's bit for bit."""
    import h5py

    _device_train(tmp_path / "full", dev, 12)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _device_train(tmp_path / "cut", dev, 12, crash_at=9)
    _device_train(tmp_path / "cut", dev, 12, resume=True)
    with h5py.File(tmp_path / "full" / "run.h5", "r") as a, h5py.File(tmp_path / "cut" / "run.h5", "r") as b:
        assert a["metrics/loss"].shape == (12,)
        assert (a["metrics/loss"][:] == b["metrics/loss"][:]).all()


# -------------------------------------------------------------------------------------------- SOFO
@pytest.mark.parametrize("kind", ["orthonormal", "normalized", "rank1", "block"])
def test_sofo_tangents_drawn_on_the_parameters_device_meta(kind):
    """Regression: tangents were drawn on the CPU and copied. On ``meta`` parameters every draw
    and the QR happen on ``meta`` (no CPU round trip)."""
    from rnntk.sofo.optimizer import sample_tangents

    p = {"W": torch.empty(6, 5, device="meta"), "b": torch.empty(5, device="meta")}
    with DrawLog() as log:
        V = sample_tangents(p, 4, kind=kind)
    assert log.devices and all(d.type == "meta" for d in log.devices), log.devices
    assert all(v.device.type == "meta" for v in V.values())


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("kind", ["orthonormal", "normalized", "rank1", "block"])
def test_sofo_tangents_on_device_are_orthonormal_or_unit(dev, kind):
    """Oracle (O1 on device): tangents drawn from a generator on ``dev`` are on ``dev``, every
    draw happened there, orthonormal tangents satisfy V Vᵀ = I, the others have unit rows."""
    from rnntk.sofo.optimizer import flatten_tangents, sample_tangents

    p = {"W": torch.zeros(9, 7, device=dev, dtype=D64), "b": torch.zeros(7, device=dev, dtype=D64)}
    g = torch.Generator(device=dev).manual_seed(0)
    with DrawLog() as log:
        V = sample_tangents(p, 12, kind=kind, generator=g)
    assert all(d.type == dev for d in log.devices)
    F = flatten_tangents(V)
    assert _on(F, dev) and F.dtype == D64
    if kind in ("orthonormal", "block"):
        torch.testing.assert_close(F @ F.T, torch.eye(12, dtype=D64, device=dev), rtol=0, atol=1e-12)
    else:
        torch.testing.assert_close(F.norm(dim=1), torch.ones(12, dtype=D64, device=dev), rtol=0, atol=1e-12)


def _reach(dev: str):
    from rnntk.sofo.optimizer import sample_tangents
    from rnntk.sofo.problems import ReachProblem
    from rnntk.sofo.models.motor_rnn import MotorRNN

    prob = ReachProblem("double-reach", hidden=7, dt=0.01, duration=0.6)
    torch.manual_seed(0)
    m = MotorRNN(6, 7, dt=0.01, tau=0.02, noise=True, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():  # stronger weights so that the arm really moves (as in test_sofo_motor)
        for q in m.parameters():
            q.mul_(20.0)
    b = prob.sample(3, torch.Generator().manual_seed(4))
    b.trials.inputs, b.trials.targets, b.trials.mask = b.trials.inputs.double(), b.trials.targets.double(), b.trials.mask.double()
    b.noise = b.noise.double()
    V = sample_tangents(m.params(), 10, generator=torch.Generator().manual_seed(5))
    return prob, m.to(dev), {k: v.to(dev) for k, v in V.items()}, b.to(torch.device(dev))


@pytest.mark.parametrize("dev", DEVICES)
def test_sofo_sketch_matches_autograd_on_device(dev):
    """Oracle O2 on ``dev`` (float64): the sketch's loss equals autograd's and ĝ = V·∇L with ∇L
    from autograd through the whole rollout (arm included); every tensor stays on ``dev``."""
    from rnntk.sofo.optimizer import flatten_tangents

    prob, m, V, b = _reach(dev)
    L = prob.loss(m, b)
    g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(L, list(m.parameters()))])
    for impl in ("manual", "generic"):
        sk = prob.sketch(m, V, b, impl)
        assert _on(sk.loss, dev) and _on(sk.g_hat, dev) and _on(sk.G_hat, dev)
        torch.testing.assert_close(sk.loss, L.detach(), rtol=1e-12, atol=0)
        torch.testing.assert_close(sk.g_hat, flatten_tangents(V) @ g, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(sk.G_hat, sk.G_hat.T, rtol=0, atol=1e-12)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_sofo_cpu_and_cuda_agree():
    """Same seed, same tangents and batch: loss, ĝ and Ĝ on CUDA within 1e-10 (relative, float64)
    of the CPU's, and one SOFO step moves θ to within 1e-8 of the CPU's step."""
    from rnntk.sofo.optimizer import SOFO

    out = {}
    for d in ("cpu", "cuda"):
        prob, m, V, b = _reach(d)
        sk = prob.sketch(m, V, b, "manual")
        opt = SOFO(dict(m.named_parameters()), n_tangents=10, generator=torch.Generator(device=d).manual_seed(0))
        opt.sample = lambda V=V: V  # the same tangents on both devices
        opt.step(lambda V_, m=m, b=b, prob=prob: prob.sketch(m, V_, b, "manual"))
        out[d] = (sk, {k: q.detach().cpu() for k, q in m.named_parameters()})
    (a, pa), (c, pc) = out["cpu"], out["cuda"]
    for x, y in ((c.loss, a.loss), (c.g_hat, a.g_hat), (c.G_hat, a.G_hat)):
        assert _rel(x, y) < 1e-10
    for k in pa:
        assert _rel(pc[k], pa[k]) < 1e-8, k


@pytest.mark.parametrize("dev", DEVICES)
def test_sofo_training_loop_keeps_tangents_noise_and_trials_on_device(tmp_path, dev, monkeypatch):
    """The sofo-train loop on ``dev``: every sketch sees tangents, trials and noise on ``dev``;
    tangents and noise come from generators on the device (drawn there, not copied)."""
    from rnntk.engine import Run
    from rnntk.sofo.problems import ReachProblem
    from rnntk.sofo.train import TrainConfig, train

    prob = ReachProblem("double-reach", hidden=8, dt=0.02, duration=0.4)
    seen: list[set[str]] = []
    orig = prob.sketch

    def sketch(model, V, b, impl="auto"):
        seen.append({t.device.type for t in (*V.values(), b.trials.inputs, b.trials.targets, b.trials.mask, b.noise)})
        return orig(model, V, b, impl)

    monkeypatch.setattr(prob, "sketch", sketch)
    cfg = TrainConfig(n_tangents=8, iters=2, batch=4, eval_every=1, eval_batch=4, save_traces=2)
    with Run.open(tmp_path / "r", command="sofo-train", seed=0, device=dev, progress="none") as run:
        train(prob, cfg, run)
        assert run.device_generator.device.type == dev
        assert prob.noise_generator.device.type == dev  # training noise drawn on the device
    assert len(seen) == 2 and all(s == {dev} for s in seen), seen


# ------------------------------------------------------------------------------------- online LRU
def _lru(dtype, dev):
    from rnntk.online.models.lru import LRU

    return LRU(4, 5, r_min=0.5, r_max=0.99, generator=torch.Generator().manual_seed(0)).to(dtype).to(dev)


def _loop_grads(rec, u):
    """Independent reference: the LRU recurrence by a Python loop; autograd = BPTT."""
    rec.zero_grad(set_to_none=True)
    lam, gam, B = rec.lam(), rec.gamma(), rec.B()
    h = torch.zeros(u.shape[0], rec.d_hidden, dtype=B.dtype, device=u.device)
    hs = []
    for t in range(u.shape[1]):
        h = lam * h + gam * (u[:, t].to(B.dtype) @ B.T)
        hs.append(h)
    (0.5 * (rec.readout(torch.stack(hs, 1), u) ** 2).sum()).backward()
    return {n: p.grad.clone() for n, p in rec.named_parameters()}


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("dtype,T,tol", [(torch.float64, 20, 1e-10), (torch.float32, 300, 1e-4)])
def test_online_full_equals_bptt_on_device(dev, dtype, T, tol):
    """Oracle O1 on ``dev``: online_full's gradient of one LRU layer equals BPTT through a
    Python loop (float64 reference); float64 within 1e-10, float32 at T = 300 within 1e-4."""
    from rnntk.online import layer_gradients

    rec = _lru(dtype, dev)
    u = torch.randn(3, T, 4, generator=torch.Generator().manual_seed(1), dtype=D64)
    rec.zero_grad(set_to_none=True)
    layer_gradients(rec, u.to(dev, dtype), lambda y: 0.5 * (y**2).sum(), "online_full")
    got = {n: p.grad.clone() for n, p in rec.named_parameters()}
    assert all(_on(g, dev) for g in got.values())
    ref = _loop_grads(_lru(D64, dev), u.to(dev))
    for n in ref:
        assert _rel(got[n], ref[n]) < tol, (n, _rel(got[n], ref[n]))


def _stack(dev):
    from rnntk.online.models.seq_model import build_seq_model

    m = build_seq_model(d_in=3, n_classes=3, n_out=2, arch="lru", layers=2, d_model=6, d_hidden=5, dropout=0.0, pooling="pool_st",
                        generator=torch.Generator().manual_seed(0)).double().to(dev)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 9, 3, generator=g, dtype=D64)
    y = torch.randint(0, 3, (3, 9, 2), generator=g)
    mask = (torch.rand(3, 9, generator=g) < 0.7).to(D64)
    mask[:, -1] = 1
    return m, (x.to(dev), y.to(dev), mask.to(dev))


@pytest.mark.parametrize("dev", DEVICES)
def test_online_streaming_equals_sequence_on_device(dev):
    """Oracle O10 on ``dev``: the streaming fast path (one step at a time) gives the sequence
    mode's online_full gradients (relative 1e-11), all on ``dev``."""
    from rnntk.online.alignment import gradient_of

    m, batch = _stack(dev)
    a, b = gradient_of(m, batch, "online_full", "sequence"), gradient_of(m, batch, "online_full", "streaming")
    for n in a:
        assert _on(a[n], dev) and _on(b[n], dev)
        assert float((a[n] - b[n]).norm()) <= 1e-11 * max(1.0, float(a[n].norm())), n


@pytest.mark.parametrize("dev", DEVICES)
def test_online_dropout_masks_drawn_on_the_generator_device(dev):
    """Dropout masks are drawn on the generator's device (the run's device generator)."""
    from rnntk.online.models.seq_model import build_seq_model

    m = build_seq_model(d_in=3, n_classes=3, n_out=2, arch="lru", layers=2, d_model=6, d_hidden=5, dropout=0.3,
                        generator=torch.Generator().manual_seed(0)).to(dev).train()
    with DrawLog() as log:
        masks = m.sample_masks(4, torch.Generator(device=dev).manual_seed(0), torch.device(dev))
    assert log.devices and all(d.type == dev for d in log.devices)
    assert all(_on(a, dev) and _on(b, dev) for a, b in masks)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_online_cpu_and_cuda_agree():
    """Same seed and batch: online_full streaming gradients on CUDA within 1e-10 (relative,
    float64) of the CPU's."""
    from rnntk.online.alignment import gradient_of

    out = {d: gradient_of(*_stack(d), "online_full", "streaming") for d in ("cpu", "cuda")}
    for n in out["cpu"]:
        assert _rel(out["cuda"][n], out["cpu"][n]) < 1e-10, n


# ------------------------------------------------------------------------------- floss / Lyapunov
def test_initial_basis_drawn_on_the_requested_device_meta():
    """Regression: the basis was drawn and orthonormalised on the CPU, then copied."""
    from rnntk.analysis.lyapunov import initial_basis

    with DrawLog() as log:
        Q = initial_basis(8, 3, device="meta")
    assert [d.type for d in log.devices] == ["meta"] and Q.device.type == "meta"


@pytest.mark.parametrize("dev", DEVICES)
def test_lyapunov_diagonal_map_on_device(dev):
    """Oracle (as on CPU): a diagonal linear map's spectrum is log|a_i|, float64 within 1e-8;
    the basis is drawn on ``dev`` and the exponents stay there."""
    from rnntk.analysis.lyapunov import lyapunov_spectrum

    a = torch.tensor([1.3, -0.9, 0.5, 0.2, -1.1], dtype=D64, device=dev)
    A = torch.diag(a)
    with DrawLog() as log:
        res = lyapunov_spectrum(lambda x, u: x @ A.T, None, 5, x0=torch.ones(1, 5, dtype=D64, device=dev), steps=1200, warmup=200,
                                generator=torch.Generator(device=dev).manual_seed(0))
    assert all(d.type == dev for d in log.devices)
    assert _on(res.exponents, dev)
    torch.testing.assert_close(res.exponents[0], torch.sort(a.abs().log(), descending=True).values, rtol=0, atol=1e-8)


def _rnn(dev, dtype=D64, batch=4):
    from rnntk.core.vanilla_rnn import VanillaRNN

    return VanillaRNN(40, batch=batch, g=0.5, generator=torch.Generator().manual_seed(2)).to(dtype).to(dev)


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("dtype,tol", [(D64, 2e-3), (torch.float32, 3e-3)])
def test_lyapunov_contracting_net_matches_fixed_point_eigenvalues_on_device(dev, dtype, tol):
    """Oracle (as on CPU): a contracting rate network's spectrum equals log|eig| of its
    linearisation at the fixed point (float64 and float32, batched over 4 trajectories)."""
    from rnntk.analysis.lyapunov import lyapunov_spectrum

    m = _rnn(dev, dtype)
    with torch.no_grad():
        x = m.x0.detach()
        for _ in range(2000):
            x = m.step(x, None)
        Ax = (m.J.detach() * (1 / torch.cosh(x[0]) ** 2)[None, :]).double().cpu()
    expected = torch.sort(torch.linalg.eigvals(Ax).abs().log(), descending=True).values
    res = lyapunov_spectrum(m, None, 40, x0=m.x0.detach(), steps=3000, warmup=500, generator=torch.Generator(device=dev).manual_seed(0))
    assert _on(res.exponents, dev) and res.exponents.shape == (4, 40)
    assert float((res.exponents.detach().double().cpu() - expected).abs().max()) < tol


@pytest.mark.parametrize("dev", DEVICES)
def test_floss_step_on_device(dev):
    """As the CPU test: 60 flossing steps on ``dev`` cut the flossing loss below 0.3× its first
    value; inputs and the start basis are drawn on ``dev``; gradients stay there."""
    from rnntk.floss.flossing import floss_step, flossed_parameters
    from rnntk.analysis.lyapunov import initial_basis
    from rnntk.core.vanilla_rnn import VanillaRNN

    m = VanillaRNN(30, batch=1, generator=torch.Generator().manual_seed(15)).to(dev)
    opt = torch.optim.Adam(flossed_parameters(m), lr=1e-2)
    g = torch.Generator(device=dev).manual_seed(16)
    with DrawLog() as log:
        q0 = initial_basis(30, 10, generator=g, dtype=torch.float32, device=dev)
        first = None
        for _ in range(60):
            u = torch.randint(0, 2, (1, 55, 1), generator=g, device=dev).float()
            info = floss_step(m, opt, u, 10, x0=m.x0[:1].detach(), warmup=16, q0=q0)
            first = first or info.loss
            assert info.finite
    assert all(d.type == dev for d in log.devices)
    assert info.loss < 0.3 * first
    assert all(p.grad is None or _on(p.grad, dev) for p in m.parameters())


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_lyapunov_cpu_and_cuda_agree():
    """Same network, inputs and start basis: the batched spectrum on CUDA within 1e-9 (absolute,
    float64, 300 steps) of the CPU's."""
    from rnntk.analysis.lyapunov import initial_basis, lyapunov_spectrum
    from rnntk.floss.delayed_xor import delayed_parity_trials

    u = delayed_parity_trials(16, 300, 4, generator=torch.Generator().manual_seed(1), dtype=D64).inputs
    q0 = initial_basis(40, 20, generator=torch.Generator().manual_seed(0))
    out = {}
    for d in ("cpu", "cuda"):
        from rnntk.core.vanilla_rnn import VanillaRNN

        m = VanillaRNN(40, batch=16, g=1.5, generator=torch.Generator().manual_seed(2)).double().to(d)
        out[d] = lyapunov_spectrum(m, u.to(d), 20, x0=m.x0.detach(), q0=q0.to(d), warmup=20).exponents.detach().cpu()
    assert float((out["cuda"] - out["cpu"]).abs().max()) < 1e-9


# ------------------------------------------------------------------------------- CordsNet conv_eigs
def _conv(dev, C=6, H=8, W=10, seed=1, scale=2.0):
    from rnntk.cordsnet.eigs import ConvOperator

    g = torch.Generator().manual_seed(seed)
    w = torch.randn(C, C, 3, 3, generator=g, dtype=D64) * scale / (C * 9) ** 0.5
    return ConvOperator(w.to(dev), H, W)


def _dist(found, ref) -> float:
    import numpy as np

    return float(np.abs(np.asarray(found)[:, None] - np.asarray(ref)[None, :]).min(1).max())


@pytest.mark.parametrize("dev", DEVICES)
def test_arnoldi_matches_dense_on_device(dev):
    """Oracle 2 on ``dev``: top-10 |λ| from Arnoldi (float64, m = 300) within 1e-8 of LAPACK's
    eigenvalues of the independently assembled matrix, float32 within 1e-4; the start vector is
    drawn on ``dev``."""
    import numpy as np

    from rnntk.cordsnet.eigs import arnoldi

    op = _conv(dev)
    assert op.device.type == dev
    ev = np.linalg.eigvals(_conv("cpu").to_sparse().toarray())
    with DrawLog() as log, BasisLog(op.N) as basis:
        a = arnoldi(op, m=300, k=10, which="LM", generator=torch.Generator(device=dev).manual_seed(0))
    assert [d.type for d in log.devices] == [dev]
    assert basis.devices and all(d.type == dev for d in basis.devices)  # the Krylov basis and start vector
    assert _dist(a.values, ev) <= 1e-8 and a.converged.all()
    a32 = arnoldi(op, m=300, k=10, which="LM", dtype=torch.float32, generator=torch.Generator(device=dev).manual_seed(0))
    assert _dist(a32.values, ev) <= 1e-4


@pytest.mark.parametrize("dev", DEVICES)
def test_power_iteration_start_vectors_drawn_on_device(dev):
    """Power iteration's batch of start vectors is drawn on the operator's device."""
    from rnntk.cordsnet.eigs import power_iteration

    op = _conv(dev)
    with DrawLog() as log:
        power_iteration(op, iters=20, generator=torch.Generator(device=dev).manual_seed(0))
    assert log.devices and all(d.type == dev for d in log.devices)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_arnoldi_cpu_and_cuda_agree():
    """Same operator and start vector: CUDA's leading Ritz values within 1e-8 of the CPU's."""
    from rnntk.cordsnet.eigs import arnoldi

    v0 = torch.rand(6 * 8 * 10, generator=torch.Generator().manual_seed(0), dtype=D64)
    a, c = (arnoldi(_conv(d), m=300, k=10, which="LM", v0=v0) for d in ("cpu", "cuda"))
    assert _dist(c.values, a.values) <= 1e-8 and _dist(a.values, c.values) <= 1e-8


# -------------------------------------------------------------------------------- GQ adjoint / ODE
class _MLP(torch.nn.Module):
    def __init__(self, d=3, width=16):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(d + 1, width), torch.nn.Tanh(), torch.nn.Linear(width, d))

    def forward(self, t, y):
        return self.net(torch.cat([y, t.reshape(1, 1).expand(y.shape[0], 1)], 1))


def _gq_grads(dev, solver, dtype=D64):
    torch.manual_seed(0)
    f = _MLP().to(dtype)
    y0 = torch.randn(5, 3, dtype=D64)
    t = torch.linspace(0.0, 1.5, 4, dtype=D64)
    c = torch.randn(4, 5, 3, dtype=D64)
    f, y0, t, c = f.to(dev), y0.to(dev, dtype), t.to(dev, dtype), c.to(dev, dtype)
    y = y0.clone().requires_grad_(True)
    return torch.autograd.grad((solver(f, y, t) * c).sum(), [y, *f.parameters()])


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("trajectory", ["recompute", "store"])
def test_gq_adjoint_matches_direct_backprop_on_device(dev, trajectory, monkeypatch):
    """Oracle (as on CPU): GQ gradients (dopri5, 1e-10, gtol = 1) within 1e-8 (relative) of
    direct backprop through torchdiffeq's dopri5 at 1e-12, float64; the quadrature nodes and
    every gradient live on ``dev``."""
    from torchdiffeq import odeint

    from rnntk.ode.gq_adjoint import odeint_adjoint_gq

    ref = _gq_grads(dev, lambda f, y, t: odeint(f, y, t, rtol=1e-12, atol=1e-12, method="dopri5"))
    nodes = node_log(monkeypatch)
    gq = _gq_grads(dev, lambda f, y, t: odeint_adjoint_gq(f, y, t, rtol=1e-10, atol=1e-10, gtol=1.0, trajectory=trajectory))
    assert all(_on(g, dev) for g in gq)
    assert nodes and all(d.type == dev for d in nodes)  # quadrature nodes and weights made on dev
    assert max(_rel(a, b) for a, b in zip(gq, ref)) <= 1e-8


@pytest.mark.parametrize("dev", DEVICES)
def test_gq_adjoint_float32_on_device(dev):
    """float32 GQ gradients within 1e-3 (relative) of the float64 direct reference."""
    from torchdiffeq import odeint

    from rnntk.ode.gq_adjoint import odeint_adjoint_gq

    ref = _gq_grads(dev, lambda f, y, t: odeint(f, y, t, rtol=1e-12, atol=1e-12, method="dopri5"))
    gq = _gq_grads(dev, lambda f, y, t: odeint_adjoint_gq(f, y, t, rtol=1e-6, atol=1e-6), dtype=torch.float32)
    assert all(g.dtype == torch.float32 and _on(g, dev) for g in gq)
    assert max(_rel(a, b) for a, b in zip(gq, ref)) <= 1e-3


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_gq_cpu_and_cuda_agree():
    """Same field, data and seed: GQ gradients on CUDA within 1e-8 (relative, float64) of the CPU's."""
    from rnntk.ode.gq_adjoint import odeint_adjoint_gq

    a, c = (_gq_grads(d, lambda f, y, t: odeint_adjoint_gq(f, y, t, rtol=1e-10, atol=1e-10, gtol=1.0)) for d in ("cpu", "cuda"))
    assert max(_rel(x, y) for x, y in zip(c, a)) <= 1e-8


@pytest.mark.parametrize("dev", [pytest.param("cpu", id="cpu", marks=pytest.mark.slow), DEVICES[1]])  # torchsde's evaluation: ~10 s on CPU
def test_ode_train_ou_draws_wong_zakai_noise_on_device(tmp_path, dev, monkeypatch):
    """ode-train's OU task draws the Karhunen–Loève noise ξ with a generator on the run's
    device (regression: a CPU generator, then a copy) and keeps ξ there; CPU streams unchanged."""
    from rnntk.engine import Run
    from rnntk.ode import wong_zakai
    from rnntk.ode.train import ODEConfig, train_ode

    seen: list[tuple[str, str]] = []
    orig = wong_zakai.KLNoise.resample

    def resample(self, *a, **kw):
        xi = orig(self, *a, **kw)
        seen.append((self.generator.device.type, xi.device.type))
        return xi

    monkeypatch.setattr(wong_zakai.KLNoise, "resample", resample)
    cfg = ODEConfig(task="ou", width=8, ntimes=6, epochs=1, n_paths=4)
    with Run.open(tmp_path / "r", command="ode-train", seed=0, device=dev, progress="none") as run:
        train_ode(cfg, run)
    assert seen and all(s == (dev, dev) for s in seen), seen


# ------------------------------------------------------------------------- every command, on CUDA
def _cuda_commands(tmp_path):
    from pathlib import Path

    ck = Path(__file__).resolve().parents[1] / "checkpoints" / "cordsnet-mini-digits.pth"
    return {
        "selftest": ("selftest", "--iters", "6", "--steps", "10", "--batch", "8", "--hidden", "4"),
        "sofo-train": ("sofo-train", "--optimizer", "both", "--iters", "3", "--hidden", "8", "--batch", "4", "--eval-batch", "4", "-K", "8",
                       "--dt", "0.02", "--duration", "0.8", "--eval-every", "2", "--save-traces", "3"),
        "online-lru": ("online-lru", "--task", "copy", "--pattern-len", "2", "--pad-len", "1", "--layers", "2", "--d-model", "6",
                       "--d-hidden", "6", "--train-samples", "8", "--val-samples", "4", "--test-samples", "4", "--batch-size", "4",
                       "--epochs", "1", "--exec", "streaming", "--dropout", "0.1"),
        "floss": ("floss", "--n-units", "16", "--floss-k", "6", "--delay", "6", "--trial-len", "40", "--batch", "4", "--epochs", "6",
                  "--floss-before", "3", "--floss-every", "3", "--floss-epochs", "3", "--floss-times", "1", "--le-every", "3",
                  "--le-len", "60", "--eval-every", "3", "--eval-batch", "8", "--floss-len", "30"),
        "cordsnet-eval": ("cordsnet-eval", "--checkpoint", str(ck), "--data", "digits", "--limit", "16", "--batch-size", "8",
                          "--spont-steps", "5", "--stim-steps", "6"),
        "cordsnet-eigs": ("cordsnet-eigs", str(ck), "--method", "arnoldi", "--k", "4"),
        "ode-train": ("ode-train", "--task", "g1d", "--epochs", "2", "--width", "16", "--adjoint", "gq"),
    }


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("name", ["selftest", "sofo-train", "online-lru", "floss", "lyapunov", "cordsnet-eval", "cordsnet-eigs", "ode-train"])
def test_every_command_runs_end_to_end_on_cuda(tmp_path, name):
    """``--device cuda`` end to end: exit 0, status completed, run.h5 records a cuda device."""
    import h5py
    from conftest import run_cli

    cmds = _cuda_commands(tmp_path)
    if name == "lyapunov":
        r0 = run_cli(*cmds["floss"], "--device", "cuda", "--out", tmp_path / "f", "-q", timeout=300)
        assert r0.code == 0, r0.stderr
        args: tuple = ("lyapunov", str(tmp_path / "f" / "model.pt"), "--steps", "200", "--warmup", "50", "--n-traj", "3")
    else:
        args = cmds[name]
    r = run_cli(*args, "--device", "cuda", "--out", tmp_path / "r", "-q", timeout=300)
    assert r.code == 0 and r.json["status"] == "completed", r.stderr
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        assert "cuda" in str(f.attrs["device"])
