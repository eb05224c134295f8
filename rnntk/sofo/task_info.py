"""``rnntk task show`` for sofo-train's built-in tasks (registered in :mod:`rnntk.core.task_registry`),
at the ``cpu-small`` preset sizes."""

from __future__ import annotations

from typing import Any

import torch

from rnntk.core.task_registry import TaskSpec, register_task
from rnntk.core.trials import TrialBatch
from rnntk.sofo.config import preset_values


def _with_reach_periods(tr: TrialBatch) -> TrialBatch:
    """Add ``period_*`` columns (steps) to a double-reach batch: prepare (until go1), reach1 (go1..go2), reach2 (go2..end)."""
    assert tr.dt is not None
    g1 = torch.round(tr.table["go1_s"] / tr.dt).long()
    g2 = torch.round(tr.table["go2_s"] / tr.dt).long()
    end = torch.full_like(g1, tr.steps)
    cols = {"period_prepare_start": torch.zeros_like(g1), "period_prepare_end": g1, "period_reach1_start": g1, "period_reach1_end": g2}
    cols.update(period_reach2_start=g2, period_reach2_end=end)
    tr.table = {**tr.table, **cols}
    return tr


def _spec(task: str) -> TaskSpec:
    from rnntk.sofo.problems import make_problem

    pv: dict[str, Any] = preset_values("cpu-small", task)
    prob = make_problem(task, hidden=pv["hidden"], dt=pv["dt"], steps=pv["steps"])
    prob.prepare(torch.Generator().manual_seed(0))
    ins, outs = {
        "double-reach": (["before-go1", "before-go2", "target1_x", "target1_y", "target2_x", "target2_y"], ["hand_x", "hand_y", "hand_vx", "hand_vy"]),
        "single-reach": (["hold", "target_x", "target_y"], ["hand_x", "hand_y", "hand_vx", "hand_vy"]),
        "kalman": (["y (observation)", "bias", "first step"], ["x (latent)"]),
        "lorenz": (["x", "y", "z"], ["x", "y", "z"]),
        "linreg": ([f"x{i}" for i in range(100)], ["y0", "y1", "y2"]),
    }[task]

    def sample(batch: int, generator: torch.Generator) -> TrialBatch:
        tr = prob.sample(batch, generator).trials
        return _with_reach_periods(tr) if task == "double-reach" else tr

    dt = pv["dt"] if task in ("double-reach", "single-reach") else None
    return TaskSpec(task, sample, dt, ins, outs, description=f"sofo-train --task {task} (cpu-small preset sizes)")


for _t in ("double-reach", "single-reach", "kalman", "lorenz", "linreg"):
    register_task(_t, lambda t=_t: _spec(t), command="sofo-train")
