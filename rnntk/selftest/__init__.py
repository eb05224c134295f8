"""``rnntk selftest``: a tiny leaky-RNN integration task that exercises the whole engine."""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnntk.selftest.integrate import integration_trials

_LAZY: dict[str, str] = {"integration_trials": "rnntk.selftest.integrate"}
__all__ = ["integration_trials"]


def __getattr__(name: str) -> Any:
    """Import on first use, so that ``rnntk <command>`` loads torch only after the thread policy is set."""
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
