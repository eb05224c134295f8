"""``rnntk ls``, ``rnntk compare``, ``rnntk cite`` on real runs written by a sweep in the test."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from rnntk.runs.browse import mean_sem
from rnntk.runs.cite import PAPERS, papers_for

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
TINY = "iters = 6\nhidden = 8\nbatch = 8\nsteps = 10\n"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rnntk", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browse")
    (root / "g.toml").write_text(f'command = "selftest"\nseeds = 2\n[options]\n{TINY}[grid]\nlr = [0.01, 0.001]\n')
    p = cli("sweep", "g.toml", "--jobs", "2", cwd=root)
    assert p.returncode == 0, p.stderr
    return root


def last_loss(run: Path) -> float:
    with h5py.File(run / "run.h5", "r") as f:
        v = f["metrics"]["loss"][:]
    return float(v[~np.isnan(v)][-1])


def test_ls_json_where_sort(sweep_dir):
    p = cli("ls", "runs", "--json", cwd=sweep_dir)
    rows = [json.loads(x) for x in p.stdout.splitlines()]
    assert p.returncode == 0 and len(rows) == 4
    r = rows[0]
    assert r["command"] == "selftest" and r["status"] == "completed" and r["step"] == 6 and r["steps"] == 10  # steps done vs the option
    assert r["sweep"] == "g" and r["metric"] == "val_loss" and r["hidden"] == 8 and "lr" in r
    p = cli("ls", "runs", "--json", "--where", "lr<0.005", "--where", "status=completed", "--sort", "-val_loss", cwd=sweep_dir)
    rows = [json.loads(x) for x in p.stdout.splitlines()]
    assert [r["lr"] for r in rows] == [0.001, 0.001] and rows[0]["val_loss"] >= rows[1]["val_loss"]
    p = cli("ls", "runs", "--where", "seed=1", cwd=sweep_dir)
    assert p.returncode == 0 and "2 runs" in p.stdout and "lr=0.01-s1" in p.stdout
    p = cli("ls", "runs", "--where", "lr~1", cwd=sweep_dir)
    assert p.returncode == 2 and "bad --where" in p.stderr and "Traceback" not in p.stderr


def test_compare_figure_and_table(sweep_dir, tmp_path):
    out = tmp_path / "cmp.png"
    p = cli("compare", "runs/g", "--metric", "loss", "--out", str(out), "--json", cwd=sweep_dir)
    assert p.returncode == 0, p.stderr
    table = json.loads(p.stdout)
    groups = {g["group"]: g for g in table["groups"]}
    assert set(groups) == {"lr=0.01", "lr=0.001"} and all(g["runs"] == 2 and g["seeds"] == [0, 1] for g in groups.values())
    runs = sweep_dir / "runs" / "g"
    want = [last_loss(runs / "lr=0.01-s0"), last_loss(runs / "lr=0.01-s1")]
    assert groups["lr=0.01"]["final_mean"] == pytest.approx(np.mean(want), rel=1e-12)
    assert groups["lr=0.01"]["final_sem"] == pytest.approx(np.std(want, ddof=1) / math.sqrt(2), rel=1e-12)
    assert groups["lr=0.01"]["final_min"] == pytest.approx(min(want))
    w, h = Image.open(out).size
    assert (w, h) == (1210, 462)  # 11 x 4.2 in at 110 dpi: two panels
    p = cli("compare", "runs/g", "--metric", "accuracy", "--out", str(tmp_path / "x.png"), cwd=sweep_dir)
    assert p.returncode == 2 and "no metric 'accuracy'" in p.stderr and "loss" in p.stderr


def test_mean_sem_on_common_steps():
    s, m, e = mean_sem([(np.array([0, 1, 2]), np.array([1.0, 2.0, 3.0])), (np.array([1, 2, 3]), np.array([4.0, 6.0, 8.0]))])
    assert s.tolist() == [1, 2] and m.tolist() == [3.0, 4.5] and e.tolist() == pytest.approx([1.0, 1.5])


def test_cite(sweep_dir):
    p = cli("cite", "runs/g/lr=0.01-s0", cwd=sweep_dir)
    assert p.returncode == 0 and "@inproceedings{kingma2015adam," in p.stdout
    assert papers_for("ode-train", {"adjoint": "gq", "task": "sines"}) == ["chen2018neuralode", "torchdiffeq", "norcliffe2023gq"]
    assert papers_for("ode-train", {"adjoint": "sde-adjoint"})[-1] == "li2020torchsde"
    assert papers_for("online-lru", {"arch": "gru", "rule": "online_snap"}) == ["zucchet2023online", "menick2021snap"]
    assert papers_for("sofo-train", {"optimizer": "both"}) == ["yu2024sofo", "kingma2015adam"]
    for key, entry in PAPERS.items():  # each entry is one balanced BibTeX record under its own key (the key printed in the % line)
        assert entry.split("{", 1)[1].split(",", 1)[0] == key and entry.count("{") == entry.count("}")
    p = cli("cite", "nowhere", cwd=sweep_dir)
    assert p.returncode == 2 and "not an rnntk run folder" in p.stderr


def test_cite_analyses_and_solvers(sweep_dir):
    """The CordsNet entry's key is the one printed (was soo2024cordsnet over @inproceedings{soo2024recurrent});
    fixed-points, online-lru-memory and the eigen-solvers have their papers; a valid run with nothing
    to cite (eigs --method dense) is not an error (was exit 2)."""
    assert papers_for("cordsnet-eval", {}) == ["soo2024recurrent"]
    assert papers_for("cordsnet-eigs", {"method": "arnoldi", "max_restarts": 1000}) == ["soo2024recurrent", "stewart2002krylovschur"]
    assert papers_for("eigs", {"method": "arpack"}) == ["lehoucq1998arpack"]
    assert papers_for("eigs", {"method": "arnoldi", "max_restarts": 0}) == [] == papers_for("eigs", {"method": "dense"})
    assert papers_for("fixed-points", {}) == ["sussillo2013opening"]
    assert papers_for("online-lru-memory", {}) == ["zucchet2023online"]
    p = cli("eigs", "runs/g/lr=0.01-s0", "--method", "dense", "--k", "2", "--out", "eigs-dense", "-q", cwd=sweep_dir)
    assert p.returncode == 0, p.stderr
    p = cli("cite", "eigs-dense", cwd=sweep_dir)
    assert p.returncode == 0 and p.stdout == "% rnntk eigs: no papers are listed for this run's options\n" and p.stderr == ""
    p = cli("fixed-points", "runs/g/lr=0.01-s0", "--candidates", "16", "--n-traj", "4", "--steps", "20", "--out", "fp", "-q", cwd=sweep_dir)
    assert p.returncode == 0, p.stderr
    p = cli("cite", "fp", cwd=sweep_dir)
    assert p.returncode == 0 and p.stdout.startswith("% rnntk fixed-points: sussillo2013opening\n@article{sussillo2013opening,")
    assert "journal = {Neural Computation}" in p.stdout and "pages = {626--649}" in p.stdout


def test_ls_json_axes_object_and_a_sort_field_no_run_has(sweep_dir):
    """--json carries the swept values as one object (they were only mixed in with every option);
    --sort on a field no run has (a typo) is one line, exit 2 (was silently unsorted)."""
    p = cli("ls", "runs", "--json", cwd=sweep_dir)
    rows = [json.loads(x) for x in p.stdout.splitlines()]
    assert sorted((r["run"], json.dumps(r["axes"])) for r in rows) == sorted(
        (f"runs/g/lr={lr}-s{s}", json.dumps({"lr": lr})) for lr in (0.01, 0.001) for s in (0, 1)
    )
    p = cli("ls", "runs", "--sort", "-val_los", cwd=sweep_dir)
    assert p.returncode == 2 and p.stdout == "" and p.stderr.count("\n") == 1
    assert p.stderr.startswith("rnntk: error: bad --sort '-val_los': no run has a field 'val_los' (fields: ") and "val_loss" in p.stderr
    p = cli("ls", "runs", "--where", "lr=7", "--sort", "nothing", cwd=sweep_dir)  # no run left to sort: no error
    assert p.returncode == 0 and "0 runs" in p.stdout
