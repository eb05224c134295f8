"""Checkpoints: atomic save, weights_only load, one-line refusals."""

import os

import pytest
import torch
from torch import nn

from rnntk.engine import UserError, load_checkpoint, load_file, load_state_into, save_checkpoint


class Evil:
    """Unpickling this would run a shell command; weights_only must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def test_roundtrip_with_optimizer_rng_and_hparams(tmp_path):
    m = _model()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    m(torch.randn(5, 3)).sum().backward()
    opt.step()
    info = save_checkpoint(tmp_path / "c.pt", model=m, hparams={"sizes": [3, 4, 2], "act": "tanh"}, optimizer=opt, rng={"torch": torch.get_rng_state()}, step=7)
    assert info["bytes"] > 0 and len(info["sha256"]) == 64
    ck = load_checkpoint(tmp_path / "c.pt", expect_model=m)
    assert ck["step"] == 7 and ck["hparams"] == {"sizes": [3, 4, 2], "act": "tanh"} and ck["model"] == "Sequential"
    m2 = _model()
    with torch.no_grad():
        for p in m2.parameters():
            p.add_(1.0)
    load_state_into(m2, ck["state_dict"])
    for a, b in zip(m.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    opt2 = torch.optim.Adam(m2.parameters(), lr=1e-3)
    opt2.load_state_dict(ck["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert not list(tmp_path.glob("*.tmp-*"))  # atomic: no temp file left behind


def test_hparams_must_be_plain(tmp_path):
    with pytest.raises(TypeError, match="plain values"):
        save_checkpoint(tmp_path / "c.pt", model=_model(), hparams={"act": nn.Tanh()})


def test_pickled_object_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "evil": Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="pickled Python objects") as e:
        load_file(tmp_path / "evil.pt")
    assert "\n" not in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_one_line_error(tmp_path, damage):
    path = tmp_path / "c.pt"
    save_checkpoint(path, model=_model(), step=1)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    else:
        path.write_bytes(b"")
    with pytest.raises(UserError, match="cannot read checkpoint") as e:
        load_checkpoint(path)
    assert "\n" not in e.value.one_line()


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_file(tmp_path / "nope.pt")
    with pytest.raises(UserError, match="folder"):
        load_file(tmp_path)
    torch.save({"w": torch.ones(2)}, tmp_path / "plain.pt")
    assert torch.equal(load_file(tmp_path / "plain.pt")["w"], torch.ones(2))
    with pytest.raises(UserError, match="not an rnntk checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


def test_wrong_model_is_refused(tmp_path):
    save_checkpoint(tmp_path / "c.pt", model=_model(), step=1)
    with pytest.raises(UserError, match="holds a Sequential checkpoint, not a Linear"):
        load_checkpoint(tmp_path / "c.pt", expect_model=nn.Linear(3, 4))
    ck = load_checkpoint(tmp_path / "c.pt")
    other = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    with pytest.raises(UserError, match=r"'0.weight' has shape \(4, 3\), model expects \(5, 3\)"):
        load_state_into(other, ck["state_dict"])
    with pytest.raises(UserError, match="missing 2 key"):
        load_state_into(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.Linear(2, 2)), ck["state_dict"])


def test_weights_of_another_dtype_kind_are_refused():
    """Complex or integer weights for a real model (``load_state_dict`` would cast them silently)."""
    m = _model()
    for dt in (torch.complex64, torch.int64):
        sd = {k: v.to(dt) for k, v in m.state_dict().items()}
        with pytest.raises(UserError, match=f"'0.weight' has dtype {dt}, model expects torch.float32"):
            load_state_into(_model(), sd)
    load_state_into(_model(), {k: v.double() for k, v in m.state_dict().items()})  # float64 -> float32 is a precision change, allowed


def test_objects_with_state_dict_are_saved_as_their_state_and_others_refused(tmp_path):
    class Custom:
        def state_dict(self):
            return {"it": 3, "gen": torch.Generator().manual_seed(0).get_state()}

    save_checkpoint(tmp_path / "c.pt", model=_model(), optimizer=Custom())
    assert load_checkpoint(tmp_path / "c.pt")["optimizer"]["it"] == 3
    with pytest.raises(TypeError, match="plain values only"):
        save_checkpoint(tmp_path / "d.pt", model=_model(), extra={"x": object()})
    assert not (tmp_path / "d.pt").exists()
