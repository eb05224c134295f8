"""``rnntk floss``: task training with gradient flossing."""

from __future__ import annotations

import math
from enum import Enum
from typing import Annotated

import typer

from rnntk.engine.errors import UserError
from rnntk.engine.limits import check_fits, nbytes_of
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


def register(app: typer.Typer) -> None:
    """Add the floss commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    engine_command(app, "floss", resumable=("epochs",))(floss_cmd)
