"""The figures of ``rnntk sofo-train``, made from ``run.h5`` alone (at the end of the run, and
by ``rnntk plot``): ``loss_curves`` (training and validation loss against the iteration and the
optimiser's wall-clock; ``/metrics``) and, for the reaching tasks, ``hand_trajectories`` (the
recorded validation hand paths ``/traces/hand``, their targets ``/trials/target*_x|y`` and the
end-of-hold errors of every validation trial ``/results/reach_error_*_trials``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rnntk.engine.figures import RunReader


def loss_curves(reader: RunReader) -> list[tuple[str, Any]]:
    """``[("loss_curves", fig)]``: loss (and val_loss) of each optimiser, vs iteration and vs
    cumulative iteration time ``iter_s``; ``[]`` before the first metric row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = reader.metrics()
    if "step" not in g:
        return []
    opt = str(reader.config.get("optimizer", "sofo"))
    names = ["sofo", "adam"] if opt == "both" else [opt]
    step = g["step"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name in names:
        pre = f"{name}_" if len(names) == 2 else ""
        for key, style in (("loss", "-"), ("val_loss", "o-")):
            if pre + key not in g:
                continue
            v = g[pre + key]
            ok = ~np.isnan(v)
            axes[0].semilogy(step[ok], v[ok], style, ms=3, label=f"{name} {key}")
            if pre + "iter_s" in g:
                wall = np.cumsum(np.nan_to_num(g[pre + "iter_s"]))
                axes[1].semilogy(wall[ok], v[ok], style, ms=3, label=f"{name} {key}")
    axes[0].set_xlabel("iteration")
    axes[1].set_xlabel("optimiser wall-clock (s)")
    for ax in axes:
        ax.set_ylabel("loss")
        ax.legend()
        ax.grid(alpha=0.3)
    return [("loss_curves", fig)]


def hand_trajectories(reader: RunReader) -> list[tuple[str, Any]]:
    """``[("hand_trajectories", fig)]`` for a run that recorded hand paths and reach errors
    (the reaching tasks), else ``[]``; the figure of :func:`rnntk.sofo.tasks.reach.hand_figure`."""
    import torch

    from rnntk.sofo.tasks import reach

    hand = reader.trace("hand")
    end, mean, ok = (reader.result(f"reach_{k}_trials") for k in ("error_end", "error_mean", "reachable"))
    if hand is None or end is None or mean is None or ok is None:
        return []
    table = reader.table()
    k = hand.shape[0]
    R = end.shape[1]
    keys = [("target_x", "target_y")] if R == 1 and "target_x" in table else [(f"target{r + 1}_x", f"target{r + 1}_y") for r in range(R)]
    if any(x not in table or y not in table for x, y in keys):
        return []
    tg = np.stack([np.stack([table[x][:k], table[y][:k]], -1) for x, y in keys], 1)  # [k, R, 2]
    err = {"end": torch.from_numpy(end), "mean": torch.from_numpy(mean), "reachable": torch.from_numpy(ok.astype(bool))}
    title = str(reader.config.get("task", "reach"))
    return [("hand_trajectories", reach.hand_figure(torch.from_numpy(hand), torch.from_numpy(tg), err, n_show=min(k, 8), title=title))]


def sofo_figures(reader: RunReader) -> list[tuple[str, Any]]:
    """Every figure of a sofo-train run (see the module docstring)."""
    return hand_trajectories(reader) + loss_curves(reader)
