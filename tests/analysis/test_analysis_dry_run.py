"""``--dry-run`` of the analysis commands (issue 17.6): the source (run folder, model.pt or a
lone run.h5) is loaded and every option checked against it, the parameter count is the
model's, and the run stops where the analysis would begin: the analysis entry points are
replaced here by functions that raise, so a dry run that computed anything would fail (exit
1). Nothing is written (the working folder, the source run and TMPDIR listed before and after);
a bad option exits 2 with one line. Oracle for the count: the weights in the run's model.pt."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import assert_user_error, run_cli

# the computations each command must not reach under --dry-run (module, attribute)
COMPUTE = {
    "lyapunov": [("rnntk.analysis.source", "make_drive"), ("rnntk.analysis.lyapunov", "lyapunov_spectrum"), ("rnntk.analysis.lyapunov_run", "_layer_spectrum")],
    "eigs": [("rnntk.analysis.source", "make_drive"), ("rnntk.analysis.eigs", "leading_eigs"), ("rnntk.analysis.eigs", "jacobian_operator")],
    "fixed-points": [
        ("rnntk.analysis.source", "trajectories"),
        ("rnntk.analysis.fixed_points", "fixed_points"),
        ("rnntk.analysis.fixed_points_cli", "_search"),
    ],
}
ARGS = {
    "lyapunov": ["--steps", "400", "--warmup", "100", "--n-traj", "4", "--k", "4"],
    "eigs": ["--state", "trial:50", "--k", "3"],
    "fixed-points": ["--candidates", "64", "--n-traj", "8", "--steps", "50"],
}


def _listing(*roots: Path) -> dict[str, int]:
    """Every path under ``roots`` with its mtime (ns), except the empty cache folder that
    ``import torch`` itself may make in TMPDIR."""
    return {
        str(p): p.stat().st_mtime_ns
        for r in roots
        for p in [r, *r.rglob("*")]
        if not (p.name.startswith("torchinductor_") and p.is_dir() and not any(p.iterdir()))
    }


@pytest.fixture(scope="module")
def model_run(tmp_path_factory) -> Path:
    """A real selftest run (LeakyRNN, 8 units), and a folder holding only its run.h5."""
    d = tmp_path_factory.mktemp("model")
    r = run_cli("selftest", "--iters", "2", "--hidden", "8", "--out", d / "st", "-q", cwd=d)
    assert r.code == 0, r.stderr
    (d / "h5only").mkdir()
    shutil.copy(d / "st" / "run.h5", d / "h5only" / "run.h5")
    return d / "st"


def _n_weights(run: Path) -> int:
    import torch

    sd = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    return sum(v.numel() for v in sd.values())


@pytest.fixture
def no_compute(monkeypatch):
    """Make every analysis entry point raise (the dry run must stop before them)."""
    import importlib

    def install(name: str) -> None:
        for mod, attr in COMPUTE[name]:
            m = importlib.import_module(mod)
            assert hasattr(m, attr), f"{mod}.{attr} moved: update COMPUTE"

            def boom(*a, _where=f"{mod}.{attr}", **k):
                raise AssertionError(f"--dry-run reached {_where}")

            monkeypatch.setattr(m, attr, boom)

    return install


@pytest.mark.parametrize("name", sorted(COMPUTE))
@pytest.mark.parametrize("source", ["run", "run.h5"])
def test_dry_run_loads_checks_counts_and_stops_before_the_analysis(name, source, model_run, cli_in_process, no_compute, monkeypatch, tmp_path):
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    no_compute(name)
    src = model_run if source == "run" else model_run.parent / "h5only" / "run.h5"
    before = _listing(work, tmp, model_run.parent)
    r = cli_in_process(name, src, *ARGS[name], "--dry-run")
    assert r.code == 0, f"{r.stdout}\n{r.stderr}"
    assert _listing(work, tmp, model_run.parent) == before  # no run folder, no file, no mtime changed
    out = r.json
    assert out["status"] == "dry-run" and out["run_dir"] is None and out["command"] == name
    assert out["n_params"] == _n_weights(model_run) == 89  # counted on the model rebuilt from the source
    assert "parameters: 89 (counted on the built model: model 89)" in r.stdout
    assert out["stopped_before"].startswith(("the Lyapunov spectrum", "the eigenvalues", "the fixed-point search"))
    assert out["config"]["model_path"] == str(src if source == "run.h5" else src / "model.pt")
    # estimates: the command's own of its tensors and of what it writes (no model saved)
    assert out["peak_bytes_estimate"] > 0
    assert out["results_bytes_estimate"] > 0 and out["run_h5_bytes_estimate"] == 64 * 1024 + out["results_bytes_estimate"]
    if name == "eigs":  # its solver's own estimate (before: weights only)
        assert "the command's estimate of --method dense on N = 8 units" in r.stdout


def test_an_eigen_solve_that_cannot_fit_is_refused_before_it_starts(model_run, cli_in_process, no_compute, monkeypatch, tmp_path):
    import rnntk.engine.limits as limits

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(limits, "available_bytes", lambda device="cpu": 1024.0)
    no_compute("eigs")
    r = cli_in_process("eigs", model_run, "--dry-run")
    assert_user_error(r, "--method dense on N = 8 units would need", "free")
    assert list(tmp_path.iterdir()) == []


def test_results_estimate_is_close_to_what_a_real_run_writes(model_run, cli_in_process, monkeypatch, tmp_path):
    """The estimate of /results against the bytes a real lyapunov run stores there."""
    import h5py

    monkeypatch.chdir(tmp_path)
    args = ["--steps", "150", "--warmup", "50", "--n-traj", "4", "--k", "4"]
    dry = cli_in_process("lyapunov", model_run, *args, "--dry-run")
    assert dry.code == 0, dry.stderr
    real = cli_in_process("lyapunov", model_run, *args, "--out", tmp_path / "ly", "-q")
    assert real.code == 0, real.stderr
    stored = 0
    with h5py.File(tmp_path / "ly" / "run.h5", "r") as f:
        res = f["results"]
        assert isinstance(res, h5py.Group)

        def add(_n: str, o: object) -> None:
            nonlocal stored
            if isinstance(o, h5py.Dataset):
                stored += o.size * o.dtype.itemsize

        res.visititems(add)
    assert stored > 0
    assert 0.5 * stored <= dry.json["results_bytes_estimate"] <= 2 * stored


@pytest.mark.parametrize(
    "name,args,needle",
    [
        ("lyapunov", ["--k", "9"], "bad --k 9: the network has N = 8 units"),
        ("eigs", ["--layers", "1"], "bad --layers '1': the model has 1 recurrent layer(s)"),
        ("eigs", ["--method", "arpack", "--k", "7"], "--method arpack needs --k < N - 1 = 7"),
        ("fixed-points", ["--input", "1,2"], "bad --input '1,2': the model has 1 input(s), got 2 number(s)"),
        ("fixed-points", ["--traces", "nosuch"], "--traces nosuch: "),
    ],
)
def test_bad_option_against_the_model_is_one_line_exit_2(name, args, needle, model_run, cli_in_process, no_compute, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    no_compute(name)
    before = _listing(tmp_path, model_run.parent)
    r = cli_in_process(name, model_run, *args, "--dry-run")
    assert_user_error(r, needle)
    assert _listing(tmp_path, model_run.parent) == before
