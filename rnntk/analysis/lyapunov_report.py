"""What ``rnntk lyapunov`` writes: per layer the exponents (per step, and per second for
continuous-time models), their running estimate, the long-term Jacobian's singular values and
condition numbers to run.h5; ``lyapunov.csv``; the spectrum figure; the final summary."""

from __future__ import annotations

import sys
from typing import Any, Optional

from rnntk.analysis.config import LyapunovConfig


def write_layer(
    run: Any,
    cfg: LyapunovConfig,
    name: str,
    lname: str,
    m: Any,
    res: Any,
    sv: Any,
    hs: list[int],
    kk: int,
    stacked: bool,
    rows: list[str],
    final: dict[str, Any],
) -> None:
    """Write layer ``lname`` (model ``m``) of the spectrum ``res`` (and singular values ``sv``)
    to ``run``; append its CSV rows and its summary to ``final``."""
    import torch

    from rnntk.analysis.lyapunov import condition_numbers

    lam = res.exponents
    n_traj = cfg.n_traj
    mean = lam.mean(0)
    sem = lam.std(0) / n_traj**0.5 if n_traj > 1 else torch.zeros_like(lam[0])  # std already uses n-1
    cont = m.time == "continuous"
    dt_s = float(getattr(m, "dt", 1.0)) if cont else 1.0
    sfx = f"_{lname}" if lname else ""
    unit = {"time": m.time, "units": "1/step", **({"dt": dt_s} if cont else {})}
    run.result(f"lyapunov{sfx}", lam, description="exponents per trajectory (per step), (n_traj, k)", **unit)
    run.result(f"lyapunov_mean{sfx}", mean, **unit)
    run.result(f"lyapunov_sem{sfx}", sem, **unit)
    run.result(f"lyapunov_running{sfx}", res.running().mean(1), description="running estimate averaged over trajectories (n_windows, k)")
    if cont:
        run.result(f"lyapunov_mean_per_s{sfx}", mean / dt_s, units="1/s", dt=dt_s, description="mean exponents per second (per step / dt)")
        run.result(f"lyapunov_sem_per_s{sfx}", sem / dt_s, units="1/s", dt=dt_s)
    if sv is not None:
        run.result(f"jac_singular_values{sfx}", sv, horizons=hs)
        run.result(f"cond_number{sfx}", condition_numbers(sv, kk), horizons=hs)
    for j, (a, b) in enumerate(zip(mean, sem)):
        row = f"{j + 1},{float(a):.8g},{float(b):.8g}" + (f",{float(a) / dt_s:.8g},{float(b) / dt_s:.8g}" if cont else ",,")
        rows.append((f"{lname}," if stacked else "") + row)
    info = dict(n=m.n, k=kk, time=m.time, lambda_1=float(mean[0]), lambda_mean=float(mean.mean()))
    if cont:
        info.update(dt=dt_s, lambda_1_per_s=float(mean[0]) / dt_s, lambda_mean_per_s=float(mean.mean()) / dt_s)
    final[lname or name] = info
    per_s = f" ({info['lambda_1_per_s']:.6g} per s, dt = {dt_s:g} s)" if cont else ""
    print(f"{name}{' ' + lname if lname else ''}: lambda_1 = {info['lambda_1']:.6g} per step{per_s}, N = {m.n}, k = {kk}", file=sys.stderr)


def finish(run: Any, name: str, stacked: bool, rows: list[str], final: dict[str, Any]) -> None:
    """``lyapunov.csv``, the spectrum figure and the run's final summary (the largest
    ``lambda_1`` over layers, the mean of all their exponents; per layer under ``layers`` for a stack)."""
    from rnntk.engine.files import write_text_atomic

    header = ("layer," if stacked else "") + "index,lambda_mean,lambda_sem,lambda_mean_per_s,lambda_sem_per_s"
    write_text_atomic(run.path("lyapunov.csv"), "\n".join([header] + rows) + "\n")
    run.annotate("results", model_class=name, lyapunov_layers=[ln if stacked else "" for ln in final])  # what the figure maker reads
    run.figures()  # lyapunov_spectrum, from run.h5 (rnntk.analysis.figures)
    first = next(iter(final.values()))
    top = max(final.values(), key=lambda v: v["lambda_1"])
    k = sum(v["k"] for v in final.values())
    lambda_mean = sum(v["k"] * v["lambda_mean"] for v in final.values()) / k  # the mean over every layer's exponents
    summary: dict[str, Any] = dict(lambda_1=top["lambda_1"], lambda_mean=lambda_mean, k=k, model_class=name)
    if "lambda_1_per_s" in top:
        summary.update(lambda_1_per_s=top["lambda_1_per_s"], dt=top["dt"])
    if stacked:
        summary["layers"] = final
    else:
        summary["time"] = first["time"]
    run.finish(**summary)


def spectrum_figure(spectra: list[tuple[str, Any, Any, Optional[float]]], title: str) -> Any:
    """One errorbar line per layer: ``(name, mean (k,), sem (k,), dt or None)``; a right axis per
    second when every line is continuous-time with the same ``dt``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, mean, sem, _ in spectra:
        ax.errorbar(range(1, len(mean) + 1), mean, yerr=sem, fmt="o-", ms=3, label=label if len(spectra) > 1 else None)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("index i")
    ax.set_ylabel("λ_i (per step)")
    dts = {d for *_, d in spectra}
    if len(dts) == 1 and None not in dts:
        d = float(next(iter(dts)) or 1.0)

        def to_s(y: Any) -> Any:
            return y / d

        def to_step(y: Any) -> Any:
            return y * d

        sec = ax.secondary_yaxis("right", functions=(to_s, to_step))
        sec.set_ylabel(f"λ_i (per second, dt = {d:g} s)")
    if len(spectra) > 1:
        ax.legend(fontsize=8)
    ax.set_title(title)
    return fig
