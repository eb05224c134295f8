"""CordsNet (Soo et al. 2024): the conv-RNN, upstream checkpoints, matrix-free eigen-analysis
of its operators, ``rnntk cordsnet-eval`` and ``rnntk cordsnet-eigs``.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnntk.cordsnet.eigs import cordsnet_operators, leading_eigs
    from rnntk.cordsnet.model import CordsNet, load_cordsnet

_LAZY: dict[str, str] = {
    "CordsNet": "rnntk.cordsnet.model",
    "load_cordsnet": "rnntk.cordsnet.model",
    "leading_eigs": "rnntk.cordsnet.eigs",
    "cordsnet_operators": "rnntk.cordsnet.eigs",
}
__all__ = ["CordsNet", "cordsnet_operators", "leading_eigs", "load_cordsnet"]


def __getattr__(name: str) -> Any:
    """Import on first use, so that ``rnntk <command>`` loads torch only after the thread policy is set."""
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
