"""Online learning of long-range dependencies (Zucchet et al. 2023): learning rules for the
LRU and baseline RNN/GRU stacks, their tasks, ``rnntk online-lru*``.

    from rnntk.online import online_gradients, StreamingLearner, gradient_alignment
    loss, info = online_gradients(model, x, y, mask, "online_full", exec="streaming")  # fills .grad
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnntk.online.alignment import gradient_alignment, param_groups
    from rnntk.online.learner import ChunkLearner, StreamingLearner, layer_gradients, loss_weights, online_gradients, step_losses
    from rnntk.online.memory import SavedBytes, rule_memory
    from rnntk.online.models.seq_model import SeqModel, build_seq_model
    from rnntk.online.rules import ALIASES, FITS, RULE_CLASSES, RULES, Rule, canonical_rule, make_rule, resolve_rule

_LAZY: dict[str, str] = {
    "gradient_alignment": "rnntk.online.alignment",
    "param_groups": "rnntk.online.alignment",
    "ChunkLearner": "rnntk.online.learner",
    "StreamingLearner": "rnntk.online.learner",
    "layer_gradients": "rnntk.online.learner",
    "loss_weights": "rnntk.online.learner",
    "online_gradients": "rnntk.online.learner",
    "step_losses": "rnntk.online.learner",
    "SavedBytes": "rnntk.online.memory",
    "rule_memory": "rnntk.online.memory",
    "ALIASES": "rnntk.online.rules",
    "FITS": "rnntk.online.rules",
    "RULES": "rnntk.online.rules",
    "RULE_CLASSES": "rnntk.online.rules",
    "Rule": "rnntk.online.rules",
    "make_rule": "rnntk.online.rules",
    "canonical_rule": "rnntk.online.rules",
    "resolve_rule": "rnntk.online.rules",
    "SeqModel": "rnntk.online.models.seq_model",
    "build_seq_model": "rnntk.online.models.seq_model",
}
__all__ = [
    "ALIASES",
    "ChunkLearner",
    "FITS",
    "RULES",
    "RULE_CLASSES",
    "Rule",
    "SavedBytes",
    "SeqModel",
    "StreamingLearner",
    "build_seq_model",
    "canonical_rule",
    "gradient_alignment",
    "layer_gradients",
    "loss_weights",
    "make_rule",
    "online_gradients",
    "param_groups",
    "resolve_rule",
    "rule_memory",
    "step_losses",
]


def __getattr__(name: str) -> Any:
    """Import on first use, so that ``rnntk <command>`` loads torch only after the thread policy is set."""
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
