"""Kalman RNN for SOFO: hand-written tangents = vmap(jvp); sketch gradient = autograd (O2)."""

import pytest
import torch
from conftest import assert_sketch_matches_autograd

from rnntk.sofo.optimizer import generic_tangent_step, sample_tangents
from rnntk.sofo.problems import KalmanProblem
from rnntk.sofo.models.kalman_rnn import KalmanRNN

pytestmark = pytest.mark.filterwarnings("error:There is a performance drop")
D64 = torch.float64


def _setup():
    prob = KalmanProblem(hidden=9, steps=30)
    m = KalmanRNN(9, generator=torch.Generator().manual_seed(0)).double()
    b = prob.sample(5, torch.Generator().manual_seed(1))
    tr = b.trials
    tr.inputs, tr.targets, tr.mask = tr.inputs.double(), tr.targets.double(), tr.mask.double()
    return prob, m, b


def test_first_step_and_readout_init():
    m = KalmanRNN(16, generator=torch.Generator().manual_seed(0))
    p = m.params()
    torch.testing.assert_close((p["B"][0] @ p["O"]).squeeze(), torch.tensor(1.0))  # x̂ = y for z = B[0] y
    u = torch.tensor([[0.7, 1.0, 1.0]])
    z1, _ = m.step(p, torch.full((1, 16), 5.0), u)
    torch.testing.assert_close(z1, torch.relu(torch.full((1, 16), 5.0) @ p["C"] + u[:, :2] @ p["B"]))


def test_manual_tangents_equal_vmap_jvp():
    prob, m, b = _setup()
    p = m.params()
    V = sample_tangents(p, 7, generator=torch.Generator().manual_seed(2))
    gen = generic_tangent_step(m.step)
    za = zb = m.initial_state(p, 5)
    da = db = torch.zeros(7, 5, 9, dtype=D64)
    for t in range(prob.steps):
        za, ya, da, dya = gen(p, za, da, V, b.trials.inputs[:, t], None)
        zb, yb, db, dyb = m.tangent_step(p, zb, db, V, b.trials.inputs[:, t])
        torch.testing.assert_close(dyb, dya, rtol=0, atol=1e-12)
        torch.testing.assert_close(db, da, rtol=0, atol=1e-12)


def test_sketch_gradient_matches_autograd():
    prob, m, b = _setup()
    V = sample_tangents(m.params(), 12, generator=torch.Generator().manual_seed(3))
    assert_sketch_matches_autograd(prob, m, V, b)


# ----------------------------------------------------------------- issue 14: MSE / KF and the reachable bound
import numpy as np  # noqa: E402

from rnntk.sofo.tasks import kalman  # noqa: E402


def test_mixture_filter_with_the_true_context_only_is_the_kalman_filter():
    """Oracle: one hypothesis = the (constant) true context gives scalar_kalman_filter exactly."""
    tr = kalman.kalman_trials(4, 60, generator=torch.Generator().manual_seed(0), dtype=D64, min_dwell=1000)
    assert not bool(tr.extra["switch"].any())
    y = tr.inputs[..., 0].numpy()
    for i in range(4):
        tau, b, beta = (float(tr.extra[k][i, 0]) for k in ("tau", "b", "beta"))
        got = kalman.mixture_filter(y[i : i + 1], np.zeros((1, 60), bool), np.array([tau]), np.array([b]), np.array([beta]))
        full = lambda v: np.full((1, 60), v)  # noqa: E731
        want, _ = kalman.scalar_kalman_filter(y[i : i + 1], full(1 - 1 / tau), full(b / tau), full(kalman.sigma_eps_of(tau) ** 2), full(beta**2), full(b), np.zeros((1, 60), bool))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_context_unknown_bound_lies_between_the_kalman_filter_and_the_observation():
    tr = kalman.kalman_trials(32, 200, generator=torch.Generator().manual_seed(1), dtype=D64)
    kf = kalman.kalman_filter_mse(tr, "optimal")
    cu = kalman.kalman_filter_mse(tr, "context_unknown")
    assert kf < cu < kalman.kalman_filter_mse(tr, "random_params") < kalman.kalman_filter_mse(tr, "observation")
    assert 1.05 < cu / kf < 1.4  # the context must be inferred: about 1.16x at T = 200


def test_evaluate_task_reports_mse_over_kf():
    prob, m, b = _setup()
    loss, task = prob.evaluate_task(m, b)
    assert loss == pytest.approx(prob.evaluate(m, b))
    assert task["mse_over_kf"] == pytest.approx(loss / kalman.kalman_filter_mse(b.extra["raw"], "optimal"))
    assert prob.progress_metrics(task) == {"val_mse_over_kf": task["mse_over_kf"]}
