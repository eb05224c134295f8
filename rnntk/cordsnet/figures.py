"""The figures of ``rnntk cordsnet-eval`` and ``rnntk cordsnet-eigs``, made from ``run.h5``
alone (at the end of the run, and by ``rnntk plot``).

cordsnet-eval: ``population_rate`` (each area's rate in the spontaneous phase,
``/results/spontaneous_population_rate`` [time, area], then in the stimulus phase averaged over
images, ``/results/population_rate`` [trial, time, area]) and, with labels and
``--readout every``, ``accuracy_vs_time`` (``/results/accuracy_by_step``).

cordsnet-eigs: ``eigs_layer<j>`` per area, every computed value
(``/results/eigs/layer<j>_<LM|LR>_computed``, with ``_computed_converged``; ``N`` from the
reported set's attributes, ``alpha`` and ``operator`` from ``/config``)."""

from __future__ import annotations

import re
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


def plot_eigs(j: int, res: dict[str, tuple[np.ndarray, np.ndarray]], alpha: float, N: int, operator: str, method: str) -> Any:
    """Area ``j``'s eigenvalues in the complex plane with the unit circle, the Re λ = 1 line and
    the Euler disc (``alpha`` = dt/tau); ``res``: ``{which: (values (m,) complex, converged (m,)
    bool)}``, converged values filled, the others hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    th = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(th), np.sin(th), color="0.6", lw=0.8, label="|λ| = 1")
    c, rad = 1 - 1 / alpha, 1 / alpha
    ax.plot(c + rad * np.cos(th), rad * np.sin(th), color="tab:green", lw=0.8, ls=":", label=f"Euler-stable disc (α={alpha:g})")
    ax.axvline(1.0, color="tab:red", lw=0.8, ls="--", label="Re λ = 1 (continuous stability)")
    marks = {"LM": ("o", "tab:blue"), "LR": ("s", "tab:orange")}
    for w, (vals, conv) in res.items():
        m, col = marks[w]
        by = "|λ|" if w == "LM" else "Re λ"
        vals, ok = np.asarray(vals, np.complex128), np.asarray(conv, bool)
        if ok.any():
            ax.scatter(vals.real[ok], vals.imag[ok], marker=m, color=col, s=18, label=f"top-{len(vals)} by {by}: converged ({int(ok.sum())})")
        if (~ok).any():
            ax.scatter(
                vals.real[~ok],
                vals.imag[~ok],
                marker=m,
                facecolors="none",
                edgecolors=col,
                s=22,
                label=f"top-{len(vals)} by {by}: NOT converged ({int((~ok).sum())})",
            )
    allv = np.concatenate([np.asarray(v, np.complex128) for v, _ in res.values()])
    allv = allv[np.isfinite(allv)] if np.isfinite(allv).any() else np.zeros(1)
    lim = max(1.2, float(np.abs(allv).max()) * 1.15)
    ax.set_xlim(min(-lim, c - rad * 0.2) if np.abs(allv).max() > 3 else -lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title(f"area {j} ({operator}, {method}, N = {N})")
    ax.legend(fontsize=7, loc="lower left")
    return fig


def cordsnet_eigs_figures(reader: RunReader) -> list[tuple[str, Any]]:
    """``eigs_layer<j>`` for each analysed area, from every value computed for it."""
    g = reader.f.get("results/eigs")
    if g is None:
        return []
    found = [m for k in g for m in [re.fullmatch(r"layer(\d+)_(LM|LR)", k)] if m]
    cfg = reader.config
    out = []
    for j in sorted({int(m.group(1)) for m in found}):
        res: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for w in ("LM", "LR"):
            if f"layer{j}_{w}" in g:
                vals, conv = reader.result(f"eigs/layer{j}_{w}_computed"), reader.result(f"eigs/layer{j}_{w}_computed_converged")
                if vals is None or conv is None:
                    raise KeyError(f"/results/eigs/layer{j}_{w}_computed (a run older than the stored figure data)")
                res[w] = (vals, conv)
        w0 = next(iter(res))
        N = int(reader.attrs_of(f"results/eigs/layer{j}_{w0}")["N"])
        method = str(reader.attrs_of(f"results/eigs/layer{j}_{w0}_computed")["method"])
        out.append((f"eigs_layer{j}", plot_eigs(j, res, float(cfg["alpha"]), N, str(cfg["operator"]), method)))
    return out
