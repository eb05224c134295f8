"""The analysis commands (work on any model of the contract): ``rnntk lyapunov``, ``rnntk eigs``,
``rnntk fixed-points`` and ``rnntk task show``. This module only registers them: options are
the fields of :mod:`rnntk.analysis.config`, bodies in ``lyapunov_run``, ``eigs_run`` and
``fixed_points_cli``, figures (from run.h5) in :mod:`rnntk.analysis.figures`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Optional

import typer

from rnntk.analysis.config import AnalysisEigsConfig, FixedPointsConfig, LyapunovConfig
from rnntk.engine.config_cli import config_command
from rnntk.engine.errors import UserError

O = typer.Option


def _model_path(metavar: str, help: str) -> inspect.Parameter:
    """The positional MODEL argument of an analysis command (a config_command extra)."""
    arg = typer.Argument(metavar=metavar, help=help, show_default=False)
    return inspect.Parameter("model_path", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[Path, arg])


def register(app: typer.Typer) -> None:
    """Add the analysis commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    from rnntk.analysis.eigs_run import eigs_cmd
    from rnntk.analysis.figures import eigs_figures, fixed_points_figures, lyapunov_figures
    from rnntk.analysis.fixed_points_cli import fixed_points_cmd
    from rnntk.analysis.lyapunov_run import lyapunov_cmd
    from rnntk.engine.figures import register_figures

    register_figures("lyapunov", lyapunov_figures)  # made from run.h5, by the command and by rnntk plot
    register_figures("eigs", eigs_figures)
    register_figures("fixed-points", fixed_points_figures)

    ckpt = "An rnntk checkpoint of a recurrent network (model.pt or ckpt-last.pt), or a run whose model.pt to use."
    config_command(app, "lyapunov", LyapunovConfig, extra=[_model_path("MODEL.pt|RUN_DIR|run.h5", ckpt)])(lyapunov_cmd)
    run_or_ckpt = "A run folder, its run.h5, or an rnntk checkpoint of a recurrent network."
    config_command(app, "eigs", AnalysisEigsConfig, extra=[_model_path("RUN_DIR|MODEL.pt|run.h5", run_or_ckpt)])(eigs_cmd)
    run_or_any = "A run folder, its run.h5, or an rnntk checkpoint (model.pt, ckpt-last.pt)."
    config_command(app, "fixed-points", FixedPointsConfig, extra=[_model_path("RUN_DIR|MODEL.pt|run.h5", run_or_any)])(fixed_points_cmd)
    task_app = typer.Typer(help="Named tasks: rnntk task show NAME.", no_args_is_help=True)
    task_app.command("show")(task_show_cmd)
    app.add_typer(task_app, name="task")


def task_show_cmd(
    name: Annotated[
        Optional[str],
        typer.Argument(
            metavar="NAME",
            help="A built-in task (double-reach, xor, online-lru:copy, spheres, cordsnet-eval:digits, ...; COMMAND:TASK where two commands share a name) or neurogym:<EnvId>. None: list them.",
            show_default=False,
        ),
    ] = None,
    png: Annotated[Optional[Path], O("--png", help="Render one trial (inputs, target, loss mask, periods shaded) to this PNG.", metavar="FILE")] = None,
    task_kwargs: Annotated[Optional[str], O("--task-kwargs", help="neurogym tasks: JSON of neurogym.make arguments (ms).", metavar="JSON")] = None,
    data_dir: Annotated[
        Optional[Path], O("--data-dir", help="File tasks (online-lru cifar, lra-listops, imdb): the folder of their files.", metavar="DIR")
    ] = None,
    trials: Annotated[int, O("--trials", min=1, help="Trials sampled for the statistics.")] = 1000,
    seed: Annotated[int, O("--seed", help="Seed of the sampled trials.")] = 0,
    list_: Annotated[bool, O("--list", help="List every task name (also without NAME).")] = False,
) -> None:
    """Timing table (ms and s), trial-length statistics, scored steps and channel names of a task; --png draws one trial.

    Example: [bold]rnntk task show neurogym:PerceptualDecisionMaking-v0 --task-kwargs '{"dt": 20}' --png pdm.png[/bold]; [bold]rnntk task show --list[/bold]."""
    from rnntk.analysis.task_show import format_listing, task_show

    try:
        print(format_listing() if list_ or name is None else task_show(name, png, task_kwargs, trials, seed, data_dir))
    except ValueError as e:
        raise UserError(" ".join(str(e).split())) from None
    except OSError as e:
        raise UserError(f"cannot write --png {png}: {e.strerror or e}") from None
