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

Methods use only these verbs, never ``run.h5`` itself: ``run.annotate(**attrs)`` (what
the run is), ``run.read_metrics(names)``, ``run.rows(name, row_shape)`` (a result that grows a
block of trials per step), ``run.result``, ``run.trace``, ``run.trials``, ``run.figure``,
``run.figures()`` (the command's registered figure makers, from run.h5: :mod:`.figures`),
``run.path``; random streams come from ``run.rng("stream-name")``.

The class is assembled from small parts: :mod:`.run_base` (state, folder, fresh file),
:mod:`.run_signals`, :mod:`.run_resume`, :mod:`.run_outputs`, :mod:`.run_close`; this module
opens a run and holds the training loop's verbs (steps, metrics, checkpoints, streams).

On exit the status is set (completed | nonfinite | interrupted | failed), the HDF5 file is
flushed and closed, and ``summary.json`` is written last, atomically. ``run.outcome`` holds
what the CLI prints as its JSON line.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .checkpoint import save_checkpoint
from .config import plain
from .device import device_generator, resolve_device
from .errors import Interrupted, NonFiniteError, UserError
from .progress import Progress
from .run_base import CHECKPOINT, RESERVE_BYTES, iso, utc_now
from .run_close import RunClose
from .run_outputs import Rows, RunOutputs
from .seeding import derive_seed, get_rng_state, numpy_stream, resolve_seed, seed_everything, set_rng_state, stream_generator
from .threads import ensure_torch_threads

__all__ = ["CHECKPOINT", "RESERVE_BYTES", "Rows", "Run", "default_run_dir"]


def default_run_dir(command: str, seed: int, root: Path | str = "runs", now: _dt.datetime | None = None) -> Path:
    """``runs/<command>-<UTC>-s<seed>[-j<job>_<task>]``, made unique with ``-2``, ``-3``..."""
    now = now or utc_now()
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


class Run(RunOutputs, RunClose):
    """A run folder with its HDF5 file. Create with :meth:`Run.open`; use as a context manager."""

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
        self.created = utc_now()
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
        self._load_tracked(model, optimizer, others)

    def before_compute(self, what: str, model: nn.Module | Callable[[], nn.Module] | None = None, *, results_bytes: float | None = None) -> None:
        """Mark where a command that computes before it writes (an analysis: ``lyapunov``,
        ``eigs``, ``fixed-points``, ``cordsnet-*``, ``online-lru-gradcheck``) has loaded its
        source and checked every option, and its computation (``what``) begins. Nothing happens
        here in a real run; a ``--dry-run`` stops here (:class:`rnntk.engine.run_dry.DryRun`),
        counts ``model`` (or the model that ``model()`` builds, called only by a dry run) and
        reports ``results_bytes`` (the command's estimate of what it writes to run.h5, bytes)."""
        return None

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
            self.h5.set_group_attrs("checkpoints/last", path=CHECKPOINT, step=self.step, bytes=info["bytes"], sha256=info["sha256"], created=iso(utc_now()))
            self.h5.flush()
        self._last_ckpt_step = self.step
        self._last_ckpt_time = time.monotonic()
        return info

    def rng(self, stream: str, *, device: str | torch.device | None = None, legacy_offset: int | None = None) -> torch.Generator:
        """A fresh generator for the named random stream of this run (``"sofo-train/val"``,
        ``"cordsnet-train/shuffle/3"``), on ``device`` (default: the CPU), seeded from the run
        seed and the name (:func:`rnntk.engine.seeding.derive_seed`): the same stream of the
        same seed draws the same numbers, on every platform and after ``--resume``.
        ``legacy_offset`` keeps the older ``seed + offset`` seeding where a pinned figure
        depends on it (:func:`rnntk.engine.seeding.stream_generator`)."""
        return stream_generator(self.seed, stream, device=device if device is not None else "cpu", legacy_offset=legacy_offset)

    def np_rng(self, stream: str, *, legacy_offset: int | None = None) -> np.random.Generator:
        """:meth:`rng` for NumPy code: a fresh ``np.random.Generator`` for the named stream."""
        return numpy_stream(self.seed, stream, legacy_offset=legacy_offset)

    def read_metrics(self, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The metrics logged so far (buffered rows flushed first): ``{"step": int64 [n],
        name: float64 [n] (NaN where not logged)}`` for each of ``names`` that was logged
        (every column when None); ``{}`` before the first row."""
        self.flush()
        return self.h5.read_metric_columns(names)

    def figures(self) -> list[Path]:
        """Make every figure registered for this command (:mod:`rnntk.engine.figures`) from
        what ``run.h5`` holds now, as PNGs in the run folder; ``rnntk plot`` makes the same
        ones later from the file alone. In a resumed run, a figure that the file cannot feed (a
        run that an older rnntk started) is left out with a one-line warning, since the results
        are written already; in a fresh run a maker's error is a bug and propagates."""
        from .figures import RunReader, command_figures

        self.flush()
        skipped: list[str] = []
        made = [self.figure(fig, name) for name, fig in command_figures(RunReader(self.h5.f), skipped if self.resumed else None)]
        for line in skipped:
            print(f"rnntk: warning: a figure could not be made from {self.dir / 'run.h5'} ({line}); the results are stored", file=sys.stderr, flush=True)
        return made
