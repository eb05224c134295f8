"""``--dry-run`` on every engine command (issue 17.6): options resolved and checked, the model
built, the resolved config, a parameter count and the estimates printed, nothing written
(the working folder and TMPDIR listed before and after), exit 0; a bad option exits 2 with
one line. Oracle for the count: the parameters of the same model built by a real run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import assert_user_error, cli_env, run_cli

import rnntk.cli  # noqa: F401 - registers every command
from rnntk.engine.options import ENGINE_COMMANDS

ROOT = Path(__file__).resolve().parents[2]
CORDSNET = ROOT / "checkpoints" / "cordsnet-mini-digits.pth"

# small sizes (the analyses stop before they compute: tests/analysis/test_analysis_dry_run.py)
ARGS = {
    "selftest": ["--iters", "5"],
    "sofo-train": ["--iters", "3", "--optimizer", "both"],
    "floss": ["--epochs", "2"],
    "ode-train": ["--epochs", "1"],
    "online-lru": ["--steps", "2"],
    "online-lru-gradcheck": ["--pattern-len", "3", "--pad-len", "2", "--batch-size", "2"],
    "online-lru-memory": ["--seq-lens", "8"],
    "cordsnet-eval": ["--init", "random"],
    "cordsnet-eigs": [str(CORDSNET), "--k", "2"],
    "lyapunov": ["{model}", "--steps", "60", "--warmup", "10", "--n-traj", "2"],
    "eigs": ["{model}"],
    "fixed-points": ["{model}", "--candidates", "16", "--n-traj", "4", "--steps", "20"],
}


def _listing(*roots: Path) -> set[str]:
    """Every path under ``roots``, except the empty cache folder that ``import torch`` itself
    makes in TMPDIR (torchinductor_<user>, made by any torch program, not by rnntk)."""
    return {str(p) for r in roots for p in r.rglob("*") if not (p.name.startswith("torchinductor_") and p.is_dir() and not any(p.iterdir()))}


@pytest.fixture(scope="module")
def model_run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("model")
    r = run_cli("selftest", "--iters", "2", "--hidden", "8", "--out", d / "st", "-q", cwd=d)
    assert r.code == 0, r.stderr
    return d / "st"


def test_the_table_covers_every_engine_command():
    assert set(ARGS) == ENGINE_COMMANDS


@pytest.mark.parametrize("name", sorted(ARGS))
def test_dry_run_prints_config_count_estimates_and_writes_nothing(name, tmp_path, model_run):
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    (work / "keep.txt").write_text("a file rnntk did not write")
    args = [a.format(model=model_run) for a in ARGS[name]]
    before = _listing(work, tmp, model_run)
    r = run_cli(name, *args, "--dry-run", cwd=work, env=cli_env(TMPDIR=str(tmp), MPLBACKEND="Agg"), timeout=180)
    assert r.code == 0, f"{r.stdout}\n{r.stderr}"
    assert _listing(work, tmp, model_run) == before  # no run folder, no file at all
    out = r.json
    assert out["status"] == "dry-run" and out["run_dir"] is None and out["command"] == name
    assert Path(out["would_write"]).parts[0] == "runs" and not (work / "runs").exists()
    assert out["config"]["seed"] == 0 and "device" in out["config"] and out["device"] in ("cpu", "cuda:0")
    assert "resolved config:" in r.stdout and "peak memory (estimate" in r.stdout and "run.h5 size (estimate)" in r.stdout
    assert out["run_h5_bytes_estimate"] >= 64 * 1024
    assert isinstance(out["n_params"], int) and out["n_params"] > 0  # every command counts its model
    assert f"parameters: {out['n_params']:,}" in r.stdout
    assert out["peak_bytes_estimate"] > 0


def test_dry_run_count_and_rows_match_a_real_run(tmp_path):
    """selftest --hidden 8: LeakyRNN(1, 8, 1) has 8 + 64 + 8 (+ biases 8 + 1) = 89 parameters;
    the metric rows are bounded by --iters; a real run then writes its folder."""
    r = run_cli("selftest", "--iters", "7", "--hidden", "8", "--dry-run", "--out", tmp_path / "r", cwd=tmp_path)
    assert r.code == 0, r.stderr
    import torch

    from rnntk.core.leaky_rnn import LeakyRNN

    assert r.json["n_params"] == sum(p.numel() for p in LeakyRNN(1, 8, 1, dt=0.01, tau=0.1).parameters())
    assert r.json["metric_rows_max"] == 7 and r.json["would_write"] == str(tmp_path / "r")
    assert not (tmp_path / "r").exists()
    real = run_cli("selftest", "--iters", "7", "--hidden", "8", "--out", tmp_path / "r", "-q", cwd=tmp_path)
    assert real.code == 0
    sd = torch.load(tmp_path / "r" / "model.pt", weights_only=True)["state_dict"]
    assert sum(v.numel() for v in sd.values()) == r.json["n_params"]
    # an existing run folder is refused as a real run would refuse it, and left as it is
    before = _listing(tmp_path)
    again = run_cli("selftest", "--dry-run", "--out", tmp_path / "r", cwd=tmp_path)
    assert_user_error(again, "output folder exists")
    assert _listing(tmp_path) == before


@pytest.mark.parametrize(
    "args,needle",
    [
        (["sofo-train", "--lr", "-1"], "bad --lr -1.0"),
        (["selftest", "--sleep", "inf"], "bad --sleep inf"),
        (["floss", "--n-units", "10", "--floss-k", "11"], "bad --floss-k 11"),
        (["selftest", "--config", "bad.toml"], "unknown option 'nosuch'"),
    ],
)
def test_bad_option_with_dry_run_is_one_line_exit_2(args, needle, tmp_path):
    (tmp_path / "bad.toml").write_text("nosuch = 1\n")
    before = _listing(tmp_path)
    r = run_cli(*args, "--dry-run", cwd=tmp_path)
    assert_user_error(r, needle)
    assert _listing(tmp_path) == before
    assert os.listdir(tmp_path) == ["bad.toml"]


def test_config_file_values_are_resolved(tmp_path):
    (tmp_path / "c.toml").write_text("iters = 9\nhidden = 12\n")
    r = run_cli("selftest", "--config", "c.toml", "--hidden", "10", "--dry-run", cwd=tmp_path)
    assert r.code == 0, r.stderr
    cfg = r.json["config"]
    assert cfg["iters"] == 9 and cfg["hidden"] == 10  # the file's value, overridden by the flag
    assert "iters = 9" in r.stdout and "hidden = 10" in r.stdout
