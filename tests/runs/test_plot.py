"""``rnntk plot RUN`` (issue 17.4): every figure of a run made again from ``run.h5`` alone, plus
the metric panel, in PNG, PDF and SVG. Oracle: the PNGs a command wrote during its run equal,
pixel for pixel, those ``rnntk plot`` makes later from the file (the figure makers read only
run.h5); the panel has one subplot per logged metric."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from conftest import assert_user_error, run_cli
from PIL import Image

import rnntk.cli  # noqa: F401 - registers every command and its figure makers
from rnntk.engine.figures import FIGURES, RunReader, metric_panel
from rnntk.runs.plot import MARKER, plot_run

RUNS = {
    "selftest": (["selftest", "--iters", "3"], []),
    "sofo": (["sofo-train", "--iters", "3"], ["hand_trajectories", "loss_curves"]),
    "floss": (["floss", "--epochs", "4", "--le-every", "2"], ["lyapunov_spectrum", "accuracy"]),
    "ode": (["ode-train", "--task", "sines", "--epochs", "1"], ["trajectories"]),
    "cordsnet": (
        ["cordsnet-eval", "--init", "random", "--depth", "2", "--image-size", "16", "--width", "0.125", "--data", "digits", "--limit", "20"]
        + ["--post-steps", "2", "--batch-size", "8", "--spont-steps", "5", "--stim-steps", "6"],
        ["population_rate", "accuracy_vs_time"],
    ),
}


def _listing(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in d.rglob("*")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plotruns")
    out = {}
    for key, (args, _) in RUNS.items():
        r = run_cli(*args, "--out", root / key, "-q", cwd=root)
        assert r.code == 0, r.stderr
        out[key] = root / key
    return out


def test_every_figure_making_command_registers_its_makers():
    assert {"sofo-train", "floss", "ode-train", "cordsnet-eval"} <= set(FIGURES)
    # the analysis commands and cordsnet-eigs: below, and in tests/analysis/test_figures_from_run.py and
    # tests/cordsnet/test_cordsnet_eigs_figures.py (stacked layers, unconverged values, content of the figures)
    assert {"lyapunov", "eigs", "fixed-points", "cordsnet-eigs"} <= set(FIGURES)


# every run in PNG; PDF and SVG (slower to write) on the runs of three commands
CASES = [(k, "png") for k in sorted(RUNS)] + [(k, f) for k in ("selftest", "sofo", "floss") for f in ("pdf", "svg")]


@pytest.mark.parametrize("key,fmt", CASES)
def test_plot_makes_every_figure_in_each_format(runs, key, fmt, tmp_path):
    run = runs[key]
    before = _listing(run)
    res = plot_run(run, fmt, tmp_path / "figs")
    assert _listing(run) == before  # the run folder is only read
    names = [Path(f).name for f in res["files"]]  # type: ignore[union-attr]
    assert names == [f"{n}.{fmt}" for n in RUNS[key][1]] + [f"metrics.{fmt}"]
    for f in res["files"]:  # type: ignore[union-attr]
        data = Path(f).read_bytes()
        assert len(data) > 8000, f
        if fmt == "png":
            w, h = Image.open(f).size
            assert w > 400 and h > 300
        elif fmt == "pdf":
            assert data.startswith(b"%PDF")
        else:
            assert b"<svg" in data[:2000]


@pytest.mark.parametrize("key", ["sofo", "floss", "ode", "cordsnet"])
def test_regenerated_pngs_equal_the_ones_the_run_wrote(runs, key, tmp_path):
    res = plot_run(runs[key], "png", tmp_path / "figs")
    for name in RUNS[key][1]:
        a = np.asarray(Image.open(runs[key] / f"{name}.png"))
        b = np.asarray(Image.open(tmp_path / "figs" / f"{name}.png"))
        assert a.shape == b.shape and np.array_equal(a, b), name
    assert any(f.endswith("metrics.png") for f in res["files"])  # type: ignore[union-attr]


SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "cordsnet-mini-digits.pth"
# the analysis commands on the trained floss run of the fixture, cordsnet-eigs on the shipped trained CordsNet
ANALYSES = {
    "lyapunov": (["--steps", "200", "--warmup", "20", "--k", "8"], ["lyapunov_spectrum"]),
    "eigs": (["--k", "4"], ["eigs_layer0"]),
    "fixed-points": (["--candidates", "128", "--n-traj", "16", "--steps", "100"], ["fixed_points"]),
    "cordsnet-eigs": (["--k", "3", "--plot-k", "8"], ["eigs_layer0", "eigs_layer1"]),
}


@pytest.mark.parametrize("command", sorted(ANALYSES))
def test_analysis_figures_deleted_then_made_again_pixel_for_pixel(runs, command, tmp_path, cli_in_process):
    args, names = ANALYSES[command]
    run = tmp_path / "run"
    r = cli_in_process(command, SHIPPED if command == "cordsnet-eigs" else runs["floss"], *args, "--out", run, "-q")
    assert r.code == 0, r.stderr
    wrote = {n: mpimg.imread(run / f"{n}.png") for n in names}
    for n in names:
        (run / f"{n}.png").unlink()
    res = plot_run(run, "png", tmp_path / "figs")
    assert [Path(f).stem for f in res["files"] if not f.endswith("metrics.png")] == names  # type: ignore[union-attr]
    for n in names:
        again = mpimg.imread(tmp_path / "figs" / f"{n}.png")
        assert again.shape == wrote[n].shape and np.array_equal(again, wrote[n]), n


def test_metric_panel_has_one_plot_per_metric(runs):
    with RunReader(runs["floss"] / "run.h5") as r:
        names = [k for k in r.metrics() if k not in ("step", "wall_time")]
        fig = metric_panel(r)
    assert fig is not None
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == names[:16] and len(names) >= 3


def test_cli_default_folder_next_to_the_run_and_errors(runs, tmp_path):
    run = runs["selftest"]
    r = run_cli("plot", run, "--format", "svg", cwd=tmp_path)
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout.splitlines()[-1])
    default = run.parent / f"{run.name}-plots"
    assert Path(out["out"]) == default and (default / "metrics.svg").is_file() and (default / MARKER).is_file()
    assert run_cli("plot", run, "--format", "svg", cwd=tmp_path).code == 0  # its own folder: replaced
    assert_user_error(run_cli("plot", run, "--format", "jpg", cwd=tmp_path), "bad --format 'jpg'", engine=False)
    assert_user_error(run_cli("plot", tmp_path, cwd=tmp_path), "not an rnntk run folder", engine=False)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not rnntk's")
    assert_user_error(run_cli("plot", run, "--out", foreign, cwd=tmp_path), "did not make", engine=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_a_maker_that_cannot_read_an_older_run_is_skipped_with_a_warning(runs, tmp_path, capsys):
    """A run whose file lacks what a maker reads (here the trajectory's time grid and dt, as
    an older rnntk might have written it): the other figures and the panel are still made."""
    import shutil

    import h5py

    run = tmp_path / "old-ode"
    shutil.copytree(runs["ode"], run)
    with h5py.File(run / "run.h5", "a") as f:
        for k in ("dt", "times"):
            del f["traces/trajectory"].attrs[k]
    res = plot_run(run, "png", tmp_path / "figs")
    assert [Path(f).name for f in res["files"]] == ["metrics.png"]  # type: ignore[union-attr]
    assert res["skipped"] and "trajectories: KeyError" in res["skipped"][0]  # type: ignore[index]
    assert "rnntk: warning:" in capsys.readouterr().err
