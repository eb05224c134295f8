"""``rnntk inspect RUN.h5|RUN_DIR``: a readable summary of any run file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import h5py
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from rnntk.engine.errors import UserError
from rnntk.engine.files import dumps_strict
from rnntk.engine.options import error_line
from rnntk.engine.store import summarize


def _resolve(path: Path) -> Path:
    if path.is_dir():
        f = path / "run.h5"
        if not f.exists():
            raise UserError(f"{path} has no run.h5; not an rnntk run folder")
        return f
    if not path.exists():
        raise UserError(f"no such file or folder: {path}")
    if not h5py.is_hdf5(path):
        raise UserError(f"{path} is not an HDF5 file")
    return path


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}" if 1e-3 <= abs(v) < 1e5 or v == 0 else f"{v:.3e}"
    return str(v)


def render(s: dict[str, Any], console: Console) -> None:
    """Print the summary ``s`` of :func:`rnntk.engine.store.summarize` with rich."""
    # attributes of other writers may be arrays or variable-length: show them as text
    a = {k: (v if v is None or isinstance(v, (str, int, float, bool)) else json.dumps(v, default=str)) for k, v in s["attrs"].items()}
    status = a.get("status", "?")
    colour = {"completed": "green", "running": "yellow", "interrupted": "yellow"}.get(str(status), "red")
    console.print(f"[bold]{escape(str(s['file']))}[/bold]")
    if a.get("format") != "rnntk-run":
        console.print("[yellow]note: not written by rnntk (no format=rnntk-run attribute)[/yellow]")
    console.print(
        f"command [bold]{escape(str(a.get('command', '?')))}[/bold]  status [{colour}]{escape(str(status))}[/{colour}]  "
        f"seed {escape(str(a.get('seed', '?')))}  device {escape(str(a.get('device_name', a.get('device', '?'))))}"
    )
    console.print(
        f"created {escape(str(a.get('created', '?')))}  finished {escape(str(a.get('finished') or '-'))}  "
        f"wall {escape(str(_num(a.get('wall_s'))))} s  steps {escape(str(a.get('steps_done', '-')))}  rnntk {escape(str(a.get('rnntk_version', '?')))}  torch {escape(str(a.get('torch_version', '?')))}"
    )
    if a.get("error"):
        console.print(f"[red]error:[/red] {escape(str(a['error']))}", markup=True, highlight=False)
    if a.get("stopped_early"):
        console.print(f"stopped early: {escape(str(a['stopped_early']))}")
    if a.get("resume_count"):
        console.print(f"resumed {escape(str(a['resume_count']))}x (last from step {escape(str(a.get('resumed_from_step')))})")
    if s.get("config_toml"):
        console.rule("config")
        lines = [ln for ln in s["config_toml"].splitlines() if ln and not ln.startswith("#")]
        console.print("\n".join(lines), markup=False, highlight=False)
    if s["metrics"]:
        steps = s.get("steps") or []
        rng = f" (steps {steps[0]}..{steps[1]}, {s.get('n_rows', 0)} rows)" if steps else ""
        console.rule(f"metrics{rng}")
        t = Table(show_header=True, header_style="bold", box=None)
        for col in ("name", "n", "first", "last", "min", "max"):
            t.add_column(col, justify="left" if col == "name" else "right")
        for k, m in sorted(s["metrics"].items()):
            t.add_row(*(Text(x) for x in (k, str(m["n"]), _num(m["first"]), _num(m["last"]), _num(m["min"]), _num(m["max"]))))
        console.print(t)
    for group in ("traces", "trials", "results", "model"):
        items = s.get(group) or {}
        if not items:
            continue
        console.rule(group)
        t = Table(show_header=True, header_style="bold", box=None)
        for col in ("name", "shape", "dtype", "info"):
            t.add_column(col)
        for k, d in sorted(items.items()):
            at = d["attrs"]
            info = []
            if "dims" in at:
                try:
                    info.append("dims " + "×".join(json.loads(at["dims"])))
                except (TypeError, ValueError):
                    info.append(f"dims {at['dims']}")
            if "dt" in at:
                info.append(f"dt {_num(at['dt'])} s")
            if at.get("units"):
                info.append(f"units {at['units']}")
            info += [
                f"{ak} {_num(av)}"
                for ak, av in at.items()
                if ak not in ("dims", "dt", "units", "t0", "description", "precision", "recorded_at_step")
                and not isinstance(av, (list, dict))
                and len(str(av)) < 40
            ]
            if "value" in d:
                v = d["value"]
                info.insert(0, "= " + (_num(v) if not isinstance(v, list) else "[" + ", ".join(_num(x) for x in v) + "]"))
            t.add_row(*(Text(x) for x in (k, "×".join(map(str, d["shape"])) or "scalar", d["dtype"], ", ".join(info))))
        console.print(t)
    if s.get("checkpoints"):
        console.rule("checkpoints")
        for k, c in s["checkpoints"].items():
            console.print(f"{escape(str(k))}: {escape(str(c.get('path')))} step {escape(str(c.get('step')))} ({escape(str(_num(c.get('bytes'))))} bytes)")


def inspect_cmd(
    path: Annotated[Path, typer.Argument(help="A run.h5 file or a run folder.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Summarise a run file: status, config, metrics, traces, results, model.

    Prints the command, status and provenance, the resolved config, each metric's
    first/last/min/max, traces with shapes, dims and dt, trials, results and model weights.
    Works on running or crashed runs too (the file is opened read-only, without locking)."""
    try:
        s = summarize(_resolve(path))
    except UserError as e:
        error_line(e.one_line())
        raise typer.Exit(e.exit_code) from None
    except OSError as e:
        error_line(f"cannot read {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__} (truncated or not a run file?)")
        raise typer.Exit(2) from None
    except Exception as e:  # noqa: BLE001 - an HDF5 file of another layout
        error_line(f"cannot summarise {path}: not an rnntk run layout ({type(e).__name__}: {e})")
        raise typer.Exit(2) from None
    try:
        if as_json:
            print(dumps_strict(s))  # NaN/inf → null (strict JSON); run.h5 keeps the values
            return
        render(s, Console(soft_wrap=False, highlight=False))
    except BrokenPipeError:
        raise  # main() silences stdout and exits 0


def register(app: typer.Typer) -> None:
    """Add ``rnntk inspect`` to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    app.command("inspect")(inspect_cmd)
