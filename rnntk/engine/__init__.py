"""The shared engine: device, seeding, the run folder and its HDF5 file, checkpoints,
progress and clean errors. Methods use it; it imports nothing of the methods.

Names are imported lazily (PEP 562) so that ``rnntk --help`` and ``rnntk inspect`` start
without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what IDEs and type checkers see; at run time each name is imported on first use
    from .checkpoint import load_checkpoint, load_file, load_state_into, save_checkpoint
    from .config import read_toml, to_toml
    from .device import device_generator, generator_device, resolve_device, resolve_dtype
    from .errors import EXIT_INTERNAL, EXIT_NONFINITE, EXIT_OK, EXIT_USER, Interrupted, NonFiniteError, RnntkError, UserError
    from .progress import Progress
    from .run import Rows, Run, default_run_dir
    from .seeding import derive_seed, get_rng_state, resolve_seed, seed_everything, set_rng_state, stream_generator
    from .store import RunFile, read_metrics, summarize

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
    "Rows": "run",
    "Run": "run",
    "default_run_dir": "run",
    "derive_seed": "seeding",
    "get_rng_state": "seeding",
    "resolve_seed": "seeding",
    "seed_everything": "seeding",
    "set_rng_state": "seeding",
    "stream_generator": "seeding",
    "RunFile": "store",
    "read_metrics": "store",
    "summarize": "store",
}

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_NONFINITE",
    "EXIT_OK",
    "EXIT_USER",
    "Interrupted",
    "NonFiniteError",
    "Progress",
    "RnntkError",
    "Rows",
    "Run",
    "RunFile",
    "UserError",
    "default_run_dir",
    "derive_seed",
    "device_generator",
    "generator_device",
    "get_rng_state",
    "load_checkpoint",
    "load_file",
    "load_state_into",
    "read_metrics",
    "read_toml",
    "resolve_device",
    "resolve_dtype",
    "resolve_seed",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "stream_generator",
    "summarize",
    "to_toml",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
