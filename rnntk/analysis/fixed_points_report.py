"""What ``rnntk fixed-points`` writes: per layer the points, their q, Jacobian eigenvalues and
stability labels (run.h5 ``/results/fixed_points[/<layer>]``), its CSV rows and summary; the
figure of trajectories and points in principal components."""

from __future__ import annotations

import sys
from typing import Any


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
    import numpy as np

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


def figure(plots: list[tuple[str, Any, Any]], name: str) -> Any:
    """Per layer: trajectories in their top-3 principal components, the points coloured by
    stability (stable black, saddle red, unstable orange; slow points hollow), unstable
    directions (real parts of the eigenvectors with unstable eigenvalues) as segments."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    fig = plt.figure(figsize=(6 * len(plots), 5.5))
    for p, (lname, X, fp) in enumerate(plots):
        Xn = X.detach().cpu().double().reshape(-1, X.shape[-1]).numpy()
        mu = Xn.mean(0)
        k = min(3, Xn.shape[1])
        _, _, Vt = np.linalg.svd(Xn[:: max(1, len(Xn) // 20000)] - mu, full_matrices=False)
        P = Vt[:k].T  # (n, k)
        ax = fig.add_subplot(1, len(plots), p + 1, projection="3d" if k == 3 else None)

        def proj(a: Any, mu: Any = mu, P: Any = P, k: int = k) -> Any:
            z = (np.asarray(a) - mu) @ P
            return np.pad(z, ((0, 0), (0, 3 - k)))

        tr = X.detach().cpu().double().numpy()
        for t in tr[: min(30, len(tr))]:
            z = proj(t)
            ax.plot(*(z.T if k == 3 else z.T[:2]), color="tab:blue", lw=0.5, alpha=0.4)
        span = float(np.ptp(proj(Xn), axis=0).max() or 1.0)
        xs = proj(fp.xstar.detach().cpu().numpy()) if len(fp) else np.zeros((0, 3))
        for j in range(len(fp)):
            nu = int(fp.n_unstable[j])
            col = "black" if nu == 0 else ("tab:orange" if nu == m_n(fp) else "tab:red")
            face = "none" if bool(fp.is_slow[j]) else col
            ax.scatter(*(xs[j : j + 1].T if k == 3 else xs[j : j + 1].T[:2]), s=30, facecolors=face, edgecolors=col, zorder=5)
            if nu and fp.jacobians is not None:
                lam, V = torch.linalg.eig(fp.jacobians[j].detach().cpu())
                unst = lam.abs() > 1 if fp.time == "discrete" else lam.real > 0
                for v in V[:, unst].T.real.numpy():
                    d = (v / (np.linalg.norm(v) or 1.0)) @ P
                    d = np.pad(d, (0, 3 - k)) * 0.15 * span
                    seg = np.stack([xs[j] - d, xs[j] + d])
                    ax.plot(*(seg.T if k == 3 else seg.T[:2]), color=col, lw=1.2)
        ax.set_title(f"{name}{' ' + lname if lname else ''}: {len(fp)} point(s)", fontsize=9)
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
        if k == 3:
            ax.set_zlabel("PC3")  # type: ignore[attr-defined]
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", ls="", color="black", label="stable"),
        Line2D([], [], marker="o", ls="", color="tab:red", label="saddle (unstable directions drawn)"),
        Line2D([], [], marker="o", ls="", color="tab:orange", label="unstable"),
        Line2D([], [], marker="o", ls="", markerfacecolor="none", color="0.3", label="slow point"),
        Line2D([], [], color="tab:blue", lw=0.8, label="trajectories"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=7)
    return fig


def m_n(fp: Any) -> int:
    """State size of the points of ``fp``."""
    return int(fp.xstar.shape[-1])
