"""``rnntk plot RUN``: every figure the run's command makes, again, from ``run.h5`` alone (no
re-run), plus a panel of every metric the run logged; as PNG, PDF or SVG.

The makers come from the registry :data:`rnntk.engine.figures.FIGURES`, filled by each
slice's ``register(app)`` (this module imports no slice). The figures go to a new folder next
to the run (``<run>-plots``) or ``--out``; a folder this command did not make is used only
when it is empty, and only the files it writes there are ever replaced.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from rnntk.engine.errors import EXIT_USER, UserError
from rnntk.engine.options import error_line

MARKER = ".rnntk-plots"


def plot_run(run: Path, fmt: str = "png", out: Optional[Path] = None) -> dict[str, object]:
    """Make the figures of ``run`` (a run folder or its run.h5) in ``out`` (default
    ``<run>-plots``). Returns ``{"run", "command", "out", "files"}``; one-line
    :class:`UserError` for a bad run, format or folder."""
    from rnntk.engine.figures import FIGURES, FORMATS, RunReader, command_figures, metric_panel, save_figure

    if fmt not in FORMATS:
        raise UserError(f"bad --format '{fmt}': choose one of {', '.join(FORMATS)}")
    folder = run.parent if run.suffix == ".h5" else run
    h5 = folder / "run.h5"
    if not h5.is_file():
        raise UserError(f"{run} is not an rnntk run folder (no run.h5)")
    out = out if out is not None else folder.parent / f"{folder.resolve().name}-plots"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UserError(f"--out {out} is a folder rnntk plot did not make and it is not empty; give a new or empty folder")
    try:
        reader = RunReader(h5)
    except OSError as e:
        raise UserError(f"cannot read {h5}: {e}") from None
    skipped: list[str] = []
    with reader:
        command = reader.command
        figs = command_figures(reader, skipped)
        panel = metric_panel(reader)
    if panel is not None:
        figs.append(("metrics", panel))
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text(json.dumps({"run": str(folder), "command": command}) + "\n")
    except OSError as e:
        raise UserError(f"cannot write in {out}: {e.strerror or e}") from None
    files = [str(save_figure(fig, out / name, fmt)) for name, fig in figs]
    note = None if command in FIGURES else f"rnntk {command} registers no figures of its own; only the metric panel"
    for line in skipped:
        print(f"rnntk: warning: a figure of {folder} could not be made from its run.h5 ({line})", file=sys.stderr, flush=True)
    return {"run": str(folder), "command": command, "out": str(out), "files": files, "note": note, "skipped": skipped}


def plot_cmd(
    run: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run folder (or its run.h5).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="png, pdf or svg.")] = "png",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the figures (default: <RUN_DIR>-plots next to the run).")] = None,
) -> None:
    """Make every figure of a run again from its run.h5 (no re-run), plus a panel of its metrics."""
    try:
        res = plot_run(run, fmt, out)
    except UserError as e:
        error_line(e.one_line())
        raise typer.Exit(EXIT_USER) from None
    for f in res["files"]:  # type: ignore[union-attr]
        print(f)
    print(json.dumps(res), flush=True)


def register(app: typer.Typer) -> None:
    """Add ``rnntk plot`` to ``app``."""
    app.command("plot")(plot_cmd)
