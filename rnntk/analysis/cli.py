"""The analysis commands (work on any model of the contract): ``rnntk lyapunov``."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rnntk.engine.errors import NonFiniteError, UserError
from rnntk.engine.limits import check_fits, nbytes_of
from rnntk.engine.options import RunOptions, engine_command

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


def register(app: typer.Typer) -> None:
    """Add the analysis commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    engine_command(app, "lyapunov")(lyapunov_cmd)
