"""Closing a :class:`rnntk.engine.run.Run`: the status from the exception that ended it,
the last metric rows and final attributes in ``run.h5``, the outcome (the CLI's JSON line)
and ``summary.json``, written last and atomically: it marks a finished run."""

from __future__ import annotations

import datetime as _dt
import json
import resource
import time
from typing import Any, Self

import torch

from .. import __version__
from .errors import Interrupted, NonFiniteError, RnntkError, StorageError, UserError
from .files import write_json_atomic
from .run_base import CHECKPOINT, iso, utc_now
from .run_resume import RunResume
from .run_signals import RunSignals


def _message(exc: BaseException) -> str:
    return exc.one_line() if isinstance(exc, RnntkError) else f"{type(exc).__name__}: {exc}"


class RunClose(RunSignals, RunResume):
    """The closing part of a run (after signals and resume, which it undoes or commits)."""

    def __enter__(self) -> Self:
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
            if exc is not None:
                self._close_unchanged(exc)
                return
            self._commit_resume()
        status, error = self._status_of(exc)
        wall = time.monotonic() - self._t0
        finished = utc_now()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        close_error = self._finish_file(status, error, wall, finished, peak_mb)
        if close_error and exc is None:
            status, error = "failed", close_error
        self.status = status
        self._set_outcome(status, error, wall)
        close_error = self._write_summary(exc, finished, peak_mb, close_error)
        if close_error and exc is None:
            raise UserError(close_error)

    def _close_unchanged(self, exc: BaseException) -> None:
        """A resume that failed before it committed: close the file, change nothing on disk."""
        self.h5.close()
        self.status = "interrupted" if isinstance(exc, (Interrupted, KeyboardInterrupt)) else ("error" if isinstance(exc, UserError) else "failed")
        self.outcome = {
            "status": self.status,
            "run_dir": str(self.dir),
            "command": self.command,
            "step": self.step,
            "error": _message(exc),
            "note": "run folder left unchanged",
        }

    def _status_of(self, exc: BaseException | None) -> tuple[str, str]:
        """``(status, error line)`` for the exception that ended the run (None: completed).
        A non-finite stop names the last good checkpoint in its message."""
        if exc is None:
            return "completed", ""
        if isinstance(exc, NonFiniteError):
            if self._last_ckpt_step is not None:
                exc.note = f"last good checkpoint kept: {self.dir / CHECKPOINT} (step {self._last_ckpt_step})"
            else:
                exc.note = "no checkpoint had been written yet"
            exc.args = (str(exc).split("; training stopped")[0] + "; training stopped; " + exc.note,)
            return "nonfinite", exc.one_line()
        if isinstance(exc, (Interrupted, KeyboardInterrupt)):
            return "interrupted", exc.one_line() if isinstance(exc, Interrupted) else "interrupted by SIGINT"
        return "failed", _message(exc)

    def _finish_file(self, status: str, error: str, wall: float, finished: _dt.datetime, peak_mb: float) -> str:
        """Append the buffered metric rows, set the final attributes and the status, close
        ``run.h5``. Returns the first error closing met ("" if none); the file is closed and
        the status recorded as far as the disk allows in any case."""
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
                finished=iso(finished),
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
        return close_error

    def _set_outcome(self, status: str, error: str, wall: float) -> None:
        """``run.outcome``: what the CLI prints as its last stdout line."""
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

    def _write_summary(self, exc: BaseException | None, finished: _dt.datetime, peak_mb: float, close_error: str) -> str:
        """Free the disk reserve and write ``summary.json`` (last: it marks a finished run).
        Returns ``close_error``, or the failure to write the summary when there was none."""
        summary = dict(
            self.outcome,
            created=iso(self.created),
            finished=iso(finished),
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
        return close_error
