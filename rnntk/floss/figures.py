"""The figures of ``rnntk floss``, made from ``run.h5`` alone (at the end of the run, and by
``rnntk plot``): ``lyapunov_spectrum`` (the spectrum before training, after the first
flossing episode and at the end; ``/results/lyapunov``, ``/results/lyapunov_after_floss``)
and ``accuracy`` (training accuracy, running mean of 50, and the held-out batch; ``/metrics``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rnntk.engine.figures import RunReader


def floss_figures(reader: RunReader) -> list[tuple[str, Any]]:
    """``[("lyapunov_spectrum", fig), ("accuracy", fig)]`` (each only when its data is there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = reader.config
    out: list[tuple[str, Any]] = []
    le = reader.result("lyapunov")
    if le is not None and le.ndim == 2 and le.shape[0] > 0:
        after_floss = reader.result("lyapunov_after_floss")
        fig, ax = plt.subplots(figsize=(6, 4))
        idx = np.arange(1, le.shape[1] + 1)
        ax.plot(idx, le[0], label="initial")
        after = [i for i, a in enumerate(after_floss if after_floss is not None else []) if a]
        if after:
            ax.plot(idx, le[after[0]], label="after first flossing")
        ax.plot(idx, le[-1], label="final")
        ax.axhline(float(cfg.get("floss_target", 0.0)), color="k", lw=0.5)
        k = int(cfg.get("floss_k", 0))
        ax.axvline(k, color="grey", ls=":", lw=0.8, label=f"k = {k}")
        ax.set_xlabel("index i")
        ax.set_ylabel("λ_i (per step)")
        ax.legend()
        out.append(("lyapunov_spectrum", fig))
    g = reader.metrics(["accuracy", "test_accuracy"])
    if "step" not in g or "accuracy" not in g:
        return out
    fig, ax = plt.subplots(figsize=(6, 4))
    step = g["step"]
    acc = g["accuracy"]
    w = 50
    if len(acc) >= w:
        ax.plot(step[w - 1 :], np.convolve(acc, np.ones(w) / w, mode="valid"), label="training batch (running mean 50)")
    if "test_accuracy" in g:
        ta = g["test_accuracy"]
        ok = ~np.isnan(ta)
        ax.plot(step[ok], ta[ok], "o-", ms=3, label="held-out test batch")
    ax.axhline(0.95, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0.4, 1.02)
    ax.legend()
    out.append(("accuracy", fig))
    return out
