"""``rnntk sweep``: many runs of one command, locally, on Slurm (submitit) or as an sbatch script."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rnntk.engine.errors import EXIT_USER, RnntkError, UserError
from rnntk.engine.options import ENGINE_COMMANDS, error_line

from .launchers import LauncherName, LocalLauncher, PrintLauncher, Retry, SlurmLauncher, make_launcher, parse_extra
from .sweep import STATES, Job, check_options, load_sweep, read_manifest, states, write_manifest

PANEL_SLURM = "Slurm (--launcher slurm or print)"


def _status_table(folder: Path, manifest: dict[str, Any], st: dict[str, str]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{folder}: {manifest['sweep']['command']}, {len(st)} jobs", title_justify="left")
    for col in ("job", "seed", "state"):
        t.add_column(col)
    for j in manifest["jobs"]:
        t.add_row(j["name"], str(j["seed"]), st[j["name"]])
    Console(stderr=True).print(t)


def sweep_cmd(
    ctx: typer.Context,
    # \\[ in help: rich markup would otherwise eat "[options]" (the help read "command, seeds, , , , .")
    sweep_file: Annotated[Path, typer.Argument(metavar="SWEEP.toml", help="The sweep file: command, seeds, \\[options], \\[grid], \\[zip], \\[slurm].")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Sweep folder (default runs/<sweep name>).")] = None,
    launcher: Annotated[
        LauncherName, typer.Option(help="local: worker processes here; slurm: a job array via submitit; print: write an sbatch script.")
    ] = LauncherName.local,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Local worker processes (each job uses rnntk's default of one thread).")] = 1,
    status: Annotated[
        bool, typer.Option("--status", help="Only report each job's state (pending, running, completed, nonfinite, interrupted, failed).")
    ] = False,
    retry: Annotated[Optional[list[Retry]], typer.Option(help="Also re-run the jobs in this state (repeatable); completed jobs are always skipped.")] = None,
    partition: Annotated[Optional[str], typer.Option(rich_help_panel=PANEL_SLURM)] = None,
    time: Annotated[Optional[str], typer.Option("--time", help="Time limit per job: minutes or HH:MM:SS.", rich_help_panel=PANEL_SLURM)] = None,
    cpus_per_task: Annotated[Optional[int], typer.Option(rich_help_panel=PANEL_SLURM)] = None,
    gpus_per_task: Annotated[Optional[int], typer.Option(rich_help_panel=PANEL_SLURM)] = None,
    mem: Annotated[Optional[str], typer.Option(help="e.g. 8G.", rich_help_panel=PANEL_SLURM)] = None,
    array_parallelism: Annotated[Optional[int], typer.Option(help="At most this many array tasks at once.", rich_help_panel=PANEL_SLURM)] = None,
    slurm_extra: Annotated[
        Optional[list[str]], typer.Option(help="Any other sbatch option as KEY=VALUE (repeatable), e.g. qos=high.", rich_help_panel=PANEL_SLURM)
    ] = None,
) -> None:
    """Run one rnntk command over seeds × a grid of options: locally, on Slurm, or as a script.

    Re-running a sweep skips completed jobs and continues interrupted ones (--resume); --retry
    failed re-runs failed ones. Exit 0 when every job completed, 1 when some did not, 2 on bad
    input, 130/143 when stopped (running jobs checkpoint). One JSON line on stdout at the end.
    """
    code = 0
    try:
        sweep = load_sweep(sweep_file)
        root = ctx.find_root().command  # the click group: every command's options
        commands = getattr(root, "commands", {})
        if sweep.command not in commands or sweep.command not in ENGINE_COMMANDS:
            raise UserError(f"{sweep_file}: 'command = \"{sweep.command}\"' is not an rnntk run command ({', '.join(sorted(ENGINE_COMMANDS))})")
        check_options(sweep, {p.name: p for p in commands[sweep.command].params})
        folder = out if out is not None else Path("runs") / sweep.name
        all_jobs = sweep.jobs()
        if status:
            manifest = read_manifest(folder)
            st = states(folder, [Job(**j) for j in manifest["jobs"]])
            _status_table(folder, manifest, st)
            counts = {s: sum(v == s for v in st.values()) for s in STATES if any(v == s for v in st.values())}
            print(json.dumps({"status": "ok", "sweep_dir": str(folder), "counts": counts, "jobs": st}), flush=True)
            return
        flags = {
            "partition": partition,
            "time": time,
            "cpus_per_task": cpus_per_task,
            "gpus_per_task": gpus_per_task,
            "mem": mem,
            "array_parallelism": array_parallelism,
            "extra": parse_extra(slurm_extra or []),
        }
        chosen = make_launcher(launcher, jobs, sweep, flags)
        write_manifest(folder, sweep, all_jobs)
        st = states(folder, all_jobs)
        redo = {"interrupted", "pending"} | {r.value for r in retry or []}
        if launcher is LauncherName.print:
            todo = [(j, st[j.name]) for j in all_jobs]
        else:
            todo = [(j, st[j.name]) for j in all_jobs if st[j.name] in redo]
        skipped = {s: sum(st[j.name] == s for j in all_jobs) for s in STATES if s not in redo and any(st[j.name] == s for j in all_jobs)}
        facts = chosen.launch(folder, sweep, todo)
        if isinstance(chosen, PrintLauncher):
            print(chosen.script, end="")
            return
        st = states(folder, all_jobs)
        counts = {s: sum(v == s for v in st.values()) for s in STATES if any(v == s for v in st.values())}
        submitted = isinstance(chosen, SlurmLauncher) and not chosen.wait and bool(todo)  # the jobs run later, on the cluster
        status_word = "submitted" if submitted else "completed"
        outcome = {"status": status_word, "sweep_dir": str(folder), "jobs": len(all_jobs), "ran": len(todo), "skipped": skipped, "counts": counts}
        outcome.update({k: v for k, v in facts.items() if k != "ran" and v is not None})
        stopped = facts.get("stopped_by")
        if stopped:
            outcome["status"] = "interrupted"
            code = 128 + int(stopped)
            error_line(f"sweep stopped by signal {stopped}: running jobs checkpointed; run the same command again to continue")
        elif isinstance(chosen, LocalLauncher) and counts.get("completed", 0) < len(all_jobs):
            outcome["status"] = "incomplete"
            code = 1
            error_line(
                f"{len(all_jobs) - counts.get('completed', 0)} of {len(all_jobs)} jobs did not complete ({counts}); logs in {folder / 'logs'}; see rnntk sweep {sweep_file} --status"
            )
        print(json.dumps(outcome), flush=True)
    except RnntkError as e:
        error_line(e.one_line())
        print(json.dumps({"status": "error", "sweep_dir": str(out) if out else None, "error": e.one_line()}), flush=True)
        code = EXIT_USER if isinstance(e, UserError) else e.exit_code
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``rnntk sweep``, ``ls``, ``compare``, ``cite`` and ``plot`` to ``app``."""
    from . import browse_cli, plot

    app.command("sweep")(sweep_cmd)
    browse_cli.register(app)
    plot.register(app)
