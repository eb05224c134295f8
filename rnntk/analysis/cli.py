"""The analysis commands (work on any model of the contract): ``rnntk lyapunov``."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from rnntk.engine.errors import NonFiniteError, UserError
from rnntk.engine.limits import check_fits, nbytes_of, oom_as_error
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
            help="An rnntk checkpoint of a recurrent rate network (model.pt or ckpt-last.pt), or a run whose model.pt to use.",
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
    """Lyapunov spectrum of a trained rnntk rate network, to run.h5, a CSV and a PNG.

    Supports checkpoints of VanillaRNN (rnntk floss) and LeakyRNN (rnntk selftest)."""
    import torch

    from rnntk.analysis.lyapunov import condition_numbers, long_term_jacobian_singular_values, lyapunov_spectrum
    from rnntk.core.leaky_rnn import LeakyRNN
    from rnntk.core.vanilla_rnn import VanillaRNN
    from rnntk.engine.checkpoint import load_checkpoint, load_state_into
    from rnntk.engine.device import resolve_dtype

    registry = {"VanillaRNN": VanillaRNN, "LeakyRNN": LeakyRNN}
    if model_path.is_dir() or model_path.suffix == ".h5":
        model_path = (model_path if model_path.is_dir() else model_path.parent) / "model.pt"
    ck = load_checkpoint(model_path)
    cls = registry.get(ck["model"])
    if cls is None:
        raise UserError(f"{model_path} holds a {ck['model'] or 'unnamed'} model, not a recurrent rate network rnntk can analyse ({', '.join(registry)})")
    hp = ck["hparams"]
    bad = [
        k
        for k, v in hp.items()
        if isinstance(v, (int, float))
        and not isinstance(v, bool)
        and (not math.isfinite(v) or v <= 0)
        and k in ("n", "n_hidden", "n_in", "n_out", "batch", "dt", "tau", "alpha")
    ]
    if bad:
        raise UserError(f"{model_path}: bad hyper-parameter {bad[0]} = {hp[bad[0]]} (must be a finite number > 0)")
    try:
        with oom_as_error(f"building the {ck['model']} of {model_path}"):
            model = cls(**hp)
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        raise UserError(f"{model_path}: hyper-parameters do not fit {ck['model']} ({' '.join(str(e).split())[:160]})") from None
    load_state_into(model, ck["state_dict"], source=str(model_path))
    parts = [h.strip() for h in horizons.split(",")]
    try:
        hs = [int(h) for h in parts] if horizons.strip() else []
    except ValueError:
        raise UserError(f"bad --horizons '{horizons}': use comma-separated integers (no empty entries)") from None
    if any(not 1 <= h <= steps for h in hs):
        raise UserError(f"bad --horizons '{horizons}': each must be between 1 and --steps {steps}")
    dt_ = resolve_dtype(dtype)
    N = model.n if hasattr(model, "n") else model.n_hidden
    kk = k or N
    if kk > N:
        raise UserError(f"bad --k {kk}: the network has N = {N} units")
    if warmup >= steps:
        raise UserError(f"bad --steps {steps}: must exceed --warmup {warmup}")
    from rnntk.engine.device import resolve_device

    isz = torch.empty((), dtype=dt_).element_size()
    n_win = (steps - warmup) / t_ons + 2
    need = (
        nbytes_of(n_traj, steps, model.n_in, itemsize=isz) * (input_kind != InputKind.none)  # the inputs
        + nbytes_of(n_win, n_traj, kk, itemsize=isz) * 2  # log|R_ii| of every QR window, and their logs
        + nbytes_of(n_traj, N, kk, itemsize=isz) * 4
        + nbytes_of(N, N, len(hs) + 2, itemsize=8)
    )  # bases, T_{t,0}, singular values
    check_fits(
        need,
        resolve_device(opts.device),
        f"a spectrum of --k {kk} over --steps {steps} for --n-traj {n_traj}",
        hint="use fewer --steps, a larger --tons, a smaller --k or --n-traj",
    )
    with opts.open_run(config={"model_path": str(model_path)}) as run:
        model = model.to(device=run.device, dtype=dt_)
        gen = run.generator
        n_in = model.n_in
        if input_kind == InputKind.none:
            u = None
        elif input_kind == InputKind.bits:
            u = torch.randint(0, 2, (n_traj, steps, n_in), generator=gen).to(run.device, dt_)
        else:
            u = torch.randn(n_traj, steps, n_in, generator=gen).to(run.device, dt_)
        x0 = torch.randn(n_traj, N, generator=gen).to(run.device, dt_) * 0.1
        stop_check = lambda: run.check_interrupt(checkpoint=False)  # noqa: E731  # a signal stops the spectrum within one step
        with torch.no_grad():
            res = lyapunov_spectrum(model, u, kk, x0=x0, steps=steps, warmup=warmup, t_ons=t_ons, generator=gen, check=stop_check)
            lam = res.exponents
            if not torch.isfinite(lam).all():
                raise NonFiniteError(res.steps, "lyapunov_exponent", float("nan"), note="the dynamics exploded")
            sv = long_term_jacobian_singular_values(model, None if u is None else u[:1], hs, x0=x0[:1], check=stop_check) if hs else None
            if sv is not None and not torch.isfinite(sv).all():
                raise NonFiniteError(max(hs), "jac_singular_value", float("nan"), note="the long-term Jacobian overflowed")
        mean = lam.mean(0)
        sem = lam.std(0) / n_traj**0.5 if n_traj > 1 else torch.zeros_like(lam[0])  # std already uses n-1
        run.result("lyapunov", lam, description="exponents per trajectory (per step), (n_traj, k)")
        run.result("lyapunov_mean", mean)
        run.result("lyapunov_sem", sem)
        run.result("lyapunov_running", res.running().mean(1), description="running estimate averaged over trajectories (n_windows, k)")
        if sv is not None:
            run.result("jac_singular_values", sv, horizons=hs)
            run.result("cond_number", condition_numbers(sv, kk), horizons=hs)
        lines = ["index,lambda_mean,lambda_sem"] + [f"{i + 1},{float(m):.8g},{float(s):.8g}" for i, (m, s) in enumerate(zip(mean, sem))]
        from rnntk.engine.files import write_text_atomic

        write_text_atomic(run.path("lyapunov.csv"), "\n".join(lines) + "\n")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        idx = torch.arange(1, kk + 1)
        ax.errorbar(idx, mean.cpu(), yerr=sem.cpu(), fmt="o-", ms=3)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("index i")
        ax.set_ylabel("λ_i (per step)")
        ax.set_title(f"{ck['model']}: {n_traj} trajectories of {steps} steps")
        run.figure(fig, "lyapunov_spectrum")
        run.finish(lambda_1=float(mean[0]), lambda_mean=float(mean.mean()), k=kk)


def register(app: typer.Typer) -> None:
    """Add the analysis commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    engine_command(app, "lyapunov")(lyapunov_cmd)
