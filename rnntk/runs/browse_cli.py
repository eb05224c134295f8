"""``rnntk ls``, ``rnntk compare``, ``rnntk cite``: read many run folders (see :mod:`.browse`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rnntk.engine.errors import EXIT_USER, RnntkError, UserError
from rnntk.engine.options import error_line


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _fail(e: RnntkError) -> None:
    error_line(e.one_line())
    raise typer.Exit(EXIT_USER if isinstance(e, UserError) else e.exit_code)


def ls_cmd(
    dirs: Annotated[Optional[list[Path]], typer.Argument(metavar="[DIR]...", help="Folders to search for runs (default: runs).")] = None,
    where_: Annotated[
        Optional[list[str]], typer.Option("--where", "-w", help="Keep runs with KEY=VALUE (also != < > <= >=; repeatable), e.g. status=completed.")
    ] = None,
    sort: Annotated[Optional[str], typer.Option(help="Sort by a field (-FIELD: descending), e.g. val_loss, -wall_s, seed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per run (for jq), every field.")] = False,
) -> None:
    """One line per run found under DIR: command, status, seed, steps, main metric, wall time, sweep axes.

    Fields for --where/--sort: status, command, seed, step (steps done), wall_s, metric, value (the main metric),
    any final metric (val_loss, ...), any option in the run's config, any sweep axis.
    """
    from .browse import find_runs, sort_runs, where

    try:
        runs = sort_runs(where(find_runs(dirs or [Path("runs")]), where_ or []), sort)
    except RnntkError as e:
        _fail(e)
        return
    if as_json:
        for r in runs:  # every field, and the sweep's swept values again as one object (jq: .axes)
            print(json.dumps({**r.fields(), "axes": r.axes}, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(runs)} runs", title_justify="left")
    for col in ("run", "command", "status", "seed", "step", "metric", "value", "wall_s", "axes"):
        t.add_column(col, overflow="fold")
    for r in runs:
        name, value = r.main_metric
        axes = ",".join(f"{k}={v}" for k, v in r.axes.items())
        t.add_row(str(r.path), r.command, r.status, _fmt(r.seed), _fmt(r.steps), name or "-", _fmt(value), _fmt(r.wall_s), axes or "-")
    Console(width=200).print(t)


def compare_cmd(
    runs_: Annotated[list[Path], typer.Argument(metavar="RUN|DIR...", help="Run folders, or folders of runs (a sweep).")],
    metric: Annotated[str, typer.Option("--metric", "-m", help="A logged metric, e.g. loss or val_loss (rnntk inspect RUN lists them).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The figure (.png, .pdf or .svg).")] = Path("compare.png"),
    where_: Annotated[Optional[list[str]], typer.Option("--where", "-w", help="Keep runs with KEY=VALUE (as rnntk ls).")] = None,
    log: Annotated[bool, typer.Option(help="Logarithmic metric axis.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as one JSON line.")] = False,
) -> None:
    """Overlay a metric over steps and over wall time, mean ± s.e.m. over runs that differ only by seed.

    Runs are grouped by every option except the seed; groups are named by the options that differ
    (the sweep axes). Prints each group's final value (mean, s.e.m., min, max).
    """
    from .browse import compare_png, final_table, find_runs, group_runs, where

    try:
        if out.suffix.lower() not in (".png", ".pdf", ".svg"):
            raise UserError(f"--out {out}: the figure must end in .png, .pdf or .svg")
        if out.exists() and out.is_dir():
            raise UserError(f"--out {out} is a folder; give a file name such as compare.png")
        found = where(find_runs(runs_), where_ or [])
        if not found:
            raise UserError("no runs to compare (no run.h5 under the given folders, or none match --where)")
        groups = group_runs(found)
        rows = final_table(groups, metric)
        compare_png(groups, metric, out, log=log)
    except RnntkError as e:
        _fail(e)
        return
    if as_json:
        print(json.dumps({"metric": metric, "figure": str(out), "groups": rows}))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"{metric}, last logged value per group, where the curves end ({out}); `rnntk ls` shows each run's end-of-run summary", title_justify="left"
    )
    for col in ("group", "runs", "mean", "s.e.m.", "min", "max"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["group"], str(r["runs"]), _fmt(r["final_mean"]), _fmt(r["final_sem"]), _fmt(r["final_min"]), _fmt(r["final_max"]))
    Console(width=200).print(t)


def cite_cmd(
    run: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run folder (or its run.h5).")],
) -> None:
    """BibTeX of the method, solver, adjoint and task papers this run used."""
    from .browse import read_run
    from .cite import bibtex, papers_for

    folder = run.parent if run.suffix == ".h5" else run
    try:
        if not (folder / "run.h5").exists():
            raise UserError(f"{run} is not an rnntk run folder (no run.h5)")
        info = read_run(folder)
    except RnntkError as e:
        _fail(e)
        return
    keys = papers_for(info.command, info.config)
    if not keys:  # a valid run (e.g. eigs --method dense): nothing to cite is not bad input
        print(f"% rnntk {info.command}: no papers are listed for this run's options")
        return
    print(f"% rnntk {info.command}: {', '.join(keys)}")
    print(bibtex(keys), end="")


def register(app: typer.Typer) -> None:
    """Add ``ls``, ``compare`` and ``cite`` to ``app``."""
    app.command("ls")(ls_cmd)
    app.command("compare")(compare_cmd)
    app.command("cite")(cite_cmd)
