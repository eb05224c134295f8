"""Signals for a :class:`rnntk.engine.run.Run`: the first SIGINT/SIGTERM (cluster
preemption) asks the run to checkpoint and stop at the next step boundary; a second one
stops at once, but never inside a file write (:meth:`RunSignals._critical`)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Any, Iterator

from .errors import Interrupted
from .run_base import RunBase

SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGUSR2", None)) if s is not None)


class RunSignals(RunBase):
    """The signal handling of a run."""

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for s in SIGNALS:
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
        signum, self._hard_stop = self._hard_stop or signal.SIGTERM, None
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
