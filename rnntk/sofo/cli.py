"""``rnntk sofo-train``: SOFO (and/or Adam+BPTT) on a built-in task, on the shared engine."""

from __future__ import annotations

import math
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from rnntk.engine.errors import UserError
from rnntk.engine.options import RunOptions, engine_command, require_positive

TASK_NAMES = ("double-reach", "single-reach", "kalman", "lorenz", "linreg")

# Presets: values used for options left unset on the command line (flags always win).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu-small": {
        "double-reach": dict(hidden=32, batch=32, dt=0.01, n_tangents=32, iters=300, lr=1.0, damping=1e-3, adam_lr=1e-2),
        "single-reach": dict(hidden=32, batch=32, dt=0.01, n_tangents=32, iters=300, lr=1.0, damping=1e-3, adam_lr=1e-2),
        "kalman": dict(hidden=32, batch=32, steps=200, n_tangents=32, iters=200, lr=1.0, damping=1e-3, adam_lr=1e-2),
        "lorenz": dict(hidden=64, batch=64, n_tangents=64, iters=300, lr=1.0, damping=1e-3, adam_lr=1e-3),
        "linreg": dict(batch=512, n_tangents=128, iters=50, lr=1.0, damping=0.0, adam_lr=3e-2),
    },
    "paper": {  # upstream sizes; GPU recipes (η in rnntk's exact Gauss–Newton units)
        "double-reach": dict(hidden=64, batch=256, dt=0.002, n_tangents=128, iters=5000, lr=0.1, damping=1e-5, adam_lr=5e-4),
        "single-reach": dict(hidden=64, batch=32, dt=0.002, n_tangents=128, iters=2000, lr=0.1, damping=1e-5, adam_lr=5e-4),
        "kalman": dict(hidden=100, batch=256, steps=500, n_tangents=128, iters=4000, lr=0.1, damping=1e-3, adam_lr=1e-3),
        "lorenz": dict(hidden=400, batch=256, n_tangents=128, iters=31250, lr=1.0, damping=1e-5, adam_lr=1e-4),
        "linreg": dict(batch=512, n_tangents=128, iters=10000, lr=1.0, damping=0.0, adam_lr=3e-2),
    },
}
DEFAULTS = dict(hidden=64, batch=256, dt=0.002, steps=500, n_tangents=128, iters=2000, lr=1.0, damping=1e-3, adam_lr=5e-4)


class Task(str, Enum):
    double_reach = "double-reach"
    single_reach = "single-reach"
    kalman = "kalman"
    lorenz = "lorenz"
    linreg = "linreg"


class Optim(str, Enum):
    sofo = "sofo"
    adam = "adam"
    both = "both"


class Preset(str, Enum):
    cpu_small = "cpu-small"
    paper = "paper"


class Tangents(str, Enum):
    orthonormal = "orthonormal"
    normalized = "normalized"
    rank1 = "rank1"
    block = "block"


class DampingMode(str, Enum):
    relative = "relative"
    relative_min = "relative-min"
    absolute = "absolute"


class Supervise(str, Enum):
    final = "final"
    all = "all"


class TangentImpl(str, Enum):
    auto = "auto"
    generic = "generic"
    manual = "manual"


S = "SOFO"
M = "Model and task"
A = "Adam baseline"
O = typer.Option


def _check_fits(task: str, res: dict, duration: float, device: str) -> None:
    """Refuse (one line, exit 2) sizes whose main tensors cannot fit: the weights (~hidden²),
    K tangent copies of them, and the batch's states and K state tangents over the trial."""
    from rnntk.engine.device import resolve_device
    from rnntk.engine.limits import check_fits

    h, K, B = float(res["hidden"] or 1), float(res["n_tangents"]), float(res["batch"] or 1)
    T = float(res["steps"]) if task == "kalman" else (32.0 if task == "lorenz" else duration / res["dt"])
    P = h * h + 8 * h
    need = 4.0 * (P * (min(K, P) + 4) + B * T * h * 3 + B * min(K, P) * h * 4)
    check_fits(
        need,
        resolve_device(device),
        f"--hidden {int(h)} with -K {int(K)} tangents and --batch {int(B)} over {int(T)} steps",
        hint="use smaller --hidden/-K/--batch",
    )


def sofo_train(
    opts: RunOptions,
    task: Annotated[Task, O("--task", "-t", help="Task to train on.")] = Task.double_reach,
    preset: Annotated[
        Preset, O("--preset", help="Sizes for unset options: cpu-small (about a minute on 2 cores) or paper (upstream sizes, GPU).")
    ] = Preset.cpu_small,
    optimizer: Annotated[Optim, O("--optimizer", help="sofo, adam (BPTT), or both side by side on identical data.")] = Optim.sofo,
    n_tangents: Annotated[
        Optional[int], O("--n-tangents", "-K", help="Tangent directions per iteration (capped at the parameter count).", rich_help_panel=S)
    ] = None,
    damping: Annotated[Optional[float], O("--damping", help="Damping γ (relative to the top eigenvalue of the sketch by default).", rich_help_panel=S)] = None,
    damping_mode: Annotated[DampingMode, O("--damping-mode", rich_help_panel=S)] = DampingMode.relative,
    lr: Annotated[Optional[float], O("--lr", help="Learning rate η in Gauss–Newton units (1 = full step in the subspace).", rich_help_panel=S)] = None,
    tangents: Annotated[Tangents, O("--tangents", help="Tangent sampling.", rich_help_panel=S)] = Tangents.orthonormal,
    tangent_impl: Annotated[
        TangentImpl, O("--tangent-impl", help="auto = hand-written tangents for built-in cells, generic = vmap(jvp).", rich_help_panel=S)
    ] = TangentImpl.auto,
    max_step_norm: Annotated[float, O("--max-step-norm", min=0.0, help="Cap ‖η·Δ‖ at this fraction of ‖θ‖ (0 = off).", rich_help_panel=S)] = 0.0,
    iters: Annotated[Optional[int], O("--iters", min=1, help="Training iterations.")] = None,
    time_budget: Annotated[
        Optional[float], O("--time-budget", min=0.0, metavar="SEC", help="Stop after this many seconds (equal wall-clock comparisons).")
    ] = None,
    batch: Annotated[Optional[int], O("--batch", min=1, help="Trials per iteration.", rich_help_panel=M)] = None,
    hidden: Annotated[Optional[int], O("--hidden", min=1, help="Hidden units.", rich_help_panel=M)] = None,
    dt: Annotated[Optional[float], O("--dt", help="Time step (s), reach tasks.", rich_help_panel=M)] = None,
    tau: Annotated[float, O("--tau", help="Time constant (s), reach tasks.", rich_help_panel=M)] = 0.02,
    duration: Annotated[float, O("--duration", help="Trial duration (s), reach tasks.", rich_help_panel=M)] = 2.0,
    steps: Annotated[Optional[int], O("--steps", min=2, help="Time steps per trial (kalman).", rich_help_panel=M)] = None,
    noise: Annotated[bool, O("--noise/--no-noise", help="Multiplicative rate noise (reach tasks).", rich_help_panel=M)] = True,
    supervise: Annotated[
        Optional[Supervise],
        O(
            "--supervise",
            help="lorenz: supervise the final state only (default; the paper, upstream OCaml) or all 32 steps (upstream PyTorch/JAX lorenz.py).",
            rich_help_panel=M,
        ),
    ] = None,
    target_noise: Annotated[
        Optional[float],
        O(
            "--target-noise",
            metavar="SIGMA",
            help="lorenz: N(0, SIGMA^2) noise on the training targets, drawn once per data point (upstream PyTorch: 0.0125 with --supervise all). Default 0.",
            rich_help_panel=M,
        ),
    ] = None,
    adam_lr: Annotated[Optional[float], O("--adam-lr", help="Adam learning rate.", rich_help_panel=A)] = None,
    adam_eps: Annotated[float, O("--adam-eps", help="Adam epsilon.", rich_help_panel=A)] = 1e-7,
    eval_every: Annotated[int, O("--eval-every", min=1, help="Validation every N iterations (fixed batch and noise).")] = 10,
    eval_batch: Annotated[int, O("--eval-batch", min=1, help="Validation trials.")] = 64,
    save_traces: Annotated[int, O("--save-traces", min=0, help="Validation trials written to /traces.")] = 8,
) -> None:
    """Train an RNN with SOFO, second-order forward-mode optimisation (Yu et al. 2024).

    Each iteration pushes K random tangent directions through the network in one batched
    forward pass (memory constant in trial length), sketches the gradient and the
    Gauss–Newton matrix in that K-dim subspace, and takes a damped Gauss–Newton step.
    [bold]--optimizer both[/bold] trains Adam+BPTT side by side on identical data.
    Example: [bold]rnntk sofo-train --task double-reach --optimizer both[/bold]."""
    from rnntk.sofo.problems import make_problem
    from rnntk.sofo.train import TrainConfig, train

    chosen = {**DEFAULTS, **PRESETS[preset.value].get(task.value, {})}
    given = dict(n_tangents=n_tangents, damping=damping, lr=lr, iters=iters, batch=batch, hidden=hidden, dt=dt, steps=steps, adam_lr=adam_lr)
    res = {k: (v if v is not None else chosen.get(k)) for k, v in given.items()}
    if res["n_tangents"] < 1:
        raise UserError(f"bad -K {res['n_tangents']}: need at least 1 tangent")
    if not math.isfinite(res["damping"]) or res["damping"] < 0:
        raise UserError(f"bad --damping {res['damping']}: must be >= 0")
    require_positive(lr=res["lr"], adam_lr=res["adam_lr"], dt=res["dt"], adam_eps=adam_eps)
    if not (math.isfinite(tau) and math.isfinite(duration) and tau > 0 and duration > 0) or duration < res["dt"] * 2:
        raise UserError("bad --tau/--duration: need finite tau > 0 and duration >= 2*dt")
    _check_fits(task.value, res, duration, opts.device)
    if task.value in ("double-reach", "single-reach") and res["dt"] > tau:
        raise UserError(f"bad --dt {res['dt']:g}: must be <= --tau {tau:g} (the Euler update is unstable for dt > tau)")
    try:
        if task.value != "lorenz" and (supervise is not None or target_noise is not None):
            raise ValueError(f"--supervise/--target-noise apply to --task lorenz only, not {task.value}")
        problem = make_problem(
            task.value,
            hidden=res["hidden"],
            dt=res["dt"],
            tau=tau,
            duration=duration,
            noise=noise,
            steps=res["steps"],
            supervise=supervise.value if supervise is not None else None,
            target_noise=target_noise,
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    cfg = TrainConfig(
        optimizer=optimizer.value,
        n_tangents=res["n_tangents"],
        damping=res["damping"],
        damping_mode=damping_mode.value.replace("-", "_"),
        lr=res["lr"],
        tangents=tangents.value,
        tangent_impl=tangent_impl.value,
        max_step_norm=max_step_norm,
        iters=res["iters"],
        time_budget=time_budget,
        batch=res["batch"],
        eval_every=eval_every,
        eval_batch=eval_batch,
        adam_lr=res["adam_lr"],
        adam_eps=adam_eps,
        save_traces=save_traces,
    )
    if tangent_impl == TangentImpl.manual and not problem.has_manual_tangents:
        raise UserError(f"--tangent-impl manual: task {task.value} has no hand-written tangents; use auto or generic")
    with opts.open_run(config={**res}) as run:
        run.h5.set_attrs(task=task.value, optimizer=optimizer.value, problem=str(problem.describe()))
        train(problem, cfg, run)


def register(app: typer.Typer) -> None:
    """Add the sofo commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    engine_command(app, "sofo-train", resumable=("iters", "time_budget"))(sofo_train)
