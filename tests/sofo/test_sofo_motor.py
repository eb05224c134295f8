"""Arm physics, reach generators, motor RNN: oracles O2 (hand-written tangents = vmap(jvp),
sketch vs autograd on the double reach) and O11 (arm and task generator facts)."""

import math

import pytest
import torch
from conftest import assert_sketch_matches_autograd
from torch.func import jvp

from rnntk.sofo.models import arm
from rnntk.sofo.models.motor_rnn import MotorRNN
from rnntk.sofo.optimizer import generic_tangent_step, sample_tangents
from rnntk.sofo.problems import ReachProblem
from rnntk.sofo.tasks import reach
from rnntk.sofo.tasks.reach import double_reach_trials, single_reach_trials

pytestmark = pytest.mark.filterwarnings("error:There is a performance drop")
D64 = torch.float64


def test_O11_central_spot_and_rest():
    theta, omega = arm.start_state(3, D64)
    h = arm.hand(theta, omega)
    torch.testing.assert_close(h[0, :2], torch.tensor([0.0, 0.2052], dtype=D64), rtol=0, atol=5e-5)
    assert arm.central_spot()[1] == pytest.approx(0.2052, abs=5e-5)
    th, om = theta, omega
    for _ in range(500):  # zero torque from rest stays at rest
        th, om = arm.arm_step(th, om, torch.zeros(3, 2, dtype=D64), 0.002)
    torch.testing.assert_close(th, theta, rtol=0, atol=1e-15)
    torch.testing.assert_close(om, omega, rtol=0, atol=1e-15)
    assert arm.A1 == pytest.approx(0.16) and arm.A2 == pytest.approx(0.048) and arm.A3 == pytest.approx(0.045)


def test_O11_hand_velocity_is_the_derivative_of_position():
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(5, 2, generator=g, dtype=D64)
    omega = torch.randn(5, 2, generator=g, dtype=D64)
    pos = lambda th: arm.hand(th, torch.zeros_like(th))[..., :2]
    _, dp = jvp(pos, (theta,), (omega,))  # d/dt p(θ(t)) = J(θ) θ̇
    torch.testing.assert_close(arm.hand(theta, omega)[..., 2:], dp, rtol=1e-12, atol=1e-14)
    h = 1e-6
    fd = (pos(theta + h * omega) - pos(theta - h * omega)) / (2 * h)
    torch.testing.assert_close(arm.hand(theta, omega)[..., 2:], fd, rtol=1e-7, atol=1e-9)


def test_acceleration_solves_the_equation_of_motion():
    """Oracle: M(θ) θ̈ + c + Bω = τ with M, c built independently as dense matrices."""
    g = torch.Generator().manual_seed(1)
    theta, omega, tau = (torch.randn(4, 2, generator=g, dtype=D64) for _ in range(3))
    acc = arm.acceleration(theta, omega, tau)
    c2, s2 = torch.cos(theta[:, 1]), torch.sin(theta[:, 1])
    M = torch.stack(
        [torch.stack([arm.A1 + 2 * arm.A2 * c2, arm.A3 + arm.A2 * c2], -1), torch.stack([arm.A3 + arm.A2 * c2, torch.full_like(c2, arm.A3)], -1)], -2
    )
    c = arm.A2 * s2[:, None] * torch.stack([-omega[:, 1] * (2 * omega[:, 0] + omega[:, 1]), omega[:, 0] ** 2], -1)
    Bv = torch.tensor(arm.VISC, dtype=D64)
    torch.testing.assert_close(torch.einsum("bij,bj->bi", M, acc) + c + omega @ Bv.T, tau, rtol=1e-12, atol=1e-13)


def test_arm_and_hand_tangents_equal_jvp():
    g = torch.Generator().manual_seed(2)
    th, om, tq = (torch.randn(3, 2, generator=g, dtype=D64) for _ in range(3))
    dth, dom, dtq = (torch.randn(3, 2, generator=g, dtype=D64) for _ in range(3))
    (t1, o1), (dt1, do1) = jvp(lambda a, b, c: arm.arm_step(a, b, c, 0.01), (th, om, tq), (dth, dom, dtq))
    got = arm.arm_step_tangent(th, om, tq, dth, dom, dtq, 0.01)
    for a, b in zip(got, (t1, o1, dt1, do1)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    _, dh = jvp(arm.hand, (th, om), (dth, dom))
    torch.testing.assert_close(arm.hand_tangent(th, om, dth, dom), dh, rtol=1e-12, atol=1e-14)


def _motor(noise=True, n=7):
    torch.manual_seed(0)
    m = MotorRNN(6, n, dt=0.01, tau=0.02, noise=noise, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():  # stronger weights so that the arm really moves
        for p in m.parameters():
            p.mul_(20.0)
    return m


def test_O2_manual_tangent_step_equals_vmap_jvp_over_a_rollout():
    m = _motor()
    p = m.params()
    B, K = 4, 6
    tr = double_reach_trials(B, dt=0.01, duration=0.5, generator=torch.Generator().manual_seed(1), dtype=D64)
    eta = m.sample_noise(B, tr.steps, torch.Generator().manual_seed(2)).double()
    V = sample_tangents(p, K, generator=torch.Generator().manual_seed(3))
    gen = generic_tangent_step(m.step)
    sa, sb = m.initial_state(p, B), m.initial_state(p, B)
    da, db = m.initial_tangent(V, B), m.initial_tangent(V, B)
    worst = 0.0
    for t in range(tr.steps):
        sa, ya, da, dya = gen(p, sa, da, V, tr.inputs[:, t], eta[:, t])
        sb, yb, db, dyb = m.tangent_step(p, sb, db, V, tr.inputs[:, t], eta[:, t])
        worst = max(worst, float((dya - dyb).abs().max()), float((da[0] - db[0]).abs().max()))
        torch.testing.assert_close(yb, ya, rtol=0, atol=1e-13)
    assert worst < 1e-11
    assert float(sb[2].abs().max()) > 1e-3  # the arm did move


def test_O2_double_reach_sketch_matches_autograd_gradient():
    """ĝ = V·∇L with ∇L from autograd through the whole rollout (arm included), float64."""
    prob = ReachProblem("double-reach", hidden=7, dt=0.01, duration=0.6)
    m = _motor()
    b = prob.sample(3, torch.Generator().manual_seed(4))
    b.trials.inputs, b.trials.targets, b.trials.mask = b.trials.inputs.double(), b.trials.targets.double(), b.trials.mask.double()
    b.noise = b.noise.double()
    p = m.params()
    V = sample_tangents(p, 10, generator=torch.Generator().manual_seed(5))
    assert_sketch_matches_autograd(prob, m, V, b)


def test_double_reach_generator_follows_the_protocol():
    dt = 0.01
    tr = double_reach_trials(256, dt=dt, generator=torch.Generator().manual_seed(0), dtype=D64)
    assert tr.inputs.shape == (256, 200, 6) and tr.targets.shape == (256, 200, 4) and tr.mask.shape == (256, 200)
    tab = tr.table
    go1, go2 = tab["go1_s"], tab["go2_s"]
    assert float(go1.min()) >= 0.2 and float(go1.max()) <= 0.6
    torch.testing.assert_close(go2 - go1, torch.full_like(go1, 0.7))
    cx, cy = arm.central_spot()
    for i in range(0, 256, 37):
        g1, g2 = round(float(go1[i]) / dt), round(float(go2[i]) / dt)
        u = tr.inputs[i]
        assert torch.equal(u[0], torch.tensor([1, 1, tab["target1_x"][i], tab["target1_y"][i], tab["target2_x"][i], tab["target2_y"][i]], dtype=D64))
        assert torch.equal(u[g1], torch.tensor([0, 1, 0, 0, 0, 0], dtype=D64)) and torch.equal(u[g2], torch.zeros(6, dtype=D64))
        w = tr.mask[i]
        assert w[g1 - 1] == 1 and w[g1] == 0 and w[g1 + 61] == 4 and w[g2] == 4 and w[g2 + 60] == 0 and w[g2 + 61] == 4
        assert tr.targets[i, 0, 0] == pytest.approx(cx) and tr.targets[i, 0, 1] == pytest.approx(cy)
        assert tr.targets[i, g2, 0] == tab["target1_x"][i] and tr.targets[i, -1, 1] == tab["target2_y"][i]
    assert float(tr.targets[..., 2:].abs().max()) == 0.0
    r = torch.stack([tab["target1_x"] - cx, tab["target1_y"] - cy], -1).norm(dim=-1)
    assert 0.2 <= float(r.min()) and float(r.max()) <= 0.5
    phi = torch.rad2deg(torch.atan2(tab["target1_y"] - cy, tab["target1_x"] - cx))
    phi = torch.where(phi < -90, phi + 360, phi)
    assert -36 <= float(phi.min()) and float(phi.max()) <= 216
    frac = float(torch.cat([tab["unreachable1"], tab["unreachable2"]]).double().mean())
    assert 0.05 < frac < 0.22  # spec: about 13% beyond reach


def test_single_reach_generator():
    tr = single_reach_trials(64, dt=0.01, generator=torch.Generator().manual_seed(0))
    assert tr.inputs.shape == (64, 200, 3)
    go = torch.round(tr.table["go_s"] / 0.01).long()
    i = 0
    assert tr.mask[i, int(go[i]) - 1] == 1 and tr.mask[i, int(go[i])] == 0 and tr.mask[i, -1] == 4
    assert float(tr.inputs[i, int(go[i]) :].abs().max()) == 0.0


def test_noise_is_shared_and_clipped():
    m = MotorRNN(6, 16, dt=0.002, tau=0.02)
    assert m.sigma == pytest.approx(0.2 * math.sqrt(10))
    eta = m.sample_noise(4, 50, torch.Generator().manual_seed(0))
    assert float(eta.min()) >= 0.0 and float(eta.max()) <= 1 + m.sigma
    assert torch.equal(MotorRNN(6, 16, noise=False).sample_noise(2, 3), torch.ones(2, 3, 16))


# ----------------------------------------------------------------- task-level metrics (issue 14)


def test_inverse_dynamics_and_kinematics_invert_the_arm():
    g = torch.Generator().manual_seed(6)
    theta, omega, acc = (torch.randn(5, 2, generator=g, dtype=D64) for _ in range(3))
    torch.testing.assert_close(arm.acceleration(theta, omega, arm.inverse_dynamics(theta, omega, acc)), acc, rtol=1e-11, atol=1e-11)
    theta[:, 1] = theta[:, 1].abs().clamp(0.1, 3.0)  # the elbow bent like the start posture
    pos = arm.hand(theta, torch.zeros_like(theta))[..., :2]
    q = arm.inverse_kinematics(pos)
    torch.testing.assert_close(arm.hand(q, torch.zeros_like(q))[..., :2], pos, rtol=0, atol=1e-12)
    far = torch.tensor([[0.0, 0.9]], dtype=D64)  # beyond reach: the nearest reachable point
    q = arm.inverse_kinematics(far)
    torch.testing.assert_close(arm.hand(q, torch.zeros_like(q))[0, :2], torch.tensor([0.0, 0.999 * 0.6], dtype=D64), rtol=0, atol=1e-9)


def test_reach_errors_equal_a_plain_loop():
    tr = double_reach_trials(6, dt=0.01, generator=torch.Generator().manual_seed(3), dtype=D64)
    hand = 0.3 * torch.randn(6, tr.steps, 4, generator=torch.Generator().manual_seed(4), dtype=D64)
    err = reach.reach_errors(hand, tr.extra["hold_masks"], tr.extra["hold_targets"])
    for i in range(6):
        g1, g2 = round(float(tr.table["go1_s"][i]) / 0.01), round(float(tr.table["go2_s"][i]) / 0.01)
        for r, (lo, hi, key) in enumerate(((g1 + 60, g2, "target1"), (g2 + 60, tr.steps - 1, "target2"))):
            tgt = torch.tensor([float(tr.table[key + "_x"][i]), float(tr.table[key + "_y"][i])], dtype=D64)
            d = [float((hand[i, t, :2] - tgt).norm()) for t in range(lo + 1, hi + 1)]  # weight-4 steps of hold r
            assert all(float(tr.mask[i, t]) == 4.0 for t in range(lo + 1, hi + 1))
            assert float(err["end"][i, r]) == pytest.approx(d[-1], rel=1e-12)
            assert float(err["mean"][i, r]) == pytest.approx(sum(d) / len(d), rel=1e-12)
            assert bool(err["reachable"][i, r]) == (float(tgt.norm()) <= 0.6)
    s = reach.reach_summary(err)
    ok = err["reachable"]
    assert s["reach_error_hold2"] == pytest.approx(float(err["end"][ok[:, 1], 1].median()))
    assert s["reach_success"] == pytest.approx(float((err["end"][ok] <= 0.02).double().mean()))


def test_scripted_controller_reaches_every_reachable_target_and_sets_the_loss_floor():
    """The computed-torque reference: exact reaches; its loss is only the unreachable
    targets' distance to the edge of the workspace (computed independently here)."""
    prob = ReachProblem("double-reach", hidden=4, dt=0.01)
    tr = double_reach_trials(24, dt=0.01, generator=torch.Generator().manual_seed(5), dtype=D64)
    hand = reach.scripted_reach(tr)
    err = reach.reach_errors(hand, tr.extra["hold_masks"], tr.extra["hold_targets"])
    s = reach.reach_summary(err)
    assert float(err["end"][err["reachable"]].max()) < 1e-3 and s["reach_success"] == 1.0
    assert float(hand[:, -1, 2:].abs().max()) < 1e-9  # at rest at the end of the last hold
    tg = tr.extra["hold_targets"]
    gap = (tg.norm(dim=-1) - 0.999 * 0.6).clamp_min(0.0)  # (B, 2)
    floor = (10 / tr.steps) / tr.batch * (4.0 * tr.extra["hold_masks"].sum(-1) * gap**2).sum()
    got = prob.mse.scale / tr.batch * (tr.mask[..., None] * (hand - tr.targets) ** 2).sum()
    assert float(got) == pytest.approx(float(floor), rel=1e-4, abs=1e-7)


def test_evaluate_task_reports_reach_errors_and_the_figure_marks_both_targets():
    prob = ReachProblem("double-reach", hidden=5, dt=0.02, tau=0.02)
    m = prob.make_model(torch.Generator().manual_seed(0))
    b = prob.sample(6, torch.Generator().manual_seed(1))
    loss, task = prob.evaluate_task(m, b)
    assert loss == pytest.approx(prob.evaluate(m, b))
    assert {"reach_error_hold1", "reach_error_hold2", "reach_error_hold1_mean", "reach_error_hold2_mean", "reach_success"} <= set(task)
    shown = prob.progress_metrics(task)
    assert shown["val_reach_err1_cm"] == pytest.approx(100 * task["reach_error_hold1"])
    with torch.no_grad():
        hand = m.rollout(m.params(), b.trials.inputs, b.noise)["hand"]
    err = reach.reach_errors(hand, b.trials.extra["hold_masks"], b.trials.extra["hold_targets"])
    fig = reach.hand_figure(hand, b.trials, err, n_show=3)
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["1", "1", "1", "2", "2", "2"]  # reach order
    radii = [p.get_radius() for p in ax.patches if hasattr(p, "get_radius")]
    assert radii.count(0.02) == 6  # the 2 cm circle around every target


def test_single_reach_reports_its_one_hold():
    prob = ReachProblem("single-reach", hidden=5, dt=0.02, tau=0.02)
    m = prob.make_model(torch.Generator().manual_seed(0))
    b = prob.sample(5, torch.Generator().manual_seed(1))
    _, task = prob.evaluate_task(m, b)
    assert "reach_error_hold1" in task and "reach_error_hold2" not in task
    hold = b.trials.extra["hold_masks"][:, 0]
    assert torch.equal(hold, b.trials.mask == 4)  # the hold is where the target weighs 4
    assert set(prob.progress_metrics(task)) == {"val_reach_err_cm", "val_reach_success", "val_reach_err1_cm"}


def test_init_gain_sets_the_spectral_radius_of_the_same_draw():
    """--init-gain G: the recurrent block of W has spectral radius ≈ G (dense eigenvalues, the
    circular law), the default keeps upstream's weak ≈ 0.5/√(n+1), and the draw is the same one:
    the bias row, B_in, F and C are untouched and the recurrent block is only rescaled."""
    n = 200
    base = MotorRNN(6, n, dt=0.01, generator=torch.Generator().manual_seed(3))
    radius = lambda m: float(torch.linalg.eigvals(m.W.detach()[:-1].double()).abs().max())
    assert radius(base) == pytest.approx(0.5 / math.sqrt(n + 1), rel=0.1)
    for g in (0.5, 0.9):
        m = MotorRNN(6, n, dt=0.01, generator=torch.Generator().manual_seed(3), init_gain=g)
        assert radius(m) == pytest.approx(g, rel=0.1)
        torch.testing.assert_close(m.W.detach()[:-1], base.W.detach()[:-1] * (g * math.sqrt(n + 1) / 0.5))
        for k in ("B_in", "F", "C", "z0"):
            torch.testing.assert_close(getattr(m, k), getattr(base, k))
        torch.testing.assert_close(m.W.detach()[-1], base.W.detach()[-1])
    prob = ReachProblem("double-reach", hidden=n, dt=0.01, init_gain=0.9)
    assert radius(prob.make_model(torch.Generator().manual_seed(3))) == pytest.approx(0.9, rel=0.1)
