"""The state of a :class:`rnntk.engine.run.Run` and its folder: the lock, the ``.rnntk-run``
marker, the disk reserve, provenance, ``config.toml`` and a fresh ``run.h5``.

``Run`` is assembled from small parts over this base: :mod:`.run_signals` (SIGINT/SIGTERM),
:mod:`.run_resume` (``--resume``), :mod:`.run_outputs` (traces, results, figures, the model),
:mod:`.run_close` (status, ``summary.json``) and :mod:`.run` (opening, steps, metrics,
checkpoints, random streams).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from .. import __version__
from .config import to_toml
from .device import device_name
from .errors import StorageError, UserError
from .files import write_failure, write_text_atomic
from .folder import RESERVE, RUN_FILES, RunLock, clear_run_folder, new_run_id, register, replaceable_entries, write_marker
from .seeding import seeds_record
from .store import RunFile
from .threads import ThreadPolicy

CHECKPOINT = "ckpt-last.pt"
RESERVE_BYTES = 512 * 1024


def utc_now() -> _dt.datetime:
    """The current time, timezone-aware UTC."""
    return _dt.datetime.now(_dt.timezone.utc)


def iso(t: _dt.datetime) -> str:
    """``t`` as ISO 8601 to the second, ``Z`` for UTC."""
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


class RunBase:
    """What every part of a run shares: its attributes, folder and file (see :class:`Run`)."""

    def __init__(self) -> None:  # use Run.open
        self.dir: Path
        self.h5: RunFile
        self.command = ""
        self.config: dict[str, Any] = {}
        self.seed = 0
        self.device = torch.device("cpu")
        self.generator = torch.Generator()
        self.device_generator = self.generator  # per-step randomness on self.device (the CPU one on CPU)
        self.step = 0
        self.start_step = 0
        self.resumed = False
        self.status = "running"
        self.outcome: dict[str, Any] = {}
        self.final: dict[str, Any] = {}
        self.last_metrics: dict[str, float] = {}
        self.state: dict[str, Any] = {}  # plain user state, checkpointed and restored
        self.stopped_early = ""
        self._buffer: list[dict[str, float]] = []
        self._tracked: dict[str, Any] = {}
        self._hparams: dict[str, Any] = {}
        self._resume_ck: dict[str, Any] | None = None
        self._rng_restored = False
        self._signal: int | None = None
        self._old_handlers: dict[int, Any] = {}
        self._closed = False
        self._hard_stop: int | None = None
        self._critical_depth = 0
        self._stop_reason = ""
        self._resume_committed = True
        self._last_ckpt_step: int | None = None
        self._last_ckpt_time = 0.0
        self.run_id = ""
        self._lock: RunLock | None = None
        self._registered: set[str] = set()
        self.argv: list[str] = []
        self.created = utc_now()
        self.log_every = 50
        self.flush_secs = 10.0
        self.checkpoint_every = 500
        self.checkpoint_secs = 300.0
        self.threads: ThreadPolicy
        self._progress_mode = "auto"
        self._t0 = time.monotonic()
        self._last_flush = self._t0

    def _prepare_dir(self, force: bool) -> None:
        """Make (or, with ``force``, empty) the run folder and take its lock. ``--force``
        deletes only what :func:`rnntk.engine.folder.replaceable_entries` proves rnntk wrote."""
        d = self.dir
        if d.exists() and not d.is_dir():
            raise UserError(f"output path exists and is a file: {d}")
        if d.exists() and any(d.iterdir()):
            if not force:
                raise UserError(f"output folder exists: {d}; use --force to replace it or --resume {d} to continue")
            if d.is_symlink():
                raise UserError(f"--force: {d} is a symbolic link; refusing to delete what it points to")
            here = Path.cwd().resolve()
            if d.resolve() == here or d.resolve() in here.parents:
                raise UserError(f"--force: {d} is the current folder or one of its parents; refusing to delete it")
            replaceable_entries(d)  # refuses (deleting nothing) unless rnntk wrote every entry
            self._lock = RunLock(d).acquire()  # no other process may start on it now
            clear_run_folder(d, replaceable_entries(d, locked_by_us=True))
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create output folder {d}: {e.strerror}") from None
        if not os.access(d, os.W_OK):
            raise UserError(f"output folder is not writable: {d}")
        if self._lock is None:
            self._lock = RunLock(d).acquire()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _register(self, name: str) -> None:
        """Record ``name`` (a file this run writes in its folder) in the ``.rnntk-run`` marker."""
        if name in self._registered or name in RUN_FILES or not self.run_id:
            return
        self._registered.add(name)
        try:
            register(self.dir, self.run_id, self._registered)
        except OSError as e:
            raise UserError(f"cannot write {self.dir / '.rnntk-run'}: {e.strerror or e}") from None

    def _provenance(self) -> dict[str, Any]:
        env = os.environ
        return dict(
            rnntk_version=__version__,
            command=self.command,
            argv=json.dumps(self.argv),
            seed=self.seed,
            seeds=json.dumps(seeds_record(self.seed)),
            device=str(self.device),
            device_name=device_name(self.device),
            torch_version=torch.__version__,
            numpy_version=np.__version__,
            h5py_version=h5py.__version__,
            python_version=platform.python_version(),
            host=socket.gethostname(),
            slurm_job_id=env.get("SLURM_JOB_ID", ""),
            slurm_array_job_id=env.get("SLURM_ARRAY_JOB_ID", ""),
            slurm_array_task_id=env.get("SLURM_ARRAY_TASK_ID", ""),
            slurm_restart_count=env.get("SLURM_RESTART_COUNT", ""),
        )

    def _write_config(self) -> None:
        header = (
            f"rnntk {self.command}: every resolved option of this run (rnntk {__version__}).\n"
            f"Re-run: rnntk {self.command} --config config.toml --out NEW_FOLDER"
        )
        text = to_toml(self.config, header)
        write_text_atomic(self.dir / "config.toml", text)
        self.h5.write_config(self.config, text)

    def _make_reserve(self) -> None:
        """``.rnntk-reserve``: room kept on the run's disk, freed when a write fails there
        (disk full), so that HDF5 can still commit its metadata (run.h5 stays readable) and
        summary.json can be written. Removed when the run closes."""
        path = self.dir / RESERVE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
            try:
                try:
                    os.posix_fallocate(fd, 0, RESERVE_BYTES)
                except (AttributeError, OSError) as e:
                    if getattr(e, "errno", None) in (28, 122):
                        raise
                    os.write(fd, b"\0" * RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError as e:
            path.unlink(missing_ok=True)
            raise StorageError(write_failure(path, e) or f"cannot write {path}: {e.strerror or e}") from None

    def _free_reserve(self) -> None:
        try:
            (self.dir / RESERVE).unlink(missing_ok=True)
        except OSError:
            pass

    def _storage_failed(self, path: Path, e: BaseException) -> StorageError | None:
        """A :class:`StorageError` for a failed write to ``path`` when the disk refused it
        (the reserve is freed, run.h5 flushed and further data writes stopped), else None."""
        msg = write_failure(path, e)
        if msg is None:
            return None
        if getattr(self, "h5", None) is not None:
            self.h5._fail(msg)
        self._free_reserve()
        return StorageError(msg)

    def _open_fresh(self) -> None:
        self.run_id = new_run_id()
        try:
            write_marker(self.dir, self.run_id)
        except OSError as e:
            raise (self._storage_failed(self.dir / ".rnntk-run", e) or UserError(f"cannot write in {self.dir}: {e.strerror or e}")) from None
        self._make_reserve()
        try:
            self.h5 = RunFile(self.dir / "run.h5", "w")
        except OSError as e:
            self._free_reserve()
            raise (self._storage_failed(self.dir / "run.h5", e) or UserError(f"cannot create {self.dir / 'run.h5'}: {e}")) from None
        self.h5.on_failure = self._free_reserve
        try:
            self.h5.set_attrs(created=iso(self.created), finished="", run_id=self.run_id, **self._provenance())
            self._write_config()
            self.h5.set_status("running")
        except BaseException:
            self.h5.close()
            raise
