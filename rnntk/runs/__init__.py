"""Many runs: sweeps of one command over seeds and options (local, Slurm via submitit, sbatch),
and the tools that read many run folders. Runs every command as a child ``rnntk`` process, so
it imports no method package."""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnntk.runs.launchers import LocalLauncher, PrintLauncher, SlurmLauncher
    from rnntk.runs.sweep import Job, Sweep, job_state, load_sweep, parse_sweep

_LAZY: dict[str, str] = {
    "Job": "rnntk.runs.sweep",
    "Sweep": "rnntk.runs.sweep",
    "load_sweep": "rnntk.runs.sweep",
    "parse_sweep": "rnntk.runs.sweep",
    "job_state": "rnntk.runs.sweep",
    "LocalLauncher": "rnntk.runs.launchers",
    "SlurmLauncher": "rnntk.runs.launchers",
    "PrintLauncher": "rnntk.runs.launchers",
}
__all__ = ["Job", "LocalLauncher", "PrintLauncher", "SlurmLauncher", "Sweep", "job_state", "load_sweep", "parse_sweep"]


def __getattr__(name: str) -> Any:
    """Import on first use (``rnntk --help`` stays fast)."""
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
