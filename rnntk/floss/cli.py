"""``rnntk floss`` (task training with gradient flossing) and ``rnntk lyapunov MODEL.pt``."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from rnntk.engine.errors import NonFiniteError, UserError
from rnntk.engine.limits import check_fits, nbytes_of, oom_as_error
from rnntk.engine.options import RunOptions, engine_command, require_positive

O = typer.Option
F = "Flossing"
N = "Network"
T = "Task"


class FlossTask(str, Enum):
    xor = "xor"
    parity = "parity"
    copy = "copy"


class Init(str, Enum):
    gaussian = "gaussian"
    orthogonal = "orthogonal"


class Reduce(str, Enum):
    mean = "mean"
    sum = "sum"


def floss_cmd(
    opts: RunOptions,
    task: Annotated[FlossTask, O("--task", help="xor (2 bits), parity (--bits), or copy.", rich_help_panel=T)] = FlossTask.xor,
    delay: Annotated[int, O("--delay", help="Longest lag D in steps (paper convention; upstream's XOR 'delay 10' is D = 20).", rich_help_panel=T)] = 20,
    bits: Annotated[int, O("--bits", min=1, help="Bits in the parity (task parity).", rich_help_panel=T)] = 4,
    trial_len: Annotated[int, O("--trial-len", min=2, help="Steps per training trial.", rich_help_panel=T)] = 300,
    upstream_window: Annotated[bool, O("--upstream-window", help="Score from t = D-1 like upstream (one unlearnable step).", rich_help_panel=T)] = False,
    n_units: Annotated[int, O("--n-units", "-N", min=1, help="Units.", rich_help_panel=N)] = 80,
    g: Annotated[float, O("--g", help="Recurrent gain.", rich_help_panel=N)] = 1.0,
    init: Annotated[Init, O("--init", help="Recurrent init.", rich_help_panel=N)] = Init.gaussian,
    alpha: Annotated[float, O("--alpha", help="Leak dt/tau (1 = upstream, no leak).", rich_help_panel=N)] = 1.0,
    epochs: Annotated[int, O("--epochs", min=0, help="Task epochs (one fresh batch and one Adam step each).")] = 3001,
    batch: Annotated[int, O("--batch", min=1, help="Trials per epoch.")] = 16,
    lr: Annotated[float, O("--lr", help="Task Adam learning rate.")] = 1e-3,
    clip: Annotated[float, O("--clip", min=0.0, help="Per-tensor gradient norm clip (0 = off).")] = 0.03,
    train_x0: Annotated[bool, O("--train-x0/--no-train-x0", help="Train the initial states (upstream: yes).", rich_help_panel=N)] = True,
    no_floss: Annotated[bool, O("--no-floss", help="Baseline: no flossing at all.", rich_help_panel=F)] = False,
    floss_before: Annotated[int, O("--floss-before", min=0, help="Flossing steps before training.", rich_help_panel=F)] = 500,
    floss_every: Annotated[int, O("--floss-every", min=0, help="Epochs between flossing episodes during training.", rich_help_panel=F)] = 100,
    floss_epochs: Annotated[int, O("--floss-epochs", min=0, help="Flossing steps per episode during training.", rich_help_panel=F)] = 500,
    floss_times: Annotated[int, O("--floss-times", min=0, help="Episodes during training (at most).", rich_help_panel=F)] = 2,
    floss_k: Annotated[int, O("--floss-k", min=1, help="Exponents flossed (<= N).", rich_help_panel=F)] = 75,
    floss_target: Annotated[float, O("--floss-target", help="Target exponent.", rich_help_panel=F)] = 0.0,
    floss_len: Annotated[int, O("--floss-len", min=2, help="Steps per flossing estimate.", rich_help_panel=F)] = 55,
    floss_warmup: Annotated[int, O("--floss-warmup", min=0, help="Steps before accumulating.", rich_help_panel=F)] = 16,
    floss_tons: Annotated[
        int,
        O(
            "--floss-tons",
            min=1,
            help="Steps between QRs while flossing: 2 gives the same exponents as upstream's 1 (same window, exact in exact arithmetic, tested) with half the QRs.",
            rich_help_panel=F,
        ),
    ] = 2,
    floss_lr: Annotated[float, O("--floss-lr", help="Flossing Adam learning rate.", rich_help_panel=F)] = 1e-3,
    floss_reduce: Annotated[Reduce, O("--floss-reduce", help="Mean (upstream) or sum of squared exponents.", rich_help_panel=F)] = Reduce.mean,
    eval_every: Annotated[int, O("--eval-every", min=1, help="Test accuracy on a held-out batch every N epochs.")] = 100,
    eval_batch: Annotated[int, O("--eval-batch", min=1, help="Held-out trials.")] = 256,
    le_every: Annotated[int, O("--le-every", min=0, help="Full spectrum of a probe sequence every N epochs (0 = only around flossing).")] = 500,
    le_len: Annotated[int, O("--le-len", min=10, help="Probe sequence length for spectra.")] = 1000,
) -> None:
    """Train a tanh RNN on a delayed XOR/parity/copy task with gradient flossing (Engelken 2023).

    Flossing pushes the first k Lyapunov exponents towards zero by gradient descent through the
    QR-based spectrum, before training and in a few episodes during it; this keeps gradients
    from vanishing over long delays. [bold]--no-floss[/bold] is the baseline. Example:
    [bold]rnntk floss --task xor --delay 40[/bold] vs [bold]rnntk floss --task xor --delay 40 --no-floss[/bold]."""
    from rnntk.floss.delayed_xor import check_delay
    from rnntk.floss.flossing import FlossSchedule
    from rnntk.floss.train import FlossConfig, train_floss

    n_bits = {"xor": 2, "copy": 1, "parity": bits}[task.value]
    try:
        check_delay(delay, n_bits, trial_len)
    except ValueError as e:
        raise UserError(f"bad --delay/--trial-len: {e}") from None
    if floss_k > n_units:
        raise UserError(f"bad --floss-k {floss_k}: at most --n-units = {n_units} exponents exist")
    require_positive(lr=lr, floss_lr=floss_lr, alpha=alpha)
    for name, v in (("g", g), ("floss-target", floss_target), ("clip", clip)):
        if not math.isfinite(v):
            raise UserError(f"bad --{name} {v}: must be a finite number")
    if alpha > 1:
        raise UserError(f"bad --alpha {alpha}: must be in (0, 1]")
    if floss_warmup >= floss_len:
        raise UserError(f"bad --floss-len {floss_len}: must exceed --floss-warmup {floss_warmup}")
    from rnntk.engine.device import resolve_device

    need = (
        nbytes_of(batch, trial_len, n_units) * 4
        + nbytes_of(eval_batch, trial_len, n_units) * 2  # task BPTT and test batch (float32)
        + nbytes_of(le_len, n_units, n_units + 2)
        + nbytes_of(floss_len, n_units, floss_k) * 4
        + nbytes_of(n_units, n_units) * 8
    )
    check_fits(
        need,
        resolve_device(opts.device),
        f"a network of --n-units {n_units} with --batch {batch} x --trial-len {trial_len} and --le-len {le_len}",
        hint="use smaller --n-units/--batch/--trial-len/--le-len/--eval-batch",
    )
    schedule = FlossSchedule(0, 0, 0, 0) if no_floss else FlossSchedule(floss_before, floss_every, floss_epochs, floss_times)
    cfg = FlossConfig(
        n_bits=n_bits,
        delay=delay,
        n_units=n_units,
        g=g,
        init=init.value,
        alpha=alpha,
        trial_len=trial_len,
        batch=batch,
        epochs=epochs,
        lr=lr,
        clip=clip,
        train_x0=train_x0,
        upstream_window=upstream_window,
        schedule=schedule,
        floss_k=floss_k,
        floss_len=floss_len,
        floss_warmup=floss_warmup,
        floss_tons=floss_tons,
        floss_lr=floss_lr,
        floss_target=floss_target,
        floss_reduce=floss_reduce.value,
        eval_every=eval_every,
        eval_batch=eval_batch,
        le_every=le_every,
        le_len=le_len,
    )
    with opts.open_run() as run:
        run.h5.set_attrs(task=task.value, n_bits=n_bits, flossing=not no_floss)
        train_floss(cfg, run)


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
    """Add the floss commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    engine_command(app, "floss", resumable=("epochs",))(floss_cmd)
    engine_command(app, "lyapunov")(lyapunov_cmd)
