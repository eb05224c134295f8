"""``rnntk ode-train``: neural-ODE training with the GQ adjoint or its baselines.

Every option (name, default, help, validation) is a field of :class:`rnntk.ode.config.ODEConfig`."""

from __future__ import annotations

import typer

from rnntk.engine.config_cli import config_command
from rnntk.engine.options import RunOptions
from rnntk.ode.config import ODEConfig


def ode_train(opts: RunOptions, cfg: ODEConfig) -> None:
    """Train a neural ODE with the Gauss-Legendre quadrature adjoint (Norcliffe & Deisenroth 2023).

    The GQ adjoint solves only the state and its adjoint backwards and evaluates the parameter
    gradient integral by Gauss-Legendre quadrature, instead of carrying one adjoint per
    parameter through every solver stage. Compare with [bold]--adjoint adjoint|seminorm|direct[/bold]."""
    from rnntk.engine.device import resolve_device
    from rnntk.engine.limits import check_fits, nbytes_of
    from rnntk.ode.train import train_ode

    # the vector field's weights (with Adam moments and gradients) and, per solver stage, the
    # batch's states, hidden activations and outputs at every output time (float32 or float64)
    rows = max(cfg.batch, cfg.n_train)
    need = (
        nbytes_of(cfg.width + cfg.n_units + 2, cfg.width + cfg.n_units + 2, 8, itemsize=8)
        + nbytes_of(rows, cfg.width + cfg.n_units + 2, cfg.ntimes + 7, 4, itemsize=8)
        + nbytes_of(rows, cfg.n_cos + 2, 64, itemsize=8)
    )
    check_fits(
        need,
        resolve_device(opts.device),
        f"--width {cfg.width} with --batch/--n-train {rows} and --ntimes {cfg.ntimes}",
        hint="use smaller --width/--batch/--n-train/--ntimes/--n-units",
    )
    with opts.open_run() as run:
        run.annotate(task=cfg.task, adjoint=cfg.adjoint)
        train_ode(cfg, run)


def register(app: typer.Typer) -> None:
    """Add the ode commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    config_command(app, "ode-train", ODEConfig, resumable=("epochs",))(ode_train)
    from rnntk.engine.figures import register_figures
    from rnntk.ode.figures import trajectories

    register_figures("ode-train", trajectories)
