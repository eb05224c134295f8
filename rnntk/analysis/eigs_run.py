"""``rnntk eigs MODEL``: leading eigenvalues of a trained model's recurrent weight or Jacobian
(registered by :mod:`rnntk.analysis.cli`; options: :class:`rnntk.analysis.config.AnalysisEigsConfig`;
results, verdicts and figures: :mod:`rnntk.analysis.eigs_report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnntk.analysis.config import AnalysisEigsConfig, solver_options
from rnntk.engine.errors import NonFiniteError, UserError
from rnntk.engine.options import RunOptions


def eigs_cmd(opts: RunOptions, cfg: AnalysisEigsConfig, model_path: Path) -> None:
    """Spectrum of any trained rnntk recurrent network: its recurrent weight, or its Jacobian at
    the spontaneous state, a time along a driven trial or a fixed point, to run.h5 (as
    cordsnet-eigs: /results/eigs/layer<i>_<LM|LR>), eigs.csv and one complex-plane PNG per layer
    (unit circle for discrete time, the imaginary axis for continuous time).

    Continuous models: eigenvalues of dF/dx in units of 1/tau (stable iff max Re < 0). Example:
    [bold]rnntk eigs runs/selftest-XYZ --state trial:200 --method arpack --k 6[/bold]."""
    import numpy as np
    import torch

    from rnntk.analysis.eigs import jacobian_operator, leading_eigs, weight_operator
    from rnntk.analysis.eigs_report import CSV_HEADER, read_fixed_point, write_layer
    from rnntk.analysis.source import load_trained, make_drive
    from rnntk.core.models import as_recurrent_layers

    kind, state = cfg.state_kind, cfg.state
    model, name, model_path = load_trained(model_path)
    try:
        stack = as_recurrent_layers(model)
    except TypeError as e:
        raise UserError(f"{model_path} holds a {name} model, not a recurrent network rnntk can analyse ({e})") from None
    all_layers = stack.layers()
    stacked = len(all_layers) > 1 or all_layers[0][0] != ""
    js = cfg.layer_indices
    if js is None:
        js = list(range(len(all_layers)))
    elif not js or js[0] < 0 or js[-1] >= len(all_layers):
        raise UserError(f"bad --layers '{cfg.layers}': the model has {len(all_layers)} recurrent layer(s)")
    if cfg.operator == "recurrent":
        missing = [(all_layers[j][0] or name) for j in js if not hasattr(all_layers[j][1], "recurrent_weight")]
        if missing:
            raise UserError(
                f"--operator recurrent: {', '.join(missing)} has no state-independent recurrent weight (a gated recurrence): use --operator jacobian"
            )
    Ns = [all_layers[j][1].n for j in js]
    if cfg.method == "dense" and max(Ns) > cfg.max_dense_n:
        raise UserError(f"--method dense: N = {max(Ns)} > --max-dense-n {cfg.max_dense_n}; dense eig is O(N^3): use --method arpack")
    if cfg.method in ("arpack", "arnoldi") and cfg.k >= min(Ns) - 1:
        raise UserError(f"--method {cfg.method} needs --k < N - 1 = {min(Ns) - 1}: use --method dense for so small a network")
    xstar = ustar = None
    if kind == "fixed-point":
        if stacked:
            raise UserError("--state fixed-point: a stack of layers has no single fixed point file; use spont, zero or trial:T")
        xstar, ustar = read_fixed_point(Path(str(cfg.fixed_points)), cfg.state_index, all_layers[0][1].n)
    _check_eigs_fits(cfg, max(Ns), opts.device)
    kk = 1 if cfg.method == "power" else min(cfg.k, min(Ns))  # values, residuals, flags per ordering; the state and input of a Jacobian
    results = sum(len(cfg.whiches) * min(kk, n) * (16 + 8 + 1) + 8 * (n + stack.n_in) * (cfg.operator != "recurrent") for n in Ns)
    with opts.open_run(config={"model_path": str(model_path)}) as run:
        run.before_compute(f"the eigenvalues of {len(js)} layer(s) (--method {cfg.method}, N = {max(Ns)})", model, results_bytes=results)
        model = model.to(device=run.device, dtype=torch.float64)
        stack = as_recurrent_layers(model)
        all_layers = stack.layers()
        stop_check = lambda: run.check_interrupt(checkpoint=False)  # noqa: E731
        steps = {"spont": cfg.spont_steps, "zero": 0, "trial": cfg.state_index + 1, "fixed-point": 0}[kind]
        dev, f64 = run.device, torch.float64
        with torch.no_grad():
            if kind == "trial":
                u = make_drive(cfg.input_kind, 1, steps, stack.n_in, generator=run.generator, device=dev, dtype=f64, zeros_for_none=stacked)
            else:
                u = torch.zeros(1, max(steps, 1), stack.n_in, device=dev, dtype=f64) if stacked else None
            inputs = stack.layer_inputs(u) if u is not None else [None] * len(all_layers)
        run.annotate(model=name, operator=cfg.operator, state=state, method=cfg.method)
        rows = [CSV_HEADER]
        final: dict[str, Any] = {}
        for step in run.steps(len(js), desc="eigs"):
            j = js[step]
            lname, m = all_layers[j]
            ul = inputs[j]
            with torch.no_grad():
                if xstar is not None:
                    x, u_at = xstar.to(dev, f64), None if ustar is None else ustar.to(dev, f64)
                else:
                    x = torch.zeros(1, m.n, device=dev, dtype=f64)
                    for t in range(steps - (kind == "trial")):  # the trajectory to the state (sequential in time)
                        stop_check()
                        x = m.step(x, None if ul is None else ul[:, t])
                    u_at = None if ul is None else ul[0, -1 if kind != "zero" else 0]
                if not bool(torch.isfinite(x).all()):
                    raise NonFiniteError(steps, "state", float("nan"), note=f"the trajectory to --state {state} diverged")
            op = weight_operator(m) if cfg.operator == "recurrent" else jacobian_operator(m, x[0], u_at)
            start = run.rng(f"eigs/start/layer{j}")  # start vectors (Arnoldi, power; ARPACK's v0)
            try:
                res = leading_eigs(
                    op,
                    cfg.method,
                    cfg.k,
                    cfg.whiches,
                    **solver_options(cfg),
                    generator=start,
                    seed=start.initial_seed(),
                    check=stop_check,
                )
            except np.linalg.LinAlgError as e:  # a subclass of ValueError: first
                raise NonFiniteError(0, "eigenvalues", float("nan"), note=f"the operator is not finite ({e})") from None
            except ValueError as e:
                raise UserError(str(e)) from None
            write_layer(run, cfg, name, j, lname, m, op.N, res, x, u_at, rows, final)
        _finish(run, cfg, name, rows, final)


def _check_eigs_fits(cfg: AnalysisEigsConfig, n: int, device: str) -> None:
    """Refuse (one line, exit 2) an eigen-solve whose main arrays cannot fit, before it starts
    (:func:`rnntk.analysis.eigs.solver_bytes` for the largest layer, ``n`` units)."""
    from rnntk.analysis.eigs import solver_bytes
    from rnntk.engine.device import resolve_device
    from rnntk.engine.limits import check_fits

    need = solver_bytes(cfg.method, n, cfg.k, len(cfg.whiches), krylov_m=cfg.krylov, ncv=cfg.ncv, max_restarts=cfg.max_restarts)
    check_fits(need, resolve_device(device), f"--method {cfg.method} on N = {n} units", hint="use --method arnoldi or arpack, a smaller --k/--krylov/--ncv")


def _finish(run: Any, cfg: AnalysisEigsConfig, name: str, rows: list[str], final: dict[str, Any]) -> None:
    """eigs.csv (with ``--csv``), the figures and the run's summary: stable over all layers, the largest radius."""
    from rnntk.engine.files import write_text_atomic

    if cfg.csv:
        write_text_atomic(run.path("eigs.csv"), "\n".join(rows) + "\n")
    run.figures()  # eigs_layer<j>, from run.h5 (rnntk.analysis.figures)
    stab = [v["stable"] for v in final.values()]
    radii = [v["spectral_radius"] for v in final.values()]
    run.finish(
        layers=final,
        stable=False if False in stab else (True if all(s is True for s in stab) else "unknown"),
        max_spectral_radius=max(radii) if None not in radii else None,
        model_class=name,
        n_layers=len(final),
    )
