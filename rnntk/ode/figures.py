"""The figure of ``rnntk ode-train``, made from ``run.h5`` alone (at the end of the run, and by
``rnntk plot``): ``trajectories``. For the OU task, the mean and variance over paths of the
model against the data (``/results/{model,data}_{mean,var}`` [initial value, time]); for the
other tasks, the first coordinate of up to four predicted test trajectories
(``/traces/trajectory``) and, where stored, the true ones (``/traces/truth``)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from rnntk.engine.figures import RunReader


def _times(reader: RunReader, name: str, n: int) -> np.ndarray:
    a = reader.attrs_of(f"traces/{name}")
    if "times" in a:  # the grid itself (linspace), as the run drew it
        times = json.loads(a["times"]) if isinstance(a["times"], str) else a["times"]
        return np.asarray(times, dtype=np.float32)[:n]
    return float(a.get("t0", 0.0)) + float(a["dt"]) * np.arange(n, dtype=np.float32)


def trajectories(reader: RunReader) -> list[tuple[str, Any]]:
    """``[("trajectories", fig)]``, or ``[]`` when the run has no trajectory yet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traj = reader.trace("trajectory")
    if traj is None:
        return []
    if reader.config.get("task") == "ou":
        md, mp, vd, vp = (reader.result(k) for k in ("data_mean", "model_mean", "data_var", "model_var"))
        if md is None or mp is None or vd is None or vp is None:
            return []
        t = _times(reader, "trajectory", md.shape[1])
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for i in range(min(3, md.shape[0])):
            axes[0].plot(t, md[i], "--", color=f"C{i}")
            axes[0].plot(t, mp[i], color=f"C{i}")
            axes[1].plot(t, vd[i], "--", color=f"C{i}")
            axes[1].plot(t, vp[i], color=f"C{i}")
        axes[0].set_title("mean: model (line) vs data (dashed)")
        axes[1].set_title("variance")
        for ax in axes:
            ax.set_xlabel("t")
        return [("trajectories", fig)]
    grid = _times(reader, "trajectory", traj.shape[1])
    truth = reader.trace("truth")
    fig, ax = plt.subplots(figsize=(6, 4))
    for i in range(min(4, traj.shape[0])):
        ax.plot(grid, traj[i, :, 0], color=f"C{i}", label="predicted" if i == 0 else None)
        if truth is not None:
            ax.plot(_times(reader, "truth", truth.shape[1]), truth[i, :, 0], "--", color=f"C{i}", label="true" if i == 0 else None)
    ax.set_xlabel("t")
    ax.set_ylabel("x (first coordinate)")
    ax.legend()
    return [("trajectories", fig)]
