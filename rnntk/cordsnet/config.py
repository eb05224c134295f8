"""The options of ``rnntk cordsnet-eval`` and ``rnntk cordsnet-eigs``, declared once
(torch-free: the CLI imports it for --help). Times are in Euler steps of ``alpha`` = dt/tau."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Optional

from rnntk.engine.config_cli import check_options, option, positive


class Readout(str, Enum):
    every = "every"
    final = "final"


class Pool(str, Enum):
    none = "none"
    gap = "gap"
    avg2 = "avg2"


class Method(str, Enum):
    arnoldi = "arnoldi"
    arpack = "arpack"
    dense = "dense"
    power = "power"
    fft_circular = "fft-circular"


class Which(str, Enum):
    LM = "LM"
    LR = "LR"
    both = "both"


class Operator(str, Enum):
    recurrent = "recurrent"
    jacobian_spont = "jacobian-spont"
    jacobian_image = "jacobian-image"


M, D, S, R = "Model", "Data", "Simulation", "Recording"


def check_simulation(alpha: float, spont_steps: int, stim_steps: int) -> None:
    """``ValueError`` unless 0 < alpha <= 1, stim_steps >= 1 and spont_steps >= 0."""
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"bad --alpha {alpha}: must be a finite number > 0")
    if alpha > 1:
        raise ValueError(f"bad --alpha {alpha}: must be in (0, 1] (dt/tau)")
    if stim_steps < 1 or spont_steps < 0:
        raise ValueError("bad --stim-steps/--spont-steps: need --stim-steps >= 1 and --spont-steps >= 0")


@dataclass
class EvalConfig:
    """Options of ``rnntk cordsnet-eval`` (see its --help). :func:`rnntk.cordsnet.train.evaluate`
    reads the simulation and recording ones; ``record`` holds the recorded areas and
    ``image_size`` the model's input size (the command resolves ``--record-layers`` and the
    checkpoint's size into them). The command takes exactly one of ``checkpoint`` and ``init``."""

    checkpoint: Optional[Path] = option(None, "Upstream state dict (.pth) or rnntk CordsNet checkpoint.", panel=M)
    init: Optional[str] = option(None, "'random': a freshly initialised model instead of a checkpoint.", panel=M)
    depth: Optional[int] = option(None, "2, 4, 6 or 8 areas (default: the checkpoint's; 8 with --init random).", panel=M)
    classes: Optional[int] = option(None, "Readout size (default: the checkpoint's; 1000 with --init random).", panel=M, min=1)
    image_size: Optional[int] = option(None, "Input size (224 upstream; smaller = non-upstream mini model).", panel=M, min=8)
    width: Optional[float] = option(None, "Channel multiplier (1 upstream; mini models only).", panel=M)
    data: str = option("digits", "digits | folder:DIR (DIR/<class>/<img>) | npz:FILE (images, labels) | images:GLOB.", panel=D)
    dataset_preset: str = option(
        "auto",
        "Normalisation: auto (imagenet for RGB models; digits or mnist for 1-channel), imagenet, cifar10, cifar100, mnist, fashionmnist, digits, none.",
        panel=D,
    )
    limit: int = option(0, "Use the first N images (0 = all).", panel=D, min=0)
    batch_size: int = option(16, "Images simulated together.", panel=D, min=1)
    alpha: float = option(0.2, "dt/tau (upstream 0.2 = 2 ms steps, tau 10 ms).", panel=S)
    spont_steps: int = option(100, "Zero-image steps first (computed once, shared by the batch).", panel=S, min=0)
    stim_steps: int = option(100, "Steps with the image.", panel=S, min=1)
    post_steps: int = option(0, "Zero-image steps after the stimulus.", panel=S, min=0)
    readout: str = option("every", "every: logits at each stimulus/post step; final: after the last stimulus step (upstream).", panel=S, choices=Readout)
    record_layers: str = option("top", "Areas to record: top (the two top areas), all, none, or e.g. 0,1.", panel=R)
    record_stride: int = option(1, "Record every N steps.", panel=R, min=1)
    record_pool: str = option("none", "Spatial pooling of recordings: none, gap (global mean), avg2 (2x2 mean).", panel=R, choices=Pool)
    max_trace_gb: float = option(4.0, "Refuse recordings larger than this (GB, float32 before compression).", panel=R)
    dtype: str = option("float32", "float32 or float64.")
    record: tuple[int, ...] = ()  # library only: the areas recorded

    def __post_init__(self) -> None:
        check_options(self)
        check_simulation(self.alpha, self.spont_steps, self.stim_steps)
        positive(self, "max_trace_gb", "width")
        if self.init is not None and self.init != "random":
            raise ValueError(f"bad --init '{self.init}': only 'random' is supported")
        if self.checkpoint is None and self.depth is not None and self.depth not in (2, 4, 6, 8):
            raise ValueError(f"bad --depth {self.depth}: CordsNet has 2, 4, 6 or 8 areas")


@dataclass
class EigsConfig:
    """Options of ``rnntk cordsnet-eigs MODEL.pth`` (see its --help)."""

    layers: str = option("all", "Areas to analyse: all, or e.g. 0,7.")
    operator: str = option("recurrent", "recurrent (W_j), jacobian-spont or jacobian-image (D_j W_j at a state; --image).", choices=Operator)
    image: Optional[str] = option(None, "Image for --operator jacobian-image: an image file, or digits:N.")
    dataset_preset: str = option("auto", "Normalisation of --image (auto, imagenet, ..., digits, none).")
    method: str = option("arnoldi", "arnoldi (default, matrix-free), arpack (certified), dense (small N), power, fft-circular (preview).", choices=Method)
    k: int = option(20, "Eigenvalues reported per ordering.", min=1)
    which: str = option("both", "LM (largest |lambda|), LR (largest real part) or both.", choices=Which)
    krylov: Optional[int] = option(None, "Arnoldi basis size m (default: max(60, 8 x wanted values); 300 with --max-restarts 0).", min=2)
    max_restarts: int = option(1000, "Krylov-Schur restarts at most (0: one unrestarted run, as upstream; values then may stay unconverged).", min=0)
    plot_k: Optional[int] = option(None, "Also plot up to this many leading values per ordering (a fuller picture of the spectrum's edge; more work).", min=1)
    qr_steps: int = option(0, "Upstream's unshifted QR steps on H (no effect on accuracy).", min=0)
    ncv: Optional[int] = option(None, "ARPACK basis size (default max(4k, 40)).", min=3)
    power_iters: int = option(10000, "Power iteration steps (at most).", min=1)
    dtype: str = option("mixed", "mixed (Arnoldi: float32 Krylov-Schur, float64 polish; other methods float64), float64 or float32 (~1e-6 at best).")
    tol: float = option(1e-8, "Convergence tolerance (relative residual).")
    max_dense_n: int = option(4096, "--method dense refuses operators larger than this.", min=1)
    alpha: float = option(0.2, "dt/tau for the Euler-stability verdict and the Jacobian state.")
    spont_steps: int = option(100, "Steps to the spontaneous state (Jacobian operators).", min=0)
    stim_steps: int = option(100, "Image steps to the image-driven state (jacobian-image).", min=1)
    csv: bool = option(True, "Also write eigs.csv.", flags=("--csv/--no-csv",))

    def __post_init__(self) -> None:
        check_options(self)
        check_simulation(self.alpha, self.spont_steps, self.stim_steps)
        positive(self, "tol")
        if self.method == "power" and self.whiches != ["LM"]:
            raise ValueError("--method power finds the largest-|lambda| eigenvalue only: use --which LM (or --method arnoldi for LR)")
        if self.method == "fft-circular" and self.operator != "recurrent":
            raise ValueError("--method fft-circular applies to --operator recurrent only")
        if self.operator == "jacobian-image" and self.image is None:
            raise ValueError("--operator jacobian-image needs --image FILE (or --image digits:N)")
        if self.operator != "jacobian-image" and self.image is not None:
            raise ValueError("--image is used only with --operator jacobian-image")

    @property
    def whiches(self) -> list[str]:
        """The orderings computed: ["LM", "LR"] for ``both``."""
        return ["LM", "LR"] if self.which == "both" else [self.which]

    @property
    def k_computed(self) -> int:
        """Values computed per ordering: ``--k``, or ``--plot-k`` when larger (one run for the
        larger set; the top ``--k`` of it are reported)."""
        return max(self.k, self.plot_k or 0)
