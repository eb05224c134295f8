"""``rnntk task show NAME [--png FILE]``: what a task's trials look like, before training on it.

Prints the timing table (each named period's duration in ms and s: the spec as given for
neurogym tasks, and min / mean / max over sampled trials), trial-length statistics (mean, std,
95th percentile, max; in steps, ms and s), the scored stretch (steps where the loss mask is
non-zero, from the sampled trials), the input and output channel names, and with ``--png``
renders one trial: inputs, target, loss mask, periods shaded. ``rnntk task show --list`` lists
every task name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from rnntk.core.task_registry import TaskSpec, describe_task, task_listing


def _np(v: Any) -> np.ndarray:
    return np.asarray(v.cpu() if hasattr(v, "cpu") else v)


def task_summary(spec: TaskSpec, n_trials: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Timing rows, trial-length statistics and channels of ``n_trials`` sampled trials."""
    import torch

    tb = spec.sample(n_trials, torch.Generator().manual_seed(seed))
    table = {k: _np(v) for k, v in tb.table.items()}
    dt = spec.dt
    lengths = table["trial_len"] if "trial_len" in table else np.full(tb.batch, tb.steps)
    periods = [k[len("period_") : -len("_start")] for k in table if k.startswith("period_") and k.endswith("_start")]
    rows = []
    given = {r["period"]: r for r in spec.timing}
    for p in periods or list(given):
        row: dict[str, Any] = {"period": p, "spec_ms": given.get(p, {}).get("spec", "")}
        if f"period_{p}_start" in table:
            d = (table[f"period_{p}_end"] - table[f"period_{p}_start"]).astype(float)
            d = d[table[f"period_{p}_start"] >= 0]
            if d.size:  # else: in none of the sampled trials
                row.update(min_steps=float(d.min()), mean_steps=float(d.mean()), max_steps=float(d.max()))
            row["present"] = int(d.size)
        rows.append(row)
    L = lengths.astype(float)
    stats = {"mean": float(L.mean()), "std": float(L.std()), "p95": float(np.percentile(L, 95)), "max": float(L.max()), "padded": int(tb.steps)}
    scored = _np(tb.mask).reshape(tb.batch, tb.steps, -1).max(-1) > 0  # (B, T): any channel scored
    n_scored = scored.sum(1)
    t = np.arange(tb.steps)
    has = n_scored > 0
    first = np.where(scored, t, tb.steps).min(1)[has]
    last = np.where(scored, t, -1).max(1)[has]
    score = {"trials": int(has.sum()), "count": (float(n_scored.min()), float(n_scored.mean()), float(n_scored.max()))}
    if has.any():
        score.update(first=(int(first.min()), int(first.max())), last=(int(last.min()), int(last.max())))
    return {
        "name": spec.name,
        "dt": dt,
        "n_trials": tb.batch,
        "timing": rows,
        "length": stats,
        "scored": score,
        "inputs": spec.inputs,
        "outputs": spec.outputs,
        "n_in": int(tb.inputs.shape[-1]),
    }


def _shown(names: list[str]) -> str:
    """Channel names for one line: all of them up to 12, else the first 6, "...", the last."""
    return ", ".join(names) if len(names) <= 12 else ", ".join(names[:6]) + ", ..., " + names[-1]


def format_summary(spec: TaskSpec, s: dict[str, Any]) -> str:
    """The text ``rnntk task show`` prints."""
    dt = s["dt"]

    def t(steps: float) -> str:
        return f"{steps:g} steps" if dt is None else f"{steps * dt * 1000:g} ms = {steps * dt:g} s"

    out = [f"task {s['name']}: {spec.description}", f"dt: {'none (unitless steps)' if dt is None else f'{dt * 1000:g} ms = {dt:g} s'}"]
    out += [f"  {n}" for n in spec.notes]
    if s["timing"]:
        out.append(f"periods (over {s['n_trials']} sampled trials; min / mean / max):")
        w = max(len(r["period"]) for r in s["timing"])
        for r in s["timing"]:
            spec_s = "" if r["spec_ms"] == "" else f"  spec {r['spec_ms']}" + ("" if str(r["spec_ms"]).startswith("function") else " ms")
            if "min_steps" in r:
                part = "" if r["present"] == s["n_trials"] else f"  (in {r['present']} of {s['n_trials']} trials)"
                out.append(f"  {r['period']:<{w}}  {t(r['min_steps'])} / {t(r['mean_steps'])} / {t(r['max_steps'])}{spec_s}{part}")
            elif r.get("present") == 0:
                out.append(f"  {r['period']:<{w}}  absent in every sampled trial{spec_s}")
            else:
                out.append(f"  {r['period']:<{w}}{spec_s}")
    else:
        out.append("periods: none named (the scored stretch below; the mask in --png)")
    L = s["length"]
    out.append(
        f"trial length over {s['n_trials']} trials: mean {t(L['mean'])}, std {t(L['std'])}, 95th pct {t(L['p95'])}, max {t(L['max'])}; padded to {t(L['padded'])}"
    )
    sc = s["scored"]
    c0, c1, c2 = sc["count"]
    line = f"scored (loss mask > 0): {c0:g} / {c1:g} / {c2:g} steps per trial (min / mean / max)"
    if "first" in sc:
        (f0, f1), (l0, l1) = sc["first"], sc["last"]
        rng = lambda a, b: f"step {a}" if a == b else f"steps {a}..{b}"  # noqa: E731
        line += f", from {rng(f0, f1)} to {rng(l0, l1)} (0-based, inclusive)"
    out.append(line)
    out.append(f"inputs ({s['n_in']}): {_shown(s['inputs'])}")
    out.append(f"outputs ({len(s['outputs'])}): {_shown(s['outputs'])}" + (" (class labels)" if spec.labels else ""))
    return "\n".join(out)


def trial_figure(spec: TaskSpec, seed: int = 0) -> Any:
    """One trial: inputs, target, loss mask, against time (s, or steps), periods shaded."""
    import matplotlib
    import torch

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tb = spec.sample(1, torch.Generator().manual_seed(seed))
    table = {k: _np(v) for k, v in tb.table.items()}
    n = int(table["trial_len"][0]) if "trial_len" in table else tb.steps
    dt = spec.dt
    x = np.arange(n + 1) * (dt if dt is not None else 1.0)  # step k covers [x[k], x[k + 1]), as the period shading
    fig, axes = plt.subplots(3, 1, figsize=(8, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1.4, 0.8]})
    u = _np(tb.inputs[0, :n])
    for j in range(min(u.shape[1], 12)):
        axes[0].stairs(u[:, j], x, baseline=None, lw=1, label=spec.inputs[j] if j < len(spec.inputs) else f"in{j}")
    axes[0].set_ylabel("inputs")
    axes[0].legend(fontsize=7, loc="upper right", ncol=2)
    y = _np(tb.targets[0, :n])
    if spec.labels:
        axes[1].stairs(y, x, baseline=None)
        axes[1].set_yticks(range(len(spec.outputs)), spec.outputs, fontsize=7)
    else:
        y = y.reshape(n, -1)
        for j in range(min(y.shape[1], 8)):
            axes[1].stairs(y[:, j], x, baseline=None, lw=1, label=spec.outputs[j] if j < len(spec.outputs) else f"out{j}")
        axes[1].legend(fontsize=7, loc="upper right", ncol=2)
    axes[1].set_ylabel("target")
    m = _np(tb.mask[0, :n]).reshape(n, -1).mean(-1)
    axes[2].stairs(m, x, fill=True, alpha=0.6)
    axes[2].set_ylabel("loss mask")
    axes[2].set_xlabel("time (s)" if dt is not None else "step")
    periods = [k[len("period_") : -len("_start")] for k in table if k.startswith("period_") and k.endswith("_start")]
    colors = plt.get_cmap("Pastel1").colors  # type: ignore[attr-defined]
    step = dt if dt is not None else 1.0
    for i, p in enumerate(periods):
        s0, s1 = int(table[f"period_{p}_start"][0]), int(table[f"period_{p}_end"][0])
        if s0 < 0 or s1 <= s0:
            continue
        for ax in axes:
            ax.axvspan(s0 * step, s1 * step, color=colors[i % len(colors)], alpha=0.5, lw=0, zorder=0)
        axes[0].text((s0 + s1) / 2 * step, 1.01, p, transform=axes[0].get_xaxis_transform(), ha="center", va="bottom", fontsize=8)
    fig.suptitle(f"{spec.name}: one trial", y=0.995)
    fig.tight_layout()
    return fig


def format_listing() -> str:
    """The text of ``rnntk task show --list``: every task name, per command."""
    rows = task_listing()
    out = ["tasks (rnntk task show NAME; COMMAND:TASK where a name is shared):"]
    for cmd in dict.fromkeys(r["command"] for r in rows):
        names = [r["name"] + (" [--data-dir]" if r["data"] else "") for r in rows if r["command"] == cmd]
        if cmd in ("sofo-train", "floss"):
            names.append("neurogym:<EnvId>")
        out.append(f"  {cmd + ':':<15} {', '.join(names)}")
    try:
        from neurogym.envs.registration import all_envs

        out.append(f"  {'neurogym:':<15} " + ", ".join(f"neurogym:{e}" for e in all_envs()))
    except ImportError:
        out.append(f"  {'neurogym:':<15} neurogym:<EnvId> (needs pip install 'rnntk[neurogym]')")
    return "\n".join(out)


def task_show(
    name: str, png: Optional[Path] = None, task_kwargs: Optional[str] = None, n_trials: int = 1000, seed: int = 0, data_dir: Optional[Path] = None
) -> str:
    """The text of ``rnntk task show`` (and the PNG written to ``png``); ``data_dir``: the files of a file task."""
    from rnntk.core.neurogym import parse_kwargs

    spec = describe_task(name, parse_kwargs(task_kwargs), data_dir)
    text = format_summary(spec, task_summary(spec, n_trials, seed))
    if png is not None:
        import matplotlib.pyplot as plt

        fig = trial_figure(spec, seed)
        fig.savefig(png, dpi=110)
        plt.close(fig)
        text += f"\nwrote {png}"
    return text
