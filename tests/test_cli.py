"""The real `rnntk` CLI in subprocesses: exit codes, one-line errors, the JSON line,
config precedence, --resume, signals, progress, inspect."""

import json
import signal
import subprocess
import sys
import time
import tomllib

import h5py
import numpy as np
import pytest
import torch

from conftest import assert_user_error, cli_env, run_cli

FAST = ("--iters", "6", "--steps", "10", "--batch", "8", "--hidden", "4")


def test_version_and_help():
    r = run_cli("--version")
    assert r.code == 0 and r.stdout.strip().startswith("rnntk ")
    r = run_cli("--help")
    assert r.code == 0 and "selftest" in r.stdout and "inspect" in r.stdout
    r = run_cli()
    assert r.code == 0 and "Usage" in r.stdout
    r = run_cli("inspect", "--help")
    assert r.code == 0 and "run.h5" in r.stdout
    r = run_cli("selftest", "--help")
    for opt in ("--device", "--seed", "--out", "--force", "--resume", "--config", "--quiet", "Run options"):
        assert opt in r.stdout


def test_selftest_completes_and_prints_json(tmp_path):
    r = run_cli("selftest", "--out", tmp_path / "r", *FAST, "-q")
    assert r.code == 0, r.stderr
    out = r.json
    assert out["status"] == "completed" and out["run_dir"] == str(tmp_path / "r") and out["step"] == 6
    assert np.isfinite(out["final"]["loss"]) and "val_loss" in out["final"]
    assert r.stderr == ""  # --quiet: nothing on stderr
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["status"] == "completed"
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        assert f["traces/activity"].shape == (8, 10, 4)
        assert f["traces/activity"].attrs["dt"] == 0.01
        assert f.attrs["command"] == "selftest" and json.loads(f.attrs["argv"])[1] == "selftest"


def test_default_out_and_seed_auto_from_slurm(tmp_path):
    env = cli_env(SLURM_ARRAY_TASK_ID="3", SLURM_ARRAY_JOB_ID="900")
    r = run_cli("selftest", *FAST, "-q", "--seed", "auto", cwd=tmp_path, env=env)
    assert r.code == 0, r.stderr
    run_dir = tmp_path / r.json["run_dir"]
    assert run_dir.parent.name == "runs" and run_dir.name.startswith("selftest-") and run_dir.name.endswith("-s3-j900_3")
    with h5py.File(run_dir / "run.h5", "r") as f:
        assert f.attrs["seed"] == 3 and f.attrs["slurm_array_task_id"] == "3"
    assert tomllib.loads((run_dir / "config.toml").read_text())["seed"] == 3


def test_same_seed_same_metrics_via_cli(tmp_path):
    for name in ("a", "b"):
        assert run_cli("selftest", "--out", tmp_path / name, *FAST, "-q", "--seed", "5").code == 0
    la = h5py.File(tmp_path / "a" / "run.h5", "r")["metrics/loss"][:]
    lb = h5py.File(tmp_path / "b" / "run.h5", "r")["metrics/loss"][:]
    np.testing.assert_array_equal(la, lb)


# ------------------------------------------------------------------ bad input: exit 2, one line
@pytest.mark.parametrize(
    "args,needles",
    [
        (("--device", "gpu"), ("bad --device 'gpu'",)),
        (("--seed", "xyz"), ("bad --seed 'xyz'",)),
        (("--lr", "abc"), ("--lr",)),
        (("--lr", "-1"), ("bad --lr -1",)),
        (("--iters", "0"), ("--iters",)),
        (("--bogus",), ("No such option: --bogus",)),
    ],
)
def test_bad_option_values(tmp_path, args, needles):
    r = run_cli("selftest", "--out", tmp_path / "r", *FAST, *args)
    assert_user_error(r, *needles)
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_cuda_asked_but_absent(tmp_path):
    r = run_cli("selftest", "--out", tmp_path / "r", *FAST, "--device", "cuda")
    assert_user_error(r, "asked for CUDA, but none is available")


def test_existing_output_folder_is_refused_and_kept(tmp_path):
    assert run_cli("selftest", "--out", tmp_path / "r", *FAST, "-q").code == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    r = run_cli("selftest", "--out", tmp_path / "r", *FAST)
    assert_user_error(r, "output folder exists", "--force")
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before
    r = run_cli("selftest", "--out", tmp_path / "r", *FAST, "-q", "--force", "--seed", "9")
    assert r.code == 0 and tomllib.loads((tmp_path / "r" / "config.toml").read_text())["seed"] == 9


def test_unwritable_output_path(tmp_path):
    (tmp_path / "f").write_text("x")
    assert_user_error(run_cli("selftest", "--out", tmp_path / "f" / "sub", *FAST), "cannot create output folder")


# ------------------------------------------------------------------ config files
def test_config_defaults_and_flag_override(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('iters = 4\nhidden = 3\nlr = 0.01\nseed = 2\nbatch = 5\nsteps = 10\n')
    r = run_cli("selftest", "--config", cfg, "--lr", "0.02", "--out", tmp_path / "r", "-q")
    assert r.code == 0, r.stderr
    got = tomllib.loads((tmp_path / "r" / "config.toml").read_text())
    assert got["iters"] == 4 and got["hidden"] == 3 and got["seed"] == 2 and got["lr"] == 0.02
    # the run's own config.toml re-runs it exactly
    r2 = run_cli("selftest", "--config", tmp_path / "r" / "config.toml", "--out", tmp_path / "r2", "-q")
    assert r2.code == 0, r2.stderr
    np.testing.assert_array_equal(h5py.File(tmp_path / "r" / "run.h5")["metrics/loss"][:], h5py.File(tmp_path / "r2" / "run.h5")["metrics/loss"][:])


@pytest.mark.parametrize(
    "text,needles",
    [
        (None, ("config file not found",)),
        ("iters = ", ("bad TOML",)),
        ("itters = 3\n", ("unknown option 'itters'",)),
        ('iters = "many"\n', ("--iters",)),
        ("[section]\niters = 3\n", ("unknown option 'section'",)),
    ],
)
def test_bad_config_files(tmp_path, text, needles):
    cfg = tmp_path / "c.toml"
    if text is not None:
        cfg.write_text(text)
    assert_user_error(run_cli("selftest", "--config", cfg, "--out", tmp_path / "r"), *needles)


# ------------------------------------------------------------------ non-finite, signals, resume
def test_nonfinite_exit_3(tmp_path):
    r = run_cli("selftest", "--out", tmp_path / "r", *FAST, "--iters", "20", "--nan-at", "7", "--checkpoint-every", "5", "-q")
    assert_user_error(r, "non-finite loss=nan at step 7", "last good checkpoint kept", "(step 5)", code=3)
    assert r.json["status"] == "nonfinite"
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        assert f.attrs["status"] == "nonfinite" and f["checkpoints/last"].attrs["step"] == 5
    assert torch.load(tmp_path / "r" / "ckpt-last.pt", weights_only=True)["step"] == 5


def _start(tmp_path, name, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "rnntk", "selftest", "--out", str(tmp_path / name), "--iters", "60", "--steps", "10",
         "--batch", "8", "--hidden", "4", "--sleep", "0.05", "--checkpoint-every", "1000", "-q", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )


def _wait_rows(path, n, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with h5py.File(path, "r", locking=False) as f:
                if f["metrics/step"].shape[0] >= n:
                    return
        except (OSError, KeyError):
            pass
        time.sleep(0.1)
    raise TimeoutError


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_checkpoints_and_resume_is_bit_identical(tmp_path, sig, code):
    ref = run_cli("selftest", "--out", tmp_path / "ref", "--iters", "60", "--steps", "10", "--batch", "8", "--hidden", "4", "-q", "--log-every", "1")
    assert ref.code == 0
    p = _start(tmp_path, "cut", "--log-every", "1")
    _wait_rows(tmp_path / "cut" / "run.h5", 5)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    line = [ln for ln in err.splitlines() if ln.startswith("rnntk: error:")]
    assert len(line) == 1 and f"interrupted by {signal.Signals(sig).name}" in line[0] and "--resume" in line[0]
    assert json.loads(out.strip().splitlines()[-1])["status"] == "interrupted"
    with h5py.File(tmp_path / "cut" / "run.h5", "r") as f:
        assert f.attrs["status"] == "interrupted"
        stopped = int(f["checkpoints/last"].attrs["step"])
    assert 0 < stopped < 60
    r = run_cli("selftest", "--resume", tmp_path / "cut", "--sleep", "0", "-q")
    assert r.code == 0, r.stderr
    assert r.json["status"] == "completed" and r.json["step"] == 60
    a = h5py.File(tmp_path / "ref" / "run.h5", "r")["metrics"]
    b = h5py.File(tmp_path / "cut" / "run.h5", "r")["metrics"]
    np.testing.assert_array_equal(b["step"][:], np.arange(60))
    np.testing.assert_array_equal(a["loss"][:], b["loss"][:])
    np.testing.assert_array_equal(a["val_loss"][:], b["val_loss"][:])


def test_kill_9_cli_run_is_readable(tmp_path):
    p = _start(tmp_path, "k", "--log-every", "2")
    _wait_rows(tmp_path / "k" / "run.h5", 8)
    p.kill()
    p.wait(timeout=30)
    with h5py.File(tmp_path / "k" / "run.h5", "r") as f:
        assert f.attrs["status"] == "running"
        assert f["metrics/step"].shape[0] >= 8
    r = run_cli("inspect", tmp_path / "k")
    assert r.code == 0 and "running" in r.stdout


def test_resume_errors(tmp_path):
    assert_user_error(run_cli("selftest", "--resume", tmp_path / "nope"), "no such run folder")
    (tmp_path / "empty").mkdir()
    assert_user_error(run_cli("selftest", "--resume", tmp_path / "empty"), "has no config.toml")
    assert run_cli("selftest", "--out", tmp_path / "r", *FAST, "-q").code == 0
    assert_user_error(run_cli("selftest", "--resume", tmp_path / "r", "--lr", "0.5"), "--lr 0.5 differs from the run's lr")
    assert_user_error(run_cli("selftest", "--resume", tmp_path / "r", "--out", tmp_path / "x"), "do not combine it with --out")
    assert_user_error(run_cli("selftest", "--resume", tmp_path / "r", "--config", tmp_path / "r" / "config.toml"), "do not combine")
    # a run of another command
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.toml").write_text("# rnntk sofo-train: every resolved option\nlr = 1.0\n")
    assert_user_error(run_cli("selftest", "--resume", other), "is a run of 'rnntk sofo-train', not 'rnntk selftest'")


@pytest.mark.parametrize("damage", ["truncate", "pickle", "wrong-model", "wrong-shape"])
def test_resume_with_bad_checkpoint(tmp_path, damage):
    assert run_cli("selftest", "--out", tmp_path / "r", *FAST, "-q").code == 0
    ck_path = tmp_path / "r" / "ckpt-last.pt"
    ck = torch.load(ck_path, weights_only=True)
    if damage == "truncate":
        data = ck_path.read_bytes()
        ck_path.write_bytes(data[: len(data) // 3])
        needle = "truncated or corrupt"
    elif damage == "pickle":
        ck["extra"]["state"] = {"x": np.random.default_rng(0)}  # a pickled numpy object
        torch.save(ck, ck_path)
        needle = "pickled Python objects"
    elif damage == "wrong-model":
        ck["model"] = "CordsNet"
        torch.save(ck, ck_path)
        needle = "holds a CordsNet, this run builds a LeakyRNN"
    else:
        ck["state_dict"]["W"] = torch.zeros(5, 5)
        torch.save(ck, ck_path)
        needle = "'W' has shape (5, 5), model expects (4, 4)"
    r = run_cli("selftest", "--resume", tmp_path / "r", "--iters", "8")
    assert_user_error(r, needle)


# ------------------------------------------------------------------ progress
def test_plain_progress_lines_when_not_a_tty(tmp_path):
    r = run_cli("selftest", "--out", tmp_path / "r", *FAST, env=cli_env(RNNTK_PROGRESS_INTERVAL="0"))
    assert r.code == 0
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("[selftest] step")]
    assert len(lines) >= 6 and "loss=" in lines[-1] and "6/6" in lines[-1]
    assert "\x1b[" not in r.stderr  # no ANSI codes in a log file
    assert r.stdout.count("\n") == 1  # stdout holds the JSON line only


# ------------------------------------------------------------------ inspect
def test_inspect_run_dir_and_file(tmp_path):
    assert run_cli("selftest", "--out", tmp_path / "r", *FAST, "-q").code == 0
    for target in (tmp_path / "r", tmp_path / "r" / "run.h5"):
        r = run_cli("inspect", target)
        assert r.code == 0, r.stderr
        for needle in ("selftest", "completed", "loss", "val_loss", "activity", "8×10×4", "dt 0.01 s", "coherence", "val_loss_final", "iters = 6"):
            assert needle in r.stdout, needle
    r = run_cli("inspect", tmp_path / "r", "--json")
    s = json.loads(r.stdout)
    assert s["attrs"]["status"] == "completed" and s["metrics"]["loss"]["n"] == 6
    assert s["traces"]["activity"]["shape"] == [8, 10, 4]


def test_inspect_errors(tmp_path):
    assert_user_error(run_cli("inspect", tmp_path / "nope.h5"), "no such file", engine=False)
    (tmp_path / "notes.txt").write_text("hello")
    assert_user_error(run_cli("inspect", tmp_path / "notes.txt"), "not an HDF5 file", engine=False)
    (tmp_path / "d").mkdir()
    assert_user_error(run_cli("inspect", tmp_path / "d"), "has no run.h5", engine=False)
    assert run_cli("selftest", "--out", tmp_path / "r", *FAST, "-q").code == 0
    data = (tmp_path / "r" / "run.h5").read_bytes()
    (tmp_path / "trunc.h5").write_bytes(data[: len(data) // 2])
    r = run_cli("inspect", tmp_path / "trunc.h5")
    assert_user_error(r, "trunc.h5", engine=False)


def test_resume_with_seed_auto_under_the_same_slurm_task(tmp_path):
    env = cli_env(SLURM_ARRAY_TASK_ID="4")
    assert run_cli("selftest", "--out", tmp_path / "r", *FAST, "-q", "--seed", "auto", env=env).code == 0
    r = run_cli("selftest", "--resume", tmp_path / "r", "--seed", "auto", "--iters", "8", "-q", env=env)
    assert r.code == 0, r.stderr
    assert r.json["step"] == 8


def test_failed_cli_resume_keeps_results(tmp_path):
    assert run_cli("selftest", "--out", tmp_path / "r", *FAST, "-q").code == 0
    summary = (tmp_path / "r" / "summary.json").read_text()
    assert_user_error(run_cli("selftest", "--resume", tmp_path / "r", "--iters", "3"), "already at step 6")
    assert_user_error(run_cli("selftest", "--resume", tmp_path / "r", "--hidden", "5"), "--hidden 5 differs")
    assert (tmp_path / "r" / "summary.json").read_text() == summary
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        assert f["metrics/step"].shape == (6,) and f.attrs["status"] == "completed"


def test_nan_lr_is_a_user_error(tmp_path):
    assert_user_error(run_cli("selftest", "--out", tmp_path / "r", *FAST, "--lr", "nan"), "bad --lr nan")


def test_inspect_foreign_hdf5_and_markup_in_attrs(tmp_path):
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["metrics"] = np.arange(3)  # a dataset where rnntk has a group
    assert_user_error(run_cli("inspect", tmp_path / "foreign.h5"), "cannot summarise", engine=False)
    assert run_cli("selftest", "--out", tmp_path / "r", *FAST, "-q").code == 0
    with h5py.File(tmp_path / "r" / "run.h5", "a") as f:
        f.attrs["error"] = "failed: [enforce fail at x.cpp:1] [/oops]"
    r = run_cli("inspect", tmp_path / "r")
    assert r.code == 0, r.stderr
    assert "[enforce fail at x.cpp:1] [/oops]" in r.stdout


def test_inspect_into_a_closed_pipe(tmp_path):
    assert run_cli("selftest", "--out", tmp_path / "r", *FAST, "-q").code == 0
    p = subprocess.run(f"{sys.executable} -m rnntk inspect {tmp_path / 'r'} | head -n1", shell=True, capture_output=True, text=True, env=cli_env())
    assert "Traceback" not in p.stderr and p.stdout.strip()
