"""`rnntk lyapunov`, `rnntk eigs` and `rnntk fixed-points` draw their figures from run.h5 alone
(issue 17.4): the PNGs a command wrote are deleted, `rnntk plot RUN` makes them again, pixel for
pixel (decoded with matplotlib.image.imread), and in SVG/PDF. Oracles for the content: the plotted
data equal the arrays the run stored (the spectrum's points, the eigenvalues, one unstable
direction per unstable eigenvalue of each point)."""

from __future__ import annotations

import csv as csv_module
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
from rnntk.engine import save_checkpoint
from rnntk.engine.figures import FIGURES, RunReader
from rnntk.runs.plot import plot_run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A continuous-time LeakyRNN with saddles (g = 2) and a two-layer online-lru tanh stack."""
    from rnntk.core.leaky_rnn import LeakyRNN
    from rnntk.online.models.seq_model import build_seq_model

    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    leaky = LeakyRNN(2, 10, 1, g=2.0)
    save_checkpoint(d / "leaky.pt", model=leaky, hparams=leaky.hparams())
    stack = build_seq_model(d_in=2, n_classes=2, arch="rnn", rnn_activation="tanh", layers=2, d_model=3, d_hidden=9, generator=torch.Generator().manual_seed(0))
    save_checkpoint(d / "stack.pt", model=stack, hparams=stack.hparams())
    return {"leaky": d / "leaky.pt", "stack": d / "stack.pt"}


COMMANDS = {
    "lyapunov": (["--steps", "200", "--warmup", "20"], {"leaky": ["lyapunov_spectrum"], "stack": ["lyapunov_spectrum"]}),
    "eigs": (["--k", "4", "--method", "arnoldi"], {"leaky": ["eigs_layer0"], "stack": ["eigs_layer0", "eigs_layer1"]}),
    "fixed-points": (["--candidates", "256"], {"leaky": ["fixed_points"], "stack": ["fixed_points"]}),
}


def _run(capsys, command: str, model: Path, out: Path) -> list[str]:
    args, names = COMMANDS[command]
    r = main_in_process(capsys, command, model, *args, "--out", out, "-q")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["status"] == "completed"
    return names[model.stem]


def test_the_analysis_commands_register_makers():
    assert {"lyapunov", "eigs", "fixed-points"} <= set(FIGURES)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("model", ["leaky", "stack"])
def test_plot_remakes_the_command_pngs_pixel_for_pixel(models, command, model, tmp_path, capsys):
    run = tmp_path / "run"
    names = _run(capsys, command, models[model], run)
    assert sorted(p.stem for p in run.glob("*.png")) == sorted(names)
    wrote = {n: mpimg.imread(run / f"{n}.png") for n in names}
    for n in names:
        (run / f"{n}.png").unlink()
    res = plot_run(run, "png", tmp_path / "figs")
    assert res["skipped"] == []
    made = {Path(f).stem for f in res["files"]}  # type: ignore[union-attr]
    assert set(names) <= made and made <= set(names) | {"metrics"}
    for n in names:
        again = mpimg.imread(tmp_path / "figs" / f"{n}.png")
        assert again.shape == wrote[n].shape and np.array_equal(again, wrote[n]), n
        assert wrote[n].shape[0] > 300 and wrote[n].shape[1] > 400 and wrote[n][..., :3].std() > 0.05  # a drawn figure, not a blank one
    assert not list(run.glob("*.png"))  # plot only reads the run


def test_svg_and_pdf(models, tmp_path, capsys):
    run = tmp_path / "fp"
    _run(capsys, "fixed-points", models["leaky"], run)
    svg = Path(plot_run(run, "svg", tmp_path / "s")["files"][0])  # type: ignore[index]
    assert svg.name == "fixed_points.svg" and b"<svg" in svg.read_bytes()[:2000] and svg.stat().st_size > 20000
    run = tmp_path / "ei"
    _run(capsys, "eigs", models["stack"], run)
    pdfs = [Path(f) for f in plot_run(run, "pdf", tmp_path / "p")["files"]]  # type: ignore[union-attr]
    assert [p.name for p in pdfs] == ["eigs_layer0.pdf", "eigs_layer1.pdf"] and all(p.read_bytes().startswith(b"%PDF") for p in pdfs)


def test_lyapunov_figure_draws_the_stored_spectrum(models, tmp_path, capsys):
    from rnntk.analysis.figures import lyapunov_figures

    run = tmp_path / "ly"
    _run(capsys, "lyapunov", models["stack"], run)
    with RunReader(run / "run.h5") as r:
        ((name, fig),) = lyapunov_figures(r)
        layers = json.loads(r.attrs_of("results")["lyapunov_layers"])
        means = [r.result(f"lyapunov_mean_{ln}") for ln in layers]
    assert name == "lyapunov_spectrum" and len(layers) == 2 and all(layers)
    lines = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata()) > 2]  # the errorbar lines (not the zero line)
    assert len(lines) == 2
    for line, mean in zip(lines, means):
        np.testing.assert_array_equal(line.get_ydata(), mean)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == layers


def test_eigs_figure_draws_the_stored_values_and_converged_flags(models, tmp_path, capsys):
    from rnntk.analysis.figures import eigs_figures

    run = tmp_path / "ei"
    _run(capsys, "eigs", models["stack"], run)
    with open(run / "eigs.csv") as fh:
        csv = list(csv_module.DictReader(fh))
    with RunReader(run / "run.h5") as r:
        figs = dict(eigs_figures(r))
        for j in (0, 1):
            ax = figs[f"eigs_layer{j}"].axes[0]
            pts = np.concatenate([c.get_offsets() for c in ax.collections])
            for w in ("LM", "LR"):
                vals, conv = r.result(f"eigs/layer{j}_{w}"), r.result(f"eigs/layer{j}_{w}_converged")
                assert vals is not None and conv is not None and conv.dtype == bool and conv.shape == vals.shape
                np.testing.assert_array_equal(conv, [row["converged"] == "1" for row in csv if row["layer"] == str(j) and row["which"] == w])
                for v in vals:  # every stored value is a drawn point
                    assert np.abs(pts - [v.real, v.imag]).sum(1).min() < 1e-12
            lname = r.attrs_of(f"results/eigs/layer{j}_LM")["layer_name"]
            assert lname and lname in ax.get_title()


def test_fixed_points_store_one_unstable_direction_per_unstable_eigenvalue(models, tmp_path, capsys):
    run = tmp_path / "fp"
    _run(capsys, "fixed-points", models["leaky"], run)
    with h5py.File(run / "run.h5", "r") as f:
        g: Any = f["results/fixed_points"]
        nu, owner, dirs = g["n_unstable"][()], g["unstable_directions_point"][()], g["unstable_directions_pca"][()]
        axes, tr = g["pca_axes"][()], g["trajectories_pca"]
        assert nu.max() >= 1  # a saddle: its directions are drawn
        np.testing.assert_array_equal(np.bincount(owner, minlength=len(nu)), nu)
        assert dirs.shape == (nu.sum(), 3) and np.all(np.linalg.norm(dirs, axis=1) <= 1 + 1e-12)
        np.testing.assert_allclose(axes.T @ axes, np.eye(3), atol=1e-12)  # orthonormal principal axes
        assert tr.shape[0] == 30 and tr.shape[2] == 3 and tr.attrs["span"] >= np.ptp(tr[()], axis=(0, 1)).max()
        assert json.loads(g.attrs["layers"]) == [""] and f.attrs["model"] == "LeakyRNN"
