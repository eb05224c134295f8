"""``Run``: one training or analysis run — its folder, ``run.h5``, checkpoints, progress,
non-finite guard, signal handling, and the summary left for scripts.

Usage (the engine contract)::

    from rnntk.engine import Run

    with Run.open("runs/demo", command="demo", config=cfg, seed=0, device="auto") as run:
        model = Net().to(run.device)
        opt = torch.optim.Adam(model.parameters())
        run.track(model, opt, hparams={"n": 64})           # checkpointed; restored on resume
        for step in run.steps(1000, desc="train"):         # progress, resumable, signal-safe
            loss = ...
            run.log(step, loss=loss)                       # /metrics; NaN/inf → NonFiniteError
        run.trace("activity", rates, dt=0.01)              # /traces/activity [trial, time, unit]
        run.save_model()                                   # model.pt + /model/*

On exit the status is set (completed | nonfinite | interrupted | failed), the HDF5 file is
flushed and closed, and ``summary.json`` is written last, atomically. ``run.outcome`` holds
what the CLI prints as its JSON line.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import resource
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import h5py
import numpy as np
import torch
from torch import nn

from .. import __version__
from .checkpoint import load_checkpoint, load_state_into, save_checkpoint
from .config import plain, to_toml
from .device import device_generator, device_name, resolve_device
from .errors import Interrupted, NonFiniteError, RnntkError, StorageError, UserError
from .files import atomic_path, write_failure, write_json_atomic, write_text_atomic
from .folder import RESERVE, RUN_FILES, RunLock, clear_run_folder, new_run_id, read_marker, register, replaceable_entries, write_marker
from .progress import Progress
from .seeding import derive_seed, get_rng_state, resolve_seed, seed_everything, seeds_record, set_rng_state, validate_rng_state
from .store import RunFile
from .threads import ensure_torch_threads

CHECKPOINT = "ckpt-last.pt"
RESERVE_BYTES = 512 * 1024
_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGUSR2", None)) if s is not None)


def _utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _iso(t: _dt.datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def default_run_dir(command: str, seed: int, root: Path | str = "runs", now: _dt.datetime | None = None) -> Path:
    """``runs/<command>-<UTC>-s<seed>[-j<job>_<task>]``, made unique with ``-2``, ``-3``..."""
    now = now or _utc_now()
    name = f"{command}-{now.strftime('%Y%m%dT%H%M%SZ')}-s{seed}"
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        name += f"-j{job}" + (f"_{task}" if task else "")
    base = Path(root) / name
    cand, i = base, 2
    while cand.exists():
        cand = base.with_name(f"{base.name}-{i}")
        i += 1
    return cand


def _to_float(name: str, v: Any) -> float:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ValueError(f"metric {name!r} must be a scalar, got a tensor of shape {tuple(v.shape)}")
        return float(v.detach().cpu().item())
    return float(v)


def _check_optimizer_state(opt: Any, sd: Any, src: str) -> None:
    """A torch optimizer's checkpointed state must fit its parameters: the same number of
    parameters, and every per-parameter state tensor (momenta, second moments) of the
    parameter's shape. ``load_state_dict`` checks only the counts; a wrong shape would fail
    at the first step, after the resume committed."""
    if not isinstance(opt, torch.optim.Optimizer):
        return
    if not isinstance(sd, dict) or not isinstance(sd.get("state"), dict) or not isinstance(sd.get("param_groups"), list):
        raise UserError(f"--resume: {src} has a damaged optimizer state (no 'state'/'param_groups')")
    params = [p for g in opt.param_groups for p in g["params"]]
    try:
        ids = [i for g in sd["param_groups"] for i in g["params"]]
    except (TypeError, KeyError):
        raise UserError(f"--resume: {src} has a damaged optimizer state (param_groups)") from None
    if len(ids) != len(params):
        raise UserError(f"--resume: {src} holds an optimizer state for {len(ids)} parameters, this run has {len(params)}")
    for i, p in zip(ids, params):
        st = sd["state"].get(i, {})
        if not isinstance(st, dict):
            raise UserError(f"--resume: {src} has a damaged optimizer state for parameter {i}")
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and v.dim() > 0 and tuple(v.shape) != tuple(p.shape):
                raise UserError(f"--resume: {src}: optimizer state '{k}' of parameter {i} has shape {tuple(v.shape)}, the parameter has {tuple(p.shape)}")
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all():
                raise UserError(f"--resume: {src}: optimizer state '{k}' of parameter {i} is not finite")


class Run:
    """A run folder with its HDF5 file. Create with :meth:`Run.open`; use as a context manager."""

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

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        out: Path | str | None = None,
        *,
        command: str,
        config: Mapping[str, Any] | None = None,
        seed: int | str = 0,
        device: str | torch.device = "auto",
        force: bool = False,
        resume: bool = False,
        progress: str = "auto",
        log_every: int = 50,
        flush_secs: float = 10.0,
        checkpoint_every: int | None = None,
        checkpoint_secs: float = 300.0,
        argv: Sequence[str] | None = None,
        runs_root: Path | str = "runs",
    ) -> "Run":
        """Create (or, with ``resume=True``, reopen) a run folder.

        out: the run folder; ``None`` → :func:`default_run_dir`. An existing non-empty
          folder is refused unless ``force`` (which replaces an earlier *run* folder, and
          never deletes a folder that is not one) or ``resume``.
        progress: ``auto|bar|plain|none`` (``none`` for --quiet).
        log_every / flush_secs: metrics are appended to ``run.h5`` and flushed every
          ``log_every`` rows or ``flush_secs`` seconds, whichever comes first.
        checkpoint_every / checkpoint_secs: ``ckpt-last.pt`` is rewritten every that many
          steps (default: 10 flushes' worth) or seconds, at step boundaries.
        """
        self = cls()
        self.command = command
        self.seed = resolve_seed(seed)
        self.device = resolve_device(device)
        self._progress_mode = progress
        self.log_every = max(1, int(log_every))
        self.flush_secs = float(flush_secs)
        self.checkpoint_every = int(checkpoint_every) if checkpoint_every else 10 * self.log_every
        self.checkpoint_secs = float(checkpoint_secs)
        self.config = {k: plain(v) for k, v in (config or {}).items()}
        self.argv = list(argv) if argv is not None else list(sys.argv)
        self.created = _utc_now()
        self._t0 = time.monotonic()
        self._last_flush = self._t0
        self._last_ckpt_time = self._t0
        self.threads = ensure_torch_threads()

        if resume:
            if out is None:
                raise UserError("--resume needs the run folder to continue")
            self.dir = Path(out)
            try:
                self._open_resume()
            except BaseException:
                self._release_lock()
                raise
        else:
            self.dir = Path(out) if out is not None else default_run_dir(command, self.seed, runs_root)
            try:
                self._prepare_dir(force)
                self._open_fresh()
            except BaseException:
                if self._lock is not None:  # a folder this run made: no reserve left behind
                    self._free_reserve()
                    if not (self.dir / "run.h5").exists():
                        (self.dir / ".rnntk-run").unlink(missing_ok=True)
                self._release_lock()
                raise
        try:
            self.h5.set_attrs(**self.threads.attrs())
            self.generator = seed_everything(self.seed)
            self.device_generator = device_generator(self.device, self.generator, derive_seed(self.seed, "device"))
            self._install_signals()
        except BaseException as e:
            self.close(e)
            raise
        return self

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
            self.h5.set_attrs(created=_iso(self.created), finished="", run_id=self.run_id, **self._provenance())
            self._write_config()
            self.h5.set_status("running")
        except BaseException:
            self.h5.close()
            raise

    def _open_resume(self) -> None:
        d = self.dir
        if not d.is_dir():
            raise UserError(f"--resume: no such run folder: {d}")
        if not (d / "run.h5").exists():
            raise UserError(f"--resume: {d} has no run.h5; not an rnntk run folder")
        self._lock = RunLock(d).acquire()  # refuses while another process writes the run
        marker = read_marker(d)
        self.run_id = marker["id"] if marker else ""
        self._registered = set(marker["files"]) if marker else set()
        try:  # read-only until the resume commits: a failed resume changes no byte
            self.h5 = RunFile(d / "run.h5", "r", before_write=self._commit_resume)
        except OSError as e:
            raise UserError(f"--resume: cannot open {d / 'run.h5'}: {e}") from None
        ck_path = d / CHECKPOINT
        try:
            if ck_path.exists():
                self._resume_ck = load_checkpoint(ck_path)
                self._validate_resume_checkpoint(self._resume_ck, ck_path)
                self.start_step = int(self._resume_ck["step"])
                self.state = dict(self._resume_ck.get("extra", {}).get("state", {}))
            else:
                print(f"note: --resume: {d} has no checkpoint yet; starting again from step 0", file=sys.stderr)
                self.start_step = 0
        except BaseException:
            self.h5.close()
            raise
        self.step = self.start_step
        self._last_ckpt_step = self.start_step if self._resume_ck else None
        self.resumed = True
        self._resume_committed = False  # nothing on disk changes until _commit_resume()

    def _validate_resume_checkpoint(self, ck: dict[str, Any], path: Path) -> None:
        """Everything a resume applies after its commit, checked before it (exit 2, the
        folder unchanged): the step, the RNG states, the extra state."""
        step = ck["step"]
        if isinstance(step, bool) or step < 0:
            raise UserError(f"--resume: {path} is damaged: step {step} is negative")
        rows = self.h5.n_rows()
        g = self.h5.f.get("checkpoints/last")
        recorded = int(g.attrs["step"]) if g is not None and "step" in g.attrs else None
        bound = max(rows, recorded if recorded is not None else 0)
        if (rows or recorded is not None) and step > bound:
            raise UserError(f"--resume: {path} is damaged: step {step} is past what run.h5 recorded ({rows} metric rows, checkpoint at step {recorded})")
        if ck.get("rng") is not None:
            try:
                validate_rng_state(ck["rng"], torch.Generator())
            except UserError as e:
                raise UserError(f"--resume: {path} is damaged: {e}") from None
        extra = ck.get("extra") or {}
        for key in ("state", "objects"):
            if extra.get(key) is not None and not isinstance(extra[key], dict):
                raise UserError(f"--resume: {path} is damaged: extra '{key}' is not a dict")

    def _commit_resume(self, n_steps: int | None = None) -> None:
        """Truncate metrics past the checkpoint, rewrite the config, mark the run running.
        Called when training actually continues, after the model and optimizer loaded."""
        if not self.resumed or self._resume_committed:
            return
        if n_steps is not None and n_steps < self.start_step:
            raise UserError(f"--resume: {self.dir} is already at step {self.start_step}; ask for at least that many steps (got {n_steps})")
        self._resume_committed = True
        d = self.dir
        try:
            self.h5.reopen_writable()
        except OSError as e:
            raise UserError(f"--resume: cannot open {d / 'run.h5'} for writing: {e}") from None
        self.h5.on_failure = self._free_reserve
        self._make_reserve()
        if not self.run_id:  # a run of an older rnntk: mark it now
            self.run_id = new_run_id()
            write_marker(d, self.run_id, self._registered)
            self.h5.set_attrs(run_id=self.run_id)
        kept = self.h5.truncate_metrics(self.start_step)
        g = self.h5.f["metrics"]
        for k in g:
            if k in ("step", "wall_time"):
                continue
            v = g[k][:]
            v = v[np.isfinite(v)]
            if v.size:
                self.last_metrics[k] = float(v[-1])
        prev = self.h5.f.attrs.get("resume_count", 0)
        self.h5.set_attrs(
            resumed=_iso(self.created),
            resume_count=int(prev) + 1,
            resumed_from_step=self.start_step,
            metrics_rows_kept=kept,
            finished="",
            error="",
            **self._provenance(),
        )
        self._write_config()
        (d / "summary.json").unlink(missing_ok=True)  # the run is no longer finished
        self.h5.set_status("running")

    # ------------------------------------------------------------------ signals
    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for s in _SIGNALS:
            self._old_handlers[s] = signal.getsignal(s)
            signal.signal(s, self._on_signal)

    def _restore_signals(self) -> None:
        for s, h in self._old_handlers.items():
            try:
                signal.signal(s, h)
            except (ValueError, TypeError):
                pass
        self._old_handlers = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._signal is not None:  # second signal: stop now (but never inside a file write)
            self._hard_stop = signum
            if self._critical_depth == 0:
                self._raise_hard_stop()
            return
        self._signal = signum
        print(
            f"received {signal.Signals(signum).name}: checkpointing after the current step (send again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    def _raise_hard_stop(self) -> None:
        signum, self._hard_stop = self._hard_stop, None
        kept = f"last checkpoint kept (step {self._last_ckpt_step})" if self._last_ckpt_step is not None else "no checkpoint had been written"
        raise Interrupted(signum, self.step, note=f"second signal, stopped mid-step; {kept}")

    @contextlib.contextmanager
    def _critical(self) -> Iterator[None]:
        """A file write that a second signal must not cut in half."""
        self._critical_depth += 1
        try:
            yield
        finally:
            self._critical_depth -= 1
        if self._critical_depth == 0 and self._hard_stop is not None:
            self._raise_hard_stop()

    def check_interrupt(self, checkpoint: bool = True) -> None:
        """Raise :class:`Interrupted` (after checkpointing) if a signal arrived. Call it in
        long phases outside :meth:`steps`; :meth:`steps` calls it at every step boundary.
        ``checkpoint=False`` inside a step (a method loop's callback): the step is not done,
        so no checkpoint is written and the last one (at a step boundary) is kept."""
        if self._signal is not None and not checkpoint:
            if not self._tracked:
                raise Interrupted(self._signal, self.step, note="nothing to checkpoint")
            kept = f"last checkpoint kept (step {self._last_ckpt_step})" if self._last_ckpt_step is not None else "no checkpoint had been written"
            raise Interrupted(self._signal, self.step, note=f"stopped inside the step; {kept}; continue with --resume {self.dir}")
        if self._signal is not None:
            info = self.save_checkpoint()
            note = f"checkpoint {CHECKPOINT} at step {self.step}" if info else "nothing to checkpoint"
            raise Interrupted(self._signal, self.step, note=note + f"; continue with --resume {self.dir}")

    # ------------------------------------------------------------------ training
    def track(self, model: nn.Module | None = None, optimizer: Any = None, *, hparams: Mapping[str, Any] | None = None, **others: Any) -> None:
        """Register what checkpoints hold: the model (its class name and ``hparams``, the
        constructor arguments), the optimizer, and any other objects with
        ``state_dict()``/``load_state_dict()`` (schedulers, a second model...).

        When resuming, their states are loaded here from ``ckpt-last.pt``.
        """
        if model is not None:
            self._tracked["model"] = model
        if optimizer is not None:
            self._tracked["optimizer"] = optimizer
        self._tracked.update(others)
        if hparams is not None:
            self._hparams = dict(plain(dict(hparams)))
        ck = self._resume_ck
        if ck is None:
            return
        src = f"{self.dir / CHECKPOINT}"
        if model is not None:
            if ck.get("model") and ck["model"] != type(model).__name__:
                raise UserError(f"--resume: checkpoint holds a {ck['model']}, this run builds a {type(model).__name__}")
            load_state_into(model, ck["state_dict"], source=f"--resume: {src}")
        try:
            if optimizer is not None and ck.get("optimizer") is not None:
                _check_optimizer_state(optimizer, ck["optimizer"], src)
                optimizer.load_state_dict(ck["optimizer"])
            objs = ck.get("extra", {}).get("objects", {})
            for name, obj in others.items():
                if name in objs:
                    if isinstance(obj, nn.Module):
                        load_state_into(obj, objs[name], source=f"{src} [{name}]")
                    else:
                        obj.load_state_dict(objs[name])
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise UserError(f"--resume: {src} does not fit this run's optimizer or state ({first})") from None

    def stop(self, reason: str = "stopped early") -> None:
        """Ask :meth:`steps` to end after the current step (early stopping). Prefer this to
        ``break``: the step then counts as done and is checkpointed."""
        self._stop_reason = reason

    def _rng_state(self) -> dict[str, Any]:
        """Every RNG state for a checkpoint, the device generator's too when it is its own."""
        state = get_rng_state(self.generator)
        if self.device_generator is not self.generator:
            state["device_generator"] = self.device_generator.get_state()
        return state

    def steps(self, n: int, desc: str | None = None, *, time_budget: float | None = None) -> Iterator[int]:
        """Iterate ``step`` from the first not-yet-done step to ``n - 1``.

        Shows progress, restores RNG states on resume (so a resumed run is bit-identical
        to an uninterrupted one), checkpoints every ``checkpoint_every`` steps or
        ``checkpoint_secs`` seconds and when the loop ends, and stops cleanly on a signal,
        on :meth:`stop`, or when ``time_budget`` seconds have passed (``run.stopped_early``
        says why). A ``break`` out of the loop skips the final checkpoint: ``--resume``
        then replays from the last periodic one.
        """
        self._commit_resume(n)
        if self._resume_ck is not None and self._resume_ck.get("rng") and not self._rng_restored:
            set_rng_state(self._resume_ck["rng"], self.generator)
            if self.device_generator is not self.generator and "device_generator" in self._resume_ck["rng"]:
                self.device_generator.set_state(self._resume_ck["rng"]["device_generator"])
            self._rng_restored = True
        bar = Progress(n, desc or self.command, mode=self._progress_mode, start=self.step)
        t_start = time.monotonic()
        try:
            if self._tracked and self._last_ckpt_step is None:
                self.save_checkpoint()  # the initial state: there is always a last good checkpoint
            self.check_interrupt()
            for step in range(self.step, n):
                yield step
                self.step = step + 1
                bar.update(self.step, self.last_metrics)
                now = time.monotonic()
                if self._signal is not None:
                    self.check_interrupt()
                if self._stop_reason:
                    self.stopped_early = f"{self._stop_reason} at step {self.step}"
                    break
                if time_budget is not None and now - t_start >= time_budget and self.step < n:
                    self.stopped_early = f"time budget of {time_budget:g} s reached at step {self.step}"
                    break
                if self._tracked and (self.step % self.checkpoint_every == 0 or now - self._last_ckpt_time >= self.checkpoint_secs):
                    self.save_checkpoint()
            # the loop is done: checkpoint now, before any post-loop code draws random numbers,
            # so that a later --resume with more steps continues bit-identically
            if self._last_ckpt_step != self.step:
                self.save_checkpoint()
        finally:
            bar.close()

    def log(self, step: int, **metrics: float | torch.Tensor) -> None:
        """Append one row of scalar metrics at ``step`` to ``/metrics``.

        Raises :class:`NonFiniteError` (after writing the row) if any value is NaN or inf.
        """
        row: dict[str, float] = {"step": int(step)}
        bad: tuple[str, float] | None = None
        for k, v in metrics.items():
            x = _to_float(k, v)
            row[k] = x
            if not math.isfinite(x) and bad is None:
                bad = (k, x)
        row["wall_time"] = time.monotonic() - self._t0
        self._buffer.append(row)
        if bad is not None:
            self.flush()
            raise NonFiniteError(step, bad[0], bad[1])
        self.last_metrics.update({k: v for k, v in row.items() if k not in ("step", "wall_time")})
        if len(self._buffer) >= self.log_every or time.monotonic() - self._last_flush >= self.flush_secs:
            self.flush()

    def flush(self) -> None:
        """Append buffered metric rows to ``run.h5`` and flush the file. A failed append is
        rolled back in the file and the rows stay buffered (never written twice)."""
        with self._critical():
            try:
                if self._buffer:
                    self.h5.append_metrics(self._buffer)
                    self._buffer = []
                else:
                    self.h5.flush()
            except OSError as e:
                raise UserError(f"cannot write {self.dir / 'run.h5'}: {e}") from None
        self._last_flush = time.monotonic()

    def save_checkpoint(self) -> dict[str, Any] | None:
        """Write ``ckpt-last.pt`` (tracked objects, RNG states, step) atomically, after
        flushing metrics. Returns ``{bytes, sha256}``, or None when nothing is tracked (or
        a resume has not continued yet: the checkpoint on disk is still the last state)."""
        if not self._tracked or (self.resumed and not self._resume_committed):
            return None
        self.flush()
        model = self._tracked.get("model")
        objects = {k: v.state_dict() for k, v in self._tracked.items() if k not in ("model", "optimizer")}
        with self._critical():
            try:
                info = save_checkpoint(
                    self.dir / CHECKPOINT,
                    state_dict=model.state_dict() if model is not None else {},
                    model_class=type(model).__name__ if model is not None else "",
                    hparams=self._hparams,
                    optimizer=self._tracked.get("optimizer"),
                    rng=self._rng_state(),
                    step=self.step,
                    extra={"objects": objects, "state": plain(self.state)},
                )
            except (OSError, RuntimeError) as e:
                err = self._storage_failed(self.dir / CHECKPOINT, e)
                if err is not None:
                    raise err from None
                first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
                raise UserError(f"cannot write checkpoint {self.dir / CHECKPOINT}: {first}") from None
            g = self.h5.f["checkpoints"].require_group("last")
            g.attrs.update(path=CHECKPOINT, step=self.step, bytes=info["bytes"], sha256=info["sha256"], created=_iso(_utc_now()))
            self.h5.flush()
        self._last_ckpt_step = self.step
        self._last_ckpt_time = time.monotonic()
        return info

    # ------------------------------------------------------------------ outputs
    def path(self, name: str) -> Path:
        """A path inside the run folder, for a file the command writes itself (recorded in
        the ``.rnntk-run`` marker as rnntk's, so ``--force`` may replace it)."""
        self._register(Path(name).name if Path(name).parent == Path(".") else Path(name).parts[0])
        return self.dir / name

    def trace(
        self,
        name: str,
        data: Any,
        *,
        dt: float,
        dims: Sequence[str] = ("trial", "time", "unit"),
        units: str = "a.u.",
        t0: float = 0.0,
        description: str = "",
        append: bool = False,
        **attrs: Any,
    ) -> None:
        """``/traces/<name>``: activity ``[trial, time, unit]`` (float32, gzip), ``dt`` in s."""
        if isinstance(data, torch.Tensor):
            data = data.detach().cpu().float().numpy()
        self.h5.write_trace(name, data, dt=dt, dims=dims, units=units, t0=t0, description=description, append=append, recorded_at_step=self.step, **attrs)

    def trials(self, table: Mapping[str, Any], append: bool = False) -> None:
        """``/trials/<column>``: the per-trial table a task returns (one 1-D column each)."""
        cols = {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v) for k, v in table.items()}
        self.h5.write_table("trials", cols, append=append)

    def result(self, name: str, data: Any, **attrs: Any) -> None:
        """``/results/<name>``: a final analysis array (complex allowed)."""
        if isinstance(data, torch.Tensor):
            data = data.detach().cpu().numpy()
        self.h5.write_array("results", name, data, **attrs)
        self.h5.flush()

    def save_model(self, model: nn.Module | None = None, name: str = "model", hparams: Mapping[str, Any] | None = None) -> Path:
        """Write ``<name>.pt`` (an rnntk checkpoint without optimizer) and the weights as
        plain arrays under ``/model`` (readable without torch)."""
        model = model if model is not None else self._tracked.get("model")
        if model is None:
            raise ValueError("save_model: no model given or tracked")
        hp = dict(plain(dict(hparams))) if hparams is not None else self._hparams
        path = self.dir / f"{name}.pt"
        self._register(path.name)
        try:
            save_checkpoint(path, model=model, hparams=hp, step=self.step)
        except (OSError, RuntimeError) as e:
            err = self._storage_failed(path, e)
            if err is None:
                raise
            raise err from None
        prefix = "" if name == "model" else f"{name}/"
        for k, v in model.state_dict().items():
            arr = v.detach().cpu()
            if arr.is_floating_point():
                arr = arr.float()
            self.h5.write_array("model", prefix + k, arr.numpy(), shape=list(v.shape))
        self.h5.f["model"].attrs.update(model_class=type(model).__name__, hparams=json.dumps(hp), checkpoint=path.name)
        self.h5.flush()
        return path

    def figure(self, fig: Any, name: str, dpi: int = 120) -> Path:
        """Save a matplotlib figure as ``<name>.png`` in the run folder (atomically) and close it."""
        path = self.dir / (name if name.endswith(".png") else f"{name}.png")
        self._register(path.name)
        try:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        except (OSError, RuntimeError) as e:
            err = self._storage_failed(path, e)
            if err is None:
                raise
            raise err from None
        try:
            import matplotlib.pyplot as plt

            plt.close(fig)
        except Exception:  # pragma: no cover - matplotlib missing is fine
            pass
        return path

    def finish(self, **final: Any) -> None:
        """Record final values (accuracy, best loss...) for ``summary.json`` and the JSON line."""
        self.final.update({k: plain(v.item() if isinstance(v, torch.Tensor) else v) for k, v in final.items()})

    # ------------------------------------------------------------------ closing
    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        self.close(exc)
        return False

    def close(self, exc: BaseException | None = None) -> None:
        """Set the status from ``exc``, flush and close ``run.h5``, write ``summary.json``.

        A ``--resume`` that failed before training continued (bad checkpoint, wrong model)
        leaves the run folder exactly as it was. If closing itself fails (disk full) with no
        other error pending, the status is ``failed`` and an error is raised after cleanup.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._close(exc)
        finally:
            self._release_lock()  # last: the folder is complete (or left as it was)

    def _close(self, exc: BaseException | None) -> None:
        self._restore_signals()
        if self.resumed and not self._resume_committed:
            if exc is None:
                self._commit_resume()
            else:
                self.h5.close()
                msg = exc.one_line() if isinstance(exc, RnntkError) else f"{type(exc).__name__}: {exc}"
                status = "interrupted" if isinstance(exc, (Interrupted, KeyboardInterrupt)) else ("error" if isinstance(exc, UserError) else "failed")
                self.status = status
                self.outcome = {
                    "status": status,
                    "run_dir": str(self.dir),
                    "command": self.command,
                    "step": self.step,
                    "error": msg,
                    "note": "run folder left unchanged",
                }
                return
        error = ""
        if exc is None:
            status = "completed"
        elif isinstance(exc, NonFiniteError):
            status = "nonfinite"
            if self._last_ckpt_step is not None:
                exc.note = f"last good checkpoint kept: {self.dir / CHECKPOINT} (step {self._last_ckpt_step})"
            else:
                exc.note = "no checkpoint had been written yet"
            exc.args = (str(exc).split("; training stopped")[0] + "; training stopped; " + exc.note,)
            error = exc.one_line()
        elif isinstance(exc, (Interrupted, KeyboardInterrupt)):
            status = "interrupted"
            error = exc.one_line() if isinstance(exc, Interrupted) else "interrupted by SIGINT"
        else:
            status = "failed"
            error = exc.one_line() if isinstance(exc, RnntkError) else f"{type(exc).__name__}: {exc}"
        wall = time.monotonic() - self._t0
        finished = _utc_now()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        close_error = ""
        try:
            if self._buffer:
                self.h5.append_metrics(self._buffer)
                self._buffer = []
        except Exception as e:  # noqa: BLE001 - e.g. the disk is full: still record the status
            close_error = e.one_line() if isinstance(e, StorageError) else f"cannot finish {self.dir / 'run.h5'}: {type(e).__name__}: {e}"
            if status == "completed":
                status, error = "failed", close_error
        try:
            extra = {}
            if self.device.type == "cuda":
                extra["peak_cuda_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
            self.h5.set_attrs(
                finished=_iso(finished),
                wall_s=wall,
                peak_rss_mb=peak_mb,
                steps_done=self.step,
                error=error,
                stopped_early=self.stopped_early,
                final=json.dumps(self.final),
                **extra,
            )
            self.h5.set_status(status)
        except Exception as e:  # noqa: BLE001 - still close the file and report
            close_error = close_error or f"cannot finish {self.dir / 'run.h5'}: {type(e).__name__}: {e}"
        finally:
            try:
                self.h5.close()
            except Exception as e:  # noqa: BLE001
                close_error = close_error or f"cannot close {self.dir / 'run.h5'}: {e}"
        if close_error and exc is None:
            status, error = "failed", close_error
        self.status = status
        self.outcome = {
            "status": status,
            "run_dir": str(self.dir),
            "command": self.command,
            "step": self.step,
            "final": {**{k: v for k, v in self.last_metrics.items()}, **self.final},
            "wall_s": round(wall, 3),
        }
        if self.stopped_early:
            self.outcome["stopped_early"] = self.stopped_early
        if error:
            self.outcome["error"] = error
        summary = dict(
            self.outcome,
            created=_iso(self.created),
            finished=_iso(finished),
            seed=self.seed,
            device=str(self.device),
            rnntk_version=__version__,
            peak_rss_mb=round(peak_mb, 1),
            checkpoint=CHECKPOINT if self._last_ckpt_step is not None else None,
        )
        self._free_reserve()  # the run is closed: its reserve is not needed any more
        try:
            write_json_atomic(self.dir / "summary.json", summary)
        except OSError as e:
            if exc is None:
                self.status = self.outcome["status"] = "failed"
                self.outcome["error"] = close_error = close_error or f"cannot write {self.dir / 'summary.json'}: {e}"
        if close_error and exc is None:
            raise UserError(close_error)
