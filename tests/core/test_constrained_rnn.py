"""ConstrainedRNN (rnntk.core.constrained_rnn): Dale's law, masks, no autapses, fixed weights and
noise hold exactly after Adam; the contract (step = Euler of rhs, tangent = jvp of step); the
parametrisation's analytic tangent = vmap(jvp); registry round trips (model.pt, run.h5).
Oracles: torch.func.jvp/vmap, the model's own forward loop, and a hand-written Euler step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnntk.core.constrained_rnn import ConstrainedRNN
from rnntk.core.models import ContinuousModel, TangentModel, WeightModel, as_recurrent_model, euler_step, load_model, model_classes, tangent

N, NI, NO, B, T = 10, 3, 2, 4, 6


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def net(**kw) -> ConstrainedRNN:
    kw = {"dale_ratio": 0.8, "connectivity": 0.6, "autapses": False, "dt": 0.01, "tau": 0.05, **kw}
    return ConstrainedRNN(NI, N, NO, generator=gen(), **kw)


def assert_constraints(m: ConstrainedRNN, fixed_values: dict[str, torch.Tensor] | None = None) -> None:
    """Exact checks: zeros outside the masks, no autapses, one sign per column, fixed values kept."""
    W = m.effective()
    for b in ("in", "rec", "out"):
        w = W[f"W_{b}"]
        assert torch.equal(w[~getattr(m, f"mask_{b}")], torch.zeros_like(w[~getattr(m, f"mask_{b}")]))
        if fixed_values is not None:
            f = getattr(m, f"fixed_{b}")
            assert torch.equal(w[f], fixed_values[b][f])
    rec = W["W_rec"]
    if not m.autapses:
        assert torch.equal(rec.diagonal(), torch.zeros(N))
    if m.dale_ratio is not None:
        s = m.dale_sign
        assert int((s > 0).sum()) == round(m.dale_ratio * N)
        assert bool(((rec * s) >= 0).all())  # every entry has its column's sign or is 0
        assert torch.equal(torch.sign(rec), torch.sign(rec).abs() * s)


def test_contract_step_is_euler_of_rhs_and_tangent_is_jvp():
    m = net()
    r = as_recurrent_model(m)
    assert r is m and isinstance(m, ContinuousModel) and isinstance(m, TangentModel) and isinstance(m, WeightModel)
    assert "ConstrainedRNN" in model_classes()
    x = torch.randn(B, N, generator=gen(1))
    u = torch.randn(B, NI, generator=gen(2))
    W = m.effective()
    hand = x + 0.01 / 0.05 * (-x + torch.relu(x) @ W["W_rec"].T + u @ W["W_in"].T + m.b)
    torch.testing.assert_close(m.step(x, u), hand)
    torch.testing.assert_close(euler_step(m, x, u), m.step(x, u))
    Q = torch.randn(B, N, 5, generator=gen(3))
    jvp = torch.func.vmap(lambda q: torch.func.jvp(lambda s: m.step(s, u), (x,), (q,))[1], in_dims=2, out_dims=2)(Q)
    torch.testing.assert_close(tangent(m, x, Q, u), jvp)
    torch.testing.assert_close(m.recurrent_weight(), W["W_rec"])
    # forward = the contract's steps and readout (noise off)
    us = torch.randn(B, T, NI, generator=gen(4))
    y, rates = m(us)
    s = m.initial_state(B)
    for t in range(T):
        s = m.step(s, us[:, t])
        torch.testing.assert_close(y[:, t], m.readout(s))
        torch.testing.assert_close(rates[:, t], torch.relu(s))


def test_initial_constraints_and_parameter_count():
    m = net()
    assert_constraints(m)
    assert m.theta_rec.numel() == int(m.mask_rec.sum()) < N * N - N  # only connected entries are parameters
    assert int(m.mask_rec.diagonal().sum()) == 0
    rho = float(torch.linalg.eigvals(m.effective()["W_rec"].detach().double()).abs().max())
    assert math.isclose(rho, 0.9, rel_tol=1e-5)


def test_parametrisation_tangent_equals_vmap_jvp_and_is_zero_off_the_free_set():
    m = net()
    p = {k: v.detach() for k, v in m.named_parameters()}
    V = {k: torch.randn(7, *v.shape, generator=gen(5)) for k, v in p.items()}
    jv = torch.func.vmap(lambda v: torch.func.jvp(m.effective, (p,), (v,))[1])(V)
    push = m.push_tangent(V)
    for b in ("in", "rec", "out"):
        torch.testing.assert_close(push[f"W_{b}"], jv[f"W_{b}"], rtol=0, atol=0)
        off = ~m.free_mask(b)
        assert torch.equal(push[f"W_{b}"][:, off], torch.zeros_like(push[f"W_{b}"][:, off]))
    # under Dale's law each tangent column moves along its sign: dW_rec * sign >= 0 where theta, v > 0
    W = m.effective()["W_rec"]
    same = (torch.sign(push["W_rec"]) == torch.sign(W)) | (push["W_rec"] == 0)
    pos = torch.zeros_like(push["W_rec"], dtype=torch.bool)
    pos[:, m.free_mask("rec")] = V["theta_rec"] > 0
    assert bool(same[pos].all())


def _fixed_npz(tmp_path) -> tuple[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    mask_rec = rng.random((N, N)) < 0.5
    fixed_rec = mask_rec & (rng.random((N, N)) < 0.3)
    mask_out = np.zeros((NO, N), bool)
    mask_out[:, :8] = True  # read out from the excitatory units only
    data = {"mask_rec": mask_rec, "fixed_rec": fixed_rec, "mask_out": mask_out, "fixed_in": np.eye(N, NI, dtype=bool)}
    path = tmp_path / "conn.npz"
    np.savez(path, **data)
    return str(path), data


def test_adam_50_steps_keeps_signs_masks_and_fixed_weights_exactly(tmp_path):
    path, data = _fixed_npz(tmp_path)
    m = net(connectivity=path, rec_noise=0.05, input_noise=0.02)
    assert torch.equal(m.mask_rec, torch.as_tensor(data["mask_rec"]) & ~torch.eye(N, dtype=torch.bool))
    assert torch.equal(m.mask_out, torch.as_tensor(data["mask_out"]))
    before = {b: w.detach().clone() for b, w in zip(("in", "rec", "out"), m.effective().values())}
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    g = gen(7)
    for _ in range(50):
        u = torch.randn(8, T, NI, generator=g)
        y, _ = m(u, m.sample_noise(8, T, g))
        loss = ((y - 1.0) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert_constraints(m, before)
    after = m.effective()
    free = m.free_mask("rec")
    assert not torch.equal(after["W_rec"][free], before["rec"][free])  # it did train


def test_noise_is_euler_maruyama_with_the_documented_scales():
    m = net(rec_noise=0.1, input_noise=0.2, connectivity=None)
    xi = m.sample_noise(B, 1, gen(8))
    assert xi is not None and xi.shape == (B, 1, N + NI)
    x = torch.randn(B, N, generator=gen(9))
    u = torch.randn(B, NI, generator=gen(10))
    a = m.alpha
    hand = m.step(x, u + math.sqrt(2 / a) * 0.2 * xi[:, 0, N:]) + math.sqrt(2 * a) * 0.1 * xi[:, 0, :N]
    torch.testing.assert_close(m.step_noisy(x, u, xi[:, 0]), hand)
    assert net(connectivity=None).sample_noise(B, 3) is None


def test_registry_round_trip_model_pt_and_run_h5(tmp_path):
    from rnntk.engine import Run
    from rnntk.engine.checkpoint import save_checkpoint

    path, _ = _fixed_npz(tmp_path)
    m = net(connectivity=path)
    with torch.no_grad():
        m.theta_rec[::3] *= -1  # a sign gauge the round trip keeps
        m.b.normal_(generator=gen(11))
    u = torch.randn(B, T, NI, generator=gen(12))
    y = m(u)[0]
    save_checkpoint(tmp_path / "model.pt", model=m, hparams=m.hparams())
    back = load_model(tmp_path / "model.pt")
    assert type(back) is ConstrainedRNN and back.hparams() == m.hparams()
    assert torch.equal(back(u)[0], y)
    assert torch.equal(back.theta_rec, m.theta_rec)
    with Run.open(tmp_path / "r", command="tiny", config={}, seed=0, device="cpu", progress="none") as run:
        run.save_model(m, hparams=m.hparams())
    import h5py

    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        stored = torch.as_tensor(f["model/W_rec"][()])
        assert torch.equal(stored, m.effective()["W_rec"].detach())  # /model holds the EFFECTIVE matrix
        assert f["model/mask_rec"].dtype == bool
    (tmp_path / "conn.npz").unlink()  # the masks travel in the run file
    back = load_model(tmp_path / "r" / "run.h5")
    assert torch.equal(back.mask_rec, m.mask_rec) and torch.equal(back.fixed_rec, m.fixed_rec)
    assert torch.equal(back(u)[0], y)
    assert_constraints(back)


def test_loading_an_effective_matrix_that_breaks_the_constraints_is_refused():
    m = net()
    sd = m.state_dict()
    bad = dict(sd)
    bad["W_rec"] = sd["W_rec"].abs()  # inhibitory columns made positive
    with pytest.raises(ValueError, match="Dale"):
        net().load_state_dict(bad)
    bad = dict(sd)
    w = sd["W_rec"].clone()
    w[0, 0] = 0.5  # an autapse
    bad["W_rec"] = w
    with pytest.raises(ValueError, match="outside mask_rec"):
        net().load_state_dict(bad)


@pytest.mark.parametrize("bad", [dict(dale_ratio=1.5), dict(connectivity=0.0), dict(connectivity="/nope.npz"), dict(rec_noise=-1.0), dict(dt=1.0)])
def test_bad_constructor_arguments(bad):
    with pytest.raises(ValueError):
        net(**bad)


def test_run_h5_with_a_second_saved_model_rebuilds_the_first(tmp_path):
    """Regression: load_model(run.h5) of a `sofo-train --optimizer both` run failed ('unexpected
    key adam_model.*'): /model/adam_model/ holds the other model, not part of /model's."""
    from rnntk.engine import Run

    a, b = net(), net(g=0.5)
    with Run.open(tmp_path / "r", command="tiny", config={}, seed=0, device="cpu", progress="none") as run:
        run.save_model(a, hparams=a.hparams())
        run.save_model(b, name="adam_model", hparams=b.hparams())
    back = load_model(tmp_path / "r" / "run.h5")
    assert torch.equal(back.effective()["W_rec"], a.effective()["W_rec"])
