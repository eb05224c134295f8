"""``rnntk selftest``: a short real training run that checks an install, a device and an
output filesystem end to end (HDF5 writes, atomic renames, checkpoints, --resume)."""

from __future__ import annotations

import time

import typer

from rnntk.engine.config_cli import config_command
from rnntk.engine.limits import overflow_as_nonfinite
from rnntk.engine.options import RunOptions
from rnntk.selftest.config import SelftestConfig


def _check_fits(hidden: int, batch: int, steps: int, device: str) -> None:
    """Refuse (one line, exit 2) sizes whose main tensors cannot fit in free memory, before
    allocating: the recurrent weights with their gradient and Adam's two moments (4 copies of
    hidden x hidden float32) and the rates of the training and validation trials (batch + 64
    trials x steps x hidden, kept for backpropagation, about 3 tensors each)."""
    from rnntk.engine.device import resolve_device
    from rnntk.engine.limits import check_fits, nbytes_of

    need = 4 * nbytes_of(hidden, hidden) + 3 * nbytes_of(batch + 64, steps, hidden)
    check_fits(need, resolve_device(device), f"--hidden {hidden} with --batch {batch} over --steps {steps}", "use a smaller --hidden/--batch/--steps")


def selftest(opts: RunOptions, cfg: SelftestConfig) -> None:
    """Check an install, a device and a filesystem with a short real training run.

    Trains a small leaky tanh RNN to integrate noisy evidence (Adam + BPTT) on the shared
    engine, writing a complete run folder. Use it on a new machine, GPU or cluster
    filesystem: [bold]rnntk selftest --device cuda --out $SCRATCH/rnntk-check[/bold]."""
    _check_fits(cfg.hidden, cfg.batch, cfg.steps, opts.device)
    import torch

    from rnntk.core.leaky_rnn import LeakyRNN
    from rnntk.selftest.integrate import integration_trials

    with opts.open_run() as run:
        model = LeakyRNN(1, cfg.hidden, 1, dt=0.01, tau=0.1).to(run.device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        run.track(model, opt, hparams=model.hparams())
        val = integration_trials(64, cfg.steps, generator=run.rng("selftest/val"))
        vx, vy = val.inputs.to(run.device), val.targets.to(run.device)
        for step in run.steps(cfg.iters, desc="selftest"):
            tr = integration_trials(cfg.batch, cfg.steps, generator=run.generator)
            y, _ = model(tr.inputs.to(run.device))
            loss = torch.mean((y - tr.targets.to(run.device)) ** 2)
            opt.zero_grad()
            loss.backward()
            with overflow_as_nonfinite(step, "adam_update"):  # --lr 1e38: exit 3, last good checkpoint kept
                opt.step()
            if step == cfg.nan_at:
                loss = loss * float("nan")
            metrics = {"loss": loss.detach()}
            # a schedule that does not depend on --iters: a run resumed with more --iters then
            # logs exactly what an uninterrupted run logs (the final value is in val_loss_final)
            if step % 10 == 0:
                with torch.no_grad():
                    metrics["val_loss"] = torch.mean((model(vx)[0] - vy) ** 2)
            run.log(step, **metrics)
            if cfg.sleep:
                time.sleep(cfg.sleep)
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
    config_command(app, "selftest", SelftestConfig, resumable=("iters", "sleep", "nan_at"))(selftest)
