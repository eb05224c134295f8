"""What ``rnntk fixed-points`` writes: per layer the points, their q, Jacobian eigenvalues and
stability labels (run.h5 ``/results/fixed_points[/<layer>]``), its CSV rows and summary; what
the figure of trajectories and points in principal components draws (its projection, stored
beside the points), and the drawing (made from run.h5 by
:func:`rnntk.analysis.figures.fixed_points_figures`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np


def write_layer(run: Any, name: str, lname: str, m: Any, fp: Any, stacked: bool, rows: list[str], final: dict[str, Any]) -> None:
    """Write the points ``fp`` of layer ``lname`` (model ``m``) to ``run``; append their CSV rows
    and the layer's summary to ``final``."""
    grp = f"fixed_points/{lname}" if stacked else "fixed_points"
    write_points(run, grp, fp)
    kinds = {k: fp.kind.count(k) for k in sorted(set(fp.kind))}
    n_stable = int((fp.is_stable & ~fp.is_slow).sum())
    info = dict(
        n=m.n,
        time=fp.time,
        n_points=len(fp),
        n_stable=n_stable,
        n_slow=int(fp.is_slow.sum()),
        kinds=kinds,
        max_q=float(fp.q.max()) if len(fp) else None,
        adam_iters=fp.stats.get("adam_iters"),
        newton_iters=fp.stats.get("newton_iters"),
    )
    final[lname or name] = info
    for j in range(len(fp)):
        lead = complex(fp.eigvals[j, 0]) if m.n else complex(0)
        row = f"{j},{fp.kind[j]},{int(fp.n_unstable[j])},{int(fp.rotational[j])},{int(fp.is_slow[j])},{float(fp.q[j]):.6e},{lead.real:.8g},{lead.imag:.8g},{abs(lead):.8g}"
        rows.append((f"{lname}," if stacked else "") + row)
    summary = ", ".join(f"{v} {k}" for k, v in kinds.items()) or "none"
    print(f"{name}{' ' + lname if lname else ''}: {len(fp)} point(s) ({summary}; {info['n_slow']} slow), N = {m.n}, {fp.time} time", file=sys.stderr)


def write_points(run: Any, grp: str, fp: Any) -> None:
    """``/results/<grp>/{xstar, q, eigvals, n_unstable, kind, input, is_slow, rotational, n_iters}``."""
    import h5py

    unit = "per step (d step/dx)" if fp.time == "discrete" else "1/tau (dF/dx, tau dx/dt = F)"
    crit = "|lambda| > 1" if fp.time == "discrete" else "Re lambda > 0"
    run.result(f"{grp}/xstar", fp.xstar, description="fixed and slow points (M, n)", time=fp.time)
    run.result(f"{grp}/q", fp.q, description="q = |G(x)|^2 / 2 at each point (G = step - x discrete, rhs continuous)")
    run.result(f"{grp}/eigvals", fp.eigvals, description=f"Jacobian eigenvalues (M, n), leading first ({unit})", units=unit, time=fp.time)
    run.result(f"{grp}/n_unstable", fp.n_unstable, description=f"eigenvalues with {crit}")
    run.result(f"{grp}/kind", np.array(fp.kind, dtype=h5py.string_dtype()), description="stable, saddle-k or unstable")
    run.result(f"{grp}/input", fp.input, description="the constant input of each point (M, n_in)")
    run.result(f"{grp}/is_slow", fp.is_slow, description="q above tol_q: a slow point")
    run.result(f"{grp}/rotational", fp.rotational, description="the leading eigenvalue is complex")
    run.result(f"{grp}/n_iters", fp.n_iters, description="Adam + Newton iterations of the candidate that gave the point")


def write_figure_data(run: Any, grp: str, X: Any, fp: Any) -> None:
    """What the figure draws of one layer, to ``/results/<grp>/``: ``pca_mean`` (n,) and
    ``pca_axes`` (n, k <= 3) of the trajectories ``X (n_traj, T, n)``; ``trajectories_pca``
    (<= 30, T, k), the first 30 trajectories projected (attr ``span``: the largest extent of
    all of them along an axis); ``unstable_directions_pca`` (D, k), the unit real parts of the
    eigenvectors of every point's unstable eigenvalues, projected, and
    ``unstable_directions_point`` (D,), the point each belongs to."""
    import torch

    Xn = X.detach().cpu().double().reshape(-1, X.shape[-1]).numpy()
    mu = Xn.mean(0)
    _, _, Vt = np.linalg.svd(Xn[:: max(1, len(Xn) // 20000)] - mu, full_matrices=False)
    P = Vt[:3].T  # (n, k)
    span = float(np.ptp((Xn - mu) @ P, axis=0).max() or 1.0)
    tr = (X[:30].detach().cpu().double().numpy() - mu) @ P
    sel = np.nonzero(np.asarray(fp.n_unstable) > 0)[0]
    dirs, owner = np.zeros((0, P.shape[1])), np.zeros(0, np.int64)
    if len(sel) and fp.jacobians is not None:
        lam, V = torch.linalg.eig(fp.jacobians[torch.as_tensor(sel)].detach().cpu().double())  # (b, n), (b, n, n)
        unst = lam.abs() > 1 if fp.time == "discrete" else lam.real > 0
        b, i = torch.nonzero(unst, as_tuple=True)
        vecs = V[b, :, i].real.numpy()  # (D, n): the eigenvectors of the unstable eigenvalues
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        dirs, owner = (vecs / np.where(norms > 0, norms, 1.0)) @ P, sel[b.numpy()]
    run.result(f"{grp}/pca_mean", mu, description="mean state of the trajectories (n,) (figure)")
    run.result(f"{grp}/pca_axes", P, description="their top principal axes (n, k <= 3) (figure)")
    run.result(f"{grp}/trajectories_pca", tr, span=span, description="the first <= 30 trajectories in principal components (m, T, k) (figure)")
    run.result(f"{grp}/unstable_directions_pca", dirs, description="unit unstable eigenvector directions (real parts) in principal components (D, k) (figure)")
    run.result(f"{grp}/unstable_directions_point", owner, description="the point each unstable direction belongs to (D,) (figure)")


@dataclass
class FigureLayer:
    """One layer of the fixed-points figure, as run.h5 stores it (see :func:`write_figure_data`)."""

    lname: str
    xstar: np.ndarray  # (M, n) points
    n_unstable: np.ndarray  # (M,)
    is_slow: np.ndarray  # (M,) bool
    mean: np.ndarray  # (n,)
    axes: np.ndarray  # (n, k)
    trajectories: np.ndarray  # (m, T, k)
    span: float
    directions: np.ndarray  # (D, k)
    direction_point: np.ndarray  # (D,)


def figure(plots: list[FigureLayer], name: str) -> Any:
    """Per layer: trajectories in their top-3 principal components, the points coloured by
    stability (stable black, saddle red, unstable orange; slow points hollow), unstable
    directions (real parts of the eigenvectors with unstable eigenvalues) as segments."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig = plt.figure(figsize=(6 * len(plots), 5.5))
    for p, L in enumerate(plots):
        k = int(L.axes.shape[1])
        ax = fig.add_subplot(1, len(plots), p + 1, projection="3d" if k == 3 else None)

        def pad(z: np.ndarray, k: int = k) -> np.ndarray:
            return np.pad(z, [(0, 0)] * (z.ndim - 1) + [(0, 3 - k)])

        def coords(z: np.ndarray, k: int = k) -> Any:
            return z.T if k == 3 else z.T[:2]

        for z in pad(L.trajectories):
            ax.plot(*coords(z), color="tab:blue", lw=0.5, alpha=0.4)
        M, n = L.xstar.shape
        xs = pad((L.xstar - L.mean) @ L.axes) if M else np.zeros((0, 3))
        for j in range(M):
            nu = int(L.n_unstable[j])
            col = "black" if nu == 0 else ("tab:orange" if nu == n else "tab:red")
            face = "none" if bool(L.is_slow[j]) else col
            ax.scatter(*coords(xs[j : j + 1]), s=30, facecolors=face, edgecolors=col, zorder=5)
            for d in pad(L.directions[L.direction_point == j]) * 0.15 * L.span:
                ax.plot(*coords(np.stack([xs[j] - d, xs[j] + d])), color=col, lw=1.2)
        ax.set_title(f"{name}{' ' + L.lname if L.lname else ''}: {M} point(s)", fontsize=9)
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
        if k == 3:
            ax.set_zlabel("PC3")  # type: ignore[attr-defined]
    handles = [
        Line2D([], [], marker="o", ls="", color="black", label="stable"),
        Line2D([], [], marker="o", ls="", color="tab:red", label="saddle (unstable directions drawn)"),
        Line2D([], [], marker="o", ls="", color="tab:orange", label="unstable"),
        Line2D([], [], marker="o", ls="", markerfacecolor="none", color="0.3", label="slow point"),
        Line2D([], [], color="tab:blue", lw=0.8, label="trajectories"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=7)
    return fig
