"""`rnntk cordsnet-eigs` draws ``eigs_layer<j>.png`` from run.h5 alone (issue 17.4): every
computed value (``--plot-k`` widens the set beyond the reported top ``--k``) with a per-value
converged flag is stored, the PNGs are deleted, and `rnntk plot RUN` makes them again pixel for
pixel (matplotlib.image.imread), and as SVG. The reported datasets and eigs.csv are unchanged:
the top k of the computed set."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import h5py
import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from conftest import main_in_process

import rnntk.cli  # noqa: F401 - registers every command and its figure makers
from rnntk.engine.figures import FIGURES, RunReader
from rnntk.runs.plot import plot_run

pytestmark = pytest.mark.usefixtures("one_thread")

# one unrestarted Krylov run of 60 vectors: on this model some of the 12 values per ordering
# converge and some do not, so the figure has filled and hollow points
ARGS = ("--k", "3", "--plot-k", "12", "--max-restarts", "0", "--krylov", "60")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from rnntk.cordsnet.model import CordsNet

    d = tmp_path_factory.mktemp("cn")
    torch.manual_seed(0)
    m = CordsNet(2, 10, 1, image_size=16, width=0.125)
    with torch.no_grad():
        for j in range(2):
            m.conv_bias[j].normal_(0, 0.3)
    torch.save(m.state_dict(), d / "tiny.pth")
    return d / "tiny.pth"


def _eigs(capsys, model: Path, out: Path, *args: str) -> None:
    r = main_in_process(capsys, "cordsnet-eigs", model, *args, "--out", out, "-q")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["status"] == "completed"


def test_plot_remakes_the_eigs_pngs_pixel_for_pixel(tiny, tmp_path, capsys):
    assert "cordsnet-eigs" in FIGURES
    run = tmp_path / "run"
    _eigs(capsys, tiny, run, *ARGS)
    names = ["eigs_layer0.png", "eigs_layer1.png"]
    assert sorted(p.name for p in run.glob("*.png")) == names
    wrote = {n: mpimg.imread(run / n) for n in names}
    for n in names:
        (run / n).unlink()
    res = plot_run(run, "png", tmp_path / "figs")
    assert res["skipped"] == [] and [Path(f).name for f in res["files"]][:2] == names  # type: ignore[union-attr]
    for n in names:
        again = mpimg.imread(tmp_path / "figs" / n)
        assert again.shape == wrote[n].shape and np.array_equal(again, wrote[n]), n
    svg = plot_run(run, "svg", tmp_path / "svg")["files"]
    assert [Path(f).name for f in svg][:2] == ["eigs_layer0.svg", "eigs_layer1.svg"]  # type: ignore[union-attr]
    assert all(b"<svg" in Path(f).read_bytes()[:2000] for f in svg)  # type: ignore[union-attr]


def test_every_computed_value_is_stored_and_drawn_and_the_report_is_unchanged(tiny, tmp_path, capsys):
    from rnntk.cordsnet.figures import cordsnet_eigs_figures

    run = tmp_path / "run"
    _eigs(capsys, tiny, run, *ARGS)
    with h5py.File(run / "run.h5", "r") as f:
        g: Any = f["results/eigs"]
        comp = {(j, w): (g[f"layer{j}_{w}_computed"][()], g[f"layer{j}_{w}_computed_converged"][()]) for j in (0, 1) for w in ("LM", "LR")}
        for (j, w), (vals, conv) in comp.items():
            assert vals.shape == (12,) and conv.dtype == bool and conv.shape == (12,)
            np.testing.assert_array_equal(g[f"layer{j}_{w}"][()], vals[:3])  # the reported top --k
            np.testing.assert_array_equal(g[f"layer{j}_{w}_converged"][()], conv[:3])
            assert g[f"layer{j}_{w}_residual"].shape == (3,) and g[f"layer{j}_{w}"].attrs["converged"] == bool(conv[:3].all())
    mixed = [(vals, conv) for vals, conv in comp.values() if conv.any() and not conv.all()]
    assert mixed  # filled and hollow points in one figure
    with open(run / "eigs.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * 3  # the CSV reports the top --k only, as before
    assert [r["converged"] == "1" for r in rows if r["layer"] == "0" and r["which"] == "LM"] == list(comp[0, "LM"][1][:3])
    with RunReader(run / "run.h5") as r:
        figs = dict(cordsnet_eigs_figures(r))
    for j in (0, 1):
        ax = figs[f"eigs_layer{j}"].axes[0]
        pts = [(c.get_offsets(), c.get_facecolors()) for c in ax.collections]
        assert sum(len(o) for o, _ in pts) == 24  # 12 values per ordering, untruncated
        for w in ("LM", "LR"):
            vals, conv = comp[j, w]
            for v, ok in zip(vals, conv):
                hits = [fc for o, fc in pts if (np.abs(o - [v.real, v.imag]).sum(1) < 1e-12).any()]
                assert hits and (len(hits[0]) > 0) == bool(ok)  # converged: filled; not converged: hollow (no face colour)


def test_an_older_run_without_the_computed_values_is_skipped_with_a_warning(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    _eigs(capsys, tiny, run, "--k", "3", "--layers", "0")
    with h5py.File(run / "run.h5", "a") as f:
        for w in ("LM", "LR"):
            del f[f"results/eigs/layer0_{w}_computed"]
    res = plot_run(run, "png", tmp_path / "figs")
    assert [Path(f).name for f in res["files"]] == ["metrics.png"]  # type: ignore[union-attr]
    assert "cordsnet_eigs_figures: KeyError" in res["skipped"][0]  # type: ignore[index]
