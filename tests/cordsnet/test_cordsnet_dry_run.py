"""``--dry-run`` of ``cordsnet-eval`` and ``cordsnet-eigs`` (issue 17.6): the checkpoint is
loaded and the images opened, every option checked, the parameter count is the model's, and
the run stops before the simulation or the spectra: their entry points are replaced here by
functions that raise, so a dry run that computed would fail (exit 1). Nothing is written (the
working folder and TMPDIR listed before and after, mtimes too); a bad option exits 2 with one
line. Oracle for the count: the weights stored in the shipped checkpoint."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from conftest import assert_user_error

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "checkpoints" / "cordsnet-mini-digits.pth"
COMPUTE = {
    "cordsnet-eval": [("rnntk.cordsnet.train", "evaluate"), ("rnntk.cordsnet.model", "CordsNet.spontaneous"), ("rnntk.cordsnet.model", "CordsNet.simulate")],
    "cordsnet-eigs": [("rnntk.cordsnet.spectra", "eigs_report"), ("rnntk.cordsnet.eigs", "cordsnet_operators"), ("rnntk.cordsnet.eigs", "leading_eigs")],
}
ARGS = {
    "cordsnet-eval": ["--checkpoint", SHIPPED, "--data", "digits", "--limit", "20"],
    "cordsnet-eigs": [SHIPPED, "--k", "4", "--operator", "jacobian-spont"],
}


def _listing(*roots: Path) -> dict[str, int]:
    return {
        str(p): p.stat().st_mtime_ns
        for r in roots
        for p in [r, *r.rglob("*")]
        if not (p.name.startswith("torchinductor_") and p.is_dir() and not any(p.iterdir()))
    }


@pytest.fixture
def no_compute(monkeypatch):
    import importlib

    def install(name: str) -> None:
        for mod, path in COMPUTE[name]:
            *owner, attr = path.split(".")
            obj = importlib.import_module(mod)
            for o in owner:  # a class's method: CordsNet.simulate
                obj = getattr(obj, o)
            assert hasattr(obj, attr), f"{mod}.{path} moved: update COMPUTE"

            def boom(*a, _where=f"{mod}.{path}", **k):
                raise AssertionError(f"--dry-run reached {_where}")

            monkeypatch.setattr(obj, attr, boom)

    return install


def _shipped_weights() -> int:
    import torch

    sd = torch.load(SHIPPED, weights_only=True)["state_dict"]
    return sum(v.numel() for v in sd.values() if v.is_floating_point())


@pytest.mark.parametrize("name", sorted(COMPUTE))
def test_dry_run_loads_checks_counts_and_stops_before_the_computation(name, cli_in_process, no_compute, monkeypatch, tmp_path):
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    no_compute(name)
    before = _listing(work, tmp)
    shipped_mtime = SHIPPED.stat().st_mtime_ns
    r = cli_in_process(name, *ARGS[name], "--dry-run")
    assert r.code == 0, f"{r.stdout}\n{r.stderr}"
    assert _listing(work, tmp) == before and SHIPPED.stat().st_mtime_ns == shipped_mtime
    out = r.json
    assert out["status"] == "dry-run" and out["run_dir"] is None and out["command"] == name
    n = _shipped_weights()
    assert out["n_params"] == n and f"parameters: {n:,} (counted on the built model: model {n:,})" in r.stdout
    assert out["stopped_before"].startswith("simulating 20 images" if name == "cordsnet-eval" else "the spectra of 2 area(s)")
    assert out["peak_bytes_estimate"] > 0 and out["results_bytes_estimate"] > 0
    assert out["run_h5_bytes_estimate"] == 64 * 1024 + out["results_bytes_estimate"]
    if name == "cordsnet-eval":  # the recorded traces of 20 images dominate: (C, H, W) per area, 2 areas, 100 + 0 steps
        assert 10 * 2**20 < out["results_bytes_estimate"] < 30 * 2**20
    else:  # the solver's own estimate: the Krylov basis of the largest area (16 x 8 x 8 units)
        assert "the command's estimate of --method arnoldi on an area of N = 1024 units" in r.stdout


def test_a_solve_that_cannot_fit_is_refused_before_it_starts(cli_in_process, no_compute, monkeypatch, tmp_path):
    """With 1 MiB free, the Krylov basis of an area of 1024 units does not fit: exit 2, one line."""
    import rnntk.engine.limits as limits

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(limits, "available_bytes", lambda device="cpu": 2.0**20)
    no_compute("cordsnet-eigs")
    r = cli_in_process("cordsnet-eigs", SHIPPED, "--k", "4", "--dry-run")
    assert_user_error(r, "--method arnoldi on an area of N = 1024 units would need", "free")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name,args,needle",
    [
        ("cordsnet-eval", ["--checkpoint", SHIPPED, "--record-layers", "7"], "--record-layers"),
        ("cordsnet-eval", ["--checkpoint", SHIPPED, "--max-trace-gb", "0.001"], "--max-trace-gb 0.001"),
        ("cordsnet-eigs", [SHIPPED, "--layers", "5"], "--layers"),
        ("cordsnet-eigs", [SHIPPED, "--method", "dense", "--max-dense-n", "10"], "--method dense: area"),
    ],
)
def test_bad_option_is_one_line_exit_2(name, args, needle, cli_in_process, no_compute, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    no_compute(name)
    before = _listing(tmp_path)
    r = cli_in_process(name, *args, "--dry-run")
    assert_user_error(r, needle)
    assert _listing(tmp_path) == before
