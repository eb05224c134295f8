"""`rnntk sofo-train` through the real CLI: outputs, bad input, non-finite stop, exact resume."""

import json
import tomllib

import h5py
import numpy as np
import pytest
import torch
from conftest import assert_user_error, run_cli

TINY = ("--hidden", "8", "--batch", "4", "--eval-batch", "4", "-K", "8", "--dt", "0.02", "--duration", "0.8", "--eval-every", "2", "--save-traces", "3", "-q")


def test_both_optimizers_write_everything(tmp_path):
    r = run_cli("sofo-train", "--task", "double-reach", "--optimizer", "both", "--iters", "3", *TINY, "--out", tmp_path / "r")
    assert r.code == 0, r.stderr
    out = r.json
    assert out["status"] == "completed" and out["step"] == 3
    assert np.isfinite(out["final"]["sofo_val_loss_final"]) and np.isfinite(out["final"]["adam_val_loss_final"])
    d = tmp_path / "r"
    for f in ("run.h5", "config.toml", "summary.json", "model.pt", "adam_model.pt", "ckpt-last.pt", "loss_curves.png", "hand_trajectories.png"):
        assert (d / f).exists(), f
    cfg = tomllib.loads((d / "config.toml").read_text())
    assert cfg["n_tangents"] == 8 and cfg["iters"] == 3 and cfg["hidden"] == 8 and cfg["optimizer"] == "both" and cfg["task"] == "double-reach"
    with h5py.File(d / "run.h5", "r") as f:
        m = f["metrics"]
        for k in ("sofo_loss", "adam_loss", "sofo_val_loss", "adam_val_loss", "sofo_eig_max", "sofo_lam", "sofo_step_norm", "adam_grad_norm", "sofo_iter_s"):
            assert k in m and m[k].shape == (3,), k
        assert f["traces/activity"].shape == (3, 40, 8) and f["traces/activity"].attrs["dt"] == 0.02
        assert f["traces/hand"].shape == (3, 40, 2) and f["traces/torque"].shape == (3, 40, 2)
        assert f["trials/go1_s"].shape == (3,)
        assert "W" in f["model"] and "adam_model/W" in f["model"]
        assert np.isfinite(f["results/sofo_val_loss_final"][()])
    # the saved model reloads safely and matches /model
    ck = torch.load(d / "model.pt", weights_only=True)
    with h5py.File(d / "run.h5", "r") as f:
        np.testing.assert_array_equal(ck["state_dict"]["W"].numpy(), f["model/W"][:])
    assert ck["hparams"]["n"] == 8


@pytest.mark.parametrize(
    "args,needle",
    [
        (("--task", "nope"), "bad --task 'nope': use one of double-reach"),
        (("-K", "0"), "bad -K 0"),
        (("--damping", "-1"), "bad --damping -1.0"),
        (("--lr", "0"), "bad --lr 0.0"),
        (("--optimizer", "lbfgs"), "'lbfgs' is not one of"),
        (("--dt", "0.05"), "must be <= --tau"),
        (("--init-gain", "-1"), "--init-gain"),
        (("--task", "kalman", "--init-gain", "0.9"), "--init-gain applies to the reach tasks only"),
    ],
)
def test_bad_input(tmp_path, args, needle):
    assert_user_error(run_cli("sofo-train", *args, "--out", tmp_path / "r"), needle)
    assert not (tmp_path / "r").exists()


def test_nonfinite_step_stops_with_exit_3(tmp_path):
    r = run_cli("sofo-train", "--iters", "10", *TINY, "--lr", "1e4", "--damping", "1e-9", "--eval-every", "1", "--out", tmp_path / "r")
    assert_user_error(r, "non-finite", "last good checkpoint kept", code=3)
    ck = torch.load(tmp_path / "r" / "ckpt-last.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ck["state_dict"].values())
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["status"] == "nonfinite"


def test_resume_is_bit_identical(tmp_path):
    assert run_cli("sofo-train", "--iters", "6", *TINY, "--out", tmp_path / "ref").code == 0
    assert run_cli("sofo-train", "--iters", "3", *TINY, "--out", tmp_path / "cut").code == 0
    r = run_cli("sofo-train", "--resume", tmp_path / "cut", "--iters", "6", "-q")
    assert r.code == 0, r.stderr
    a = h5py.File(tmp_path / "ref" / "run.h5", "r")["metrics"]
    b = h5py.File(tmp_path / "cut" / "run.h5", "r")["metrics"]
    np.testing.assert_array_equal(b["step"][:], np.arange(6))
    np.testing.assert_array_equal(a["loss"][:], b["loss"][:])
    np.testing.assert_array_equal(a["eig_max"][:], b["eig_max"][:])
    assert_user_error(run_cli("sofo-train", "--resume", tmp_path / "cut", "-K", "4"), "-K".replace("-K", "--n-tangents 4 differs"))
