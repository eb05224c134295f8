"""``rnntk task show NAME [--png FILE]``: what a task's trials look like, before training on it.

Prints the timing table (each named period's duration in ms and s: the spec as given for
neurogym tasks, and min / mean / max over sampled trials), trial-length statistics (mean, std,
95th percentile, max; in steps, ms and s), the input and output channel names, and with
``--png`` renders one trial: inputs, target, loss mask, periods shaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from rnntk.core.task_registry import TaskSpec, describe_task


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
            row.update(min_steps=float(d.min()), mean_steps=float(d.mean()), max_steps=float(d.max()))
        rows.append(row)
    L = lengths.astype(float)
    stats = {"mean": float(L.mean()), "std": float(L.std()), "p95": float(np.percentile(L, 95)), "max": float(L.max()), "padded": int(tb.steps)}
    return {"name": spec.name, "dt": dt, "n_trials": n_trials, "timing": rows, "length": stats, "inputs": spec.inputs, "outputs": spec.outputs}


def format_summary(spec: TaskSpec, s: dict[str, Any]) -> str:
    """The text ``rnntk task show`` prints."""
    dt = s["dt"]

    def t(steps: float) -> str:
        return f"{steps:g} steps" if dt is None else f"{steps * dt * 1000:g} ms = {steps * dt:g} s"

    out = [f"task {s['name']}: {spec.description}", f"dt: {'none (unitless steps)' if dt is None else f'{dt * 1000:g} ms = {dt:g} s'}"]
    if s["timing"]:
        out.append(f"periods (over {s['n_trials']} sampled trials; min / mean / max):")
        w = max(len(r["period"]) for r in s["timing"])
        for r in s["timing"]:
            spec_s = f"  spec {r['spec_ms']} ms" if r["spec_ms"] != "" else ""
            if "min_steps" in r:
                out.append(f"  {r['period']:<{w}}  {t(r['min_steps'])} / {t(r['mean_steps'])} / {t(r['max_steps'])}{spec_s}")
            else:
                out.append(f"  {r['period']:<{w}}{spec_s}")
    else:
        out.append("periods: none named (one scored stretch per trial; see the mask in --png)")
    L = s["length"]
    out.append(
        f"trial length over {s['n_trials']} trials: mean {t(L['mean'])}, std {t(L['std'])}, 95th pct {t(L['p95'])}, max {t(L['max'])}; padded to {t(L['padded'])}"
    )
    out.append(f"inputs ({len(s['inputs'])}): {', '.join(s['inputs']) if len(s['inputs']) <= 12 else ', '.join(s['inputs'][:6]) + ', ...'}")
    out.append(f"outputs ({len(s['outputs'])}): {', '.join(s['outputs'])}" + (" (class labels)" if spec.labels else ""))
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
    x = np.arange(n) * (dt if dt is not None else 1.0)
    fig, axes = plt.subplots(3, 1, figsize=(8, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1.4, 0.8]})
    u = _np(tb.inputs[0, :n])
    for j in range(min(u.shape[1], 12)):
        axes[0].plot(x, u[:, j], lw=1, label=spec.inputs[j] if j < len(spec.inputs) else f"in{j}")
    axes[0].set_ylabel("inputs")
    axes[0].legend(fontsize=7, loc="upper right", ncol=2)
    y = _np(tb.targets[0, :n])
    if spec.labels:
        axes[1].step(x, y, where="post")
        axes[1].set_yticks(range(len(spec.outputs)), spec.outputs, fontsize=7)
    else:
        y = y.reshape(n, -1)
        for j in range(min(y.shape[1], 8)):
            axes[1].plot(x, y[:, j], lw=1, label=spec.outputs[j] if j < len(spec.outputs) else f"out{j}")
        axes[1].legend(fontsize=7, loc="upper right", ncol=2)
    axes[1].set_ylabel("target")
    m = _np(tb.mask[0, :n]).reshape(n, -1).mean(-1)
    axes[2].fill_between(x, 0, m, step="post", alpha=0.6)
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
            ax.axvspan(s0 * step, s1 * step, color=colors[i % len(colors)], alpha=0.5, lw=0)
        axes[0].text((s0 + s1) / 2 * step, 1.01, p, transform=axes[0].get_xaxis_transform(), ha="center", va="bottom", fontsize=8)
    fig.suptitle(f"{spec.name}: one trial", y=0.995)
    fig.tight_layout()
    return fig


def task_show(name: str, png: Optional[Path] = None, task_kwargs: Optional[str] = None, n_trials: int = 1000, seed: int = 0) -> str:
    """The text of ``rnntk task show`` (and the PNG written to ``png``)."""
    from rnntk.core.neurogym import parse_kwargs

    spec = describe_task(name, parse_kwargs(task_kwargs))
    text = format_summary(spec, task_summary(spec, n_trials, seed))
    if png is not None:
        import matplotlib.pyplot as plt

        fig = trial_figure(spec, seed)
        fig.savefig(png, dpi=110)
        plt.close(fig)
        text += f"\nwrote {png}"
    return text
