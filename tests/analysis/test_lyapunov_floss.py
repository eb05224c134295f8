"""Lyapunov spectra and gradient flossing against independent oracles (floss note §6):
analytic spectra of linear maps, the determinant sum rule, fixed-point linearisation,
float32 vs float64, finite differences / gradcheck, and a direct XOR reimplementation."""

import numpy as np
import pytest
import torch

from rnntk.floss.flossing import FlossSchedule, clip_per_tensor, floss_step, flossed_parameters, flossing_loss
from rnntk.analysis.lyapunov import generic_tangent, initial_basis, long_term_jacobian_singular_values, lyapunov_spectrum
from rnntk.core.vanilla_rnn import VanillaRNN
from rnntk.floss.delayed_xor import accuracy, bce_loss, check_delay, delayed_parity_trials

D64 = torch.float64


def linear(A):
    return lambda x, u: x @ A.T


def test_diagonal_map_gives_log_abs_entries():
    a = torch.tensor([1.3, -0.9, 0.5, 0.2, -1.1], dtype=D64)
    x0 = torch.ones(1, 5, dtype=D64)
    res = lyapunov_spectrum(linear(torch.diag(a)), None, 5, x0=x0, steps=1200, warmup=200, generator=torch.Generator().manual_seed(0))
    expected = torch.sort(a.abs().log(), descending=True).values
    torch.testing.assert_close(res.exponents[0], expected, rtol=0, atol=1e-8)


def test_constant_nonnormal_matrix_gives_log_eigenvalue_moduli():
    g = torch.Generator().manual_seed(1)
    N, T = 12, 6000
    A = torch.randn(N, N, generator=g, dtype=D64) / np.sqrt(N) + torch.triu(torch.ones(N, N, dtype=D64), 1) * 0.3
    # the state of an expanding linear map overflows; only the tangent map A matters here
    res = lyapunov_spectrum(lambda x, u: x, None, N, x0=torch.ones(1, N, dtype=D64), steps=T, generator=g, tangent=lambda x, Q, u: A @ Q)
    expected = torch.sort(torch.linalg.eigvals(A).abs().log(), descending=True).values
    assert float((res.exponents[0] - expected).abs().max()) < 5.0 / T * 10  # O(1/T) bias, no warm-up


def test_sum_rule_each_step_equals_log_abs_det():
    """Σ_i log|R_ii| of each step = log|det A_t| = log|det J| + Σ_i log φ'(x_{t−1,i}) (α = 1)."""
    torch.manual_seed(0)
    m = VanillaRNN(10, batch=2, generator=torch.Generator().manual_seed(0)).double()
    u = delayed_parity_trials(2, 30, 4, generator=torch.Generator().manual_seed(1), dtype=D64).inputs
    res = lyapunov_spectrum(m, u, 10, x0=m.x0.detach())
    x = m.x0.detach()
    logdetJ = torch.linalg.slogdet(m.J.detach())[1]
    for t in range(30):
        expected = logdetJ + torch.log(1 / torch.cosh(x) ** 2).sum(-1)
        torch.testing.assert_close(res.log_r[t].sum(-1), expected, rtol=0, atol=1e-10 * 10)
        x = m.step(x, u[:, t]).detach()
    torch.testing.assert_close(res.exponents.sum(-1), res.log_r.sum(-1).mean(0), rtol=1e-12, atol=1e-12)


def test_fixed_point_linearisation_and_contracting_net():
    m = VanillaRNN(40, batch=1, g=0.5, generator=torch.Generator().manual_seed(2)).double()
    with torch.no_grad():
        x = m.x0.detach()
        for _ in range(2000):
            x = m.step(x, None)
        Ax = m.J.detach() * (1 / torch.cosh(x[0]) ** 2)[None, :]
    expected = torch.sort(torch.linalg.eigvals(Ax).abs().log(), descending=True).values
    res = lyapunov_spectrum(m, None, 40, x0=m.x0.detach(), steps=3000, warmup=500)
    assert float((res.exponents[0].detach() - expected).abs().max()) < 2e-3
    assert bool((res.exponents < 0).all())


def test_analytic_tangent_equals_jvp_and_batch_equals_loop():
    m = VanillaRNN(12, batch=4, alpha=0.3, generator=torch.Generator().manual_seed(3)).double()
    x = m.x0.detach()
    Q = torch.randn(4, 12, 5, dtype=D64)
    u = torch.rand(4, 1, dtype=D64)
    torch.testing.assert_close(m.tangent(x, Q, u), generic_tangent(m.step)(x, Q, u), rtol=1e-12, atol=1e-13)
    inputs = delayed_parity_trials(4, 40, 6, generator=torch.Generator().manual_seed(4), dtype=D64).inputs
    q0 = initial_basis(12, 5, generator=torch.Generator().manual_seed(5))
    batched = lyapunov_spectrum(m, inputs, 5, x0=x, q0=q0, warmup=5).exponents
    loop = torch.stack([lyapunov_spectrum(m, inputs[i : i + 1], 5, x0=x[i : i + 1], q0=q0, warmup=5).exponents[0] for i in range(4)])
    torch.testing.assert_close(batched, loop, rtol=1e-12, atol=1e-12)
    generic = lyapunov_spectrum(m.step, inputs, 5, x0=x, q0=q0, warmup=5).exponents
    torch.testing.assert_close(generic, batched, rtol=1e-11, atol=1e-12)


def test_top_k_and_t_ons_consistency():
    m = VanillaRNN(20, batch=1, generator=torch.Generator().manual_seed(6)).double()
    u = delayed_parity_trials(1, 200, 10, generator=torch.Generator().manual_seed(7), dtype=D64).inputs
    q_full = initial_basis(20, 20, generator=torch.Generator().manual_seed(8))
    full = lyapunov_spectrum(m, u, 20, x0=m.x0[:1].detach(), q0=q_full).exponents[0]
    top = lyapunov_spectrum(m, u, 6, x0=m.x0[:1].detach(), q0=q_full[:, :6]).exponents[0]
    torch.testing.assert_close(top, full[:6], rtol=0, atol=1e-12)
    for t_ons in (2, 4, 5):
        other = lyapunov_spectrum(m, u, 20, x0=m.x0[:1].detach(), q0=q_full, t_ons=t_ons).exponents[0]
        torch.testing.assert_close(other, full, rtol=0, atol=1e-9)


def test_float32_agrees_with_long_float64_run():
    m64 = VanillaRNN(80, batch=1, generator=torch.Generator().manual_seed(9)).double()
    m32 = VanillaRNN(80, batch=1, generator=torch.Generator().manual_seed(9))
    u = delayed_parity_trials(1, 2000, 20, generator=torch.Generator().manual_seed(10), dtype=D64).inputs
    q0 = initial_basis(80, 75, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        a = lyapunov_spectrum(m64, u, 75, x0=m64.x0.detach(), q0=q0, warmup=100).exponents[0]
        b = lyapunov_spectrum(m32, u.float(), 75, x0=m32.x0.detach(), q0=q0.float(), warmup=100).exponents[0]
    assert float((a - b.double()).abs().max()) < 1e-4
    # reference band of the default net (note §6.11): λ_1 ≈ −0.32 ± 0.04, mean ≈ −1.1
    assert -0.5 < float(a[0]) < -0.15 and -1.6 < float(a.mean()) < -0.6


def test_flossing_loss_gradient_matches_finite_differences():
    m = VanillaRNN(10, batch=1, generator=torch.Generator().manual_seed(12)).double()
    u = delayed_parity_trials(1, 30, 4, generator=torch.Generator().manual_seed(13), dtype=D64).inputs
    q0 = initial_basis(10, 4, generator=torch.Generator().manual_seed(14))
    x0 = m.x0.detach()

    J0 = m.J.detach().clone()

    def loss_of(J):
        del m.J
        m.J = J  # plain tensor attribute for the functional check
        try:
            return flossing_loss(lyapunov_spectrum(m, u, 4, x0=x0, q0=q0, warmup=3).exponents)
        finally:
            del m.J
            m.J = torch.nn.Parameter(J0.clone())

    assert torch.autograd.gradcheck(loss_of, (J0.clone().requires_grad_(True),), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_floss_step_pushes_top_exponent_towards_zero():
    torch.manual_seed(0)
    m = VanillaRNN(30, batch=1, generator=torch.Generator().manual_seed(15))
    opt = torch.optim.Adam(flossed_parameters(m), lr=1e-2)
    gen = torch.Generator().manual_seed(16)
    first = None
    for i in range(60):
        u = delayed_parity_trials(1, 55, 10, generator=gen).inputs
        info = floss_step(m, opt, u, 10, x0=m.x0[:1].detach(), warmup=16, q0=initial_basis(30, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float32))
        first = first or info.loss
        assert info.finite
    assert info.loss < 0.3 * first
    assert m.w_out.grad is None and m.x0.grad is None  # only W_in, J, b are flossed


def test_schedule_and_clipping():
    s = FlossSchedule(before=5, every=10, steps=3, times=2)
    assert [s.steps_at(e, d) for e, d in ((0, 0), (1, 0), (10, 0), (20, 1), (30, 2), (15, 0))] == [5, 0, 3, 3, 0, 0]
    p = torch.nn.Parameter(torch.zeros(3))
    q = torch.nn.Parameter(torch.zeros(2))
    p.grad, q.grad = torch.tensor([3.0, 4.0, 0.0]), torch.tensor([0.01, 0.0])
    total = clip_per_tensor([p, q], 0.03)
    assert total == pytest.approx(np.sqrt(25 + 1e-4))
    torch.testing.assert_close(p.grad.norm(), torch.tensor(0.03))
    torch.testing.assert_close(q.grad, torch.tensor([0.01, 0.0]))


def _direct_parity(bits, delay, n_bits, steps):
    """Independent loop reimplementation: bits (T + D,), visible input bits[D:]."""
    sp = delay // n_bits
    out = []
    for t in range(steps):
        v = 0
        for m in range(1, n_bits + 1):
            v ^= int(bits[delay + t - m * sp])
        out.append(v)
    return out


@pytest.mark.parametrize("n_bits,delay", [(2, 20), (1, 7), (4, 12)])
def test_task_targets_match_a_direct_reimplementation(n_bits, delay):
    gen = torch.Generator().manual_seed(0)
    tr = delayed_parity_trials(5, 60, delay, n_bits=n_bits, channels=2, generator=gen)
    gen = torch.Generator().manual_seed(0)
    s = torch.randint(0, 2, (5, 60 + delay, 2), generator=gen)  # the same stream
    for b in range(5):
        for c in range(2):
            assert tr.targets[b, :, c].long().tolist() == _direct_parity(s[b, :, c].tolist(), delay, n_bits, 60)
            assert tr.inputs[b, :, c].long().tolist() == s[b, delay:, c].tolist()
    # y_t = u_{t-D/2} xor u_{t-D} on visible steps (the paper's convention)
    if n_bits == 2:
        u = tr.inputs.long()
        torch.testing.assert_close(tr.targets[:, delay:].long(), u[:, delay // 2 : 60 - delay // 2] ^ u[:, : 60 - delay])
    assert tr.mask[0, delay - 1] == 0 and tr.mask[0, delay] == 1
    up = delayed_parity_trials(1, 60, delay, n_bits=n_bits, upstream_window=True)
    assert up.mask[0, delay - 1] == 1 and up.mask[0, delay - 2] == 0


def test_task_errors_and_metrics():
    for args, msg in (((10, 3, 20), "multiple"), ((0, 2, 20), ">= 1"), ((20, 2, 20), "exceed")):
        with pytest.raises(ValueError, match=msg):
            check_delay(*args)
    tr = delayed_parity_trials(4, 30, 6)
    logits = torch.where(tr.targets > 0.5, 5.0, -5.0)
    assert float(accuracy(logits, tr.targets, tr.mask)) == 1.0
    assert float(accuracy(-logits, tr.targets, tr.mask)) == 0.0
    assert float(bce_loss(logits, tr.targets, tr.mask)) < 0.01


def test_long_term_jacobian_singular_values():
    A = torch.diag(torch.tensor([0.5, 2.0, 1.0], dtype=D64))
    sv = long_term_jacobian_singular_values(linear(A), None, [1, 3], x0=torch.ones(1, 3, dtype=D64))
    torch.testing.assert_close(sv, torch.tensor([[2.0, 1.0, 0.5], [8.0, 1.0, 0.125]], dtype=D64))


def test_public_api_floss_before_training():
    import rnntk

    m = VanillaRNN(20, batch=2, generator=torch.Generator().manual_seed(20))
    gen = torch.Generator().manual_seed(21)
    u0 = delayed_parity_trials(2, 55, 10, generator=torch.Generator().manual_seed(22)).inputs
    before = rnntk.lyapunov_spectrum(m, u0, 8, warmup=16, generator=torch.Generator().manual_seed(0)).exponents.detach()
    infos = rnntk.floss(m, lambda i: delayed_parity_trials(2, 55, 10, generator=gen).inputs, 8, 40, lr=1e-2, generator=torch.Generator().manual_seed(0))
    after = rnntk.lyapunov_spectrum(m, u0, 8, warmup=16, generator=torch.Generator().manual_seed(0)).exponents.detach()
    assert len(infos) == 40 and infos[-1].loss < infos[0].loss
    assert float(after.abs().mean()) < float(before.abs().mean())


def test_t_ons_with_warmup_covers_the_same_window():
    """Flossing's setting (55 steps, warm-up 16): any t_ons accumulates the same 39 steps."""
    m = VanillaRNN(30, batch=2, generator=torch.Generator().manual_seed(30)).double()
    u = delayed_parity_trials(2, 55, 10, generator=torch.Generator().manual_seed(31), dtype=D64).inputs
    q0 = initial_basis(30, 25, generator=torch.Generator().manual_seed(32))
    ref = lyapunov_spectrum(m, u, 25, x0=m.x0.detach(), q0=q0, warmup=16)
    assert ref.steps == 39
    for t_ons in (2, 3, 7):
        other = lyapunov_spectrum(m, u, 25, x0=m.x0.detach(), q0=q0, warmup=16, t_ons=t_ons)
        assert other.steps == 39
        torch.testing.assert_close(other.exponents, ref.exponents, rtol=0, atol=1e-9)  # note §6.8 tolerance
    m32 = VanillaRNN(30, batch=2, generator=torch.Generator().manual_seed(30))
    f32 = lyapunov_spectrum(m32, u.float(), 25, x0=m32.x0.detach(), q0=q0.float(), warmup=16, t_ons=2)
    assert float((f32.exponents.detach().double() - ref.exponents.detach()).abs().max()) < 1e-4


def test_spectrum_of_sofo_rate_rnn_via_step_function_obeys_sum_rule():
    """Any rnntk recurrent model through a step function (generic jvp tangents): SOFO's leaky
    ReLU Kalman RNN. Oracle: Σλ = mean_t log|det J_t| with J_t from autograd's dense jacobian."""
    from torch.autograd.functional import jacobian

    from rnntk.sofo.models.kalman_rnn import KalmanRNN

    m = KalmanRNN(8, generator=torch.Generator().manual_seed(40)).double()
    p = m.params()
    with torch.no_grad():
        p["C"] = p["C"] * 2.0  # stronger recurrence, so that most units stay active
    step = lambda z, u: m.step(p, z, u)[0]
    T = 60
    y = torch.randn(1, T, 1, generator=torch.Generator().manual_seed(41), dtype=D64)
    u = torch.cat([y, torch.ones(1, T, 1, dtype=D64), torch.zeros(1, T, 1, dtype=D64)], -1)
    x0 = torch.rand(1, 8, generator=torch.Generator().manual_seed(42), dtype=D64) + 0.5
    res = lyapunov_spectrum(step, u, 8, x0=x0)
    x, logdets = x0, []
    for t in range(T):
        J = jacobian(lambda z: step(z, u[:, t]), x)[0, :, 0, :]
        logdets.append(torch.linalg.slogdet(J)[1])
        x = step(x, u[:, t])
    torch.testing.assert_close(res.exponents.sum(-1)[0], torch.stack(logdets).mean(), rtol=1e-10, atol=1e-10)
