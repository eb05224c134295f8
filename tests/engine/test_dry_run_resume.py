"""``--resume RUN --dry-run`` (issue 17.6): the run's checkpoint is found, loaded
(``weights_only=True``) and checked by the code a real ``--resume`` runs (model class and
weights, optimizer state, step against the asked steps), the step it would resume from is
printed, and the run folder is left byte for byte and mtime for mtime as it was (no lock file
either). A damaged checkpoint gives the same one-line exit-2 error as a real resume."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import assert_user_error, run_cli


def _snapshot(d: Path) -> dict[str, tuple[bytes, int]]:
    """Every entry of ``d`` (recursively, the folder itself too): its bytes and mtime (ns)."""
    out = {".": (b"", d.stat().st_mtime_ns)}
    for p in sorted(d.rglob("*")):
        out[str(p.relative_to(d))] = (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    """A real selftest run of 6 steps (its ckpt-last.pt at step 6), made once."""
    d = tmp_path_factory.mktemp("resume")
    r = run_cli("selftest", "--iters", "6", "--hidden", "8", "--out", d / "st", "-q", cwd=d)
    assert r.code == 0, r.stderr
    return d / "st"


@pytest.fixture
def run_copy(short_run, tmp_path) -> Path:
    d = tmp_path / "st"
    shutil.copytree(short_run, d)
    return d


def test_resume_dry_run_loads_the_checkpoint_and_prints_its_step(run_copy, cli_in_process, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    before = _snapshot(run_copy)
    r = cli_in_process("selftest", "--resume", run_copy, "--iters", "10", "--dry-run")
    assert r.code == 0, r.stderr
    out = r.json
    assert out["status"] == "dry-run" and out["resume_step"] == 6 and out["n_params"] == 89
    assert f"would continue: {run_copy} from step 6 of its checkpoint ckpt-last.pt (steps 6 to 9 left of 10)" in r.stdout
    assert _snapshot(run_copy) == before  # bytes and mtimes, and no .rnntk-lock left or made
    r = cli_in_process("selftest", "--resume", run_copy, "--iters", "6", "--dry-run")
    assert r.code == 0 and r.json["stopped_before"] == "finishing after all 6 steps (selftest), every one done"
    # the checkpoint's step is checked against the asked steps, as a real resume checks it
    r = cli_in_process("selftest", "--resume", run_copy, "--iters", "3", "--dry-run")
    assert_user_error(r, "already at step 6", "got 3")
    assert _snapshot(run_copy) == before


def _break_checkpoint(d: Path, how: str) -> None:
    import torch

    ck = d / "ckpt-last.pt"
    if how == "corrupt":
        ck.write_bytes(b"not a torch file" * 10)
        return
    obj = torch.load(ck, weights_only=True)
    if how == "weights":  # the hidden layer of another size: does not fit this run's model
        obj["state_dict"]["W"] = torch.zeros(9, 9)
    elif how == "optimizer":  # an Adam moment of the wrong shape
        st = obj["optimizer"]["state"]
        st[next(iter(st))]["exp_avg"] = torch.zeros(3)
    elif how == "step":  # past what run.h5 recorded
        obj["step"] = 1000
    torch.save(obj, ck)


@pytest.mark.parametrize(
    "how,needle",
    [
        ("corrupt", "corrupt or not a torch file"),
        ("weights", "--resume"),
        ("optimizer", "optimizer state"),
        ("step", "step 1000 is past what run.h5 recorded"),
    ],
)
def test_a_bad_checkpoint_is_the_real_resume_error_and_touches_nothing(how, needle, run_copy, cli_in_process, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    _break_checkpoint(run_copy, how)
    os.utime(run_copy / "ckpt-last.pt", ns=(1_000_000_000, 1_000_000_000))  # an mtime a write would change
    before = _snapshot(run_copy)
    dry = cli_in_process("selftest", "--resume", run_copy, "--iters", "10", "--dry-run")
    assert_user_error(dry, needle)
    assert _snapshot(run_copy) == before
    real = cli_in_process("selftest", "--resume", run_copy, "--iters", "10")
    assert_user_error(real, needle)
    assert dry.stderr_lines == real.stderr_lines  # the same check, the same line


def test_a_run_being_written_is_refused_and_its_lock_kept(run_copy, cli_in_process, monkeypatch, tmp_path):
    """Another live process holds the run's lock: refused as a real resume is, the lock left."""
    from rnntk.engine.folder import RunLock

    monkeypatch.chdir(tmp_path)
    lock = RunLock(run_copy).acquire()
    try:
        before = _snapshot(run_copy)
        r = cli_in_process("selftest", "--resume", run_copy, "--iters", "10", "--dry-run")
        assert_user_error(r, "is in use by another rnntk process")
        assert _snapshot(run_copy) == before
    finally:
        lock.release()
