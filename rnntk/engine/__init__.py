"""The shared engine: device, seeding, the run folder and its HDF5 file, checkpoints,
progress and clean errors. Methods use it; it imports nothing of the methods.

Names are imported lazily (PEP 562) so that ``rnntk --help`` and ``rnntk inspect`` start
without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_checkpoint": "checkpoint",
    "load_file": "checkpoint",
    "load_state_into": "checkpoint",
    "save_checkpoint": "checkpoint",
    "read_toml": "config",
    "to_toml": "config",
    "resolve_device": "device",
    "resolve_dtype": "device",
    "generator_device": "device",
    "device_generator": "device",
    "EXIT_INTERNAL": "errors",
    "EXIT_NONFINITE": "errors",
    "EXIT_OK": "errors",
    "EXIT_USER": "errors",
    "Interrupted": "errors",
    "NonFiniteError": "errors",
    "RnntkError": "errors",
    "UserError": "errors",
    "Progress": "progress",
    "Run": "run",
    "default_run_dir": "run",
    "derive_seed": "seeding",
    "get_rng_state": "seeding",
    "resolve_seed": "seeding",
    "seed_everything": "seeding",
    "set_rng_state": "seeding",
    "RunFile": "store",
    "read_metrics": "store",
    "summarize": "store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
