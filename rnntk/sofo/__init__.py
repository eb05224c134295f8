"""Second-order forward-mode optimisation (SOFO, Yu et al. 2024): the optimizer, its sketches
and losses (``from rnntk.sofo import SOFO``), the models and tasks of the paper, ``rnntk sofo-train``.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnntk.sofo.optimizer import (
        MSE,
        SOFO,
        CrossEntropy,
        FunctionLoss,
        Params,
        Sketch,
        SOFOInfo,
        Solution,
        StepFn,
        TangentStepFn,
        as_loss,
        direction,
        flatten_tangents,
        generic_tangent_step,
        n_params,
        sample_tangents,
        sketch_feedforward,
        sketch_recurrent,
        solve,
        whiten,
    )
    from rnntk.sofo.problems import Problem, make_problem
    from rnntk.sofo.train import TrainConfig, train

_LAZY: dict[str, str] = {
    "Params": "rnntk.sofo.optimizer",
    "n_params": "rnntk.sofo.optimizer",
    "flatten_tangents": "rnntk.sofo.optimizer",
    "sample_tangents": "rnntk.sofo.optimizer",
    "MSE": "rnntk.sofo.optimizer",
    "CrossEntropy": "rnntk.sofo.optimizer",
    "FunctionLoss": "rnntk.sofo.optimizer",
    "as_loss": "rnntk.sofo.optimizer",
    "Sketch": "rnntk.sofo.optimizer",
    "sketch_feedforward": "rnntk.sofo.optimizer",
    "StepFn": "rnntk.sofo.optimizer",
    "TangentStepFn": "rnntk.sofo.optimizer",
    "generic_tangent_step": "rnntk.sofo.optimizer",
    "sketch_recurrent": "rnntk.sofo.optimizer",
    "Solution": "rnntk.sofo.optimizer",
    "solve": "rnntk.sofo.optimizer",
    "whiten": "rnntk.sofo.optimizer",
    "direction": "rnntk.sofo.optimizer",
    "SOFOInfo": "rnntk.sofo.optimizer",
    "SOFO": "rnntk.sofo.optimizer",
    "TrainConfig": "rnntk.sofo.train",
    "train": "rnntk.sofo.train",
    "make_problem": "rnntk.sofo.problems",
    "Problem": "rnntk.sofo.problems",
}
__all__ = [
    "CrossEntropy",
    "FunctionLoss",
    "MSE",
    "Params",
    "Problem",
    "SOFO",
    "SOFOInfo",
    "Sketch",
    "Solution",
    "StepFn",
    "TangentStepFn",
    "TrainConfig",
    "as_loss",
    "direction",
    "flatten_tangents",
    "generic_tangent_step",
    "make_problem",
    "n_params",
    "sample_tangents",
    "sketch_feedforward",
    "sketch_recurrent",
    "solve",
    "train",
    "whiten",
]


def __getattr__(name: str) -> Any:
    """Import on first use, so that ``rnntk <command>`` loads torch only after the thread policy is set."""
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
