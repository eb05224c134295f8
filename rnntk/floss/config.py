"""The options of ``rnntk floss``, declared once (torch-free: the CLI imports it for --help)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Optional

from rnntk.core.constraint_options import ConstraintOptions
from rnntk.engine.config_cli import check_options, finite, option, positive

if TYPE_CHECKING:
    from rnntk.floss.flossing import FlossSchedule


class FlossTask(str, Enum):
    xor = "xor"
    parity = "parity"
    copy = "copy"


class LossOn(str, Enum):
    decision = "decision"
    all = "all"


class Init(str, Enum):
    gaussian = "gaussian"
    orthogonal = "orthogonal"


class Reduce(str, Enum):
    mean = "mean"
    sum = "sum"


F = "Flossing"
N = "Network"
T = "Task"


@dataclass
class FlossConfig(ConstraintOptions):
    """Options of ``rnntk floss`` (defaults: upstream's README call; see ``rnntk floss --help``)."""

    task: str = option(
        "xor",
        "xor (2 bits), parity (--bits), copy, or neurogym:<EnvId> (any neurogym task; needs the neurogym extra).",
        panel=T,
        metavar="[xor|parity|copy|neurogym:ID]",
    )
    task_kwargs: Optional[str] = option(
        None, "neurogym tasks: JSON of neurogym.make arguments, in neurogym's ms, e.g. '{\"dt\": 20}'.", panel=T, metavar="JSON"
    )
    loss_on: str = option(
        "decision", "neurogym tasks: score the decision period only, or all periods (--fixation-weight on the others).", panel=T, choices=LossOn
    )
    fixation_weight: float = option(1.0, "neurogym tasks with --loss-on all: loss weight of the steps outside the decision period.", panel=T, min=0.0)
    delay: int = option(20, "Longest lag D in steps (paper convention; upstream's XOR 'delay 10' is D = 20).", panel=T)
    bits: int = option(4, "Bits in the parity (task parity).", panel=T, min=1)
    trial_len: int = option(300, "Steps per training trial.", panel=T, min=2)
    upstream_window: bool = option(False, "Score from t = D-1 like upstream (one unlearnable step).", panel=T)
    n_units: int = option(80, "Units.", flags=("--n-units", "-N"), panel=N, min=1)
    g: float = option(1.0, "Recurrent gain.", panel=N)
    init: str = option("gaussian", "Recurrent init.", panel=N, choices=Init)
    alpha: float = option(1.0, "Leak dt/tau (1 = upstream, no leak).", panel=N)
    epochs: int = option(3001, "Task epochs (one fresh batch and one Adam step each).", min=0)
    batch: int = option(16, "Trials per epoch.", min=1)
    lr: float = option(1e-3, "Task Adam learning rate.")
    clip: float = option(0.03, "Per-tensor gradient norm clip (0 = off).", min=0.0)
    train_x0: bool = option(True, "Train the initial states (upstream: yes).", flags=("--train-x0/--no-train-x0",), panel=N)
    no_floss: bool = option(False, "Baseline: no flossing at all.", panel=F)
    floss_before: int = option(500, "Flossing steps before training.", panel=F, min=0)
    floss_every: int = option(100, "Epochs between flossing episodes during training.", panel=F, min=0)
    floss_epochs: int = option(500, "Flossing steps per episode during training.", panel=F, min=0)
    floss_times: int = option(2, "Episodes during training (at most).", panel=F, min=0)
    floss_k: int = option(75, "Exponents flossed (<= N).", panel=F, min=1)
    floss_target: float = option(0.0, "Target exponent.", panel=F)
    floss_len: int = option(55, "Steps per flossing estimate.", panel=F, min=2)
    floss_warmup: int = option(16, "Steps before accumulating.", panel=F, min=0)
    floss_tons: int = option(
        2,
        "Steps between QRs while flossing: 2 gives the same exponents as upstream's 1 (same window, exact in exact arithmetic, tested) with half the QRs.",
        panel=F,
        min=1,
    )
    floss_lr: float = option(1e-3, "Flossing Adam learning rate.", panel=F)
    floss_reduce: str = option("mean", "Mean (upstream) or sum of squared exponents.", panel=F, choices=Reduce)
    eval_every: int = option(100, "Test accuracy on a held-out batch every N epochs.", min=1)
    eval_batch: int = option(256, "Held-out trials.", min=1)
    le_every: int = option(500, "Full spectrum of a probe sequence every N epochs (0 = only around flossing).", min=0)
    le_len: int = option(1000, "Probe sequence length for spectra.", min=10)
    horizons: tuple[int, ...] = (10, 25, 50)  # library only: horizons of the long-term Jacobian's singular values

    def __post_init__(self) -> None:
        check_options(self)
        self.check_constraints()  # --dale-ratio/--connectivity/...: a ConstrainedRNN (rnntk.floss.train.make_model)
        from rnntk.floss.delayed_xor import check_delay

        neurogym = self.task.startswith("neurogym:")
        if self.task not in [t.value for t in FlossTask] and not neurogym:
            raise ValueError(f"bad --task '{self.task}': use one of xor, parity, copy or neurogym:<EnvId>")
        if (self.task_kwargs is not None or self.loss_on != "decision" or self.fixation_weight != 1.0) and not neurogym:
            raise ValueError(f"--task-kwargs/--loss-on/--fixation-weight apply to neurogym:<EnvId> tasks only, not {self.task}")
        if neurogym:  # the id, kwargs and the extra, checked before any run folder exists (imports neurogym, not torch)
            from rnntk.core.neurogym import NeurogymTask, parse_kwargs

            NeurogymTask(self.task, parse_kwargs(self.task_kwargs), loss_on=self.loss_on, fixation_weight=self.fixation_weight)
        try:
            if not neurogym:  # a neurogym task's trials have their own length
                check_delay(self.delay, self.n_bits, self.trial_len)
        except ValueError as e:
            raise ValueError(f"bad --delay/--trial-len: {e}") from None
        if self.floss_k > self.n_units:
            raise ValueError(f"bad --floss-k {self.floss_k}: at most --n-units = {self.n_units} exponents exist")
        positive(self, "lr", "floss_lr", "alpha")
        finite(self, "g", "floss_target", "clip")
        if self.alpha > 1:
            raise ValueError(f"bad --alpha {self.alpha}: must be in (0, 1]")
        if self.floss_warmup >= self.floss_len:
            raise ValueError(f"bad --floss-len {self.floss_len}: must exceed --floss-warmup {self.floss_warmup}")

    @property
    def n_bits(self) -> int:
        """Bits of the task: xor 2, copy 1, parity ``bits``."""
        return {"xor": 2, "copy": 1}.get(self.task, self.bits)

    @property
    def schedule(self) -> FlossSchedule:
        """The flossing schedule (all zero with ``no_floss``)."""
        from rnntk.floss.flossing import FlossSchedule

        if self.no_floss:
            return FlossSchedule(0, 0, 0, 0)
        return FlossSchedule(self.floss_before, self.floss_every, self.floss_epochs, self.floss_times)
