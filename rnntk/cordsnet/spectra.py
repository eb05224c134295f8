"""The run body of ``rnntk cordsnet-eigs``: per-area leading eigenvalues with Ritz residuals,
stability verdicts, ``/results/eigs/*``, eigs.csv, one PNG per area (drawn from run.h5 by
:func:`rnntk.cordsnet.figures.cordsnet_eigs_figures`) and the run summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch

from rnntk.analysis.config import solver_options
from rnntk.cordsnet.config import EigsConfig
from rnntk.engine.errors import NonFiniteError, UserError

if TYPE_CHECKING:
    from rnntk.engine.run import Run


def eigs_report(cfg: EigsConfig, model: Any, js: list[int], img: Optional[torch.Tensor], model_path: Path, run: Run) -> None:
    """Spectra of the areas ``js`` of ``model`` (operator, method and orderings of ``cfg``;
    ``img`` ``(1, C, S, S)`` for the image-driven Jacobian) written to ``run``."""
    from rnntk.analysis.eigs_report import CSV_HEADER, csv_rows
    from rnntk.cordsnet.eigs import certified_stability, cordsnet_operators, leading_eigs
    from rnntk.engine.device import resolve_dtype
    from rnntk.engine.files import write_text_atomic

    mixed = cfg.dtype == "mixed"
    dt_ = torch.float64 if mixed else resolve_dtype(cfg.dtype)
    model = model.to(device=run.device, dtype=torch.float64)
    stop_check = lambda: run.check_interrupt(checkpoint=False)  # noqa: E731  # a signal stops any loop within one iteration
    ops = cordsnet_operators(
        model,
        cfg.operator,
        js,
        None if img is None else img.to(run.device, torch.float64),
        cfg.alpha,
        cfg.spont_steps,
        cfg.stim_steps,
        dtype=dt_,
        check=stop_check,
    )
    for j in js:  # NaN/inf weights (or a diverged state for the Jacobians) would fail inside LAPACK/ARPACK
        if not bool(torch.isfinite(ops[j].weight).all()):
            raise NonFiniteError(0, f"area {j} recurrent weight", float("nan"), note="the model's weights are not finite")
    run.annotate(model=model.describe(), operator=cfg.operator, method=cfg.method)
    rows = [CSV_HEADER]
    final: dict[str, Any] = {}
    for step in run.steps(len(js), desc="cordsnet-eigs"):
        j = js[step]
        op = ops[j]
        start = run.rng(f"cordsnet-eigs/start/area{j}", device=run.device)  # start vectors (Arnoldi, power; ARPACK's v0)
        try:
            shown = leading_eigs(
                op,
                cfg.method,
                cfg.k_computed,  # --plot-k: one run for the larger set; the top k of it are reported
                cfg.whiches,
                **solver_options(cfg),
                qr_steps=cfg.qr_steps,
                generator=start,
                dtype=dt_,
                seed=start.initial_seed(),
                check=stop_check,
                polish=mixed,
            )
        except ValueError as e:
            raise UserError(str(e)) from None
        res = {w: _top(r, cfg.k) for w, r in shown.items()}
        verdict = certified_stability(res, cfg.alpha)
        print(f"area {j} (N = {op.N}): " + _verdict_line(verdict), file=sys.stderr)
        for w, r in res.items():
            run.result(
                f"eigs/layer{j}_{w}",
                r.values,
                N=op.N,
                method=r.method,
                which=w,
                seconds=r.seconds,
                n_matvec=r.n_matvec,
                converged=bool(r.converged.all()),
                **{kk: vv for kk, vv in r.info.items() if isinstance(vv, (int, float, str, bool))},
            )
            run.result(f"eigs/layer{j}_{w}_residual", r.residuals)
            run.result(f"eigs/layer{j}_{w}_converged", np.asarray(r.converged, bool), description="per value: its residual met the tolerance")
            a = shown[w]  # every value computed (--plot-k widens the set): what eigs_layer<j>.png draws
            run.result(f"eigs/layer{j}_{w}_computed", a.values, method=a.method, description="every value computed, leading first (the top --k are reported)")
            run.result(f"eigs/layer{j}_{w}_computed_converged", np.asarray(a.converged, bool), description="per computed value: converged")
            rows += csv_rows(j, op.N, w, r)
        secs = sum(r.seconds for r in res.values())
        num = {
            kk: float(verdict[kk]) for kk in ("spectral_radius", "max_real", "continuous_stable", "euler_stable") if verdict[kk] not in (None, "unknown")
        }  # unknown values are not logged (the metric log takes finite numbers)
        run.log(step, layer=j, N=op.N, **num, seconds=secs, converged=float(all(r.converged.all() for r in res.values())))
        final[f"layer{j}"] = dict(
            N=op.N,
            **verdict,
            converged=bool(all(r.converged.all() for r in res.values())),
            n_converged={w: int(r.converged.sum()) for w, r in res.items()},
            seconds=round(secs, 3),
        )
        notes = [r.info.get("note") for r in res.values() if r.info.get("note")]
        if notes:
            final[f"layer{j}"]["note"] = notes[0]
    if cfg.csv:
        write_text_atomic(run.path("eigs.csv"), "\n".join(rows) + "\n")
    run.figures()  # eigs_layer<j>, from run.h5 (rnntk.cordsnet.figures)
    run.last_metrics.clear()  # the per-area rows live in final["layers"]; the last one is not a run-level result
    run.finish(layers=final, **_overall(final), model_checkpoint=str(model_path))


def _overall(layers: dict[str, dict]) -> dict[str, Any]:
    """Run-level verdicts over all analysed areas: a network verdict is False if any area is
    unstable, True if every area is certified stable, else "unknown"."""

    def combine(name: str) -> Any:
        vs = [v[name] for v in layers.values()]
        return False if any(v is False for v in vs) else (True if all(v is True for v in vs) else "unknown")

    radii = [v["spectral_radius"] for v in layers.values()]
    return dict(
        continuous_stable=combine("continuous_stable"),
        euler_stable=combine("euler_stable"),
        max_spectral_radius=max(radii) if radii and None not in radii else None,
        all_converged=all(v["converged"] for v in layers.values()),
        n_layers=len(layers),
    )


def _top(r: Any, k: int) -> Any:
    """The first ``k`` values of an :class:`EigResult` (already ordered)."""
    from dataclasses import replace

    return r if len(r.values) <= k else replace(r, values=r.values[:k], residuals=r.residuals[:k], converged=r.converged[:k])


def _verdict_line(v: dict) -> str:
    """One line: radius, max Re, and the two verdicts (with the reason when unknown)."""

    def num(x: Any) -> str:
        return "unknown" if x is None else f"{x:.6g}"

    def ver(name: str) -> str:
        x = v[name]
        return f"unknown ({v['reasons'].get(name, '')})" if x == "unknown" else ("yes" if x else "NO")

    return (
        f"spectral radius {num(v['spectral_radius'])}, max Re {num(v['max_real'])}; continuous-stable {ver('continuous_stable')}; "
        f"Euler-stable {ver('euler_stable')}"
    )
