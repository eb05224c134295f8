"""neurogym tasks (issue 18): the adapter against neurogym's own trials, the one-line error
without the extra, metrics, SOFO's sketch against autograd, and short end-to-end runs."""

from __future__ import annotations

import ast

import h5py
import numpy as np
import pytest
import torch
from conftest import assert_user_error, run_cli

ngym = pytest.importorskip("neurogym", reason="the neurogym extra is not installed")

from rnntk.core import neurogym as ngt  # noqa: E402

PDM = "neurogym:PerceptualDecisionMaking-v0"
pytestmark = pytest.mark.filterwarnings("ignore:.*render_modes:UserWarning")


def _own_trials(env_id: str, seed: int, n: int, **kw):
    env = ngym.make(env_id, **kw).unwrapped
    env.seed(seed)
    out = []
    for _ in range(n):
        info = env.new_trial()
        out.append((env.ob.copy(), env.gt.copy(), dict(info), dict(env.start_ind), dict(env.end_ind)))
    return out


@pytest.mark.parametrize("env_id,kw", [("PerceptualDecisionMaking-v0", {"dt": 100}), ("ContextDecisionMaking-v0", {"dt": 50}), ("DelayComparison-v0", {})])
def test_adapter_equals_new_trial(env_id, kw):
    task = ngt.NeurogymTask("neurogym:" + env_id, kw)
    task.seed(11)
    b = task.sample(6)
    own = _own_trials(env_id, 11, 6, **kw)
    assert b.inputs.shape == (6, task.steps, task.n_in) and b.targets.shape == (6, task.steps) and b.mask.shape == (6, task.steps)
    assert b.dt == pytest.approx(task.env.dt / 1000)
    for i, (ob, gt, info, start, end) in enumerate(own):
        n = len(gt)
        assert n <= task.steps
        np.testing.assert_array_equal(b.inputs[i, :n].numpy(), ob.astype(np.float32))
        np.testing.assert_array_equal(b.targets[i, :n].numpy(), gt)
        assert not b.inputs[i, n:].any() and not b.targets[i, n:].any()
        want = np.zeros(task.steps, np.float32)
        want[start["decision"] : end["decision"]] = 1
        np.testing.assert_array_equal(b.mask[i].numpy(), want)
        assert int(b.table["trial_len"][i]) == n
        for p in start:
            assert int(b.table[f"period_{p}_start"][i]) == start[p] and int(b.table[f"period_{p}_end"][i]) == end[p]
        assert int(b.table["ground_truth"][i]) == int(info["ground_truth"])
    if env_id == "PerceptualDecisionMaking-v0":
        np.testing.assert_array_equal(b.table["coh"].numpy(), [o[2]["coh"] for o in own])


def test_mask_all_periods_and_generator_seeding():
    task = ngt.NeurogymTask(PDM, {"dt": 100}, loss_on="all", fixation_weight=0.25)
    a = task.sample(5, torch.Generator().manual_seed(4))
    b = task.sample(5, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a.inputs, b.inputs)
    for i in range(5):
        n, s, e = int(a.table["trial_len"][i]), int(a.table["period_decision_start"][i]), int(a.table["period_decision_end"][i])
        want = np.zeros(task.steps, np.float32)
        want[:n] = 0.25
        want[s:e] = 1
        np.testing.assert_array_equal(a.mask[i].numpy(), want)


def test_timing_bound_covers_variable_trials():
    task = ngt.NeurogymTask("neurogym:ContextDecisionMaking-v0", {"dt": 100})
    # delay is TruncExp(600, 300, 3000): bound 300 + 750 + 3000 + 100 ms at 100 ms
    assert task.steps == 3 + 7 + 30 + 1
    assert max(task.env.new_trial() and task.env.ob.shape[0] for _ in range(300)) <= task.steps


def test_channel_names_and_timing_table():
    task = ngt.NeurogymTask(PDM, {"dt": 20, "timing": {"stimulus": 500}})
    assert task.input_names() == ["fixation", "stimulus1", "stimulus2"] and task.output_names() == ["fixation", "choice1", "choice2"]
    rows = {r["period"]: r for r in task.timing_table()}
    assert rows["stimulus"]["max_ms"] == 500 and task.steps == (100 + 500 + 0 + 100) // 20


def test_bad_task_and_kwargs_one_line(tmp_path):
    r = run_cli("sofo-train", "--task", "neurogym:NoSuchTask-v0", "--iters", "1", "--out", tmp_path / "a")
    assert_user_error(r, "bad --task neurogym:NoSuchTask-v0")
    r = run_cli("sofo-train", "--task", PDM, "--task-kwargs", "{dt: 20", "--iters", "1", "--out", tmp_path / "b")
    assert_user_error(r, "bad --task-kwargs")
    r = run_cli("floss", "--task", PDM, "--task-kwargs", '{"nope": 1}', "--epochs", "1", "--out", tmp_path / "c")
    assert_user_error(r, "bad --task-kwargs")
    r = run_cli("sofo-train", "--task", "kalman", "--task-kwargs", '{"dt": 20}', "--iters", "1", "--out", tmp_path / "d")
    assert_user_error(r, "apply to neurogym:<EnvId> tasks only")


def test_metrics_oracle():
    task = ngt.NeurogymTask(PDM, {"dt": 100})
    b = task.sample(40, torch.Generator().manual_seed(0))
    last = b.table["period_decision_end"] - 1
    truth = b.targets[torch.arange(40), last]
    logits = torch.zeros(40, b.steps, 3)
    logits[torch.arange(40), last, truth] = 5.0  # right on every trial...
    logits[:10, :, :] = 0.0
    logits[torch.arange(10), last[:10], 3 - truth[:10]] = 5.0  # ...but the first 10 choose the other side
    assert ngt.decision_accuracy(logits, b) == pytest.approx(30 / 40)
    tab = ngt.psychometric(b.table, ngt.decision_correct(logits, b), "coh")
    coh = b.table["coh"].numpy()
    ok = np.arange(40) >= 10
    for lv, n, acc in zip(tab["coh"], tab["n"], tab["accuracy"]):
        assert n == (coh == lv).sum() and acc == pytest.approx(ok[coh == lv].mean())
    assert "coh" in ngt.conditions(b.table) and "ground_truth" not in ngt.conditions(b.table)
    # the masked cross-entropy is the per-step softmax CE summed over scored steps / B
    z = torch.randn(40, b.steps, 3, generator=torch.Generator().manual_seed(1))
    want = sum(float(b.mask[i, t]) * -float(torch.log_softmax(z[i, t], -1)[b.targets[i, t]]) for i in range(40) for t in range(b.steps)) / 40
    assert float(ngt.masked_cross_entropy(z, b)) == pytest.approx(want, rel=1e-5)


def test_sofo_sketch_matches_autograd():
    from conftest import assert_sketch_matches_autograd

    from rnntk.sofo.optimizer import sample_tangents
    from rnntk.sofo.problems import make_problem

    prob = make_problem(PDM, hidden=6, tau=0.2, task_kwargs='{"dt": 100}')
    m = prob.make_model(torch.Generator().manual_seed(0)).double()
    b = prob.sample(4, torch.Generator().manual_seed(1))
    b.trials.inputs = b.trials.inputs.double()
    b.trials.mask = b.trials.mask.double()
    V = sample_tangents({k: v.detach() for k, v in m.named_parameters()}, 9, generator=torch.Generator().manual_seed(2))
    assert_sketch_matches_autograd(prob, m, V, b, impls=("generic",))


def test_sofo_end_to_end_above_chance(tmp_path):
    """SOFO on PerceptualDecisionMaking-v0 (2 choices, chance 0.5): decision accuracy well above chance in 40 iterations."""
    d = tmp_path / "r"
    r = run_cli(
        "sofo-train", "--task", PDM, "--task-kwargs", '{"dt": 100}', "--hidden", "32", "-K", "32", "--batch", "32", "--iters", "40",
        "--eval-every", "20", "--eval-batch", "128", "-q", "--out", d, timeout=300,
    )  # fmt: skip
    assert r.code == 0, r.stderr
    acc = r.json["final"]["decision_accuracy"]
    assert acc >= 0.75, acc
    with h5py.File(d / "run.h5", "r") as f:
        assert f["results/decision_accuracy"][()] == pytest.approx(acc)
        tab = f["results/psychometric_coh"][:]
        assert tab.shape[1] == 3 and tab[:, 1].sum() == 128
        for col in ("coh", "ground_truth", "choice", "correct", "trial_len", "period_decision_start", "period_decision_end"):
            assert col in f["trials"], col
        assert f["traces/logits"].attrs["dt"] == pytest.approx(0.1)
        assert ast.literal_eval(f.attrs["problem"])["dt_s"] == pytest.approx(0.1)
    assert (d / "psychometric.png").exists()


def test_floss_end_to_end(tmp_path):
    d = tmp_path / "f"
    r = run_cli(
        "floss", "--task", PDM, "--task-kwargs", '{"dt": 100}', "-N", "24", "--epochs", "200", "--lr", "1e-2", "--floss-before", "20",
        "--floss-every", "0", "--floss-k", "8", "--le-every", "0", "--le-len", "60", "--eval-every", "50", "--eval-batch", "128", "-q", "--out", d,
        timeout=300,
    )  # fmt: skip
    assert r.code == 0, r.stderr
    with h5py.File(d / "run.h5", "r") as f:
        assert f["results/decision_accuracy"][()] >= 0.7
        assert "coh" in f["trials"] and "psychometric_coh" in f["results"]
        assert f.attrs["task_dt_s"] == pytest.approx(0.1)
