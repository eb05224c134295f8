"""The options of ``rnntk selftest``, declared once (torch-free: the CLI imports it for --help)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rnntk.engine.config_cli import check_options, option, positive

SLEEP_MAX = 1e6  # seconds per step (11.6 days); time.sleep overflows near 9.2e9


@dataclass
class SelftestConfig:
    """Options of ``rnntk selftest``: a small leaky tanh RNN (dt 10 ms, tau 100 ms) trained
    with Adam + BPTT to integrate noisy evidence."""

    iters: int = option(100, "Training steps.", min=1)
    hidden: int = option(16, "Hidden units.", min=1)
    batch: int = option(32, "Trials per step.", min=1)
    steps: int = option(50, "Time steps per trial (dt = 10 ms).", min=2)
    lr: float = option(3e-3, "Adam learning rate.")
    nan_at: int = option(-1, "Inject a NaN loss at this step, to check the non-finite guard (-1: never).")
    sleep: float = option(0.0, "Seconds to sleep per step (to test signals and progress).", min=0.0)

    def __post_init__(self) -> None:
        check_options(self)
        positive(self, "lr")
        if not (math.isfinite(self.sleep) and self.sleep <= SLEEP_MAX):  # time.sleep overflows past time_t
            raise ValueError(f"bad --sleep {self.sleep}: must be a finite number of seconds <= {SLEEP_MAX:g}")
