"""Progress on stderr: a rich bar on a terminal, plain lines in logs, nothing with --quiet.

When stderr is not a TTY (a Slurm log file), rich's live display prints nothing until the
end, so we print our own plain line every ``interval`` seconds instead
(``RNNTK_PROGRESS_INTERVAL`` overrides the default 5 s)::

    [sofo-train] step 500/5000 (10%) 41.3 it/s eta 1m49s loss=0.4121
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Mapping, TextIO


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5) and math.isfinite(v):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def _fmt_secs(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    """Reports ``step/total`` and the latest metrics.

    mode: ``"auto"`` (bar on a TTY, plain lines otherwise), ``"bar"``, ``"plain"``, ``"none"``.
    """

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        *,
        mode: str = "auto",
        interval: float | None = None,
        stream: TextIO | None = None,
        start: int = 0,
        show_metrics: int = 4,
    ) -> None:
        self.total, self.desc, self.start = total, desc, start
        self.stream = stream or sys.stderr
        if interval is None:
            try:
                interval = float(os.environ.get("RNNTK_PROGRESS_INTERVAL", "5"))
            except ValueError:
                interval = 5.0
            if not math.isfinite(interval) or interval < 0:
                interval = 5.0
        self.interval = interval
        if mode == "auto":
            isatty = getattr(self.stream, "isatty", lambda: False)()
            mode = "bar" if isatty else "plain"
        self.mode = mode
        self.show_metrics = show_metrics
        self._t0 = time.monotonic()
        self._last = self._t0
        self._step = start
        self._metrics: dict[str, Any] = {}
        self._bar = None
        self._task = None
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            console = Console(file=self.stream, stderr=self.stream is sys.stderr)
            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[metrics]}"),
                console=console,
                redirect_stdout=False,
                redirect_stderr=False,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(desc, total=total, completed=start, metrics="")

    def update(self, step: int, metrics: Mapping[str, Any] | None = None) -> None:
        """Record that ``step`` steps are done; show at most every ``interval`` s (plain)."""
        self._step = step
        if metrics:
            self._metrics.update(metrics)
        if self.mode == "bar" and self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=step, metrics=self._metrics_text())
        elif self.mode == "plain":
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                self._print_line()

    def _metrics_text(self) -> str:
        # losses first (what a person watches), then the rest in logging order
        items = sorted(self._metrics.items(), key=lambda kv: 0 if "loss" in kv[0] else 1)[: self.show_metrics]
        return " ".join(f"{k}={_fmt_value(v)}" for k, v in items)

    def _print_line(self, final: bool = False) -> None:
        el = time.monotonic() - self._t0
        done = self._step - self.start
        rate = done / el if el > 0 else float("nan")
        if self.total:
            pct = 100.0 * self._step / self.total
            eta = (self.total - self._step) / rate if rate and rate > 0 else float("nan")
            pos = f"step {self._step}/{self.total} ({pct:.0f}%) {rate:.3g} it/s " + (f"eta {_fmt_secs(eta)}" if not final else f"in {_fmt_secs(el)}")
        else:
            pos = f"step {self._step} {rate:.3g} it/s"
        print(f"[{self.desc}] {pos} {self._metrics_text()}".rstrip(), file=self.stream, flush=True)

    def close(self) -> None:
        """Stop the bar, or print a last plain line."""
        if self.mode == "bar" and self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.mode == "plain":
            self._print_line(final=True)
            self.mode = "none"
