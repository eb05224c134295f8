"""The analysis commands (work on any model of the contract): ``rnntk lyapunov``."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rnntk.engine.errors import NonFiniteError, UserError
from rnntk.engine.limits import check_fits, nbytes_of
from rnntk.engine.options import RunOptions, engine_command, require_positive

O = typer.Option


class InputKind(str, Enum):
    none = "none"
    bits = "bits"
    noise = "noise"


def lyapunov_cmd(
    opts: RunOptions,
    model_path: Annotated[
        Path,
        typer.Argument(
            metavar="MODEL.pt|RUN_DIR|run.h5",
            help="An rnntk checkpoint of a recurrent network (model.pt or ckpt-last.pt), or a run whose model.pt to use.",
            show_default=False,
        ),
    ],
    k: Annotated[int, O("--k", min=0, help="Exponents (0 = all N).")] = 0,
    steps: Annotated[int, O("--steps", min=2, help="Steps per trajectory.")] = 2000,
    warmup: Annotated[int, O("--warmup", min=0, help="Steps before accumulating.")] = 500,
    t_ons: Annotated[int, O("--tons", min=1, help="Steps between QR re-orthonormalisations.")] = 1,
    n_traj: Annotated[int, O("--n-traj", min=1, help="Trajectories (batched), mean and SEM reported.")] = 8,
    input_kind: Annotated[InputKind, O("--input", help="Drive: none (autonomous), bits (Bernoulli 0/1), noise (N(0,1)).")] = InputKind.bits,
    horizons: Annotated[str, O("--horizons", help="Horizons t for singular values of T_{t,0}, comma-separated.")] = "10,25,50",
    dtype: Annotated[str, O("--dtype", help="float64 or float32.")] = "float64",
) -> None:
    """Lyapunov spectrum of a trained rnntk recurrent network, to run.h5, a CSV and a PNG.

    Any model of the contract: VanillaRNN (floss), LeakyRNN (selftest), the network part of the
    motor RNN and the Kalman RNN (sofo-train), each recurrent layer of an online-lru stack (LRU,
    linear RNN, GRU), the rate-RNN field (ode-train --task rate-rnn), CordsNet. Tangents: the
    model's analytic one where it has one, else forward-mode autograd batched over the k
    directions. Continuous-time models run by their Euler step (dt): exponents per step and per
    second."""
    import copy

    import torch

    from rnntk.analysis.lyapunov import condition_numbers, long_term_jacobian_singular_values, lyapunov_spectrum
    from rnntk.analysis.source import load_trained, make_drive
    from rnntk.core.models import as_recurrent_layers, tangent
    from rnntk.engine.device import resolve_device, resolve_dtype

    model, name, model_path = load_trained(model_path)
    try:
        layers = as_recurrent_layers(model).layers()
    except TypeError as e:
        raise UserError(f"{model_path} holds a {name} model, not a recurrent rate network rnntk can analyse ({e})") from None
    parts = [h.strip() for h in horizons.split(",")]
    try:
        hs = [int(h) for h in parts] if horizons.strip() else []
    except ValueError:
        raise UserError(f"bad --horizons '{horizons}': use comma-separated integers (no empty entries)") from None
    if any(not 1 <= h <= steps for h in hs):
        raise UserError(f"bad --horizons '{horizons}': each must be between 1 and --steps {steps}")
    dt_ = resolve_dtype(dtype)
    stacked = len(layers) > 1 or layers[0][0] != ""
    Ns = [m.n for _, m in layers]
    if k > max(Ns):
        raise UserError(f"bad --k {k}: the network has N = {max(Ns)} units" + (" in its largest layer" if stacked else ""))
    ks = [min(k, n) if k else n for n in Ns]
    if warmup >= steps:
        raise UserError(f"bad --steps {steps}: must exceed --warmup {warmup}")
    isz = torch.empty((), dtype=dt_).element_size()
    n_win = (steps - warmup) / t_ons + 2
    n_in = as_recurrent_layers(model).n_in
    need = nbytes_of(n_traj, steps, n_in, itemsize=isz) * (input_kind != InputKind.none or stacked)  # the inputs
    for (_, m), kk in zip(layers, ks):
        need += (
            nbytes_of(n_traj, steps, m.n_in, itemsize=isz) * stacked  # a layer's inputs
            + nbytes_of(n_win, n_traj, kk, itemsize=isz) * 2  # log|R_ii| of every QR window, and their logs
            + nbytes_of(n_traj, m.n, kk, itemsize=isz) * 4
            + nbytes_of(m.n, m.n, len(hs) + 2, itemsize=8)  # bases, T_{t,0}, singular values
        )
    check_fits(
        need,
        resolve_device(opts.device),
        f"a spectrum of --k {max(ks)} over --steps {steps} for --n-traj {n_traj}",
        hint="use fewer --steps, a larger --tons, a smaller --k or --n-traj",
    )
    with opts.open_run(config={"model_path": str(model_path)}) as run:
        model = model.to(device=run.device, dtype=dt_)
        stack = as_recurrent_layers(model)
        layers = stack.layers()
        gen = run.generator
        u = make_drive(input_kind.value, n_traj, steps, stack.n_in, generator=gen, device=run.device, dtype=dt_, zeros_for_none=stacked)
        stop_check = lambda: run.check_interrupt(checkpoint=False)  # noqa: E731  # a signal stops the spectrum within one step
        rows: list[str] = []
        final: dict[str, Any] = {}
        all_means = []
        with torch.no_grad():
            inputs = stack.layer_inputs(u) if u is not None else [None] * len(layers)
            layers64, inputs64 = layers, inputs
            if hs:  # the long-term Jacobian in float64 (small singular values underflow in float32)
                stack64 = as_recurrent_layers(copy.deepcopy(model).double())
                layers64 = stack64.layers()
                inputs64 = stack64.layer_inputs(u.double()) if u is not None else [None] * len(layers)
            for i, ((lname, m), kk) in enumerate(zip(layers, ks)):
                ul = inputs[i]
                x0 = torch.randn(n_traj, m.n, generator=gen).to(run.device, dt_) * 0.1

                def tan(x: Any, Q: Any, v: Any, m: Any = m) -> Any:
                    return tangent(m, x, Q, v)

                res = lyapunov_spectrum(m.step, ul, kk, x0=x0, steps=steps, warmup=warmup, t_ons=t_ons, generator=gen, check=stop_check, tangent=tan)
                lam = res.exponents
                if not torch.isfinite(lam).all():
                    raise NonFiniteError(res.steps, "lyapunov_exponent", float("nan"), note="the dynamics exploded" + (f" in {lname}" if lname else ""))
                sv = None
                if hs:
                    m64, u64 = layers64[i][1], inputs64[i]

                    def tan64(x: Any, Q: Any, v: Any, m: Any = m64) -> Any:
                        return tangent(m, x, Q, v)

                    sv = long_term_jacobian_singular_values(m64.step, None if u64 is None else u64[:1], hs, x0=x0[:1], tangent=tan64, check=stop_check)
                    if not torch.isfinite(sv).all():
                        raise NonFiniteError(max(hs), "jac_singular_value", float("nan"), note="the long-term Jacobian overflowed")
                mean = lam.mean(0)
                sem = lam.std(0) / n_traj**0.5 if n_traj > 1 else torch.zeros_like(lam[0])  # std already uses n-1
                cont = m.time == "continuous"
                dt_s = float(getattr(m, "dt", 1.0)) if cont else 1.0
                sfx = f"_{lname}" if lname else ""
                unit = {"time": m.time, "units": "1/step", **({"dt": dt_s} if cont else {})}
                run.result(f"lyapunov{sfx}", lam, description="exponents per trajectory (per step), (n_traj, k)", **unit)
                run.result(f"lyapunov_mean{sfx}", mean, **unit)
                run.result(f"lyapunov_sem{sfx}", sem, **unit)
                run.result(f"lyapunov_running{sfx}", res.running().mean(1), description="running estimate averaged over trajectories (n_windows, k)")
                if cont:
                    run.result(f"lyapunov_mean_per_s{sfx}", mean / dt_s, units="1/s", dt=dt_s, description="mean exponents per second (per step / dt)")
                    run.result(f"lyapunov_sem_per_s{sfx}", sem / dt_s, units="1/s", dt=dt_s)
                if sv is not None:
                    run.result(f"jac_singular_values{sfx}", sv, horizons=hs)
                    run.result(f"cond_number{sfx}", condition_numbers(sv, kk), horizons=hs)
                for j, (a, b) in enumerate(zip(mean, sem)):
                    row = f"{j + 1},{float(a):.8g},{float(b):.8g}" + (f",{float(a) / dt_s:.8g},{float(b) / dt_s:.8g}" if cont else ",,")
                    rows.append((f"{lname}," if stacked else "") + row)
                info = dict(n=m.n, k=kk, time=m.time, lambda_1=float(mean[0]), lambda_mean=float(mean.mean()))
                if cont:
                    info.update(dt=dt_s, lambda_1_per_s=float(mean[0]) / dt_s, lambda_mean_per_s=float(mean.mean()) / dt_s)
                final[lname or name] = info
                all_means.append((lname or name, mean.cpu(), sem.cpu(), dt_s if cont else None))
                per_s = f" ({info['lambda_1_per_s']:.6g} per s, dt = {dt_s:g} s)" if cont else ""
                print(f"{name}{' ' + lname if lname else ''}: lambda_1 = {info['lambda_1']:.6g} per step{per_s}, N = {m.n}, k = {kk}", file=sys.stderr)
        header = ("layer," if stacked else "") + "index,lambda_mean,lambda_sem,lambda_mean_per_s,lambda_sem_per_s"
        from rnntk.engine.files import write_text_atomic

        write_text_atomic(run.path("lyapunov.csv"), "\n".join([header] + rows) + "\n")
        run.figure(_spectrum_figure(all_means, f"{name}: {n_traj} trajectories of {steps} steps"), "lyapunov_spectrum")
        first = next(iter(final.values()))
        top = max(final.values(), key=lambda v: v["lambda_1"])
        summary: dict[str, Any] = dict(
            lambda_1=top["lambda_1"], lambda_mean=float(torch.cat([a for _, a, _, _ in all_means]).mean()), k=sum(ks), model_class=name
        )
        if "lambda_1_per_s" in top:
            summary.update(lambda_1_per_s=top["lambda_1_per_s"], dt=top["dt"])
        if stacked:
            summary["layers"] = final
        else:
            summary["time"] = first["time"]
        run.finish(**summary)


def _spectrum_figure(spectra: list[tuple[str, Any, Any, Optional[float]]], title: str) -> Any:
    """One errorbar line per layer: ``(name, mean (k,), sem (k,), dt or None)``; a right axis per
    second when every line is continuous-time with the same ``dt``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, mean, sem, _ in spectra:
        ax.errorbar(range(1, len(mean) + 1), mean, yerr=sem, fmt="o-", ms=3, label=label if len(spectra) > 1 else None)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("index i")
    ax.set_ylabel("λ_i (per step)")
    dts = {d for *_, d in spectra}
    if len(dts) == 1 and None not in dts:
        d = float(next(iter(dts)) or 1.0)

        def to_s(y: Any) -> Any:
            return y / d

        def to_step(y: Any) -> Any:
            return y * d

        sec = ax.secondary_yaxis("right", functions=(to_s, to_step))
        sec.set_ylabel(f"λ_i (per second, dt = {d:g} s)")
    if len(spectra) > 1:
        ax.legend(fontsize=8)
    ax.set_title(title)
    return fig


class EigOperator(str, Enum):
    jacobian = "jacobian"
    recurrent = "recurrent"


class EigMethod(str, Enum):
    arnoldi = "arnoldi"
    dense = "dense"
    arpack = "arpack"
    power = "power"


class EigWhich(str, Enum):
    LM = "LM"
    LR = "LR"
    both = "both"


def eigs_cmd(
    opts: RunOptions,
    model_path: Annotated[
        Path,
        typer.Argument(metavar="RUN_DIR|MODEL.pt|run.h5", help="A run folder, its run.h5, or an rnntk checkpoint of a recurrent network.", show_default=False),
    ],
    operator: Annotated[
        EigOperator, O("--operator", help="jacobian (d step/dx, discrete; dF/dx with tau dx/dt = F, continuous) at --state, or recurrent (the weight W).")
    ] = EigOperator.jacobian,
    state: Annotated[
        str,
        O(
            "--state",
            help="Where the Jacobian is taken: spont (from x = 0 with zero input for --spont-steps), zero, trial:T (after T steps of the --input drive), "
            "fixed-point:I (point I of --fixed-points).",
        ),
    ] = "spont",
    fixed_points: Annotated[
        Optional[Path], O("--fixed-points", help="run.h5 (or run folder) of rnntk fixed-points, for --state fixed-point:I.", show_default=False)
    ] = None,
    spont_steps: Annotated[int, O("--spont-steps", min=0, help="Steps to the spontaneous state.")] = 500,
    input_kind: Annotated[InputKind, O("--input", help="Drive for --state trial:T: bits, noise or none.")] = InputKind.bits,
    layers: Annotated[str, O("--layers", help="Recurrent layers of a stack (online-lru): all, or e.g. 0,2.")] = "all",
    method: Annotated[
        EigMethod,
        O("--method", help="dense (all values, LAPACK), arnoldi (matrix-free restarted Krylov-Schur), arpack (scipy's ARPACK), power (dominant value)."),
    ] = EigMethod.dense,
    k: Annotated[int, O("--k", min=1, help="Eigenvalues reported per ordering.")] = 20,
    which: Annotated[EigWhich, O("--which", help="LM (largest |lambda|), LR (largest real part) or both.")] = EigWhich.both,
    tol: Annotated[float, O("--tol", help="Convergence tolerance (relative residual; arpack, power).")] = 1e-8,
    ncv: Annotated[Optional[int], O("--ncv", min=3, help="ARPACK basis size (default max(4k, 40)).")] = None,
    krylov: Annotated[Optional[int], O("--krylov", min=2, help="Arnoldi basis size m (default: max(60, 8 x wanted values)).")] = None,
    max_restarts: Annotated[int, O("--max-restarts", min=0, help="Krylov-Schur restarts at most (0: one unrestarted run).")] = 1000,
    power_iters: Annotated[int, O("--power-iters", min=1, help="Power iteration steps (at most).")] = 10000,
    max_dense_n: Annotated[int, O("--max-dense-n", min=1, help="--method dense refuses operators larger than this.")] = 4096,
    csv: Annotated[bool, O("--csv/--no-csv", help="Also write eigs.csv.")] = True,
) -> None:
    """Spectrum of any trained rnntk recurrent network: its recurrent weight, or its Jacobian at
    the spontaneous state, a time along a driven trial or a fixed point, to run.h5 (as
    cordsnet-eigs: /results/eigs/layer<i>_<LM|LR>), eigs.csv and one complex-plane PNG per layer
    (unit circle for discrete time, the imaginary axis for continuous time).

    Continuous models: eigenvalues of dF/dx in units of 1/tau (stable iff max Re < 0). Example:
    [bold]rnntk eigs runs/selftest-XYZ --state trial:200 --method arpack --k 6[/bold]."""
    import numpy as np
    import torch

    from rnntk.analysis.eigs import jacobian_operator, leading_eigs, weight_operator
    from rnntk.analysis.source import load_trained, make_drive
    from rnntk.core.models import as_recurrent_layers
    from rnntk.engine.files import write_text_atomic

    require_positive(tol=tol)
    kind, _, arg = state.partition(":")
    if kind not in ("spont", "zero", "trial", "fixed-point") or (kind in ("trial", "fixed-point")) != bool(arg) or (arg and not arg.isdigit()):
        raise UserError(f"bad --state '{state}': use spont, zero, trial:T or fixed-point:I (T, I integers >= 0)")
    if (kind == "fixed-point") != (fixed_points is not None):
        raise UserError("--state fixed-point:I and --fixed-points FILE go together")
    whiches = ["LM", "LR"] if which == EigWhich.both else [which.value]
    if method == EigMethod.power and whiches != ["LM"]:
        raise UserError("--method power finds the largest-|lambda| eigenvalue only: use --which LM (or --method arpack for LR)")
    model, name, model_path = load_trained(model_path)
    try:
        stack = as_recurrent_layers(model)
    except TypeError as e:
        raise UserError(f"{model_path} holds a {name} model, not a recurrent network rnntk can analyse ({e})") from None
    all_layers = stack.layers()
    stacked = len(all_layers) > 1 or all_layers[0][0] != ""
    if layers.strip() == "all":
        js = list(range(len(all_layers)))
    else:
        try:
            js = sorted({int(s) for s in layers.split(",")})
        except ValueError:
            raise UserError(f"bad --layers '{layers}': all, or comma-separated layer indices") from None
        if not js or js[0] < 0 or js[-1] >= len(all_layers):
            raise UserError(f"bad --layers '{layers}': the model has {len(all_layers)} recurrent layer(s)")
    if operator == EigOperator.recurrent:
        missing = [(all_layers[j][0] or name) for j in js if not hasattr(all_layers[j][1], "recurrent_weight")]
        if missing:
            raise UserError(
                f"--operator recurrent: {', '.join(missing)} has no state-independent recurrent weight (a gated recurrence): use --operator jacobian"
            )
    Ns = [all_layers[j][1].n for j in js]
    if method == EigMethod.dense and max(Ns) > max_dense_n:
        raise UserError(f"--method dense: N = {max(Ns)} > --max-dense-n {max_dense_n}; dense eig is O(N^3): use --method arpack")
    if method in (EigMethod.arpack, EigMethod.arnoldi) and k >= min(Ns) - 1:
        raise UserError(f"--method {method.value} needs --k < N - 1 = {min(Ns) - 1}: use --method dense for so small a network")
    xstar = ustar = None
    if kind == "fixed-point":
        if stacked:
            raise UserError("--state fixed-point: a stack of layers has no single fixed point file; use spont, zero or trial:T")
        xstar, ustar = _read_fixed_point(Path(str(fixed_points)), int(arg), all_layers[0][1].n)
    with opts.open_run(config={"model_path": str(model_path)}) as run:
        model = model.to(device=run.device, dtype=torch.float64)
        stack = as_recurrent_layers(model)
        all_layers = stack.layers()
        stop_check = lambda: run.check_interrupt(checkpoint=False)  # noqa: E731
        steps = {"spont": spont_steps, "zero": 0, "trial": int(arg or 0) + 1, "fixed-point": 0}[kind]
        dev, f64 = run.device, torch.float64
        with torch.no_grad():
            if kind == "trial":
                u = make_drive(input_kind.value, 1, steps, stack.n_in, generator=run.generator, device=dev, dtype=f64, zeros_for_none=stacked)
            else:
                u = torch.zeros(1, max(steps, 1), stack.n_in, device=dev, dtype=f64) if stacked else None
            inputs = stack.layer_inputs(u) if u is not None else [None] * len(all_layers)
        run.annotate(model=name, operator=operator.value, state=state, method=method.value)
        rows = ["layer,N,method,rank,which,real,imag,abs,residual,converged"]
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
            op = weight_operator(m) if operator == EigOperator.recurrent else jacobian_operator(m, x[0], u_at)
            start = run.rng(f"eigs/start/layer{j}")  # start vectors (Arnoldi, power; ARPACK's v0)
            try:
                res = leading_eigs(
                    op,
                    method.value,
                    k,
                    whiches,
                    krylov_m=krylov,
                    max_restarts=max_restarts,
                    tol=tol,
                    max_dense_n=max_dense_n,
                    ncv=ncv,
                    power_iters=power_iters,
                    generator=start,
                    seed=start.initial_seed(),
                    check=stop_check,
                )
            except np.linalg.LinAlgError as e:  # a subclass of ValueError: first
                raise NonFiniteError(0, "eigenvalues", float("nan"), note=f"the operator is not finite ({e})") from None
            except ValueError as e:
                raise UserError(str(e)) from None
            cont = m.time == "continuous"
            verdict = _eig_verdict(res, cont, operator == EigOperator.recurrent)
            tag = f"layer{j}"
            for w, r in res.items():
                run.result(
                    f"eigs/{tag}_{w}",
                    r.values,
                    N=op.N,
                    method=r.method,
                    which=w,
                    seconds=r.seconds,
                    n_matvec=r.n_matvec,
                    converged=bool(r.converged.all()),
                    time=m.time,
                    operator=operator.value,
                    state=state,
                    units="1/tau" if cont and operator == EigOperator.jacobian else "",
                    tau=float(getattr(m, "tau", 0.0)),
                )
                run.result(f"eigs/{tag}_{w}_residual", r.residuals)
                for i, (v, rr, c) in enumerate(zip(r.values, r.residuals, r.converged)):
                    rows.append(f"{j},{op.N},{r.method},{i + 1},{w},{v.real:.12g},{v.imag:.12g},{abs(v):.12g},{rr:.3g},{int(c)}")
            if operator == EigOperator.jacobian:
                run.result(f"eigs/{tag}_state", x[0], description="the state (n,) the Jacobian is taken at")
                if u_at is not None:
                    run.result(f"eigs/{tag}_input", u_at.reshape(-1), description="the input (n_in,) the Jacobian is taken at")
            final[tag] = dict(name=lname or name, N=op.N, time=m.time, **verdict, converged=bool(all(r.converged.all() for r in res.values())))
            print(f"{name}{' ' + lname if lname else ''} ({operator.value} at {state}, N = {op.N}): {_eig_line(verdict)}", file=sys.stderr)
            run.figure(
                _eig_plot(res, cont, operator.value, f"{name}{' ' + lname if lname else ''} ({operator.value}, {state}, {method.value}, N = {op.N})"),
                f"eigs_{tag}",
            )
        if csv:
            write_text_atomic(run.path("eigs.csv"), "\n".join(rows) + "\n")
        stab = [v["stable"] for v in final.values()]
        radii = [v["spectral_radius"] for v in final.values()]
        run.finish(
            layers=final,
            stable=False if False in stab else (True if all(s is True for s in stab) else "unknown"),
            max_spectral_radius=max(radii) if None not in radii else None,
            model_class=name,
            n_layers=len(final),
        )


def _read_fixed_point(path: Path, i: int, n: int) -> tuple[Any, Any]:
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
    if inp is not None and np_size(inp):
        u = torch.as_tensor(inp[i] if inp.ndim == 2 else inp, dtype=torch.float64)
    return torch.as_tensor(xs[i : i + 1], dtype=torch.float64), u


def np_size(a: Any) -> int:
    """Number of elements of an array-like."""
    return int(getattr(a, "size", 0))


def _eig_verdict(res: dict[str, Any], continuous: bool, weight: bool) -> dict[str, Any]:
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


def _eig_line(v: dict[str, Any]) -> str:
    def num(x: Any) -> str:
        return "unknown" if x is None else f"{x:.6g}"

    st = v["stable"]
    return f"spectral radius {num(v['spectral_radius'])}, max Re {num(v['max_real'])}; stable ({v['criterion']}): {'unknown' if st == 'unknown' else ('yes' if st else 'NO')}"


def _eig_plot(res: dict[str, Any], continuous: bool, operator: str, title: str) -> Any:
    """Eigenvalues in the complex plane: the unit circle (discrete), or the imaginary axis
    (continuous Jacobian; Re = 1 for a continuous recurrent weight)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5, 5))
    if continuous:
        edge = 1.0 if operator == "recurrent" else 0.0
        ax.axvline(edge, color="tab:red", lw=0.8, ls="--", label=f"Re λ = {edge:g} (stability)")
    else:
        th = np.linspace(0, 2 * np.pi, 400)
        ax.plot(np.cos(th), np.sin(th), color="0.6", lw=0.8, label="|λ| = 1")
    marks = {"LM": ("o", "tab:blue"), "LR": ("s", "tab:orange")}
    for w, r in res.items():
        mk, col = marks[w]
        ok = np.asarray(r.converged, bool)
        by = "|λ|" if w == "LM" else "Re λ"
        if ok.any():
            ax.scatter(r.values.real[ok], r.values.imag[ok], marker=mk, color=col, s=18, label=f"top-{len(r.values)} by {by} ({int(ok.sum())} converged)")
        if (~ok).any():
            ax.scatter(r.values.real[~ok], r.values.imag[~ok], marker=mk, facecolors="none", edgecolors=col, s=22, label=f"NOT converged ({int((~ok).sum())})")
    ax.axhline(0, color="k", lw=0.3)
    ax.set_xlabel("Re λ" + (" (1/τ)" if continuous and operator == "jacobian" else ""))
    ax.set_ylabel("Im λ")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return fig


def register(app: typer.Typer) -> None:
    """Add the analysis commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    engine_command(app, "lyapunov")(lyapunov_cmd)
    engine_command(app, "eigs")(eigs_cmd)
    from rnntk.analysis.fixed_points_cli import fixed_points_cmd

    engine_command(app, "fixed-points")(fixed_points_cmd)
    task_app = typer.Typer(help="Named tasks: rnntk task show NAME.", no_args_is_help=True)
    task_app.command("show")(task_show_cmd)
    app.add_typer(task_app, name="task")


def task_show_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A built-in task (double-reach, kalman, xor, ...) or neurogym:<EnvId>.", show_default=False)],
    png: Annotated[Optional[Path], O("--png", help="Render one trial (inputs, target, loss mask, periods shaded) to this PNG.", metavar="FILE")] = None,
    task_kwargs: Annotated[Optional[str], O("--task-kwargs", help="neurogym tasks: JSON of neurogym.make arguments (ms).", metavar="JSON")] = None,
    trials: Annotated[int, O("--trials", min=1, help="Trials sampled for the statistics.")] = 1000,
    seed: Annotated[int, O("--seed", help="Seed of the sampled trials.")] = 0,
) -> None:
    """Timing table (ms and s), trial-length statistics and channel names of a task; --png draws one trial.

    Example: [bold]rnntk task show neurogym:PerceptualDecisionMaking-v0 --task-kwargs '{"dt": 20}' --png pdm.png[/bold]."""
    from rnntk.analysis.task_show import task_show

    try:
        print(task_show(name, png, task_kwargs, trials, seed))
    except ValueError as e:
        raise UserError(" ".join(str(e).split())) from None
    except OSError as e:
        raise UserError(f"cannot write --png {png}: {e.strerror or e}") from None
