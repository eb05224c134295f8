"""What truly crosses methods: trial batches, the recurrent-model contract and registry,
and the two reference RNNs (vanilla, leaky) used by several slices and by the analyses.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnntk.core.constrained_rnn import ConstrainedRNN
    from rnntk.core.leaky_rnn import LeakyRNN
    from rnntk.core.trials import TrialBatch
    from rnntk.core.vanilla_rnn import VanillaRNN

_LAZY: dict[str, str] = {
    "ConstrainedRNN": "rnntk.core.constrained_rnn",
    "TrialBatch": "rnntk.core.trials",
    "VanillaRNN": "rnntk.core.vanilla_rnn",
    "LeakyRNN": "rnntk.core.leaky_rnn",
}
__all__ = ["ConstrainedRNN", "LeakyRNN", "TrialBatch", "VanillaRNN"]


def __getattr__(name: str) -> Any:
    """Import on first use, so that ``rnntk <command>`` loads torch only after the thread policy is set."""
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
