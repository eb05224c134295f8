"""Gradient alignment's ``all`` group weights every parameter group equally (issue 12, item 7):
on the copy task at initialisation the encoder's BPTT gradient is far larger than the others'
(zero inputs and a zero bias feed LayerNorm), so a plain cosine over all parameters reported
the encoder's value for every rule."""

import math

import pytest
import torch

from rnntk.online.alignment import compare, gradient_alignment, gradient_of, param_groups
from rnntk.online.data import build_model, load_task


def test_all_is_the_cosine_of_per_group_normalised_gradients():
    """Group A: huge and exact; group B: small and reversed. A plain cosine says ~1; with every
    group rescaled to unit reference norm the two cancel: cos 0, rel_err √((0² + 2²)/2)."""
    ref = {"a": torch.tensor([1000.0, 0.0]), "b": torch.tensor([0.0, 1.0])}
    g = {"a": torch.tensor([1000.0, 0.0]), "b": torch.tensor([0.0, -1.0])}
    out = compare(g, ref, {"A": ["a"], "B": ["b"]})
    assert out["A"]["cos"] == pytest.approx(1.0) and out["B"]["cos"] == pytest.approx(-1.0)
    assert out["all"]["cos"] == pytest.approx(0.0, abs=1e-15)
    assert out["all"]["rel_err"] == pytest.approx(math.sqrt(2.0))
    assert out["all"]["relnorm"] == pytest.approx(1.0)
    assert out["all"]["norm"] == pytest.approx(math.sqrt(1000.0**2 + 1.0))
    # scale-free per group: a group scaled by 1e6 in both g and ref changes nothing
    g2, ref2 = {**g, "a": g["a"] * 1e6}, {**ref, "a": ref["a"] * 1e6}
    assert compare(g2, ref2, {"A": ["a"], "B": ["b"]})["all"]["cos"] == pytest.approx(0.0, abs=1e-15)


def test_all_formula_from_the_groups_and_a_zero_reference_group_left_out():
    gen = torch.Generator().manual_seed(0)
    names = ["p", "q", "r"]
    ref = {n: torch.randn(5, generator=gen, dtype=torch.float64) * s for n, s in zip(names, (50.0, 1.0, 0.01))}
    g = {n: ref[n] + torch.randn(5, generator=gen, dtype=torch.float64) * ref[n].norm() for n in names}
    groups = {n.upper(): [n] for n in names}
    out = compare(g, ref, groups)
    c = [out[k]["cos"] for k in groups]
    r = [out[k]["relnorm"] for k in groups]
    want = sum(ci * ri for ci, ri in zip(c, r)) / (math.sqrt(3) * math.sqrt(sum(ri * ri for ri in r)))
    assert out["all"]["cos"] == pytest.approx(want, rel=1e-12)
    # a group whose reference is 0 is reported but not weighted into all
    g["z"], ref["z"] = torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    out2 = compare(g, ref, {**groups, "Z": ["z"]})
    assert out2["Z"]["cos"] == 0.0 and out2["all"]["cos"] == pytest.approx(want, rel=1e-12)


def test_copy_task_at_init_all_is_not_the_encoder():
    """The situation of the issue (copy task, prenorm stack, at init): the encoder's BPTT
    gradient dominates, every rule has the same encoder cosine, and ``all`` still ranks
    online_full above truncated above spat (as the layers do)."""
    data = load_task("copy", torch.Generator().manual_seed(17), pattern_len=3, pad_len=7, bits=7, train_samples=8, val_samples=1, test_samples=1)
    m = build_model(data[0], torch.Generator().manual_seed(0), torch.float64, arch="lru", layers=2, d_model=8, d_hidden=8,
                    activation="full_glu", norm="pre", dropout=0.0, pooling="none", readout=0, r_min=0.0, r_max=1.0, max_phase=6.28,
                    rnn_activation="linear")
    x, y, mask, _ = data[0].batch(torch.arange(8), torch.device("cpu"), torch.float64)
    ref = gradient_of(m, (x, y, mask), "bptt")
    norms = {k: float(torch.cat([ref[n].reshape(-1) for n in ns]).norm()) for k, ns in param_groups(m).items()}
    assert all(norms["encoder"] > 20 * v for k, v in norms.items() if k != "encoder"), norms
    al = gradient_alignment(m, (x, y, mask), ["online_full", "online_truncated", "online_spat"])
    enc = al["online_full"]["encoder"]["cos"]
    assert al["online_spat"]["encoder"]["cos"] == pytest.approx(enc, abs=1e-9)
    cos_all = [al[r]["all"]["cos"] for r in ("online_full", "online_truncated", "online_spat")]
    assert cos_all[0] > cos_all[1] + 0.02 > cos_all[2] + 0.04, cos_all
    assert abs(cos_all[0] - enc) > 0.05
