"""``rnntk floss``: task training with gradient flossing.

Every option (name, default, help, validation) is a field of :class:`rnntk.floss.config.FlossConfig`."""

from __future__ import annotations

import typer

from rnntk.engine.config_cli import config_command
from rnntk.engine.limits import check_fits, nbytes_of
from rnntk.engine.options import RunOptions
from rnntk.floss.config import FlossConfig


def floss_cmd(opts: RunOptions, cfg: FlossConfig) -> None:
    """Train a tanh RNN on a delayed XOR/parity/copy task with gradient flossing (Engelken 2023).

    Flossing pushes the first k Lyapunov exponents towards zero by gradient descent through the
    QR-based spectrum, before training and in a few episodes during it; this keeps gradients
    from vanishing over long delays. [bold]--no-floss[/bold] is the baseline. Example:
    [bold]rnntk floss --task xor --delay 40[/bold] vs [bold]rnntk floss --task xor --delay 40 --no-floss[/bold]."""
    from rnntk.engine.device import resolve_device
    from rnntk.floss.train import train_floss

    need = (
        nbytes_of(cfg.batch, cfg.trial_len, cfg.n_units) * 4
        + nbytes_of(cfg.eval_batch, cfg.trial_len, cfg.n_units) * 2  # task BPTT and test batch (float32)
        + nbytes_of(cfg.le_len, cfg.n_units, cfg.n_units + 2)
        + nbytes_of(cfg.floss_len, cfg.n_units, cfg.floss_k) * 4
        + nbytes_of(cfg.n_units, cfg.n_units) * 8
    )
    check_fits(
        need,
        resolve_device(opts.device),
        f"a network of --n-units {cfg.n_units} with --batch {cfg.batch} x --trial-len {cfg.trial_len} and --le-len {cfg.le_len}",
        hint="use smaller --n-units/--batch/--trial-len/--le-len/--eval-batch",
    )
    with opts.open_run() as run:
        run.annotate(task=cfg.task, n_bits=cfg.n_bits, flossing=not cfg.no_floss)
        train_floss(cfg, run)


def register(app: typer.Typer) -> None:
    """Add the floss commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    config_command(app, "floss", FlossConfig, resumable=("epochs",))(floss_cmd)
    from rnntk.engine.figures import register_figures
    from rnntk.floss.figures import floss_figures

    register_figures("floss", floss_figures)
