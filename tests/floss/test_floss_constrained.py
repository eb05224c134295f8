"""floss with biological constraints (issue 18.2): `--dale-ratio/--connectivity/--no-autapses/
--rec-noise` train a ConstrainedRNN; Dale's signs, masks and the zero diagonal hold EXACTLY after
50 flossing steps and 50 task Adam steps (flossing moves only the free parameters), and the CLI run
stores the effective W_rec in run.h5 /model. Oracle for the exponents: the model's own analytic
tangent = autograd jvp is tested in tests/core/test_constrained_rnn.py."""

from __future__ import annotations

import numpy as np
import torch

from rnntk.core.constrained_rnn import ConstrainedRNN
from rnntk.floss.config import FlossConfig
from rnntk.floss.flossing import floss_step, flossed_parameters
from rnntk.floss.train import make_model


def check(m: ConstrainedRNN, before: torch.Tensor) -> None:
    W = m.effective()["W_rec"].detach()
    assert torch.equal(W[~m.mask_rec], torch.zeros_like(W[~m.mask_rec]))
    assert torch.equal(W.diagonal(), torch.zeros(m.n))
    assert bool(((W * m.dale_sign) >= 0).all())
    assert not torch.equal(W, before)


def test_flossing_and_adam_keep_the_constraints_exactly():
    cfg = FlossConfig(n_units=16, floss_k=6, delay=4, trial_len=40, alpha=0.5, dale_ratio=0.75, connectivity="0.5", no_autapses=True, rec_noise=0.02)
    g = torch.Generator().manual_seed(0)
    m = make_model(cfg, 1, 1, g)
    assert isinstance(m, ConstrainedRNN) and m.alpha == 0.5 and m.activation == "softplus"
    before = m.effective()["W_rec"].detach().clone()
    opt = torch.optim.Adam(flossed_parameters(m, ("theta_in", "theta_rec", "b")), lr=1e-2)
    for _ in range(50):
        u = torch.randint(0, 2, (1, 20, 1), generator=g).float()
        floss_step(m, opt, u, 6, x0=m.initial_state(1), warmup=4, target=0.0)
    check(m, before)
    before = m.effective()["W_rec"].detach().clone()
    task = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(50):
        u = torch.randint(0, 2, (8, 20, 1), generator=g).float()
        y, _ = m(u, m.sample_noise(8, 20, g))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(y[..., 0], u[..., 0].roll(2, 1))
        task.zero_grad()
        loss.backward()
        task.step()
    check(m, before)


def test_cli_floss_with_constraints_stores_the_effective_matrix(tmp_path):
    import h5py
    from conftest import assert_user_error, run_cli

    args = ["--task", "xor", "--delay", "4", "--trial-len", "40", "-N", "12", "--floss-k", "6", "--epochs", "20", "--floss-before", "10", "--floss-every", "10"]
    args += ["--floss-epochs", "5", "--floss-times", "1", "--floss-len", "20", "--floss-warmup", "4", "--le-len", "40", "--le-every", "0", "--eval-batch", "16"]
    r = run_cli("floss", *args, "--dale-ratio", "0.8", "--connectivity", "0.5", "--no-autapses", "--out", tmp_path / "r")
    assert r.code == 0, r.stderr
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        assert f["model"].attrs["model_class"] == "ConstrainedRNN"
        W, s, mask = (f[f"model/{k}"][()] for k in ("W_rec", "dale_sign", "mask_rec"))
        assert ((W * s) >= 0).all() and (W[~mask] == 0).all() and (np.diag(W) == 0).all()
    assert_user_error(run_cli("floss", *args, "--connectivity", "dense", "--out", tmp_path / "bad"), "--connectivity")
