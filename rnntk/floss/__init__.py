"""Gradient flossing (Engelken 2023): floss a model's first k Lyapunov exponents towards a
target, ``rnntk floss``. The package itself is callable: ``rnntk.floss(model, inputs, k, steps)``
is :func:`rnntk.floss.flossing.floss` (kept from the one-module API).
"""

from __future__ import annotations

import importlib as _importlib
import sys as _sys
import types as _types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnntk.floss.config import FlossConfig
    from rnntk.floss.flossing import FlossSchedule, floss, floss_step
    from rnntk.floss.train import train_floss

_LAZY: dict[str, str] = {
    "floss": "rnntk.floss.flossing",
    "FlossSchedule": "rnntk.floss.flossing",
    "floss_step": "rnntk.floss.flossing",
    "FlossConfig": "rnntk.floss.config",
    "train_floss": "rnntk.floss.train",
}
__all__ = ["FlossConfig", "FlossSchedule", "floss", "floss_step", "train_floss"]


def __getattr__(name: str) -> Any:
    """Import on first use, so that ``rnntk <command>`` loads torch only after the thread policy is set."""
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(_types.ModuleType):
    """``rnntk.floss(...)`` calls :func:`rnntk.floss.flossing.floss` (README promise, one-module API)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from rnntk.floss.flossing import floss as _floss

        return _floss(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
