"""``rnntk task show`` for floss's built-in tasks (registered in :mod:`rnntk.core.task_registry`),
at ``rnntk floss``'s default sizes (delay 20, trial length 300 steps)."""

from __future__ import annotations

from rnntk.core.task_registry import TaskSpec, register_task
from rnntk.floss.config import FlossConfig


def _spec(task: str) -> TaskSpec:
    from rnntk.floss.tasks import ParitySource

    cfg = FlossConfig(task=task)
    src = ParitySource(cfg)
    return TaskSpec(
        task,
        src.trials,
        None,
        ["bit"],
        ["parity of the bits D/n_bits, 2D/n_bits, ..., D steps back"],
        description=f"floss --task {task}: delay {cfg.delay} steps, {cfg.n_bits} bit(s), scored from step {cfg.delay}",
    )


for _t in ("xor", "parity", "copy"):
    register_task(_t, lambda t=_t: _spec(t), command="floss")
