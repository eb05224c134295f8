"""Issue 13.4 (engine part): a failed --resume leaves the folder byte-identical and exits 2
(the checkpoint is validated before anything is committed); selftest resumed with more
--iters equals the uninterrupted run in every dataset of run.h5."""

import hashlib

import h5py
import numpy as np
import pytest
import torch

from conftest import assert_user_error, run_cli

SMALL = ("--steps", "10", "--batch", "8", "--hidden", "4", "-q")


def snapshot(d) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A selftest run that stopped on a NaN at step 12 (last good checkpoint at step 10)."""
    d = tmp_path_factory.mktemp("resume") / "r"
    r = run_cli("selftest", "--iters", "20", "--nan-at", "12", "--checkpoint-every", "5", *SMALL, "--out", d)
    assert r.code == 3, r.stderr
    return d


def tamper(d, how: str) -> None:
    ck = torch.load(d / "ckpt-last.pt", weights_only=True)
    if how == "rng":
        ck["rng"]["torch"] = torch.zeros(7, dtype=torch.uint8)
    elif how == "rng_missing":
        del ck["rng"]["numpy"]
    elif how == "missing_key":
        ck["state_dict"].pop(next(iter(ck["state_dict"])))
    elif how == "optimizer_shape":
        st = ck["optimizer"]["state"][0]
        st["exp_avg"] = torch.zeros(*st["exp_avg"].shape, 2)
    elif how == "step_negative":
        ck["step"] = -5
    elif how == "step_future":
        ck["step"] = 10_000
    torch.save(ck, d / "ckpt-last.pt")


@pytest.mark.parametrize("how", ["rng", "rng_missing", "missing_key", "optimizer_shape", "step_negative", "step_future"])
def test_failed_resume_leaves_folder_byte_identical(finished_run, tmp_path, how):
    import shutil

    d = tmp_path / "r"
    shutil.copytree(finished_run, d)
    tamper(d, how)
    before = snapshot(d)
    r = run_cli("selftest", "--resume", d, "--iters", "30000", "-q")
    assert_user_error(r, "--resume")
    assert snapshot(d) == before  # summary.json of the non-finite stop, metrics, config: unchanged
    with h5py.File(d / "run.h5", "r") as f:
        assert f.attrs["status"] == "nonfinite"


def test_selftest_resumed_with_more_iters_is_exact(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli("selftest", "--iters", "30", *SMALL, "--out", a).code == 0
    r = run_cli("selftest", "--resume", a, "--iters", "60", "-q")
    assert r.code == 0, r.stderr
    r2 = run_cli("selftest", "--iters", "60", *SMALL, "--out", b)
    assert r2.code == 0
    assert r.json["final"]["val_loss"] == r2.json["final"]["val_loss"]
    with h5py.File(a / "run.h5", "r") as fa, h5py.File(b / "run.h5", "r") as fb:
        names = []
        fb.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for n in names:
            if n in ("metrics/wall_time", "config/toml"):
                continue
            np.testing.assert_array_equal(fa[n][()], fb[n][()], err_msg=n)  # NaN positions included
