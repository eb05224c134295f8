"""`rnntk lyapunov` and the Lyapunov spectrum on every model family of the contract (issue 16.3).

Oracles: the determinant sum rule, step by step (the log|R_ii| of one step's QR sum to
log|det J_t|, J_t from torch.autograd.functional.jacobian of the step at the trajectory's state),
and for linear recurrences the closed form (exponents = log|eigenvalues| of the matrix)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from rnntk.analysis.lyapunov import generic_tangent, initial_basis, lyapunov_spectrum
from rnntk.core.models import TangentModel, as_recurrent_model, tangent

D64 = torch.float64
T, B = 12, 2


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)

@pytest.fixture
def cli(cli_in_process):
    """The CLI in this process (no interpreter start-up): ``cli(*args) -> CliResult``."""
    return cli_in_process


def family(name: str):
    """A small model of each family (float64) and a drive for it, (B, T, n_in) or None."""
    from rnntk.core.leaky_rnn import LeakyRNN
    from rnntk.core.vanilla_rnn import VanillaRNN
    from rnntk.ode.train import RateRNNField
    from rnntk.online.models.lru import LRU
    from rnntk.online.models.rnns import GRUCell, LinearRNN
    from rnntk.sofo.models.kalman_rnn import KalmanRNN
    from rnntk.sofo.models.motor_rnn import MotorRNN

    torch.manual_seed(0)
    model = {
        "vanilla": lambda: VanillaRNN(7, 2, 1, batch=B, g=1.5, generator=gen()),
        "leaky": lambda: LeakyRNN(2, 7, 1, g=1.5),
        "motor": lambda: MotorRNN(3, 7, generator=gen()),
        "kalman": lambda: KalmanRNN(7, generator=gen()),
        "lru": lambda: LRU(3, 4, r_min=0.5, generator=gen()),
        "rnn": lambda: LinearRNN(3, 7, activation="tanh", generator=gen()),
        "gru": lambda: GRUCell(5, 5, generator=gen()),
        "ode": lambda: RateRNNField(7, 0.1, generator=gen()),
    }[name]().double()
    m = as_recurrent_model(model)
    u = torch.randn(B, T, m.n_in, generator=gen(1), dtype=D64) if m.n_in else None
    if name == "motor":  # positive currents (relu active) and a drive keeping them so
        u = u.abs() * 3
    if name == "kalman":  # (y_t, 1, first_t = 0): the leak keeps every step invertible
        u = torch.stack([u[..., 0], torch.ones_like(u[..., 0]), torch.zeros_like(u[..., 0])], -1)
    return model, m, u


FAMILIES = ["vanilla", "leaky", "motor", "kalman", "lru", "rnn", "gru", "ode"]


@pytest.mark.parametrize("name", FAMILIES)
def test_sum_rule_every_step_equals_log_abs_det_of_the_autograd_jacobian(name):
    model, m, u = family(name)
    x0 = torch.rand(B, m.n, generator=gen(2), dtype=D64) + (0.5 if name == "motor" else -0.5)
    with torch.no_grad():
        res = lyapunov_spectrum(m.step, u, m.n, x0=x0, steps=T, tangent=lambda x, Q, v: tangent(m, x, Q, v), generator=gen(3))
    x = x0
    logdets = []
    for t in range(T):
        ut = None if u is None else u[:, t]
        def f(s, v):
            return m.step(s[None], v)[0]

        J = torch.stack([torch.autograd.functional.jacobian(lambda s, v=(None if ut is None else ut[b : b + 1]): f(s, v), x[b]) for b in range(B)])
        logdets.append(torch.linalg.slogdet(J)[1])
        with torch.no_grad():
            x = m.step(x, ut)
    logdets = torch.stack(logdets)  # (T, B)
    if isinstance(m, TangentModel):  # an analytic tangent equals forward-mode autograd of the step
        Q = torch.randn(B, m.n, 3, generator=gen(4), dtype=D64)
        ut = None if u is None else u[:, 0]
        torch.testing.assert_close(m.tangent(x, Q, ut), generic_tangent(m.step)(x, Q, ut), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(res.log_r.sum(-1), logdets, rtol=0, atol=1e-9)
    torch.testing.assert_close(res.exponents.sum(-1), logdets.mean(0), rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["lru", "rnn-linear"])
def test_linear_recurrence_exponents_are_log_abs_eigenvalues(name):
    """x' = A x + B u: λ_i = log|eig_i(A)| whatever the drive (O(1/T) estimate)."""
    from rnntk.online.models.lru import LRU
    from rnntk.online.models.rnns import LinearRNN

    layer = (LRU(3, 5, r_min=0.3, r_max=0.95, generator=gen()) if name == "lru" else LinearRNN(3, 6, generator=gen())).double()
    m = as_recurrent_model(layer)
    A = m.recurrent_weight().detach()
    steps = 1500
    u = torch.randn(1, steps, 3, generator=gen(1), dtype=D64)
    with torch.no_grad():
        res = lyapunov_spectrum(m.step, u, m.n, x0=torch.zeros(1, m.n, dtype=D64), warmup=300, q0=initial_basis(m.n, m.n, generator=gen(2)))
    expected = torch.sort(torch.linalg.eigvals(A).abs().log(), descending=True).values
    assert float((res.exponents[0] - expected).abs().max()) < 5e-3


def test_cli_motor_network_is_analysed_per_step_and_per_second(tmp_path, cli):
    """Regression: `rnntk lyapunov` refused a SOFO-trained motor network (only VanillaRNN and
    LeakyRNN were known). Per second = per step / dt."""
    from rnntk.engine import save_checkpoint
    from rnntk.sofo.models.motor_rnn import MotorRNN

    net = MotorRNN(2, 6, dt=0.01, tau=0.05, generator=gen())
    save_checkpoint(tmp_path / "model.pt", model=net, hparams=net.hparams())
    r = cli("lyapunov", tmp_path, "--steps", "60", "--warmup", "10", "--n-traj", "2", "--horizons", "5", "--out", tmp_path / "l", "-q")
    assert r.code == 0, r.stderr
    fin = r.json["final"]
    assert fin["model_class"] == "MotorRNN" and fin["time"] == "continuous" and fin["dt"] == 0.01
    assert fin["lambda_1_per_s"] == pytest.approx(fin["lambda_1"] / 0.01)
    with h5py.File(tmp_path / "l" / "run.h5", "r") as f:
        assert f["results/lyapunov"].shape == (2, 6)
        np.testing.assert_allclose(f["results/lyapunov_mean_per_s"][:], f["results/lyapunov_mean"][:] / 0.01)
    assert (tmp_path / "l" / "lyapunov.csv").read_text().startswith("index,lambda_mean,lambda_sem,lambda_mean_per_s")


def test_cli_online_stack_is_analysed_layer_by_layer(tmp_path, cli):
    """Each LRU layer of an online-lru SeqModel: its exponents are log|lambda| of that layer
    (each twice: the real state [Re h, Im h])."""
    from rnntk.engine import save_checkpoint
    from rnntk.online.models.seq_model import build_seq_model

    net = build_seq_model(d_in=2, n_classes=2, layers=2, d_model=4, d_hidden=3, r_min=0.2, r_max=0.9, generator=gen())
    save_checkpoint(tmp_path / "model.pt", model=net, hparams=net.hparams())
    r = cli("lyapunov", tmp_path / "model.pt", "--steps", "800", "--warmup", "100", "--n-traj", "1", "--horizons", "", "--input", "noise",
                "--out", tmp_path / "l", "-q")
    assert r.code == 0, r.stderr
    assert set(r.json["final"]["layers"]) == {"layer0", "layer1"}
    with h5py.File(tmp_path / "l" / "run.h5", "r") as f:
        for i, lay in enumerate(net.layers):
            expected = np.sort(np.repeat(lay.rec.lam().detach().abs().log().numpy(), 2))[::-1]
            np.testing.assert_allclose(f[f"results/lyapunov_mean_layer{i}"][:], expected, atol=5e-3)
    assert (tmp_path / "l" / "lyapunov.csv").read_text().startswith("layer,index,lambda_mean")
