"""``rnntk ode-train``: neural-ODE training with the GQ adjoint or its baselines."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from rnntk.engine.errors import UserError
from rnntk.engine.options import RunOptions, engine_command, require_positive

O = typer.Option
S = "Solver and gradient"


class ODETask(str, Enum):
    ou = "ou"
    spheres = "spheres"
    sines = "sines"
    g1d = "g1d"
    rate_rnn = "rate-rnn"


class Adjoint(str, Enum):
    gq = "gq"
    adjoint = "adjoint"
    seminorm = "seminorm"
    direct = "direct"
    sde_direct = "sde-direct"
    sde_adjoint = "sde-adjoint"
    auto = "auto"


class Trajectory(str, Enum):
    recompute = "recompute"
    store = "store"


class Times(str, Enum):
    regular = "regular"
    irregular = "irregular"


TASK_DEFAULTS = {"spheres": (40, 3e-3), "g1d": (50, 1e-2), "sines": (100, 1e-3), "rate-rnn": (50, 1e-2), "ou": (30, 1e-2)}


def ode_train(
    opts: RunOptions,
    task: Annotated[
        ODETask, O("--task", help="spheres (classification), sines (second-order ODE), g1d, rate-rnn (fit a leaky rate RNN's trajectories).")
    ] = ODETask.spheres,
    adjoint: Annotated[
        Adjoint,
        O(
            "--adjoint",
            help="Gradient: gq (Gauss-Legendre quadrature adjoint), adjoint / seminorm (torchdiffeq), direct (backprop through the solver), auto (gq for at most 4 output intervals and at least 100 parameters per state number, else direct), sde-direct / sde-adjoint (torchsde, --task ou).",
            rich_help_panel=S,
        ),
    ] = Adjoint.gq,
    width: Annotated[int, O("--width", min=1, help="Hidden width of the MLP vector field.")] = 100,
    epochs: Annotated[
        Optional[int], O("--epochs", min=1, help="Epochs (passes over the training set) [per task: spheres 40, g1d 50, sines 100, rate-rnn 50].")
    ] = None,
    batch: Annotated[int, O("--batch", min=1, help="Batch size (spheres, g1d).")] = 200,
    lr: Annotated[Optional[float], O("--lr", help="Adam learning rate [per task: spheres 3e-3, g1d 1e-2, sines 1e-3, rate-rnn 1e-2].")] = None,
    rtol: Annotated[float, O("--rtol", help="Solver relative tolerance.", rich_help_panel=S)] = 1e-3,
    atol: Annotated[float, O("--atol", help="Solver absolute tolerance.", rich_help_panel=S)] = 1e-3,
    method: Annotated[str, O("--method", help="torchdiffeq solver (dopri5, bosh3, adaptive_heun, dopri8, rk4, ...).", rich_help_panel=S)] = "dopri5",
    gtol: Annotated[float, O("--gtol", help="GQ node budget constant (larger = more nodes; not a tolerance).", rich_help_panel=S)] = 0.1,
    gq_nmin: Annotated[int, O("--gq-nmin", min=1, help="At least this many nodes per interval (upstream: 1).", rich_help_panel=S)] = 2,
    gq_trajectory: Annotated[
        Trajectory,
        O(
            "--gq-trajectory",
            help="recompute (re-solve x backwards) or store (dense forward interpolant; use it for fast-decaying rate RNNs).",
            rich_help_panel=S,
        ),
    ] = Trajectory.recompute,
    n_train: Annotated[int, O("--n-train", min=2, help="Training points (spheres: both classes together; g1d).")] = 1000,
    ntimes: Annotated[int, O("--ntimes", min=2, help="Output times per series (sines, rate-rnn).")] = 10,
    times: Annotated[Times, O("--times", help="Regular or irregular output times (sines).")] = Times.regular,
    n_units: Annotated[int, O("--n-units", min=1, help="Units of the rate RNN (rate-rnn).")] = 20,
    tau: Annotated[float, O("--tau", help="Time constant of the rate RNN in seconds (rate-rnn, T = 1 s).")] = 0.05,
    n_cos: Annotated[int, O("--ncos", min=1, help="Cosine terms of the Wong-Zakai noise (ou).", rich_help_panel=S)] = 10,
    sde_dt: Annotated[float, O("--sde-dt", help="torchsde step for evaluation and the sde-* baselines (ou).", rich_help_panel=S)] = 0.01,
) -> None:
    """Train a neural ODE with the Gauss-Legendre quadrature adjoint (Norcliffe & Deisenroth 2023).

    The GQ adjoint solves only the state and its adjoint backwards and evaluates the parameter
    gradient integral by Gauss-Legendre quadrature, instead of carrying one adjoint per
    parameter through every solver stage. Compare with [bold]--adjoint adjoint|seminorm|direct[/bold]."""
    from torchdiffeq._impl.odeint import SOLVERS

    from rnntk.ode.train import ODEConfig, train_ode

    d_epochs, d_lr = TASK_DEFAULTS[task.value]
    epochs = epochs if epochs is not None else d_epochs
    lr = lr if lr is not None else d_lr
    require_positive(lr=lr, rtol=rtol, atol=atol, gtol=gtol, tau=tau, sde_dt=sde_dt)
    if method not in SOLVERS:
        raise UserError(f"bad --method '{method}': use one of {', '.join(sorted(SOLVERS))}")
    if adjoint.value.startswith("sde-") and task != ODETask.ou:
        raise UserError(f"--adjoint {adjoint.value} trains an SDE with torchsde: only --task ou has one")
    if gq_trajectory == Trajectory.store and method != "dopri5":
        raise UserError("--gq-trajectory store needs --method dopri5 (torchdiffeq's dense output)")
    from rnntk.engine.device import resolve_device
    from rnntk.engine.limits import check_fits, nbytes_of

    # the vector field's weights (with Adam moments and gradients) and, per solver stage, the
    # batch's states, hidden activations and outputs at every output time (float32 or float64)
    rows = max(batch, n_train)
    need = (
        nbytes_of(width + n_units + 2, width + n_units + 2, 8, itemsize=8)
        + nbytes_of(rows, width + n_units + 2, ntimes + 7, 4, itemsize=8)
        + nbytes_of(rows, n_cos + 2, 64, itemsize=8)
    )
    check_fits(
        need,
        resolve_device(opts.device),
        f"--width {width} with --batch/--n-train {rows} and --ntimes {ntimes}",
        hint="use smaller --width/--batch/--n-train/--ntimes/--n-units",
    )
    cfg = ODEConfig(
        task=task.value,
        adjoint=adjoint.value,
        width=width,
        epochs=epochs,
        batch=batch,
        lr=lr,
        rtol=rtol,
        atol=atol,
        method=method,
        gtol=gtol,
        gq_nmin=gq_nmin,
        gq_trajectory=gq_trajectory.value,
        ntimes=ntimes,
        irregular=times == Times.irregular,
        n_units=n_units,
        tau=tau,
        n_cos=n_cos,
        sde_dt=sde_dt,
        n_train=n_train,
    )
    with opts.open_run(config={"epochs": epochs, "lr": lr}) as run:
        run.h5.set_attrs(task=task.value, adjoint=adjoint.value)
        train_ode(cfg, run)


def register(app: typer.Typer) -> None:
    """Add the ode commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    engine_command(app, "ode-train", resumable=("epochs",))(ode_train)
