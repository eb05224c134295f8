"""The options of ``rnntk sofo-train``, declared once (torch-free: the CLI imports it for --help).

:class:`TrainConfig` holds every option's name, default, help (units) and validation; its
defaults are the ``cpu-small`` preset of the default task (double-reach), so library callers
and ``rnntk sofo-train`` get the same run. :data:`PRESETS` gives, per preset and task, the
values of the size options (``preset=True`` fields) that the command line leaves unset.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, Mapping, Optional

from rnntk.core.constraint_options import ConstraintOptions
from rnntk.engine.config_cli import check_options, option, positive


class Task(str, Enum):
    double_reach = "double-reach"
    single_reach = "single-reach"
    kalman = "kalman"
    lorenz = "lorenz"
    linreg = "linreg"


TASKS = tuple(t.value for t in Task)


class LossOn(str, Enum):
    decision = "decision"
    all = "all"


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


#: ``--max-step-norm`` when left unset and a constraint is on (see that option's help)
AUTO_STEP_CAP = 0.02

S = "SOFO"
M = "Model and task"
A = "Adam baseline"

# Presets: values of the size options left unset on the command line (flags always win).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu-small": {
        "double-reach": dict(hidden=32, batch=32, dt=0.01, n_tangents=32, iters=300, lr=1.0, damping=1e-3, adam_lr=1e-2),
        "single-reach": dict(hidden=32, batch=32, dt=0.01, n_tangents=32, iters=300, lr=1.0, damping=1e-3, adam_lr=1e-2),
        "kalman": dict(hidden=32, batch=32, dt=0.002, steps=200, n_tangents=32, iters=200, lr=1.0, damping=1e-3, adam_lr=1e-2),
        "lorenz": dict(hidden=64, batch=64, dt=0.002, n_tangents=64, iters=300, lr=1.0, damping=1e-3, adam_lr=1e-3),
        "linreg": dict(hidden=64, batch=512, dt=0.002, n_tangents=128, iters=50, lr=1.0, damping=0.0, adam_lr=3e-2),
        "neurogym": dict(hidden=64, batch=64, n_tangents=64, iters=300, lr=1.0, damping=1e-2, adam_lr=1e-2),
    },
    "paper": {  # upstream sizes; GPU recipes (η in rnntk's exact Gauss–Newton units)
        "double-reach": dict(hidden=64, batch=256, dt=0.002, n_tangents=128, iters=5000, lr=0.1, damping=1e-5, adam_lr=5e-4),
        "single-reach": dict(hidden=64, batch=32, dt=0.002, n_tangents=128, iters=2000, lr=0.1, damping=1e-5, adam_lr=5e-4),
        "kalman": dict(hidden=100, batch=256, dt=0.002, steps=500, n_tangents=128, iters=4000, lr=0.1, damping=1e-3, adam_lr=1e-3),
        "lorenz": dict(hidden=400, batch=256, dt=0.002, n_tangents=128, iters=31250, lr=1.0, damping=1e-5, adam_lr=1e-4),
        "linreg": dict(hidden=64, batch=512, dt=0.002, n_tangents=128, iters=10000, lr=1.0, damping=0.0, adam_lr=3e-2),
    },
}


@dataclass
class TrainConfig(ConstraintOptions):
    """Options of ``rnntk sofo-train`` (see its --help); the training loop reads the SOFO,
    Adam and evaluation ones, :func:`rnntk.sofo.problems.make_problem` the task ones; the
    biological constraints (:class:`ConstraintOptions`) apply to the reach tasks' network."""

    task: str = option(
        "double-reach",
        "Task to train on: a built-in one or neurogym:<EnvId> (any neurogym task; needs the neurogym extra).",
        flags=("--task", "-t"),
        metavar="[" + "|".join(t.value for t in Task) + "|neurogym:ID]",
    )
    optimizer: str = option("sofo", "sofo, adam (BPTT), or both side by side on identical data.", choices=Optim)
    n_tangents: int = option(32, "Tangent directions per iteration (capped at the parameter count).", flags=("--n-tangents", "-K"), panel=S, preset=True)
    damping: float = option(1e-3, "Damping γ (relative to the top eigenvalue of the sketch by default).", panel=S, preset=True)
    damping_mode: str = option("relative", "", panel=S, choices=DampingMode)
    lr: float = option(1.0, "Learning rate η in Gauss–Newton units (1 = full step in the subspace).", panel=S, preset=True)
    tangents: str = option("orthonormal", "Tangent sampling.", panel=S, choices=Tangents)
    tangent_impl: str = option("auto", "auto = hand-written tangents for built-in cells, generic = vmap(jvp).", panel=S, choices=TangentImpl)
    max_step_norm: Optional[float] = option(
        None,
        f"Cap ‖η·Δ‖ at this fraction of ‖θ‖ (0 = off). Default: {AUTO_STEP_CAP:g} when a constraint is on (--dale-ratio, --connectivity, "
        "--no-autapses, noise: the constrained network's softplus rates are unbounded, and an uncapped Gauss–Newton step along the "
        "sketch's weakly curved directions can push W_rec's spectral radius past 1 and the run to inf/NaN), else 0.",
        panel=S,
        min=0.0,
        metavar="FRAC",
    )
    iters: int = option(300, "Training iterations.", min=1, preset=True)
    time_budget: Optional[float] = option(None, "Stop after this many seconds (equal wall-clock comparisons).", min=0.0, metavar="SEC")
    batch: int = option(32, "Trials per iteration.", panel=M, min=1, preset=True)
    hidden: int = option(32, "Hidden units.", panel=M, min=1, preset=True)
    dt: float = option(0.01, "Time step (s), reach tasks.", panel=M, preset=True)
    tau: float = option(0.02, "Time constant (s); neurogym tasks use max(--tau, dt), i.e. no leak at the default.", panel=M)
    duration: float = option(2.0, "Trial duration (s), reach tasks.", panel=M)
    steps: int = option(500, "Time steps per trial (kalman).", panel=M, min=2, preset=True)
    noise: bool = option(True, "Multiplicative rate noise (reach tasks).", flags=("--noise/--no-noise",), panel=M)
    init_gain: Optional[float] = option(
        None,
        "Reach tasks: spectral radius G of the initial recurrent weights (std G/sqrt(hidden)). Default: upstream's weak init, about 0.5/sqrt(hidden+1).",
        panel=M,
        min=0.0,
        metavar="G",
    )
    supervise: Optional[str] = option(
        None,
        "lorenz: supervise the final state only (default; the paper, upstream OCaml) or all 32 steps (upstream PyTorch/JAX lorenz.py).",
        panel=M,
        choices=Supervise,
    )
    target_noise: Optional[float] = option(
        None,
        "lorenz: N(0, SIGMA^2) noise on the training targets, drawn once per data point (upstream PyTorch: 0.0125 with --supervise all). Default 0.",
        panel=M,
        metavar="SIGMA",
    )
    task_kwargs: Optional[str] = option(
        None, 'neurogym tasks: JSON of neurogym.make arguments, in neurogym\'s ms, e.g. \'{"dt": 20, "timing": {"stimulus": 500}}\'.', panel=M, metavar="JSON"
    )
    loss_on: str = option(
        "decision", "neurogym tasks: score the decision period only, or all periods (--fixation-weight on the others).", panel=M, choices=LossOn
    )
    fixation_weight: float = option(1.0, "neurogym tasks with --loss-on all: loss weight of the steps outside the decision period.", panel=M, min=0.0)
    adam_lr: float = option(1e-2, "Adam learning rate.", panel=A, preset=True)
    adam_eps: float = option(1e-7, "Adam epsilon.", panel=A)
    eval_every: int = option(10, "Validation every N iterations (fixed batch and noise).", min=1)
    eval_batch: int = option(64, "Validation trials.", min=1)
    save_traces: int = option(8, "Validation trials written to /traces.", min=0)

    def __post_init__(self) -> None:
        self.damping_mode = self.damping_mode.replace("_", "-")  # the library's relative_min spelling too
        if self.max_step_norm is None:  # auto: declared with the option (AUTO_STEP_CAP)
            self.max_step_norm = AUTO_STEP_CAP if self.constrained else 0.0
        check_options(self)
        self.check_constraints()
        if self.task not in TASKS and not self.task.startswith("neurogym:"):
            raise ValueError(f"bad --task '{self.task}': use one of {', '.join(TASKS)} or neurogym:<EnvId>")
        if (self.task_kwargs is not None or self.loss_on != "decision" or self.fixation_weight != 1.0) and not self.task.startswith("neurogym:"):
            raise ValueError(f"--task-kwargs/--loss-on/--fixation-weight apply to neurogym:<EnvId> tasks only, not {self.task}")
        if self.n_tangents < 1:
            raise ValueError(f"bad -K {self.n_tangents}: need at least 1 tangent")
        if not (self.damping >= 0 and self.damping < float("inf")):
            raise ValueError(f"bad --damping {self.damping}: must be >= 0")
        positive(self, "lr", "adam_lr", "dt", "adam_eps")
        if not (0 < self.tau < float("inf") and 0 < self.duration < float("inf")) or self.duration < self.dt * 2:
            raise ValueError("bad --tau/--duration: need finite tau > 0 and duration >= 2*dt")
        if self.task in ("double-reach", "single-reach") and self.dt > self.tau:
            raise ValueError(f"bad --dt {self.dt:g}: must be <= --tau {self.tau:g} (the Euler update is unstable for dt > tau)")
        if self.task != "lorenz" and (self.supervise is not None or self.target_noise is not None):
            raise ValueError(f"--supervise/--target-noise apply to --task lorenz only, not {self.task}")
        if self.init_gain is not None and self.task not in ("double-reach", "single-reach"):
            raise ValueError(f"--init-gain applies to the reach tasks only, not {self.task}")
        if self.constrained and self.task in ("kalman", "lorenz", "linreg"):
            raise ValueError(f"--dale-ratio/--connectivity/--no-autapses/--rec-noise/--input-noise apply to the reach and neurogym tasks, not {self.task}")


def preset_values(preset: str, task: str) -> dict[str, Any]:
    """Every preset option of ``task`` under ``preset`` (the table's values, else the
    :class:`TrainConfig` default)."""
    base = {f.name: f.default for f in fields(TrainConfig) if f.metadata.get("rnntk_option") and f.metadata["rnntk_option"].preset}
    return {**base, **PRESETS[preset].get(task, {})}


def preset_defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    """The command's defaults hook: the chosen ``--preset`` for the chosen ``--task`` (every
    ``neurogym:<EnvId>`` task under the ``neurogym`` entry)."""
    task = "neurogym" if str(values["task"]).startswith("neurogym:") else values["task"]
    return PRESETS[values["preset"]].get(task, {})
