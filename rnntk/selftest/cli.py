"""``rnntk selftest``: a short real training run that checks an install, a device and an
output filesystem end to end (HDF5 writes, atomic renames, checkpoints, --resume)."""

from __future__ import annotations

import math
import time
from typing import Annotated

import typer

from rnntk.engine.errors import UserError
from rnntk.engine.limits import overflow_as_nonfinite
from rnntk.engine.options import RunOptions, engine_command, require_positive

SLEEP_MAX = 1e6  # seconds per step (11.6 days); time.sleep overflows near 9.2e9


def _check_fits(hidden: int, batch: int, steps: int, device: str) -> None:
    """Refuse (one line, exit 2) sizes whose main tensors cannot fit in free memory, before
    allocating: the recurrent weights with their gradient and Adam's two moments (4 copies of
    hidden x hidden float32) and the rates of the training and validation trials (batch + 64
    trials x steps x hidden, kept for backpropagation, about 3 tensors each)."""
    from rnntk.engine.device import resolve_device
    from rnntk.engine.limits import check_fits, nbytes_of

    need = 4 * nbytes_of(hidden, hidden) + 3 * nbytes_of(batch + 64, steps, hidden)
    check_fits(need, resolve_device(device), f"--hidden {hidden} with --batch {batch} over --steps {steps}", "use a smaller --hidden/--batch/--steps")


def selftest(
    opts: RunOptions,
    iters: Annotated[int, typer.Option("--iters", min=1, help="Training steps.")] = 100,
    hidden: Annotated[int, typer.Option("--hidden", min=1, help="Hidden units.")] = 16,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Trials per step.")] = 32,
    steps: Annotated[int, typer.Option("--steps", min=2, help="Time steps per trial (dt = 10 ms).")] = 50,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 3e-3,
    nan_at: Annotated[int, typer.Option("--nan-at", help="Inject a NaN loss at this step, to check the non-finite guard (-1: never).")] = -1,
    sleep: Annotated[float, typer.Option("--sleep", min=0.0, help="Seconds to sleep per step (to test signals and progress).")] = 0.0,
) -> None:
    """Check an install, a device and a filesystem with a short real training run.

    Trains a small leaky tanh RNN to integrate noisy evidence (Adam + BPTT) on the shared
    engine, writing a complete run folder. Use it on a new machine, GPU or cluster
    filesystem: [bold]rnntk selftest --device cuda --out $SCRATCH/rnntk-check[/bold]."""
    require_positive(lr=lr)
    if not (math.isfinite(sleep) and sleep <= SLEEP_MAX):  # time.sleep overflows past time_t
        raise UserError(f"bad --sleep {sleep}: must be a finite number of seconds <= {SLEEP_MAX:g}")
    _check_fits(hidden, batch, steps, opts.device)
    import torch

    from rnntk.core.leaky_rnn import LeakyRNN
    from rnntk.selftest.integrate import integration_trials

    with opts.open_run() as run:
        model = LeakyRNN(1, hidden, 1, dt=0.01, tau=0.1).to(run.device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        run.track(model, opt, hparams=model.hparams())
        val = integration_trials(64, steps, generator=torch.Generator().manual_seed(run.seed + 1))
        vx, vy = val.inputs.to(run.device), val.targets.to(run.device)
        for step in run.steps(iters, desc="selftest"):
            tr = integration_trials(batch, steps, generator=run.generator)
            y, _ = model(tr.inputs.to(run.device))
            loss = torch.mean((y - tr.targets.to(run.device)) ** 2)
            opt.zero_grad()
            loss.backward()
            with overflow_as_nonfinite(step, "adam_update"):  # --lr 1e38: exit 3, last good checkpoint kept
                opt.step()
            if step == nan_at:
                loss = loss * float("nan")
            metrics = {"loss": loss.detach()}
            # a schedule that does not depend on --iters: a run resumed with more --iters then
            # logs exactly what an uninterrupted run logs (the final value is in val_loss_final)
            if step % 10 == 0:
                with torch.no_grad():
                    metrics["val_loss"] = torch.mean((model(vx)[0] - vy) ** 2)
            run.log(step, **metrics)
            if sleep:
                time.sleep(sleep)
        with torch.no_grad():
            vy_hat, rates = model(vx[:8])
            val_loss = torch.mean((model(vx)[0] - vy) ** 2).item()
        run.trace("activity", rates, dt=model.dt, units="a.u.", description="tanh rates of 8 validation trials")
        run.trace("output", vy_hat, dt=model.dt, dims=("trial", "time", "channel"), description="network output")
        run.trace("target", vy[:8], dt=model.dt, dims=("trial", "time", "channel"), description="running integral")
        run.trials({"coherence": val.table["coherence"][:8]})
        run.result("val_loss_final", val_loss)
        run.save_model()
        run.finish(val_loss=val_loss)


def register(app: typer.Typer) -> None:
    """Add the selftest commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    engine_command(app, "selftest", resumable=("iters", "sleep", "nan_at"))(selftest)
