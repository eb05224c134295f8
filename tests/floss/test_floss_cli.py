"""`rnntk floss` and `rnntk lyapunov` through the real CLI."""

import json

import h5py
import numpy as np
import torch

from conftest import assert_user_error, run_cli

SMALL = ("--n-units", "16", "--floss-k", "6", "--delay", "6", "--trial-len", "40", "--batch", "4", "--epochs", "12",
         "--floss-before", "5", "--floss-every", "6", "--floss-epochs", "3", "--floss-times", "1", "--le-every", "6",
         "--le-len", "60", "--eval-every", "6", "--eval-batch", "8", "--floss-len", "30", "-q")


def test_floss_run_writes_spectra_and_figures(tmp_path):
    r = run_cli("floss", *SMALL, "--out", tmp_path / "f")
    assert r.code == 0, r.stderr
    fin = r.json["final"]
    assert 0 <= fin["final_accuracy"] <= 1 and "lambda_1_final" in fin and 0 < fin["floss_overhead"] < 1
    d = tmp_path / "f"
    for f in ("lyapunov_spectrum.png", "accuracy.png", "model.pt", "ckpt-last.pt"):
        assert (d / f).exists(), f
    with h5py.File(d / "run.h5", "r") as f:
        le = f["results/lyapunov"][:]
        assert le.shape[1] == 16 and le.shape[0] >= 4  # init, after pre-flossing, periodic, after episode, final
        assert f["results/floss_lambdas"].shape == (8, 6)  # 5 + 3 flossing steps, k = 6
        assert f["results/jac_singular_values"].shape[1:] == (3, 16)
        assert f["metrics/accuracy"].shape == (12,)
        assert not np.isnan(f["metrics/floss_loss"][0]) and np.isnan(f["metrics/floss_loss"][1])
    ck = torch.load(d / "model.pt", weights_only=True)
    assert ck["model"] == "VanillaRNN" and ck["hparams"]["n"] == 16
    r = run_cli("lyapunov", d / "model.pt", "--steps", "200", "--warmup", "50", "--n-traj", "3", "--out", tmp_path / "l", "-q")
    assert r.code == 0, r.stderr
    with h5py.File(tmp_path / "l" / "run.h5", "r") as f:
        assert f["results/lyapunov"].shape == (3, 16)
        assert f["results/cond_number"].shape == (3,)
    assert (tmp_path / "l" / "lyapunov.csv").read_text().startswith("index,lambda_mean,lambda_sem")


def test_no_floss_baseline_runs_no_flossing(tmp_path):
    r = run_cli("floss", *SMALL, "--no-floss", "--out", tmp_path / "b")
    assert r.code == 0, r.stderr
    with h5py.File(tmp_path / "b" / "run.h5", "r") as f:
        assert "floss_lambdas" not in f["results"] and f.attrs["flossing"] == False  # noqa: E712


def test_floss_bad_input(tmp_path):
    assert_user_error(run_cli("floss", "--floss-k", "100", "--out", tmp_path / "x"), "bad --floss-k 100")
    assert_user_error(run_cli("floss", "--delay", "0", "--out", tmp_path / "x"), "delay must be >= 1")
    assert_user_error(run_cli("floss", "--task", "parity", "--bits", "3", "--delay", "10", "--out", tmp_path / "x"), "multiple of the number of bits")
    assert_user_error(run_cli("floss", "--delay", "400", "--out", tmp_path / "x"), "must exceed the delay")


def test_lyapunov_refuses_non_recurrent_and_bad_files(tmp_path):
    from rnntk.engine import save_checkpoint

    save_checkpoint(tmp_path / "mlp.pt", model=torch.nn.Sequential(torch.nn.Linear(2, 2)))
    assert_user_error(run_cli("lyapunov", tmp_path / "mlp.pt", "--out", tmp_path / "x"), "not a recurrent rate network")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    assert_user_error(run_cli("lyapunov", tmp_path / "junk.pt", "--out", tmp_path / "x"), "cannot read checkpoint")
    assert_user_error(run_cli("lyapunov", tmp_path / "none.pt", "--out", tmp_path / "x"), "checkpoint not found")


def test_exploding_dynamics_exit_3(tmp_path):
    from rnntk.engine import save_checkpoint
    from rnntk.core.leaky_rnn import LeakyRNN

    m = LeakyRNN(1, 6, 1)
    with torch.no_grad():
        m.W.copy_(torch.eye(6) * 1e6)  # x grows without bound under the linear part
        m.activation = "relu"
    save_checkpoint(tmp_path / "boom.pt", model=m, hparams={**m.hparams(), "activation": "relu"})
    r = run_cli("lyapunov", tmp_path / "boom.pt", "--steps", "400", "--warmup", "10", "--dtype", "float32", "--input", "none", "--out", tmp_path / "x")
    assert_user_error(r, "non-finite", code=3)


def test_review_regressions(tmp_path):
    """Long delays (> flossing window), short probes, flossing-only runs, bad values."""
    base = [a for a in SMALL if a not in ()]
    r = run_cli("floss", *base, "--delay", "40", "--trial-len", "60", "--le-len", "20", "--out", tmp_path / "long")
    assert r.code == 0, r.stderr  # floss-len 30 < delay 40; probe 20 < horizon 25, 50
    with h5py.File(tmp_path / "long" / "run.h5", "r") as f:
        assert json.loads(f["results/jac_singular_values"].attrs["horizons"]) == [10]
        ep = f["results/lyapunov_epoch"][:]
        assert np.all(np.diff(ep) >= 0) and f["results/lyapunov_after_floss"][:].sum() == 2
    r = run_cli("floss", *base, "--epochs", "0", "--out", tmp_path / "only")
    assert r.code == 0, r.stderr
    with h5py.File(tmp_path / "only" / "run.h5", "r") as f:
        assert f["results/lyapunov"].shape[0] == 2 and f["results/floss_lambdas"].shape == (5, 6)
    assert_user_error(run_cli("floss", "--g", "nan", "--out", tmp_path / "x"), "bad --g nan")
    assert_user_error(run_cli("sofo-train", "--adam-eps", "-1", "--out", tmp_path / "x"), "bad --adam-eps -1.0")
    d = tmp_path / "long"
    assert_user_error(run_cli("lyapunov", d, "--horizons", "0,10", "--out", tmp_path / "x"), "bad --horizons")
    r = run_cli("lyapunov", d, "--steps", "100", "--warmup", "20", "--n-traj", "4", "--horizons", "5", "--out", tmp_path / "l", "-q")
    assert r.code == 0, r.stderr  # a run folder works as the model argument
    with h5py.File(tmp_path / "l" / "run.h5", "r") as f:
        lam = f["results/lyapunov"][:]
        np.testing.assert_allclose(f["results/lyapunov_sem"][:], lam.std(0, ddof=1) / np.sqrt(4), rtol=1e-6)
