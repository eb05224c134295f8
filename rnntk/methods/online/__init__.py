"""Online learning of long-range dependencies (Zucchet et al. 2023): learning rules for the
LRU and baseline RNN/GRU stacks of :mod:`rnntk.nets.seq_model`.

Python API::

    from rnntk.methods.online import online_gradients, StreamingLearner, gradient_alignment
    loss, info = online_gradients(model, x, y, mask, "online_full", exec="streaming")  # fills .grad
"""

from .alignment import gradient_alignment, param_groups
from .learner import ChunkLearner, StreamingLearner, layer_gradients, loss_weights, online_gradients, step_losses
from .memory import SavedBytes, rule_memory
from .rules import ALIASES, FITS, RULES, canonical_rule, resolve_rule

__all__ = [
    "ALIASES", "FITS", "RULES", "ChunkLearner", "SavedBytes", "StreamingLearner", "canonical_rule", "gradient_alignment", "layer_gradients",
    "loss_weights", "online_gradients", "param_groups", "resolve_rule", "rule_memory", "step_losses",
]
