"""``rnntk task show`` for floss's built-in tasks (registered in :mod:`rnntk.core.task_registry`),
at ``rnntk floss``'s default sizes (delay 20, trial length 300 steps)."""

from __future__ import annotations

from rnntk.core.task_registry import TaskSpec, register_task
from rnntk.floss.config import FlossConfig


def _spec(task: str) -> TaskSpec:
    from rnntk.floss.delayed_xor import check_delay
    from rnntk.floss.tasks import ParitySource

    cfg = FlossConfig(task=task)
    src = ParitySource(cfg)
    spacing = check_delay(cfg.delay, cfg.n_bits, cfg.trial_len)
    lags = [m * spacing for m in range(1, cfg.n_bits + 1)]
    out = f"the bit {lags[0]} steps back" if len(lags) == 1 else f"parity (XOR) of the bits {', '.join(map(str, lags))} steps back"
    return TaskSpec(
        task,
        src.trials,
        None,
        ["bit"],
        [out],
        description=f"floss --task {task}: delay {cfg.delay} steps, {cfg.n_bits} bit(s), scored from step {cfg.delay}",
    )


for _t in ("xor", "parity", "copy"):
    register_task(_t, lambda t=_t: _spec(t), command="floss")
