"""`rnntk eigs` on any model of the contract (issue 16.4). Oracles: numpy.linalg.eig of a linear
model's matrix; torch.autograd.functional.jacobian of the step / right-hand side at the state the
command stored, then numpy.linalg.eig."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from conftest import assert_user_error

from rnntk.engine import save_checkpoint


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)

@pytest.fixture
def cli(cli_in_process):
    """The CLI in this process (no interpreter start-up): ``cli(*args) -> CliResult``."""
    return cli_in_process


def top(values: np.ndarray, k: int, which: str) -> np.ndarray:
    key = np.abs(values) if which == "LM" else values.real
    return values[np.argsort(-key, kind="stable")[:k]]


def read(run_dir, name):
    with h5py.File(run_dir / "run.h5", "r") as f:
        return f[f"results/eigs/{name}"][()]


@pytest.fixture(scope="module")
def linear_rnn(tmp_path_factory):
    """A one-layer online-lru stack with a linear RNN layer x' = A x + B u: its Jacobian is A."""
    from rnntk.online.models.seq_model import build_seq_model

    d = tmp_path_factory.mktemp("lin")
    net = build_seq_model(d_in=2, n_classes=2, arch="rnn", rnn_activation="linear", layers=1, d_model=3, d_hidden=9, generator=gen())
    save_checkpoint(d / "model.pt", model=net, hparams=net.hparams())
    return d, net.layers[0].rec.A.detach().double().numpy()


@pytest.mark.parametrize("method", ["dense", "arnoldi", "arpack"])
def test_linear_model_eigs_equal_numpy(linear_rnn, tmp_path, method, cli):
    d, A = linear_rnn
    expected = np.linalg.eig(A)[0]
    r = cli("eigs", d, "--method", method, "--k", "4", "--state", "trial:7", "--input", "noise", "--out", tmp_path / "e", "-q")
    assert r.code == 0, r.stderr
    for w in ("LM", "LR"):
        got = read(tmp_path / "e", f"layer0_{w}")
        np.testing.assert_allclose(np.sort_complex(got), np.sort_complex(top(expected, 4, w)), atol=1e-9)
    fin = r.json["final"]["layers"]["layer0"]
    assert fin["spectral_radius"] == pytest.approx(np.abs(expected).max()) and fin["stable"] == bool(np.abs(expected).max() < 1)
    assert (tmp_path / "e" / "eigs.csv").read_text().startswith("layer,N,method,rank,which,real,imag,abs,residual,converged")
    assert (tmp_path / "e" / "eigs_layer0.png").exists()


def test_recurrent_weight_and_power_method(linear_rnn, tmp_path, cli):
    d, A = linear_rnn
    r = cli("eigs", d, "--operator", "recurrent", "--k", "9", "--which", "LR", "--out", tmp_path / "w", "-q")
    assert r.code == 0, r.stderr
    np.testing.assert_allclose(np.sort_complex(read(tmp_path / "w", "layer0_LR")), np.sort_complex(np.linalg.eig(A)[0]), atol=1e-9)


def test_continuous_jacobian_at_a_trial_state_and_at_a_fixed_point_file(tmp_path, cli):
    """LeakyRNN: eigenvalues of dF/dx (tau dx/dt = F) at the state the command stores."""
    from rnntk.core.leaky_rnn import LeakyRNN
    from rnntk.core.models import as_recurrent_model

    torch.manual_seed(0)
    net = LeakyRNN(2, 7, 1, g=1.8)
    save_checkpoint(tmp_path / "model.pt", model=net, hparams=net.hparams())
    m = as_recurrent_model(net.double())
    r = cli("eigs", tmp_path / "model.pt", "--state", "trial:30", "--k", "7", "--out", tmp_path / "e", "-q")
    assert r.code == 0, r.stderr
    assert r.json["final"]["layers"]["layer0"]["time"] == "continuous"
    with h5py.File(tmp_path / "e" / "run.h5", "r") as f:
        x = torch.as_tensor(f["results/eigs/layer0_state"][()])
        u = torch.as_tensor(f["results/eigs/layer0_input"][()])
        got = f["results/eigs/layer0_LM"][()]
    assert x.abs().max() > 0.05 and u.shape == (2,)  # a driven state, not zero
    J = torch.autograd.functional.jacobian(lambda s: m.rhs(s[None], u[None])[0], x).numpy()
    np.testing.assert_allclose(np.sort_complex(got), np.sort_complex(np.linalg.eig(J)[0]), atol=1e-10)
    # a fixed point file as `rnntk fixed-points` writes it: /results/fixed_points/{xstar, input}
    xs = np.random.default_rng(0).normal(size=(3, 7)) * 0.3
    with h5py.File(tmp_path / "fp.h5", "w") as f:
        f["results/fixed_points/xstar"] = xs
        f["results/fixed_points/input"] = np.zeros((3, 2))
    r = cli("eigs", tmp_path / "model.pt", "--state", "fixed-point:2", "--fixed-points", tmp_path / "fp.h5", "--k", "7", "--out", tmp_path / "f", "-q")
    assert r.code == 0, r.stderr
    J = torch.autograd.functional.jacobian(lambda s: m.rhs(s[None], torch.zeros(1, 2, dtype=torch.float64))[0], torch.as_tensor(xs[2])).numpy()
    np.testing.assert_allclose(np.sort_complex(read(tmp_path / "f", "layer0_LM")), np.sort_complex(np.linalg.eig(J)[0]), atol=1e-10)
    assert_user_error(cli("eigs", tmp_path / "model.pt", "--state", "fixed-point:5", "--fixed-points", tmp_path / "fp.h5", "--out", tmp_path / "x"), "3 point")


def test_eigs_bad_input(linear_rnn, tmp_path, cli):
    from rnntk.online.models.seq_model import build_seq_model

    d, _ = linear_rnn
    assert_user_error(cli("eigs", d, "--state", "later", "--out", tmp_path / "x"), "bad --state")
    assert_user_error(cli("eigs", d, "--method", "power", "--out", tmp_path / "x"), "--which LM")
    assert_user_error(cli("eigs", d, "--layers", "3", "--out", tmp_path / "x"), "1 recurrent layer")
    assert_user_error(cli("eigs", d, "--method", "arpack", "--k", "8", "--out", tmp_path / "x"), "--k < N - 1")
    gru = build_seq_model(d_in=2, n_classes=2, arch="gru", layers=1, d_model=4, d_hidden=4, generator=gen())
    save_checkpoint(tmp_path / "gru.pt", model=gru, hparams=gru.hparams())
    assert_user_error(cli("eigs", tmp_path / "gru.pt", "--operator", "recurrent", "--out", tmp_path / "x"), "use --operator jacobian")
