"""`rnntk ode-train` (issue 7) through the real CLI, and the training problems'
gradients: GQ equals direct backprop on the real task models at tight tolerance."""

import h5py
import numpy as np
import pytest
import torch

from conftest import assert_user_error, run_cli
from rnntk.ode.train import ODEConfig, ODEProblem


@pytest.mark.parametrize("task", ["spheres", "g1d", "sines", "rate-rnn", "ou"])
def test_each_task_trains_and_records(tmp_path, task):
    extra = ("--ntimes", "6") if task == "ou" else ()
    r = run_cli("ode-train", "--task", task, "--epochs", "2", "--width", "16", *extra, "--out", tmp_path / "r", "-q")
    assert r.code == 0, r.stderr
    fin = r.json["final"]
    assert np.isfinite(fin["val_loss_final"]) and fin["nfe_f"] > 0 and fin["nfe_b"] > 0 and fin["gq_nodes"] >= 2
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        for k in ("loss", "val_loss", "val_metric", "epoch_time", "nfe_f", "nfe_b", "gq_nodes"):
            assert f["metrics"][k].shape == (2,), k
        assert f["traces/trajectory"].ndim == 3
    assert (tmp_path / "r" / "trajectories.png").exists() and (tmp_path / "r" / "model.pt").exists()


@pytest.mark.parametrize("task,trajectory", [("spheres", "recompute"), ("sines", "recompute"), ("rate-rnn", "store")])
def test_gq_gradient_equals_direct_on_task_models(task, trajectory):
    grads = {}
    for adj in ("direct", "gq"):
        cfg = ODEConfig(task=task, adjoint=adj, width=12, rtol=1e-9, atol=1e-9, gtol=2.0, gq_trajectory=trajectory, n_units=6, tau=0.05)
        torch.manual_seed(0)
        prob = ODEProblem(cfg, torch.Generator().manual_seed(0))
        model = prob.modules().double()
        batch = tuple(b.double() if b.is_floating_point() else b for b in prob.batches(torch.Generator().manual_seed(1))[0])
        prob.t = getattr(prob, "t", torch.zeros(1)).double()
        loss, _, _ = prob.loss(batch, torch.device("cpu"))
        grads[adj] = torch.autograd.grad(loss, list(model.parameters()))
    num = sum(float((a - b).pow(2).sum()) for a, b in zip(grads["gq"], grads["direct"])) ** 0.5
    den = sum(float(b.pow(2).sum()) for b in grads["direct"]) ** 0.5
    assert num / den < 1e-6


def test_ou_sde_baseline_and_moments(tmp_path):
    r = run_cli("ode-train", "--task", "ou", "--adjoint", "sde-direct", "--epochs", "1", "--width", "8", "--ntimes", "6", "--out", tmp_path / "s", "-q")
    assert r.code == 0, r.stderr
    assert "nfe_f" not in r.json["final"] and np.isfinite(r.json["final"]["val_loss_final"])
    with h5py.File(tmp_path / "s" / "run.h5", "r") as f:
        assert f["results/model_mean"].shape == (10, 6) and f["traces/truth"].shape == (10, 6, 45)


def test_bad_input(tmp_path):
    assert_user_error(run_cli("ode-train", "--adjoint", "sde-direct", "--out", tmp_path / "x"), "only --task ou")
    assert_user_error(run_cli("ode-train", "--gtol", "0", "--out", tmp_path / "x"), "bad --gtol 0.0")
    assert_user_error(run_cli("ode-train", "--method", "euler2", "--out", tmp_path / "x"), "bad --method 'euler2'")
    assert_user_error(run_cli("ode-train", "--gq-trajectory", "store", "--method", "bosh3", "--out", tmp_path / "x"), "needs --method dopri5")
    assert_user_error(run_cli("ode-train", "--adjoint", "magic", "--out", tmp_path / "x"), "'magic' is not one of")


def test_adjoint_auto_picks_from_the_problem_shape(tmp_path):
    """The rule (ode_train.auto_adjoint): g1d at batch 2 (1 interval, 4,740 parameters for 8 state
    numbers) gets GQ; sines with 6 times (5 intervals) gets direct backprop."""
    r = run_cli("ode-train", "--task", "g1d", "--width", "64", "--batch", "2", "--n-train", "8", "--adjoint", "auto",
                "--epochs", "1", "--out", tmp_path / "a", "-q")
    assert r.code == 0, r.stderr
    assert "--adjoint auto: 1 output intervals, 4,740 parameters, 8 state numbers -> gq" in r.stderr
    with h5py.File(tmp_path / "a" / "run.h5", "r") as f:
        assert f.attrs["adjoint"] == "gq" and f.attrs["adjoint_requested"] == "auto"
    assert r.json["final"]["gq_nodes"] >= 2
    r = run_cli("ode-train", "--task", "sines", "--width", "8", "--ntimes", "6", "--adjoint", "auto", "--epochs", "1",
                "--out", tmp_path / "b", "-q")
    assert r.code == 0 and "-> direct" in r.stderr and "gq_nodes" not in r.json["final"]


def test_diverging_training_stops_cleanly(tmp_path):
    """A learning rate that blows the field up: exit 3, one line, the step-0 checkpoint kept."""
    r = run_cli("ode-train", "--task", "g1d", "--width", "16", "--lr", "1e4", "--epochs", "4", "--n-train", "40",
                "--batch", "20", "--out", tmp_path / "d", "-q")
    assert r.code == 3 and r.stderr.strip().count("\n") == 0 and "non-finite" in r.stderr, r.stderr
    assert r.json["status"] == "nonfinite" and (tmp_path / "d" / "ckpt-last.pt").exists()
