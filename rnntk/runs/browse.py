"""Reading many run folders: find them, filter and sort them (``rnntk ls``), group them by their
options and overlay a metric with mean ± s.e.m. over seeds (``rnntk compare``).

Everything is read from the run folders alone (``summary.json``, ``run.h5``), so it works on
runs any launcher or cluster wrote, while they run (``run.h5`` opened read-only, no locking).
"""

from __future__ import annotations

import json
import math
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from rnntk.engine.errors import UserError

from .sweep import MANIFEST, job_state

MAIN_METRICS = ("val_loss", "val_loss_final", "loss", "accuracy", "val_accuracy")


@dataclass
class RunInfo:
    """One run folder as the browser sees it. ``final``: the summary's final metrics;
    ``config``: every resolved option (``run.h5`` ``/config``); ``axes``: its sweep's swept values."""

    path: Path
    command: str
    status: str
    seed: Optional[int]
    steps: Optional[int]
    wall_s: Optional[float]
    created: str
    final: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, Any] = field(default_factory=dict)
    sweep: Optional[str] = None

    @property
    def main_metric(self) -> tuple[Optional[str], Optional[float]]:
        """The first of :data:`MAIN_METRICS` the run reports, else its first final metric."""
        for k in (*MAIN_METRICS, *self.final):
            if k in self.final:
                return k, self.final[k]
        return None, None

    def fields(self) -> dict[str, Any]:
        """Flat key → value for ``--where``/``--sort``/``--json`` (config, then axes, then the rest)."""
        name, value = self.main_metric
        out: dict[str, Any] = {**self.config, **self.axes, **self.final}
        out.update(
            run=str(self.path),
            command=self.command,
            status=self.status,
            seed=self.seed,
            step=self.steps,
            wall_s=self.wall_s,
            created=self.created,
            metric=name,
            value=value,
            sweep=self.sweep,
        )
        return out


def _h5_info(run: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(root attrs, config attrs) of ``run/run.h5``; empty dicts when unreadable."""
    import h5py

    def plain(v: Any) -> Any:
        if isinstance(v, bytes):
            return v.decode(errors="replace")
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
        return v

    try:
        with h5py.File(run / "run.h5", "r", locking=False) as f:
            attrs = {k: plain(v) for k, v in f.attrs.items()}
            config = {k: plain(v) for k, v in f["config"].attrs.items()} if "config" in f else {}
        return attrs, config
    except (OSError, KeyError):
        return {}, {}


def read_run(run: Path, axes: Optional[dict[str, Any]] = None, sweep: Optional[str] = None) -> RunInfo:
    """A :class:`RunInfo` for one run folder."""
    attrs, config = _h5_info(run)
    try:
        summ = json.loads((run / "summary.json").read_text())
    except (OSError, ValueError):
        summ = {}
    final = summ.get("final") or {}
    if not final and isinstance(attrs.get("final"), str):
        try:
            final = json.loads(attrs["final"])
        except ValueError:
            final = {}
    final = {k: float(v) for k, v in final.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    seed = summ.get("seed", attrs.get("seed"))
    config.pop("seed", None)
    return RunInfo(
        path=run,
        command=str(summ.get("command") or attrs.get("command") or "?"),
        status=job_state(run),
        seed=int(seed) if isinstance(seed, (int, float)) else None,
        steps=summ.get("step", attrs.get("steps_done")),
        wall_s=summ.get("wall_s", attrs.get("wall_s")),
        created=str(summ.get("created") or attrs.get("created") or ""),
        final=final,
        config=config,
        axes=dict(axes or {}),
        sweep=sweep,
    )


def find_runs(roots: Sequence[Path]) -> list[RunInfo]:
    """Every run folder (one holding ``run.h5``) at or under ``roots``, with sweep axes from the
    nearest ``sweep.json``; sorted by path."""
    runs: dict[Path, RunInfo] = {}
    for root in roots:
        if not root.exists():
            raise UserError(f"no such folder: {root}")
        if root.is_file():
            raise UserError(f"{root} is a file; give a run folder or a folder of runs")
        manifests = [root / MANIFEST] if (root / MANIFEST).exists() else []
        manifests += [p for p in root.rglob(MANIFEST) if p != root / MANIFEST]
        axes: dict[Path, tuple[dict[str, Any], str]] = {}
        for m in manifests:
            try:
                data = json.loads(m.read_text())
                for j in data.get("jobs", []):
                    axes[(m.parent / j["name"]).resolve()] = (j.get("axes", {}), data.get("sweep", {}).get("name", m.parent.name))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        for h5 in [root / "run.h5"] if (root / "run.h5").exists() else sorted(root.rglob("run.h5")):
            run = h5.parent
            ax, sw = axes.get(run.resolve(), ({}, None))
            runs[run.resolve()] = read_run(run, ax, sw)
    return sorted(runs.values(), key=lambda r: str(r.path))


_OPS: dict[str, Callable[[Any, Any], bool]] = {"!=": operator.ne, ">=": operator.ge, "<=": operator.le, "=": operator.eq, ">": operator.gt, "<": operator.lt}
_WHERE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(!=|>=|<=|=|>|<)\s*(.*?)\s*$")


def _coerce(text: str, like: Any) -> Any:
    if isinstance(like, bool):
        return text.lower() in ("1", "true", "yes")
    if isinstance(like, (int, float)):
        try:
            return float(text)
        except ValueError:
            return text
    return text


def where(runs: Iterable[RunInfo], conditions: Sequence[str]) -> list[RunInfo]:
    """Runs meeting every ``KEY OP VALUE`` (OP: = != < > <= >=; KEY: any field of
    :meth:`RunInfo.fields`). A run without KEY does not match."""
    parsed = []
    for c in conditions:
        m = _WHERE.match(c)
        if m is None:
            raise UserError(f"bad --where '{c}': use KEY=VALUE, KEY!=VALUE, KEY<VALUE, ... e.g. --where status=completed")
        parsed.append((m.group(1), _OPS[m.group(2)], m.group(3)))
    out = []
    for r in runs:
        f = r.fields()
        ok = True
        for key, op, text in parsed:
            if key not in f or f[key] is None:
                ok = False
                break
            v = f[key]
            want = _coerce(text, v)
            try:
                ok = bool(op(v, want)) if not isinstance(v, str) or isinstance(want, str) else False
            except TypeError:
                ok = op(str(v), text)
            if not ok:
                break
        if ok:
            out.append(r)
    return out


def sort_runs(runs: list[RunInfo], key: Optional[str]) -> list[RunInfo]:
    """Sort by a field (``-key``: descending); runs without it go last. A field no run has (a
    typo) is a one-line :class:`UserError` naming the fields there are."""
    if not key:
        return runs
    desc = key.startswith("-")
    k = key.lstrip("-")
    have = [r for r in runs if r.fields().get(k) is not None]
    missing = [r for r in runs if r.fields().get(k) is None]
    if runs and not have and not any(k in r.fields() for r in runs):
        known = sorted({f for r in runs for f in r.fields()})
        raise UserError(f"bad --sort '{key}': no run has a field '{k}' (fields: {', '.join(known)})")
    try:
        have.sort(key=lambda r: r.fields()[k], reverse=desc)
    except TypeError:
        have.sort(key=lambda r: str(r.fields()[k]), reverse=desc)
    return have + missing


# --- compare ---------------------------------------------------------------------------------


@dataclass
class Group:
    """Runs that differ only by seed. ``label``: the options that tell groups apart."""

    label: str
    runs: list[RunInfo]


def group_runs(runs: Sequence[RunInfo]) -> list[Group]:
    """Group runs by command + every option except the seed (and the output paths); label each
    group by the options that differ between groups (the sweep axes, typically)."""
    skip = {"out", "resume", "config", "device", "quiet", "log_every", "checkpoint_every", "threads", "force"}

    def key(r: RunInfo) -> str:
        return json.dumps({"command": r.command, **{k: v for k, v in r.config.items() if k not in skip}}, sort_keys=True, default=str)

    groups: dict[str, list[RunInfo]] = {}
    for r in runs:
        groups.setdefault(key(r), []).append(r)
    keys = list(groups)
    dicts = [json.loads(k) for k in keys]
    differ = sorted({k for d in dicts for k in d if len({json.dumps(e.get(k), default=str) for e in dicts}) > 1})
    out = []
    for k, d in zip(keys, dicts):
        label = ",".join(f"{a}={d.get(a)}" for a in differ) or d["command"]
        out.append(Group(label=label, runs=groups[k]))
    return out


def read_metric(run: Path, name: str) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """(steps, values, wall_time or None) of metric ``name`` from ``run/run.h5``; rows where it was
    not logged (NaN) are dropped."""
    import h5py

    with h5py.File(run / "run.h5", "r", locking=False) as f:
        g: Any = f["metrics"] if "metrics" in f else None  # (Any: h5py has no stubs)
        if g is None or name not in g:
            have = sorted(str(k) for k in g if k != "step") if g is not None else []
            raise UserError(f"{run}: no metric '{name}' (this run logs: {', '.join(have) or 'none'})")
        steps = np.asarray(g["step"][:], dtype=np.int64)
        vals = np.asarray(g[name][:], dtype=np.float64)
        wall = np.asarray(g["wall_time"][:], dtype=np.float64) if "wall_time" in g else None
    keep = ~np.isnan(vals)
    return steps[keep], vals[keep], (wall[keep] if wall is not None else None)


def mean_sem(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard error over runs on the steps every run logged: ``(steps, mean, sem)``;
    sem is 0 for a single run."""
    common = curves[0][0]
    for s, _ in curves[1:]:
        common = np.intersect1d(common, s)
    stack = np.stack([v[np.searchsorted(s, common)] for s, v in curves])  # (runs, steps)
    n = stack.shape[0]
    sem = stack.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros(stack.shape[1])
    return common, stack.mean(axis=0), sem


def final_table(groups: Sequence[Group], metric: str) -> list[dict[str, Any]]:
    """Per group: runs, and the mean, s.e.m., min and max of the metric's last logged value."""
    rows = []
    for g in groups:
        values = [read_metric(r.path, metric)[1] for r in g.runs]  # each run's file read once
        last = np.array([v[-1] for v in values if v.size])
        n = int(last.size)
        rows.append(
            {
                "group": g.label,
                "runs": len(g.runs),
                "seeds": sorted(r.seed for r in g.runs if r.seed is not None),
                "final_mean": float(last.mean()) if n else None,
                "final_sem": float(last.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0 if n else None,
                "final_min": float(last.min()) if n else None,
                "final_max": float(last.max()) if n else None,
            }
        )
    return rows


def compare_png(groups: Sequence[Group], metric: str, out: Path, log: bool = False) -> None:
    """Two panels: the metric vs step and vs wall-clock time, one line per group (mean over its
    runs) with a ± s.e.m. band; written to ``out`` (its suffix picks the format)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for i, g in enumerate(groups):
        colour = f"C{i % 10}"
        data = [read_metric(r.path, metric) for r in g.runs]
        steps, mean, sem = mean_sem([(s, v) for s, v, _ in data])
        lab = f"{g.label} (n={len(g.runs)})"
        axs[0].plot(steps, mean, color=colour, label=lab)
        axs[0].fill_between(steps, mean - sem, mean + sem, color=colour, alpha=0.25, linewidth=0)
        walls = [(s, w) for s, _, w in data if w is not None]
        if len(walls) == len(data):
            _, wmean, _ = mean_sem(walls)
            axs[1].plot(wmean, mean, color=colour)
            axs[1].fill_between(wmean, mean - sem, mean + sem, color=colour, alpha=0.25, linewidth=0)
    for ax, xl in zip(axs, ("step", "wall-clock time (s)")):
        ax.set_xlabel(xl)
        ax.set_ylabel(metric)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axs[0].legend(fontsize=8)
    fig.suptitle(f"{metric}: mean ± s.e.m. over seeds")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
