"""What ``rnntk eigs`` reads and writes besides the model: the point of a fixed-points run its
Jacobian may be taken at; per layer the eigenvalues and residuals (run.h5, as cordsnet-eigs:
``/results/eigs/layer<i>_<LM|LR>``, with ``_residual`` and per-value ``_converged``), the stability verdict, the rows
of eigs.csv, and the complex-plane figure (drawn from run.h5 by :func:`rnntk.analysis.figures.eigs_figures`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from rnntk.analysis.config import AnalysisEigsConfig
from rnntk.engine.errors import UserError


def write_layer(
    run: Any,
    cfg: AnalysisEigsConfig,
    name: str,
    j: int,
    lname: str,
    m: Any,
    N: int,
    res: dict[str, Any],
    x: Any,
    u_at: Any,
    rows: list[str],
    final: dict[str, Any],
) -> None:
    """Write layer ``j``'s eigenvalues ``res`` (per ordering) of an operator of size ``N`` taken
    at state ``x (1, n)`` / input ``u_at (n_in,)``; append its CSV rows and its verdict to ``final``."""
    cont = m.time == "continuous"
    weight = cfg.operator == "recurrent"
    verdict = eig_verdict(res, cont, weight)
    tag = f"layer{j}"
    attrs = dict(time=m.time, operator=cfg.operator, state=cfg.state, units="1/tau" if cont and not weight else "", tau=float(getattr(m, "tau", 0.0)))
    for w, r in res.items():
        conv = bool(r.converged.all())
        run.result(
            f"eigs/{tag}_{w}", r.values, N=N, method=r.method, which=w, seconds=r.seconds, n_matvec=r.n_matvec, converged=conv, layer_name=lname, **attrs
        )
        run.result(f"eigs/{tag}_{w}_residual", r.residuals)
        run.result(f"eigs/{tag}_{w}_converged", np.asarray(r.converged, bool), description="per value: its residual met the tolerance")
        rows += csv_rows(j, N, w, r)
    if not weight:
        run.result(f"eigs/{tag}_state", x[0], description="the state (n,) the Jacobian is taken at")
        if u_at is not None:
            run.result(f"eigs/{tag}_input", u_at.reshape(-1), description="the input (n_in,) the Jacobian is taken at")
    final[tag] = dict(name=lname or name, N=N, time=m.time, **verdict, converged=bool(all(r.converged.all() for r in res.values())))
    label = f"{name}{' ' + lname if lname else ''}"
    print(f"{label} ({cfg.operator} at {cfg.state}, N = {N}): {eig_line(verdict)}", file=sys.stderr)


CSV_HEADER = "layer,N,method,rank,which,real,imag,abs,residual,converged"


def csv_rows(j: int, N: int, w: str, r: Any) -> list[str]:
    """The eigs.csv rows (under :data:`CSV_HEADER`; ``rnntk eigs`` and ``rnntk cordsnet-eigs``)
    of layer ``j`` (operator size ``N``): one per value of the EigResult ``r`` for ordering ``w``."""
    return [
        f"{j},{N},{r.method},{i + 1},{w},{v.real:.12g},{v.imag:.12g},{abs(v):.12g},{rr:.3g},{int(c)}"
        for i, (v, rr, c) in enumerate(zip(r.values, r.residuals, r.converged))
    ]


def read_fixed_point(path: Path, i: int, n: int) -> tuple[Any, Any]:
    """Point ``i`` of ``/results/fixed_points/xstar`` (and its ``input``) of an ``rnntk fixed-points`` run."""
    import h5py
    import torch

    f5 = path / "run.h5" if path.is_dir() else path
    if not f5.is_file():
        raise UserError(f"--fixed-points {path}: no run.h5 there")
    try:
        with h5py.File(f5, "r") as f:
            g: Any = f.get("results/fixed_points")
            if g is None or "xstar" not in g:
                raise UserError(f"--fixed-points {f5}: no /results/fixed_points/xstar (is it an rnntk fixed-points run?)")
            xs = g["xstar"][()]
            inp = g["input"][()] if "input" in g else None
    except OSError as e:
        raise UserError(f"--fixed-points {f5}: cannot read ({e})") from None
    if xs.ndim != 2 or xs.shape[1] != n:
        raise UserError(f"--fixed-points {f5}: points of size {xs.shape[1:]} do not fit this model (n = {n})")
    if not 0 <= i < xs.shape[0]:
        raise UserError(f"bad --state fixed-point:{i}: the file holds {xs.shape[0]} point(s)")
    u = None
    if inp is not None and int(getattr(inp, "size", 0)):
        u = torch.as_tensor(inp[i] if inp.ndim == 2 else inp, dtype=torch.float64)
    return torch.as_tensor(xs[i : i + 1], dtype=torch.float64), u


def eig_verdict(res: dict[str, Any], continuous: bool, weight: bool) -> dict[str, Any]:
    """Spectral radius and max Re from the first value of each ordering (when it converged),
    and stability of the linearisation: discrete Jacobian radius < 1, continuous Jacobian
    max Re < 0; the recurrent weight W: radius < 1 (discrete), max Re < 1 (``-I + W``, continuous)."""
    out: dict[str, Any] = {"spectral_radius": None, "max_real": None}
    if "LM" in res and res["LM"].converged[0]:
        out["spectral_radius"] = float(abs(res["LM"].values[0]))
    if "LR" in res and res["LR"].converged[0]:
        out["max_real"] = float(res["LR"].values[0].real)
    if continuous:
        bound = 1.0 if weight else 0.0
        mu = out["max_real"]
        out["stable"] = "unknown" if mu is None else bool(mu < bound)
        out["criterion"] = f"max Re lambda < {bound:g}"
    else:
        rho = out["spectral_radius"]
        out["stable"] = "unknown" if rho is None else bool(rho < 1)
        out["criterion"] = "|lambda| < 1"
    return out


def eig_line(v: dict[str, Any]) -> str:
    """The verdict as one line of text."""

    def num(x: Any) -> str:
        return "unknown" if x is None else f"{x:.6g}"

    st = v["stable"]
    return f"spectral radius {num(v['spectral_radius'])}, max Re {num(v['max_real'])}; stable ({v['criterion']}): {'unknown' if st == 'unknown' else ('yes' if st else 'NO')}"


def eig_plot(res: dict[str, Any], continuous: bool, operator: str, title: str) -> Any:
    """Eigenvalues in the complex plane: the unit circle (discrete), or the imaginary axis
    (continuous Jacobian; Re = 1 for a continuous recurrent weight). ``res``: ``{which:
    (values (k,) complex, converged (k,) bool)}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    if continuous:
        edge = 1.0 if operator == "recurrent" else 0.0
        ax.axvline(edge, color="tab:red", lw=0.8, ls="--", label=f"Re λ = {edge:g} (stability)")
    else:
        th = np.linspace(0, 2 * np.pi, 400)
        ax.plot(np.cos(th), np.sin(th), color="0.6", lw=0.8, label="|λ| = 1")
    marks = {"LM": ("o", "tab:blue"), "LR": ("s", "tab:orange")}
    for w, (vals, conv) in res.items():
        mk, col = marks[w]
        vals, ok = np.asarray(vals, np.complex128), np.asarray(conv, bool)
        by = "|λ|" if w == "LM" else "Re λ"
        if ok.any():
            ax.scatter(vals.real[ok], vals.imag[ok], marker=mk, color=col, s=18, label=f"top-{len(vals)} by {by} ({int(ok.sum())} converged)")
        if (~ok).any():
            ax.scatter(vals.real[~ok], vals.imag[~ok], marker=mk, facecolors="none", edgecolors=col, s=22, label=f"NOT converged ({int((~ok).sum())})")
    ax.axhline(0, color="k", lw=0.3)
    ax.set_xlabel("Re λ" + (" (1/τ)" if continuous and operator == "jacobian" else ""))
    ax.set_ylabel("Im λ")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return fig
