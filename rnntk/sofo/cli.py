"""``rnntk sofo-train``: SOFO (and/or Adam+BPTT) on a built-in task, on the shared engine.

Every option (name, default, help, validation) is a field of :class:`rnntk.sofo.config.TrainConfig`."""

from __future__ import annotations

import inspect
from typing import Annotated

import typer

from rnntk.engine.config_cli import config_command
from rnntk.engine.errors import UserError
from rnntk.engine.options import RunOptions
from rnntk.sofo.config import PRESETS, Preset, TrainConfig, preset_defaults

__all__ = ["PRESETS", "register", "sofo_train"]

_PRESET = inspect.Parameter(
    "preset",
    inspect.Parameter.KEYWORD_ONLY,
    default=Preset.cpu_small,
    annotation=Annotated[
        Preset, typer.Option("--preset", help="Sizes for unset options: cpu-small (about a minute on 2 cores) or paper (upstream sizes, GPU).")
    ],
)


def _check_fits(cfg: TrainConfig, device: str) -> None:
    """Refuse (one line, exit 2) sizes whose main tensors cannot fit: the weights (~hidden²),
    K tangent copies of them, and the batch's states and K state tangents over the trial."""
    from rnntk.engine.device import resolve_device
    from rnntk.engine.limits import check_fits

    h, K, B = float(cfg.hidden or 1), float(cfg.n_tangents), float(cfg.batch or 1)
    T = float(cfg.steps) if cfg.task == "kalman" else (32.0 if cfg.task == "lorenz" else cfg.duration / cfg.dt)
    P = h * h + 8 * h
    need = 4.0 * (P * (min(K, P) + 4) + B * T * h * 3 + B * min(K, P) * h * 4)
    check_fits(
        need,
        resolve_device(device),
        f"--hidden {int(h)} with -K {int(K)} tangents and --batch {int(B)} over {int(T)} steps",
        hint="use smaller --hidden/-K/--batch",
    )


def sofo_train(opts: RunOptions, cfg: TrainConfig, preset: Preset) -> None:
    """Train an RNN with SOFO, second-order forward-mode optimisation (Yu et al. 2024).

    Each iteration pushes K random tangent directions through the network in one batched
    forward pass (memory constant in trial length), sketches the gradient and the
    Gauss–Newton matrix in that K-dim subspace, and takes a damped Gauss–Newton step.
    [bold]--optimizer both[/bold] trains Adam+BPTT side by side on identical data.
    Example: [bold]rnntk sofo-train --task double-reach --optimizer both[/bold]."""
    from rnntk.sofo.train import make_problem_for, train

    _check_fits(cfg, opts.device)
    try:
        problem = make_problem_for(cfg)
    except ValueError as e:
        raise UserError(str(e)) from None
    if cfg.tangent_impl == "manual" and not problem.has_manual_tangents:
        raise UserError(f"--tangent-impl manual: task {cfg.task} has no hand-written tangents; use auto or generic")
    with opts.open_run() as run:
        run.annotate(task=cfg.task, optimizer=cfg.optimizer, problem=str(problem.describe()))
        train(problem, cfg, run)


def register(app: typer.Typer) -> None:
    """Add the sofo commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    config_command(app, "sofo-train", TrainConfig, extra=[_PRESET], extra_after="task", defaults=preset_defaults, resumable=("iters", "time_budget"))(
        sofo_train
    )
    from rnntk.engine.figures import register_figures
    from rnntk.sofo.figures import sofo_figures

    register_figures("sofo-train", sofo_figures)
