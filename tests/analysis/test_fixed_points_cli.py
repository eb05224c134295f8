"""`rnntk fixed-points` (issue 16.2) on run folders and checkpoints. Oracles: the model rebuilt
from the checkpoint by the registry, its rhs / step evaluated at the stored points (zero to
rounding), and numpy.linalg.eig of torch.autograd.functional.jacobian at each stored point."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from conftest import assert_user_error, run_cli

from rnntk.core.leaky_rnn import LeakyRNN
from rnntk.core.models import as_recurrent_model, load_model
from rnntk.core.vanilla_rnn import VanillaRNN
from rnntk.engine import save_checkpoint

FIELDS = ("xstar", "q", "eigvals", "n_unstable", "kind", "input", "is_slow", "rotational", "n_iters")


def read(run_dir, group="fixed_points"):
    with h5py.File(run_dir / "run.h5", "r") as f:
        g = f[f"results/{group}"]
        out = {k: (g[k].asstr()[()] if k == "kind" else g[k][()]) for k in g}
    return out


def check_points(model, res, u, continuous: bool) -> None:
    """Every stored point is a zero of the residual and its eigenvalues are numpy's."""
    cm = as_recurrent_model(model.double())
    ut = torch.as_tensor(u, dtype=torch.float64)
    for x, lam, k, slow in zip(res["xstar"], res["eigvals"], res["n_unstable"], res["is_slow"]):
        xt = torch.as_tensor(x)
        if continuous:
            f = lambda s: cm.rhs(s[None], ut[None])[0]  # noqa: E731
        else:
            f = lambda s: cm.step(s[None], ut[None])[0] - s  # noqa: E731
        if not slow:
            assert float(f(xt).detach().norm()) < 1e-13
        J = torch.autograd.functional.jacobian(f, xt).numpy()
        J = J if continuous else J + np.eye(len(x))
        ref = np.linalg.eigvals(J)
        np.testing.assert_allclose(np.sort_complex(lam), np.sort_complex(ref), atol=1e-9)
        assert int(k) == int((ref.real > 1e-9).sum() if continuous else (np.abs(ref) > 1 + 1e-9).sum())


@pytest.fixture(scope="module")
def selftest_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("st") / "st"
    r = run_cli("selftest", "--iters", "20", "--out", d, "-q")
    assert r.code == 0, r.stderr
    return d


@pytest.mark.slow  # ~30 s on a loaded 2-core machine: three CLI runs
def test_on_a_selftest_run_folder(selftest_run, tmp_path):
    out = tmp_path / "fp"
    r = run_cli("fixed-points", selftest_run, "--candidates", "256", "--out", out, "-q")
    assert r.code == 0, r.stderr
    res = read(out)
    assert set(FIELDS) <= set(res)
    M = len(res["q"])
    fin = r.json["final"]
    assert M >= 1 and fin["n_points"] == M and fin["model_class"] == "LeakyRNN" and fin["time"] == "continuous"
    assert res["xstar"].shape == (M, 16) and res["eigvals"].shape == (M, 16) and res["input"].shape == (M, 1)
    assert float(res["q"][~res["is_slow"]].max()) <= 1e-12
    check_points(load_model(selftest_run / "model.pt"), res, [0.0], continuous=True)
    csv = (out / "fixed_points.csv").read_text().splitlines()
    assert csv[0].startswith("index,kind,n_unstable") and len(csv) == M + 1
    assert (out / "fixed_points.png").stat().st_size > 1000
    # stored traces as the candidates' source (the selftest's activity has the state's size)
    r2 = run_cli("fixed-points", selftest_run, "--traces", "activity", "--candidates", "128", "--out", tmp_path / "fp2", "-q")
    assert r2.code == 0, r2.stderr
    check_points(load_model(selftest_run / "model.pt"), read(tmp_path / "fp2"), [0.0], continuous=True)


@pytest.fixture(scope="module")
def leaky_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("leaky")
    torch.manual_seed(0)
    m = LeakyRNN(2, 10, 1, g=2.0)
    save_checkpoint(d / "model.pt", model=m, hparams=m.hparams())
    return d / "model.pt"


@pytest.mark.slow  # two CLI runs
def test_checkpoint_with_an_input_condition_and_the_discrete_convention(leaky_ckpt, tmp_path):
    model = load_model(leaky_ckpt)
    r = run_cli("fixed-points", leaky_ckpt, "--input", "0.3,-0.2", "--candidates", "256", "--out", tmp_path / "c", "-q")
    assert r.code == 0, r.stderr
    res = read(tmp_path / "c")
    np.testing.assert_allclose(res["input"], np.tile([0.3, -0.2], (len(res["q"]), 1)))
    check_points(model, res, [0.3, -0.2], continuous=True)
    r = run_cli("fixed-points", leaky_ckpt, "--input", "0.3,-0.2", "--time", "discrete", "--candidates", "256", "--out", tmp_path / "d", "-q")
    assert r.code == 0, r.stderr
    rd = read(tmp_path / "d")
    check_points(model, rd, [0.3, -0.2], continuous=False)
    d = np.linalg.norm(res["xstar"][:, None] - rd["xstar"][None], axis=-1)
    assert len(rd["q"]) == len(res["q"]) and float(d.min(1).max()) < 1e-10  # same points either way


def test_a_discrete_vanilla_rnn_checkpoint(tmp_path):
    m = VanillaRNN(12, n_in=2, batch=1, g=1.6, generator=torch.Generator().manual_seed(1))
    save_checkpoint(tmp_path / "model.pt", model=m, hparams=m.hparams())
    r = run_cli("fixed-points", tmp_path / "model.pt", "--drive", "noise", "--candidates", "256", "--out", tmp_path / "v", "-q")
    assert r.code == 0, r.stderr
    res = read(tmp_path / "v")
    assert r.json["final"]["time"] == "discrete" and len(res["q"]) >= 1
    check_points(load_model(tmp_path / "model.pt"), res, [0.0, 0.0], continuous=False)


@pytest.mark.slow  # seven CLI runs
def test_bad_input_is_one_line_exit_2(leaky_ckpt, selftest_run, tmp_path):
    assert_user_error(run_cli("fixed-points", leaky_ckpt, "--input", "1,2,3", "--out", tmp_path / "a", "-q"), "--input", "2 input(s)")
    assert_user_error(run_cli("fixed-points", tmp_path / "nope", "--out", tmp_path / "c", "-q"))
    assert_user_error(run_cli("fixed-points", selftest_run, "--traces", "nope", "--out", tmp_path / "d", "-q"), "no /traces/nope")
    assert_user_error(run_cli("fixed-points", selftest_run, "--traces", "output", "--out", tmp_path / "e", "-q"), "not (trial, time, n = 16)")
    assert_user_error(run_cli("fixed-points", leaky_ckpt, "--tol-slow", "1e-14", "--out", tmp_path / "f", "-q"), "--tol-slow")
    assert_user_error(run_cli("fixed-points", leaky_ckpt, "--time", "sideways", "--out", tmp_path / "g", "-q"), "--time")
    m = VanillaRNN(4, batch=1)
    save_checkpoint(tmp_path / "v.pt", model=m, hparams=m.hparams())
    assert_user_error(run_cli("fixed-points", tmp_path / "v.pt", "--time", "continuous", "--out", tmp_path / "h", "-q"), "discrete-time")
    assert not any((tmp_path / n).exists() for n in "acdefgh")  # nothing made for bad input
