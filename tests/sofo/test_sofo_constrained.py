"""SOFO on ConstrainedRNN (issue 18.2/18.5): the hand-written constrained tangent step equals
vmap(jvp) of the constrained step (the generic path); the sketch's gradient equals autograd's
gradient projected on the tangents; Dale's law, masks, no autapses and fixed weights hold EXACTLY
after 50 SOFO steps. Oracles: torch.func.jvp/vmap, torch.autograd."""

from __future__ import annotations

import numpy as np
import torch

from rnntk.core.constrained_rnn import ConstrainedRNN
from rnntk.core.trials import TrialBatch
from rnntk.sofo.constrained import sketch_constrained
from rnntk.sofo.optimizer import MSE, SOFO, CrossEntropy, generic_tangent_step

N, NI, NO, B, T = 12, 3, 2, 6, 8


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def model(tmp_path, **kw) -> ConstrainedRNN:
    rng = np.random.default_rng(1)
    mask_rec = rng.random((N, N)) < 0.6
    np.savez(tmp_path / "c.npz", mask_rec=mask_rec, fixed_rec=mask_rec & (rng.random((N, N)) < 0.2), fixed_out=np.eye(NO, N, dtype=bool))
    kw = {"dale_ratio": 0.75, "connectivity": str(tmp_path / "c.npz"), "autapses": False, "dt": 0.02, "tau": 0.1, "g": 1.2, "activation": "softplus", **kw}
    return ConstrainedRNN(NI, N, NO, generator=gen(), **kw)


def trials(seed: int) -> TrialBatch:
    g = gen(seed)
    u = torch.randn(B, T, NI, generator=g)
    y = torch.stack([u[..., 0].cumsum(1) * 0.1, u[..., 1]], -1)
    return TrialBatch(u, y, torch.ones(B, T))


def test_manual_tangent_step_equals_vmap_jvp(tmp_path):
    m = model(tmp_path, rec_noise=0.1, input_noise=0.05)
    p = {k: v.detach() for k, v in m.named_parameters()}
    with torch.no_grad():
        p["theta_rec"][::2] *= -1  # negative theta: |theta| flips the tangent's sign there
    K = 5
    V = {k: torch.randn(K, *v.shape, generator=gen(2)) for k, v in p.items()}
    x = torch.randn(B, N, generator=gen(3))
    dx = torch.randn(K, B, N, generator=gen(4))
    u = torch.randn(B, NI, generator=gen(5))
    xi = torch.randn(B, N + NI, generator=gen(6))
    manual = m.tangent_step(p, x, dx, V, u, xi)
    oracle = generic_tangent_step(m.step_output)(p, x, dx, V, u, xi)
    for a, b in zip(manual, oracle):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_sketch_manual_equals_generic_and_its_gradient_is_autograd(tmp_path):
    m = model(tmp_path, rec_noise=0.1)
    tr = trials(7)
    noise = m.sample_noise(B, T, gen(8))
    p = {k: v for k, v in m.named_parameters()}
    V = {k: torch.randn(6, *v.shape, generator=gen(9)) for k, v in p.items()}
    loss = MSE(1.0 / T)
    a = sketch_constrained(m, V, tr, loss, noise, impl="manual")
    b = sketch_constrained(m, V, tr, loss, noise, impl="generic")
    torch.testing.assert_close(a.g_hat, b.g_hat, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(a.G_hat, b.G_hat, rtol=1e-5, atol=1e-7)
    y, _ = m(tr.inputs, noise)
    L = sum(loss.value(y[:, t], tr.targets[:, t]) for t in range(T))  # the loss summed over the steps
    grads = torch.autograd.grad(L, list(p.values()))
    g_ref = sum(torch.einsum("k...,...->k", V[k], g) for k, g in zip(p, grads))
    torch.testing.assert_close(a.g_hat.float(), g_ref, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(a.loss.float(), L.detach(), rtol=1e-5, atol=1e-7)


def test_sofo_50_steps_keep_signs_masks_and_fixed_weights_exactly(tmp_path):
    m = model(tmp_path, rec_noise=0.05, input_noise=0.05)
    before = {k[2:]: w.detach().clone() for k, w in m.effective().items()}
    opt = SOFO(m, n_tangents=16, damping=1e-2, lr=0.3, generator=gen(10))
    g = gen(11)
    loss = CrossEntropy(1.0 / T)
    losses = []
    for i in range(50):
        tr = trials(100 + i)
        tr = TrialBatch(tr.inputs, (tr.targets[..., 0] > 0).long(), tr.mask)  # a class per step
        info = opt.step(lambda V, tr=tr: sketch_constrained(m, V, tr, loss, m.sample_noise(B, T, g)))
        losses.append(info.loss)
    W = m.effective()
    for b in ("in", "rec", "out"):
        w = W[f"W_{b}"].detach()
        off = ~getattr(m, f"mask_{b}")
        assert torch.equal(w[off], torch.zeros_like(w[off]))
        fixed = getattr(m, f"fixed_{b}")
        assert torch.equal(w[fixed], before[b][fixed])
    rec = W["W_rec"].detach()
    assert torch.equal(rec.diagonal(), torch.zeros(N))
    assert bool(((rec * m.dale_sign) >= 0).all())
    free = m.free_mask("rec")
    assert not torch.equal(rec[free], before["rec"][free])  # SOFO did move the free weights
    assert sum(losses[-10:]) < sum(losses[:10])
