"""The recurrent-model contract (rnntk.core.models): every model family speaks it through its
adapter. Oracle for each adapter: the model's own forward pass (its own loop or scan) over a few
steps; for tangents: forward-mode autograd (torch.func.jvp) of the step."""

from __future__ import annotations

import math

import pytest
import torch

from rnntk.core.leaky_rnn import LeakyRNN
from rnntk.core.models import (
    ContinuousModel, RecurrentModel, TangentModel, as_recurrent_model, build_model, euler_step, load_model, model_classes, tangent,
)
from rnntk.core.vanilla_rnn import VanillaRNN

T, B = 5, 3


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def roll(m: RecurrentModel, x: torch.Tensor, u: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    xs = []
    for t in range(T):
        x = m.step(x, None if u is None else u[:, t])
        xs.append(x)
    X = torch.stack(xs, 1)
    return X, torch.stack([m.readout(X[:, t]) for t in range(T)], 1)


def check_contract(m: RecurrentModel) -> None:
    assert isinstance(m, RecurrentModel)
    assert m.time in ("discrete", "continuous")
    if m.time == "continuous":
        assert isinstance(m, ContinuousModel) and m.dt > 0 and m.tau > 0
    hp = m.hparams()
    assert isinstance(hp, dict)


def test_vanilla_step_readout_tangent_equal_its_forward_and_autograd():
    torch.manual_seed(0)
    net = VanillaRNN(n=12, n_in=2, n_out=3, batch=B, alpha=0.7, relax_steps=3, generator=gen())
    m = as_recurrent_model(net)
    check_contract(m)
    assert isinstance(m, TangentModel)
    u = torch.randn(B, T, 2, generator=gen(1))
    y_ref, x_ref = net(u)
    X, Y = roll(m, net.initial_state(B), u)
    torch.testing.assert_close(X, x_ref)
    torch.testing.assert_close(Y, y_ref)
    Q = torch.randn(B, 12, 4, generator=gen(2))
    x = X[:, 2]
    analytic = tangent(m, x, Q, u[:, 3])
    jvp = torch.stack([torch.func.jvp(lambda s: net.step(s, u[:, 3]), (x,), (Q[..., j],))[1] for j in range(4)], -1)
    torch.testing.assert_close(analytic, jvp)


def test_leaky_is_continuous_and_matches_forward():
    net = LeakyRNN(2, 10, 3, dt=0.01, tau=0.05)
    m = as_recurrent_model(net)
    check_contract(m)
    u = torch.randn(B, T, 2, generator=gen(1))
    y_ref, r_ref = net(u)
    X, Y = roll(m, torch.zeros(B, 10), u)
    torch.testing.assert_close(Y, y_ref)
    torch.testing.assert_close(torch.tanh(X), r_ref)
    torch.testing.assert_close(euler_step(m, X[:, 0], u[:, 1]), X[:, 1])  # step is the Euler step of rhs
    # no analytic tangent: the fallback (vmapped jvp) against a finite difference of the step
    Q = torch.randn(B, 10, 2, generator=gen(3), dtype=torch.float64)
    m64 = as_recurrent_model(net.double())
    x, uu = X[:, 1].double(), u[:, 2].double()
    eps = 1e-6
    fd = torch.stack([(m64.step(x + eps * Q[..., j], uu) - m64.step(x - eps * Q[..., j], uu)) / (2 * eps) for j in range(2)], -1)
    torch.testing.assert_close(tangent(m64, x, Q, uu), fd, rtol=1e-6, atol=1e-8)


def test_motor_network_part_matches_the_model_step():
    from rnntk.sofo.models.motor_rnn import MotorRNN

    net = MotorRNN(n_in=6, n=16, noise=False, generator=gen())
    with torch.no_grad():
        net.z0.normal_(generator=gen(4))
    m = as_recurrent_model(net)
    check_contract(m)
    p = net.params()
    state = net.initial_state(p, B)
    u = torch.randn(B, T, 6, generator=gen(1))
    eta = torch.ones(B, 16)
    for t in range(T):
        z, theta, omega = state
        z_next = m.step(z, torch.cat([u[:, t], theta, omega], -1))
        state, _ = net.step(p, state, u[:, t], eta)
        torch.testing.assert_close(z_next, state[0])
        torch.testing.assert_close(m.readout(z), torch.relu(z) @ p["C"])


def test_kalman_matches_rollout():
    from rnntk.sofo.models.kalman_rnn import KalmanRNN

    net = KalmanRNN(n=8, generator=gen())
    m = as_recurrent_model(net)
    check_contract(m)
    y = torch.randn(B, T, 1, generator=gen(1))
    first = torch.zeros(B, T, 1)
    first[:, 0] = 1
    u = torch.cat([y, torch.ones(B, T, 1), first], -1)
    p = net.params()
    z = net.initial_state(p, B)
    for t in range(T):
        z_ref, out_ref = net.step(p, z, u[:, t])
        z = m.step(z, u[:, t])
        torch.testing.assert_close(z, z_ref)
        torch.testing.assert_close(m.readout(z), out_ref)


@pytest.mark.parametrize("kind", ["lru", "rnn", "gru"])
def test_online_layers_match_their_scan(kind):
    from rnntk.online.models.lru import LRU
    from rnntk.online.models.rnns import GRUCell, LinearRNN

    H = 4
    layer = {"lru": lambda: LRU(H, 6, r_min=0.5, r_max=0.9, generator=gen()),
             "rnn": lambda: LinearRNN(H, 6, activation="tanh", generator=gen()),
             "gru": lambda: GRUCell(H, H, generator=gen())}[kind]()
    m = as_recurrent_model(layer)
    check_contract(m)
    u = torch.randn(B, T, H, generator=gen(1))
    X, Y = roll(m, torch.zeros(B, m.n), u)
    out = layer(u)
    skip = layer.D * u if kind != "gru" else 0
    torch.testing.assert_close(Y + skip, out, rtol=1e-5, atol=1e-5)
    if kind == "lru":
        h = layer.states(u)
        torch.testing.assert_close(X, torch.cat([h.real, h.imag], -1), rtol=1e-5, atol=1e-5)


def test_ode_rate_rnn_field_euler_step_is_the_field():
    from rnntk.ode.train import RateRNNField

    f = RateRNNField(7, tau=0.2, generator=gen())
    with torch.no_grad():
        f.b.normal_(generator=gen(2))
    m = as_recurrent_model(f)
    check_contract(m)
    x = torch.randn(B, 7, generator=gen(1))
    for _ in range(T):
        x_ref = x + m.dt * f(torch.tensor(0.0), x)
        x = m.step(x, None)
        torch.testing.assert_close(x, x_ref)
    torch.testing.assert_close(m.rhs(x, None) / m.tau, f(torch.tensor(0.0), x))


def test_cordsnet_flattened_areas_match_its_simulation():
    from rnntk.cordsnet.model import CordsNet

    torch.manual_seed(0)
    net = CordsNet(depth=2, classes=5, in_channels=1, image_size=16, width=0.125)
    with torch.no_grad():
        for b in net.conv_bias:
            b.normal_(0, 0.1)
    m = as_recurrent_model(net)
    check_contract(m)
    img = torch.rand(2, 1, 16, 16)
    rs = net.zero_state(2)
    drive = net.drives(net.stem(img))
    x = m.flatten(rs)
    for _ in range(4):
        rs = net.step(rs, drive)
        x = m.step(x, img.flatten(1))
        torch.testing.assert_close(x, m.flatten(rs))
    torch.testing.assert_close(m.readout(x), net.readout(rs))
    torch.testing.assert_close(euler_step(m, m.flatten(rs), img.flatten(1)), m.step(m.flatten(rs), img.flatten(1)))


def test_registry_knows_every_checkpointed_family():
    names = set(model_classes())
    assert {"VanillaRNN", "LeakyRNN", "MotorRNN", "KalmanRNN", "CordsNet"} <= names
    from rnntk.engine.errors import UserError

    with pytest.raises(UserError, match="unknown model_class 'Nope'"):
        build_model("Nope", {})


def test_registry_round_trip_from_model_pt(tmp_path):
    from rnntk.engine.checkpoint import save_checkpoint

    net = VanillaRNN(n=9, n_in=2, n_out=1, batch=4, relax_steps=2, generator=gen())
    save_checkpoint(tmp_path / "model.pt", model=net, hparams=net.hparams())
    back = load_model(tmp_path / "model.pt")
    assert type(back) is VanillaRNN
    u = torch.randn(4, T, 2, generator=gen(1))
    torch.testing.assert_close(back(u)[0], net(u)[0])


def test_registry_round_trip_from_run_h5(tmp_path):
    from rnntk.engine import Run

    net = LeakyRNN(2, 6, 1, dt=0.01, tau=0.1)
    with Run.open(tmp_path / "r", command="tiny", config={}, seed=0, device="cpu", progress="none") as run:
        run.save_model(net, hparams=net.hparams())
    back = load_model(tmp_path / "r" / "run.h5")
    assert type(back) is LeakyRNN and back.hparams() == net.hparams()
    u = torch.randn(3, T, 2, generator=gen(1))
    torch.testing.assert_close(back(u)[0], net(u)[0], rtol=1e-6, atol=1e-6)  # /model stores float32
    assert math.isclose(as_recurrent_model(back).tau, 0.1)


def test_registry_rebuilds_online_lru_stacks_and_ode_rate_rnn_runs(tmp_path):
    """Regression (issue 16.3): the checkpoints of `online-lru` (SeqModel) and `ode-train --task
    rate-rnn` (a ModuleDict) were not in the registry. Oracle: the saved model's own forward."""
    from torch import nn

    from rnntk.core.models import RecurrentStack, as_recurrent_layers
    from rnntk.engine.checkpoint import save_checkpoint
    from rnntk.engine.errors import UserError
    from rnntk.ode.train import RateRNNField
    from rnntk.online.models.seq_model import build_seq_model

    net = build_seq_model(d_in=3, n_classes=2, n_out=1, layers=2, d_model=4, d_hidden=5, generator=gen())
    save_checkpoint(tmp_path / "seq.pt", model=net, hparams=net.hparams())
    back = load_model(tmp_path / "seq.pt")
    net.eval(), back.eval()
    u = torch.randn(2, T, 3, generator=gen(1))
    torch.testing.assert_close(back(u), net(u))
    assert back.hparams() == net.hparams()
    stack = as_recurrent_layers(back)
    assert isinstance(stack, RecurrentStack) and [n for n, _ in stack.layers()] == ["layer0", "layer1"]
    with pytest.raises(TypeError, match="stack"):
        as_recurrent_model(back)
    # each layer, driven by its input from the stack, reproduces the layer's own scan
    for (_, layer), v, lay in zip(stack.layers(), stack.layer_inputs(u), back.layers):
        X, _ = roll(layer, torch.zeros(2, layer.n), v)
        h = lay.rec.states(v)
        torch.testing.assert_close(X, torch.cat([h.real, h.imag], -1), rtol=1e-5, atol=1e-5)

    field = RateRNNField(6, 0.05, generator=gen())
    mods = nn.ModuleDict({"field": field})
    hp = {"task": "rate-rnn", "width": 100, "n_units": 6, "tau": 0.05}
    save_checkpoint(tmp_path / "ode.pt", model=mods, hparams=hp)
    m = as_recurrent_model(load_model(tmp_path / "ode.pt"))
    check_contract(m)
    x = torch.randn(2, 6, generator=gen(2))
    torch.testing.assert_close(m.rhs(x, None) / m.tau, field(torch.tensor(0.0), x))
    save_checkpoint(tmp_path / "spheres.pt", model=mods, hparams={**hp, "task": "spheres"})
    with pytest.raises(UserError, match="not a recurrent network"):
        load_model(tmp_path / "spheres.pt")


@pytest.mark.parametrize("family", ["vanilla", "leaky", "motor", "kalman", "lru", "rnn", "ode"])
def test_recurrent_weight_is_the_linear_part_of_the_jacobian(family):
    """Oracle: torch.autograd.functional.jacobian of step (discrete) or rhs (continuous) where the
    activation's slope is 1 (tanh at 0, relu at positive states; linear maps anywhere)."""
    from rnntk.ode.train import RateRNNField
    from rnntk.online.models.lru import LRU
    from rnntk.online.models.rnns import LinearRNN
    from rnntk.sofo.models.kalman_rnn import KalmanRNN
    from rnntk.sofo.models.motor_rnn import MotorRNN

    model = {"vanilla": lambda: VanillaRNN(6, 1, 1, batch=1, generator=gen()), "leaky": lambda: LeakyRNN(1, 6, 1),
             "motor": lambda: MotorRNN(2, 6, generator=gen()), "kalman": lambda: KalmanRNN(6, generator=gen()),
             "lru": lambda: LRU(3, 4, r_min=0.5, generator=gen()), "rnn": lambda: LinearRNN(3, 6, generator=gen()),
             "ode": lambda: RateRNNField(6, 0.1, generator=gen())}[family]().double()
    m = as_recurrent_model(model)
    W = m.recurrent_weight()
    x = torch.zeros(1, m.n, dtype=torch.float64) + (1.0 if family == "motor" else 0.0)
    u = torch.zeros(1, m.n_in, dtype=torch.float64)
    if family == "kalman":  # relu active everywhere: a state with z C + [y, 1] B > 0 for every unit
        x = torch.linalg.solve(model.C.detach().T, (1.0 - model.B[1].detach()))[None]
    f = (lambda s: m.rhs(s, u)) if m.time == "continuous" else (lambda s: m.step(s, u))
    Jac = torch.autograd.functional.jacobian(f, x)[0, :, 0]
    I = torch.eye(m.n, dtype=torch.float64)
    if family == "kalman":
        expected = (1 - model.alpha) * I + model.alpha * W
    else:
        expected = W - I if m.time == "continuous" else W
    torch.testing.assert_close(Jac, expected)
