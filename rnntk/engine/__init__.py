"""The shared engine: device, seeding, the run folder and its HDF5 file, checkpoints,
progress and clean errors. Methods use it; it imports nothing of the methods."""

from .checkpoint import load_checkpoint, load_file, load_state_into, save_checkpoint
from .config import read_toml, to_toml
from .device import resolve_device, resolve_dtype
from .errors import EXIT_INTERNAL, EXIT_NONFINITE, EXIT_OK, EXIT_USER, Interrupted, NonFiniteError, RnntkError, UserError
from .progress import Progress
from .run import Run, default_run_dir
from .seeding import derive_seed, get_rng_state, resolve_seed, seed_everything, set_rng_state
from .store import RunFile, read_metrics, summarize

__all__ = [
    "EXIT_INTERNAL", "EXIT_NONFINITE", "EXIT_OK", "EXIT_USER",
    "Interrupted", "NonFiniteError", "Progress", "RnntkError", "Run", "RunFile", "UserError",
    "default_run_dir", "derive_seed", "get_rng_state", "load_checkpoint", "load_file", "load_state_into",
    "read_metrics", "read_toml", "resolve_device", "resolve_dtype", "resolve_seed", "save_checkpoint",
    "seed_everything", "set_rng_state", "summarize", "to_toml",
]
