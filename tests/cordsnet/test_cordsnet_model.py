"""CordsNet model (rnntk.cordsnet.model), loader and image preprocessing against independent
oracles: closed-form linear Euler dynamics, a root solve, a reference simulation written from
the spec straight on the state-dict tensors, synchronous-update timing (spec §5, oracles 4-8)."""

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import torch
import torch.nn.functional as F

from rnntk.engine import UserError
from rnntk.cordsnet.eigs import ConvOperator
from rnntk.cordsnet.model import CheckpointError, CordsNet, area_shapes, count_parameters, load_cordsnet



pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny operators run on one thread


def _mini(depth=2, nonlinearity="relu", image_size=16, width=0.125, seed=0, dtype=torch.float64, classes=10):
    torch.manual_seed(seed)
    return CordsNet(depth, classes, 1, image_size=image_size, width=width, nonlinearity=nonlinearity).to(dtype).requires_grad_(False)


def _area0_linear_system(model, x):
    """A (dense, from kernel indices), b and u of area 0: z0 = A r0 + b + u."""
    _, H, W = model.shapes[0]
    with torch.no_grad():
        A = ConvOperator(model.recurrent_weight(0).detach(), H, W).to_sparse().toarray()
        u = model.area_area[0](model.stem(x))[0].reshape(-1).numpy()
        b = model.conv_bias[0].detach().reshape(-1).numpy()
    return A, b, u


def _stable(model, radius=0.8):
    """Rescale area 0's weight-norm gains so that its recurrent operator has spectral radius
    ``radius``, and give it a random bias map."""
    _, H, W = model.shapes[0]
    with torch.no_grad():
        A = ConvOperator(model.recurrent_weight(0).detach(), H, W).to_sparse().toarray()
        rho = np.abs(np.linalg.eigvals(A)).max()
        model.area_conv[0].parametrizations.weight.original0.mul_(radius / rho)
        model.conv_bias[0].copy_(torch.randn_like(model.conv_bias[0]) * 0.3)


def test_shapes_and_parameter_counts_match_upstream():
    assert area_shapes(8) == [(64, 56, 56), (64, 56, 56), (128, 28, 28), (128, 28, 28), (256, 14, 14), (256, 14, 14), (512, 7, 7), (512, 7, 7)]
    counts = {d: count_parameters(CordsNet(d)) for d in (2, 4, 6, 8)}
    assert counts == {2: 661520, 4: 1451152, 6: 3777936, 8: 12475280}
    assert len(CordsNet(8).state_dict()) == 53
    assert count_parameters(CordsNet(8, 10, 1)) == 11960148
    assert area_shapes(2, 32, 0.5) == [(32, 8, 8), (32, 8, 8)]


def test_linear_area_euler_closed_form_and_fixed_point():
    """Oracle 4: linear area, r_T = (I - M^T)(I - A)^{-1}(b + u), M = I - α(I - A), from r_0 = 0;
    the long-run state solves (I - A) r = b + u; the Euler error against
    expm(-(I-A) t/τ) shrinks linearly in α."""
    m = _mini(nonlinearity="linear")
    _stable(m, 0.5)
    x = torch.randn(1, 1, 16, 16, dtype=torch.float64)
    A, b, u = _area0_linear_system(m, x)
    n = A.shape[0]
    I = np.eye(n)
    rstar = np.linalg.solve(I - A, b + u)
    for alpha in (0.2,):
        M = I - alpha * (I - A)
        res = m.simulate(x, alpha=alpha, spont_steps=0, stim_steps=100, record=[0])
        tr = res.traces[0][0].reshape(100, -1).numpy()
        for T in (1, 10, 100):
            want = (I - np.linalg.matrix_power(M, T)) @ rstar
            assert np.abs(tr[T - 1] - want).max() <= 1e-10
    long = m.simulate(x, alpha=0.2, spont_steps=0, stim_steps=300)
    assert np.abs(long.final_state[0][0].reshape(-1).numpy() - rstar).max() <= 1e-8
    # continuous time: r(t) = (I - expm(-(I - A) t / τ)) r*, t = 2 τ
    errs = []
    for alpha in (0.2, 0.05, 0.01):
        steps = round(2 / alpha)
        r = m.simulate(x, alpha=alpha, spont_steps=0, stim_steps=steps).final_state[0][0].reshape(-1).numpy()
        exact = (I - scipy.linalg.expm(-(I - A) * 2.0)) @ rstar
        errs.append(np.abs(r - exact).max())
    assert 3.0 < errs[0] / errs[1] < 5.5 and 4.0 < errs[1] / errs[2] < 6.0, errs


def test_relu_area_fixed_point_matches_root_solve_and_is_stable():
    """Oracle 5: the ReLU area's long-run state solves r = relu(A r + b + u) (residual ≤ 1e-8),
    equals a scipy.optimize.root solution, and the gated Jacobian -I + D A has max Re < 0."""
    m = _mini()
    _stable(m, 0.7)
    x = torch.randn(1, 1, 16, 16, dtype=torch.float64)
    A, b, u = _area0_linear_system(m, x)
    r = m.simulate(x, spont_steps=0, stim_steps=800).final_state[0][0].reshape(-1).numpy()
    assert np.abs(r - np.maximum(A @ r + b + u, 0)).max() <= 1e-8
    sol = scipy.optimize.root(lambda v: v - np.maximum(A @ v + b + u, 0), np.zeros_like(r), method="hybr", tol=1e-13)
    assert sol.success and np.abs(sol.x - r).max() <= 1e-8
    D = np.diag((A @ r + b + u > 0).astype(float))
    assert np.linalg.eigvals(-np.eye(len(r)) + D @ A).real.max() < 0


def test_synchronous_update_first_activity_per_area():
    """Oracle 6: zero biases, positive weights, positive image: area j first becomes non-zero
    at step [1,1,2,2,3,3,4,4] (a bottom-up in-place loop would give all 1s)."""
    m = CordsNet(8, 10, 1, image_size=32, width=0.125).requires_grad_(False)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(p.abs() + 0.01 if "original" in name else torch.zeros_like(p))
    res = m.simulate(torch.ones(1, 1, 32, 32), spont_steps=5, stim_steps=6, record=range(8))
    first = [int(torch.nonzero(res.traces[j][0].flatten(1).abs().amax(1) > 0)[0]) + 1 for j in range(8)]
    assert first == [1, 1, 2, 2, 3, 3, 4, 4]
    assert all(float(res.spontaneous[j].abs().max()) == 0 for j in range(8))  # no bias: no spontaneous activity


# ---------------------------------------------------------------------- reference simulation
def _wn(sd, name):
    g, v = sd[f"{name}.parametrizations.weight.original0"], sd[f"{name}.parametrizations.weight.original1"]
    return g * v / v.flatten(1).norm(dim=1).view(-1, *([1] * (v.ndim - 1)))


def reference_logits(sd, x, spont, stim, alpha=0.2):
    """CordsNet written from the spec (§1.1-1.3) directly on state-dict tensors: stem, per-area
    input rule, areas updated in *descending* order in place (= synchronous), full spontaneous
    phase per image batch, readout after the last stimulus step."""
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("area_conv."))
    strides = [1, 1, 2, 1, 2, 1, 2, 1]
    relu = torch.relu
    B = x.shape[0]
    rs = [torch.zeros(B, *sd[f"conv_bias.{j}"].shape, dtype=x.dtype) for j in range(depth)]
    for phase_x, steps in ((x * 0, spont), (x, stim)):
        inp = F.avg_pool2d(F.conv2d(phase_x, _wn(sd, "inp_conv"), stride=2, padding=3), 3, 2, 1)
        for _ in range(steps):
            for j in range(depth - 1, -1, -1):
                if j == 0:
                    h = inp
                elif j == 1:
                    h = relu(rs[0]) + F.conv2d(inp, _wn(sd, "inp_skip"), padding=1)
                elif j % 2 == 0:
                    h = relu(rs[j - 1]) + relu(rs[j - 2])
                else:
                    h = relu(rs[j - 1]) + F.conv2d(relu(rs[j - 2]), _wn(sd, f"skip_area.{j // 2 - 1}"), stride=2)
                z = F.conv2d(rs[j], _wn(sd, f"area_conv.{j}"), padding=1) + sd[f"conv_bias.{j}"] + F.conv2d(h, _wn(sd, f"area_area.{j}"), stride=strides[j], padding=1)
                rs[j] = (1 - alpha) * rs[j] + alpha * relu(z)
    feat = (relu(rs[-1]) + relu(rs[-2])).mean((-2, -1))
    return feat @ _wn(sd, "out_fc").T + sd["out_fc.bias"]


def _randomise(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("conv_bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def test_upstream_state_dict_round_trip_r8_logits(tmp_path):
    """Oracle 7: a random-init upstream-named R8 (224, ImageNet head) saved as a bare state
    dict loads strictly with weights_only=True and gives the reference simulation's logits
    (3 + 3 steps, the spont phase drives every area) to 1e-6; a module.-prefixed copy nested
    under 'state_dict' loads to the same tensors."""
    m = CordsNet(8)
    _randomise(m)
    sd = m.state_dict()
    torch.save(sd, tmp_path / "r8.pth")
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "r8ddp.pth")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = reference_logits(sd, x, 3, 3)
    loaded = load_cordsnet(tmp_path / "r8.pth")
    assert loaded.depth == 8 and loaded.classes == 1000 and loaded.upstream
    with torch.no_grad():
        got = loaded.simulate(x, spont_steps=3, stim_steps=3, readout="final").logits[:, -1]
    assert (got - ref).abs().max() <= 1e-6 * max(1.0, float(ref.abs().max()))
    ddp = load_cordsnet(tmp_path / "r8ddp.pth").state_dict()
    assert all(torch.equal(ddp[k], v) for k, v in sd.items())


def test_batch_with_shared_spontaneous_state_equals_per_image_runs():
    """Oracle 8: one batch with the spontaneous state computed once and broadcast equals the
    reference full simulation of each image on its own (1e-6)."""
    m = CordsNet(4, 10, 3, image_size=32, width=0.25).requires_grad_(False)
    _randomise(m, 3)
    sd = m.state_dict()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        batch = m.simulate(x, spont_steps=20, stim_steps=15, readout="final").logits[:, -1]
        for i in range(3):
            assert (batch[i] - reference_logits(sd, x[i:i + 1], 20, 15)[0]).abs().max() <= 1e-6


def test_loader_refuses_bad_checkpoints(tmp_path):
    m = _mini(dtype=torch.float32)
    sd = m.state_dict()
    torch.save(sd, tmp_path / "ok.pth")
    assert load_cordsnet(tmp_path / "ok.pth").hparams() == dict(depth=2, classes=10, in_channels=1, image_size=16, width=0.125, nonlinearity="relu")
    with pytest.raises(CheckpointError, match="depth = 2, but depth = 8"):
        load_cordsnet(tmp_path / "ok.pth", expect={"depth": 8})
    with pytest.raises(CheckpointError, match="width = 0.125, but width = 1"):
        load_cordsnet(tmp_path / "ok.pth", expect={"width": 1.0})
    bad = dict(sd)
    bad["conv_bias.1"] = torch.zeros(8, 5, 5)
    torch.save(bad, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"'conv_bias.1' has shape \(8, 5, 5\)"):
        load_cordsnet(tmp_path / "shape.pth")
    torch.save({**sd, "area_bias.0": torch.zeros(3)}, tmp_path / "stage.pth")
    with pytest.raises(CheckpointError, match="training stage.*area_bias.0"):
        load_cordsnet(tmp_path / "stage.pth")
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pth")
    with pytest.raises(UserError, match="pickled Python objects"):
        load_cordsnet(tmp_path / "pickled.pth")
    # old-style weight_g / weight_v names are mapped
    old = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): v for k, v in sd.items()}
    torch.save(old, tmp_path / "old.pth")
    assert torch.equal(load_cordsnet(tmp_path / "old.pth").recurrent_weight(1), m.recurrent_weight(1))
