"""The options of ``rnntk ode-train``, declared once (torch-free: the CLI imports it for --help)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from rnntk.engine.config_cli import check_options, option, positive


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


S = "Solver and gradient"
# per task: (epochs, Adam learning rate) when --epochs / --lr are not given
TASK_DEFAULTS = {"spheres": (40, 3e-3), "g1d": (50, 1e-2), "sines": (100, 1e-3), "rate-rnn": (50, 1e-2), "ou": (30, 1e-2)}


@dataclass
class ODEConfig:
    """Options of ``rnntk ode-train`` (see its --help). ``epochs`` and ``lr`` left None take
    the task's values from :data:`TASK_DEFAULTS`, for the CLI and library callers alike."""

    task: str = option("spheres", "spheres (classification), sines (second-order ODE), g1d, rate-rnn (fit a leaky rate RNN's trajectories).", choices=ODETask)
    adjoint: str = option(
        "gq",
        "Gradient: gq (Gauss-Legendre quadrature adjoint), adjoint / seminorm (torchdiffeq), direct (backprop through the solver), auto (gq for at most 4 output intervals and at least 100 parameters per state number, else direct), sde-direct / sde-adjoint (torchsde, --task ou).",
        panel=S,
        choices=Adjoint,
    )
    width: int = option(100, "Hidden width of the MLP vector field.", min=1)
    epochs: int = option(None, "Epochs (passes over the training set) [per task: spheres 40, g1d 50, sines 100, rate-rnn 50].", min=1, preset=True)
    batch: int = option(200, "Batch size (spheres, g1d).", min=1)
    lr: float = option(None, "Adam learning rate [per task: spheres 3e-3, g1d 1e-2, sines 1e-3, rate-rnn 1e-2].", preset=True)
    rtol: float = option(1e-3, "Solver relative tolerance.", panel=S)
    atol: float = option(1e-3, "Solver absolute tolerance.", panel=S)
    method: str = option("dopri5", "torchdiffeq solver (dopri5, bosh3, adaptive_heun, dopri8, rk4, ...).", panel=S)
    gtol: float = option(0.1, "GQ node budget constant (larger = more nodes; not a tolerance).", panel=S)
    gq_nmin: int = option(2, "At least this many nodes per interval (upstream: 1).", panel=S, min=1)
    gq_trajectory: str = option(
        "recompute", "recompute (re-solve x backwards) or store (dense forward interpolant; use it for fast-decaying rate RNNs).", panel=S, choices=Trajectory
    )
    n_train: int = option(1000, "Training points (spheres: both classes together; g1d).", min=2)
    ntimes: int = option(10, "Output times per series (sines, rate-rnn).", min=2)
    times: str = option("regular", "Regular or irregular output times (sines).", choices=Times)
    n_units: int = option(20, "Units of the rate RNN (rate-rnn).", min=1)
    tau: float = option(0.05, "Time constant of the rate RNN in seconds (rate-rnn, T = 1 s).")
    n_cos: int = option(10, "Cosine terms of the Wong-Zakai noise (ou).", flags=("--ncos",), panel=S, min=1)
    sde_dt: float = option(0.01, "torchsde step for evaluation and the sde-* baselines (ou).", panel=S)
    gq_nodes: Any = "auto"  # library only: "auto" (error-controlled), None (the gtol rule) or an int
    n_test: int = 100  # library only
    n_paths: int = 45  # library only

    def __post_init__(self) -> None:
        check_options(self)
        d_epochs, d_lr = TASK_DEFAULTS[self.task]
        if self.epochs is None:
            self.epochs = d_epochs
        if self.lr is None:
            self.lr = d_lr
        positive(self, "lr", "rtol", "atol", "gtol", "tau", "sde_dt")
        from rnntk.engine.compat import TD_SOLVERS as SOLVERS

        if self.method not in SOLVERS:
            raise ValueError(f"bad --method '{self.method}': use one of {', '.join(sorted(SOLVERS))}")
        if self.adjoint.startswith("sde-") and self.task != "ou":
            raise ValueError(f"--adjoint {self.adjoint} trains an SDE with torchsde: only --task ou has one")
        if self.gq_trajectory == "store" and self.method != "dopri5":
            raise ValueError("--gq-trajectory store needs --method dopri5 (torchdiffeq's dense output)")

    @property
    def irregular(self) -> bool:
        """Irregular output times (``times == "irregular"``)."""
        return self.times == "irregular"
