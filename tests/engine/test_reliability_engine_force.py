"""Issue 13.2: --force deletes only a folder rnntk made (its .rnntk-run marker, matching
run.h5 run_id, no entry rnntk did not write, no symlink, no live run), and the lock keeps
two processes from writing one run folder."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from rnntk.engine import Run, UserError
from rnntk.engine.folder import LOCK, MARKER, read_marker

ROOT = Path(__file__).resolve().parents[2]


def make_run(d: Path, extra_file: str | None = None) -> Path:
    with Run.open(d, command="tiny", device="cpu", progress="none") as run:
        for step in run.steps(2):
            run.log(step, loss=1.0)
        if extra_file:
            run.path(extra_file).write_text("a,b\n")
    return d


def thesis(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "thesis.tex").write_text("years of work")
    return d


def force(d: Path) -> None:
    Run.open(d, command="tiny", device="cpu", progress="none", force=True).close()


def test_force_replaces_a_real_run_and_what_it_wrote(tmp_path):
    d = make_run(tmp_path / "r", extra_file="table.csv")
    old = read_marker(d)["id"]
    assert "table.csv" in read_marker(d)["files"]
    (d / "ckpt-last.pt.tmp-123").write_bytes(b"x")  # a temp file left by a kill -9
    force(d)
    m = read_marker(d)
    assert m["id"] != old and not (d / "table.csv").exists() and not (d / "ckpt-last.pt.tmp-123").exists()
    with h5py.File(d / "run.h5", "r") as f:
        assert f.attrs["run_id"] == m["id"]
    assert not (d / LOCK).exists()  # released at close


@pytest.mark.parametrize("case", ["copied_config", "copied_run_h5", "symlink_run_h5", "imitated_header", "recipe", "copied_marker", "stray_file", "subfolder"])
def test_force_refuses_folders_rnntk_did_not_make(tmp_path, case):
    real = make_run(tmp_path / "real")
    d = thesis(tmp_path / "user")
    if case == "copied_config":
        shutil.copy(real / "config.toml", d / "config.toml")
    elif case == "copied_run_h5":
        shutil.copy(real / "run.h5", d / "run.h5")
    elif case == "symlink_run_h5":
        (d / "run.h5").symlink_to(real / "run.h5")
    elif case == "imitated_header":
        (d / "config.toml").write_text("# rnntk selftest: every resolved option of this run (rnntk 0.1.0).\niters = 3\n")
    elif case == "recipe":
        shutil.copy(sorted((ROOT / "tasks").glob("*.toml"))[0], d / "config.toml")
    elif case == "copied_marker":  # a marker and a run.h5 copied from two different runs
        shutil.copy(real / MARKER, d / MARKER)
        other = make_run(tmp_path / "other")
        shutil.copy(other / "run.h5", d / "run.h5")
    elif case == "stray_file":  # a real run folder in which the user saved a file
        d = make_run(tmp_path / "r2")
        (d / "thesis.tex").write_text("years of work")
    elif case == "subfolder":
        d = make_run(tmp_path / "r3")
        (d / "notes").mkdir()
        (d / "notes" / "thesis.tex").write_text("years of work")
    before = sorted(p.name for p in d.rglob("*"))
    with pytest.raises(UserError, match="--force"):
        force(d)
    assert sorted(p.name for p in d.rglob("*")) == before
    assert any(p.name == "thesis.tex" for p in d.rglob("*"))


def test_force_follows_no_symlink(tmp_path):
    real = make_run(tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(UserError, match="symbolic link"):
        force(tmp_path / "link")
    d = make_run(tmp_path / "r")
    (d / "extra.png").symlink_to(tmp_path / "real" / "run.h5")  # a link inside a run folder
    with pytest.raises(UserError, match="symbolic link"):
        force(d)
    assert (real / "run.h5").exists()


def test_live_run_is_never_deleted_nor_written_twice(tmp_path):
    d = tmp_path / "live"
    with Run.open(d, command="tiny", device="cpu", progress="none") as run:
        for step in run.steps(2):
            run.log(step, loss=1.0)
        with pytest.raises(UserError, match="in use"):
            force(d)
        with pytest.raises(UserError, match="in use"):
            Run.open(d, command="tiny", device="cpu", progress="none", resume=True)
        assert (d / "run.h5").exists()
    # another live process (this pytest's parent) holding the lock
    (d / LOCK).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "start": ""}))
    with pytest.raises(UserError, match="in use"):
        force(d)
    with pytest.raises(UserError, match="in use"):
        Run.open(d, command="tiny", device="cpu", progress="none", resume=True)
    # a lock from another host is respected
    (d / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "start": ""}))
    with pytest.raises(UserError, match="elsewhere.example"):
        force(d)


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    d = make_run(tmp_path / "r")
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()  # its pid is dead now
    (d / LOCK).write_text(json.dumps({"pid": p.pid, "host": socket.gethostname(), "start": "1"}))
    with Run.open(d, command="tiny", device="cpu", progress="none", resume=True) as run:
        for step in run.steps(3):
            run.log(step, loss=1.0)
    assert not (d / LOCK).exists()
    (d / LOCK).write_text(json.dumps({"pid": p.pid, "host": socket.gethostname(), "start": "1"}))
    force(d)


def test_two_runs_cannot_open_one_new_folder(tmp_path):
    d = tmp_path / "new"
    with Run.open(d, command="tiny", device="cpu", progress="none"):
        with pytest.raises(UserError, match="exists|in use"):
            Run.open(d, command="tiny", device="cpu", progress="none")
    d2 = tmp_path / "empty"
    d2.mkdir()
    (d2 / LOCK).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "start": ""}))
    with pytest.raises(UserError, match="exists|in use"):
        Run.open(d2, command="tiny", device="cpu", progress="none")
