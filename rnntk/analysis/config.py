"""The options of ``rnntk lyapunov``, ``rnntk eigs`` and ``rnntk fixed-points``, declared once
(torch-free: the CLI imports it for --help). Times are in steps of the model's own map (Euler
steps of ``dt`` for continuous-time models). Checks that need the model (``--k`` against N,
``--layers`` against the stack, ``--input`` against n_in) are made by the commands."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from rnntk.engine.config_cli import check_options, finite, option, positive


class InputKind(str, Enum):
    none = "none"
    bits = "bits"
    noise = "noise"


class EigOperator(str, Enum):
    jacobian = "jacobian"
    recurrent = "recurrent"


class EigMethod(str, Enum):
    arnoldi = "arnoldi"
    dense = "dense"
    arpack = "arpack"
    power = "power"


class EigWhich(str, Enum):
    LM = "LM"
    LR = "LR"
    both = "both"


class Drive(str, Enum):
    const = "const"
    bits = "bits"
    noise = "noise"


@dataclass
class LyapunovConfig:
    """Options of ``rnntk lyapunov`` (see its --help)."""

    k: int = option(0, "Exponents (0 = all N).", min=0)
    steps: int = option(2000, "Steps per trajectory.", min=2)
    warmup: int = option(500, "Steps before accumulating.", min=0)
    t_ons: int = option(1, "Steps between QR re-orthonormalisations.", flags=("--tons",), min=1)
    n_traj: int = option(8, "Trajectories (batched), mean and SEM reported.", min=1)
    input_kind: str = option("bits", "Drive: none (autonomous), bits (Bernoulli 0/1), noise (N(0,1)).", flags=("--input",), choices=InputKind)
    horizons: str = option("10,25,50", "Horizons t for singular values of T_{t,0}, comma-separated.")
    dtype: str = option("float64", "float64 or float32.")

    def __post_init__(self) -> None:
        check_options(self)
        hs = self.horizon_list
        if any(not 1 <= h <= self.steps for h in hs):
            raise ValueError(f"bad --horizons '{self.horizons}': each must be between 1 and --steps {self.steps}")
        if self.warmup >= self.steps:
            raise ValueError(f"bad --steps {self.steps}: must exceed --warmup {self.warmup}")

    @property
    def horizon_list(self) -> list[int]:
        """``--horizons`` as integers (empty: no long-term Jacobian)."""
        if not self.horizons.strip():
            return []
        try:
            return [int(h.strip()) for h in self.horizons.split(",")]
        except ValueError:
            raise ValueError(f"bad --horizons '{self.horizons}': use comma-separated integers (no empty entries)") from None


STATE_HELP = (
    "Where the Jacobian is taken: spont (from x = 0 with zero input for --spont-steps), zero, trial:T (after T steps of the --input drive), "
    "fixed-point:I (point I of --fixed-points)."
)


@dataclass
class AnalysisEigsConfig:
    """Options of ``rnntk eigs`` (any model of the contract; not ``cordsnet-eigs``)."""

    operator: str = option(
        "jacobian", "jacobian (d step/dx, discrete; dF/dx with tau dx/dt = F, continuous) at --state, or recurrent (the weight W).", choices=EigOperator
    )
    state: str = option("spont", STATE_HELP)
    fixed_points: Optional[Path] = option(None, "run.h5 (or run folder) of rnntk fixed-points, for --state fixed-point:I.")
    spont_steps: int = option(500, "Steps to the spontaneous state.", min=0)
    input_kind: str = option("bits", "Drive for --state trial:T: bits, noise or none.", flags=("--input",), choices=InputKind)
    layers: str = option("all", "Recurrent layers of a stack (online-lru): all, or e.g. 0,2.")
    method: str = option(
        "dense", "dense (all values, LAPACK), arnoldi (matrix-free restarted Krylov-Schur), arpack (scipy's ARPACK), power (dominant value).", choices=EigMethod
    )
    k: int = option(20, "Eigenvalues reported per ordering.", min=1)
    which: str = option("both", "LM (largest |lambda|), LR (largest real part) or both.", choices=EigWhich)
    tol: float = option(1e-8, "Convergence tolerance (relative residual; arpack, power).")
    ncv: Optional[int] = option(None, "ARPACK basis size (default max(4k, 40)).", min=3)
    krylov: Optional[int] = option(None, "Arnoldi basis size m (default: max(60, 8 x wanted values)).", min=2)
    max_restarts: int = option(1000, "Krylov-Schur restarts at most (0: one unrestarted run).", min=0)
    power_iters: int = option(10000, "Power iteration steps (at most).", min=1)
    max_dense_n: int = option(4096, "--method dense refuses operators larger than this.", min=1)
    csv: bool = option(True, "Also write eigs.csv.", flags=("--csv/--no-csv",))

    def __post_init__(self) -> None:
        check_options(self)
        positive(self, "tol")
        kind, _, arg = self.state.partition(":")
        if kind not in ("spont", "zero", "trial", "fixed-point") or (kind in ("trial", "fixed-point")) != bool(arg) or (arg and not arg.isdigit()):
            raise ValueError(f"bad --state '{self.state}': use spont, zero, trial:T or fixed-point:I (T, I integers >= 0)")
        if (kind == "fixed-point") != (self.fixed_points is not None):
            raise ValueError("--state fixed-point:I and --fixed-points FILE go together")
        if self.method == "power" and self.whiches != ["LM"]:
            raise ValueError("--method power finds the largest-|lambda| eigenvalue only: use --which LM (or --method arpack for LR)")
        parse_layers(self.layers)  # the format of --layers (its range needs the model)

    @property
    def whiches(self) -> list[str]:
        """The orderings computed: ["LM", "LR"] for ``both``."""
        return ["LM", "LR"] if self.which == "both" else [self.which]

    @property
    def state_kind(self) -> str:
        """spont, zero, trial or fixed-point."""
        return self.state.partition(":")[0]

    @property
    def state_index(self) -> int:
        """T of trial:T, I of fixed-point:I (0 otherwise)."""
        return int(self.state.partition(":")[2] or 0)

    @property
    def layer_indices(self) -> Optional[list[int]]:
        """``--layers`` as sorted distinct indices; None for all."""
        return parse_layers(self.layers)


def parse_layers(text: str) -> Optional[list[int]]:
    """``all`` -> None; ``0,2`` -> [0, 2] (sorted, distinct); ValueError naming --layers otherwise."""
    if text.strip() == "all":
        return None
    try:
        return sorted({int(s) for s in text.split(",")})
    except ValueError:
        raise ValueError(f"bad --layers '{text}': all, or comma-separated layer indices") from None


def solver_options(cfg: Any) -> dict[str, Any]:
    """The solver options an eigs config shares (``rnntk eigs``'s :class:`AnalysisEigsConfig`,
    ``rnntk cordsnet-eigs``' EigsConfig) as :func:`rnntk.analysis.eigs.leading_eigs` keywords:
    ``--krylov`` (krylov_m), ``--max-restarts``, ``--tol``, ``--max-dense-n``, ``--ncv``, ``--power-iters``."""
    return dict(krylov_m=cfg.krylov, max_restarts=cfg.max_restarts, tol=cfg.tol, max_dense_n=cfg.max_dense_n, ncv=cfg.ncv, power_iters=cfg.power_iters)


C, S = "Candidates", "Search"


@dataclass
class FixedPointsConfig:
    """Options of ``rnntk fixed-points`` (see its --help); ``time`` None: the model's own."""

    candidates: int = option(1024, "Candidate states, optimised as one batch.", panel=C, min=1)
    noise: float = option(0.5, "Std of Gaussian noise added to the sampled states.", panel=C, min=0.0)
    input_text: str = option("zero", "Constant input condition: zero, or comma-separated values (one per model input).", flags=("--input",), panel=C)
    traces: Optional[str] = option(None, "Sample candidates from this stored /traces/NAME (trial x time x n, the model's state).", panel=C)
    n_traj: int = option(64, "Generated trajectories to sample from.", panel=C, min=1)
    steps: int = option(200, "Steps per generated trajectory.", panel=C, min=1)
    drive: str = option("const", "Inputs of the generated trajectories: const (the --input condition), bits or noise.", panel=C, choices=Drive)
    init_scale: float = option(1.0, "Std of the random initial states of the generated trajectories.", panel=C, min=0.0)
    tol_q: float = option(1e-12, "q below which a point is fixed.", panel=S)
    tol_slow: float = option(1e-6, "q up to which a point is kept as a slow point.", panel=S)
    tol_unique: float = option(1e-3, "Distance under which two points are one.", panel=S)
    outlier_scale: float = option(10.0, "Drop points farther than this many mean candidate distances from their centroid (0: keep all).", panel=S, min=0.0)
    max_iters: int = option(25, "Adam steps before the Newton polish.", panel=S, min=0)
    lr: float = option(1.0, "Adam learning rate.", panel=S)
    newton_steps: int = option(50, "Newton / Levenberg-Marquardt iterations at most.", panel=S, min=0)
    time: Optional[str] = option(None, "discrete (x = step(x, u)) or continuous (rhs = 0); default: the model's own.", panel=S)

    def __post_init__(self) -> None:
        finite(self, "tol_q", "tol_slow", "tol_unique", "noise", "init_scale", "outlier_scale")  # first: nan is not ">= 0"
        check_options(self)
        positive(self, "tol_q", "tol_unique", "lr")
        if self.tol_slow < self.tol_q:
            raise ValueError(f"bad --tol-slow {self.tol_slow:g}: must be >= --tol-q {self.tol_q:g}")
        if self.time not in (None, "discrete", "continuous"):
            raise ValueError(f"bad --time '{self.time}': discrete or continuous")
