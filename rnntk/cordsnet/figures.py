"""The figures of ``rnntk cordsnet-eval``, made from ``run.h5`` alone (at the end of the run,
and by ``rnntk plot``): ``population_rate`` (each area's rate in the spontaneous phase,
``/results/spontaneous_population_rate`` [time, area], then in the stimulus phase averaged over
images, ``/results/population_rate`` [trial, time, area]) and, with labels and
``--readout every``, ``accuracy_vs_time`` (``/results/accuracy_by_step``)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from rnntk.engine.figures import RunReader


def plot_population_rate(spont: Optional[np.ndarray], stim: np.ndarray, dt: float, spont_steps: int, stim_steps: int, post_steps: int) -> Any:
    """Per-area population rate vs time (ms): the spontaneous phase ``(T_s, depth)`` (shared
    by all images), then the stimulus (and post) phase ``(T, depth)`` averaged over images;
    ``dt`` in s per Euler step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = dt * 1e3
    fig, ax = plt.subplots(figsize=(7, 4))
    depth = stim.shape[1]
    colors = plt.cm.viridis(np.linspace(0, 0.9, depth))  # pyright: ignore[reportAttributeAccessIssue]  (registered at import)
    ts = np.arange(1, spont_steps + 1) * ms
    tt = (spont_steps + np.arange(1, stim.shape[0] + 1)) * ms
    for j in range(depth):
        y = np.concatenate([spont[:, j] if spont is not None else np.zeros(0), stim[:, j]])
        ax.plot(np.concatenate([ts[: 0 if spont is None else len(spont)], tt]), y, color=colors[j], lw=1.2, label=f"area {j}")
    ax.axvline(spont_steps * ms, color="k", ls="--", lw=0.8)
    ax.text(spont_steps * ms, ax.get_ylim()[1], " stimulus on", va="top", fontsize=8)
    if post_steps:
        ax.axvline((spont_steps + stim_steps) * ms, color="k", ls=":", lw=0.8)
        ax.text((spont_steps + stim_steps) * ms, ax.get_ylim()[1], " stimulus off", va="top", fontsize=8)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("population rate (mean over units, a.u.)")
    ax.set_title("per-area population rate: spontaneous, then stimulus (mean over images)")
    ax.legend(fontsize=7, ncol=2)
    return fig


def plot_accuracy_vs_time(acc: np.ndarray, dt: float, spont_steps: int, stim_steps: int, post_steps: int) -> Any:
    """Top-1 accuracy of the readout after each stimulus (and post) step vs time (ms)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = dt * 1e3
    t = (spont_steps + np.arange(1, len(acc) + 1)) * ms
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(t, acc, color="tab:blue", lw=1.5)
    ax.axvline(spont_steps * ms, color="k", ls="--", lw=0.8, label="stimulus on")
    if post_steps:
        ax.axvline((spont_steps + stim_steps) * ms, color="k", ls=":", lw=0.8, label="stimulus off")
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("top-1 accuracy")
    ax.set_title(f"accuracy vs time (readout after each step; final {acc[stim_steps - 1]:.3f})")
    ax.legend(fontsize=8)
    return fig


def cordsnet_eval_figures(reader: RunReader) -> list[tuple[str, Any]]:
    """``population_rate`` and (labels, ``readout = "every"``) ``accuracy_vs_time``."""
    cfg = reader.config
    stim = reader.result("population_rate")
    if stim is None or stim.shape[0] == 0:
        return []
    dt = float(reader.attrs_of("results/population_rate")["dt"])
    steps = {k: int(cfg[k]) for k in ("spont_steps", "stim_steps", "post_steps")}
    spont = reader.result("spontaneous_population_rate")
    out = [("population_rate", plot_population_rate(spont if spont is not None and len(spont) else None, stim.mean(0), dt, **steps))]
    acc = reader.result("accuracy_by_step")
    if acc is not None and cfg.get("readout") == "every":
        out.append(("accuracy_vs_time", plot_accuracy_vs_time(acc, dt, **steps)))
    return out
