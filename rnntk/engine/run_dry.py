""":class:`DryRun`: the run a command gets under ``--dry-run``. It resolves the seed and the
device and seeds the generators as :meth:`rnntk.engine.run.Run.open` does, checks the output
folder as a real run would (without making it), records what the command registers with
:meth:`track`, and raises :class:`rnntk.engine.dry_run.DryRunDone` at the first step, the first
write, or where an analysis's computation begins (:meth:`before_compute`). With ``--resume`` it
reads the run folder as a real resume does (run.h5 read-only, the checkpoint loaded and checked,
its states loaded into what :meth:`track` registers). It writes nothing (no lock file either)
and installs no signal handler."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .config import plain
from .device import device_generator, resolve_device
from .dry_run import DryRunDone
from .errors import UserError
from .run import Run, default_run_dir
from .run_base import utc_now
from .run_outputs import Rows
from .seeding import derive_seed, resolve_seed, seed_everything
from .threads import ensure_torch_threads


class DryRun(Run):
    """A run that writes nothing (see the module docstring). Open with :meth:`open_dry`."""

    planned_steps: int | None = None
    dry_force = False
    results_bytes: float | None = None  # an analysis's estimate of its /results (before_compute)

    @classmethod
    def open_dry(
        cls,
        out: Path | str | None = None,
        *,
        command: str,
        config: Mapping[str, Any] | None = None,
        seed: int | str = 0,
        device: str | torch.device = "auto",
        force: bool = False,
        resume: bool = False,
        log_every: int = 50,
        checkpoint_every: int | None = None,
        argv: Sequence[str] | None = None,
        runs_root: Path | str = "runs",
        **_ignored: Any,
    ) -> "DryRun":
        """What :meth:`Run.open` checks and sets in memory, with no folder made or read
        beyond ``stat`` (a resumed run's folder was checked by ``--resume`` already)."""
        self = cls()
        self.command = command
        self.seed = resolve_seed(seed)
        self.device = resolve_device(device)
        self._progress_mode = "none"
        self.log_every = max(1, int(log_every))
        self.checkpoint_every = int(checkpoint_every) if checkpoint_every else 10 * self.log_every
        self.config = {k: plain(v) for k, v in (config or {}).items()}
        self.argv = list(argv) if argv is not None else list(sys.argv)
        self.created = utc_now()
        self.threads = ensure_torch_threads()
        self.resumed = bool(resume)
        if resume:
            if out is None:
                raise UserError("--resume needs the run folder to continue")
            self.dir = Path(out)
            # what a real --resume reads and checks before it commits (run.h5 opened read-only,
            # ckpt-last.pt loaded with weights_only=True and validated), with no lock file made
            self._open_resume(lock=False)
            self.h5.close()
        else:
            self.dir = Path(out) if out is not None else default_run_dir(command, self.seed, runs_root)
            d = self.dir
            if d.exists() and not d.is_dir():
                raise UserError(f"output path exists and is a file: {d}")
            if d.is_dir() and any(d.iterdir()):
                if not force:
                    raise UserError(f"output folder exists: {d}; use --force to replace it or --resume {d} to continue")
                self.dry_force = True
        self.generator = seed_everything(self.seed)
        self.device_generator = device_generator(self.device, self.generator, derive_seed(self.seed, "device"))
        return self

    # track(): Run.track as it is (kept in memory for the parameter count, never written to a
    # checkpoint; on --resume loaded from the run's checkpoint and checked as a real resume does)

    def before_compute(self, what: str, model: nn.Module | Callable[[], nn.Module] | None = None, *, results_bytes: float | None = None) -> None:
        """Stop the dry run where the command's computation would begin (source loaded, every
        option checked); ``model``: the model it analyses (or a function that builds it),
        counted (and, on ``--resume``, loaded from the checkpoint as :meth:`track` does);
        ``results_bytes``: the command's estimate of what it writes to run.h5 (an analysis
        saves no model of its own)."""
        if model is not None:
            self.track(model if isinstance(model, nn.Module) else model())
        self.results_bytes = None if results_bytes is None else float(results_bytes)
        raise DryRunDone(what)

    def steps(self, n: int, desc: str | None = None, *, time_budget: float | None = None) -> Iterator[int]:
        """Stop the dry run before the first of ``n`` steps (with ``--resume``: before the
        first step not done, after the check that ``n`` covers the checkpoint's step)."""
        self.planned_steps = int(n)
        if self.resumed:
            self._check_resume_steps(n)
            if self.start_step >= n:  # every step done: a real resume would only finish the run
                raise DryRunDone(f"finishing after all {n} steps ({desc or self.command}), every one done")
            raise DryRunDone(f"step {self.start_step} of {n} ({desc or self.command}), the first not done")
        raise DryRunDone(f"the first of {n} steps ({desc or self.command})")
        yield 0  # pragma: no cover - makes this a generator, as Run.steps is

    def log(self, step: int, **metrics: float | torch.Tensor) -> None:
        raise DryRunDone("the first metric row")

    def flush(self) -> None:
        return None

    def save_checkpoint(self) -> dict[str, Any] | None:
        return None

    def check_interrupt(self, checkpoint: bool = True) -> None:
        return None

    def read_metrics(self, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        return {}

    def annotate(self, group: str = "/", /, **attrs: Any) -> None:
        return None

    def finish(self, **final: Any) -> None:
        return None

    def path(self, name: str) -> Path:
        raise DryRunDone(f"writing {name}")

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
        raise DryRunDone(f"writing /traces/{name}")

    def trials(self, table: Mapping[str, Any], append: bool = False) -> None:
        raise DryRunDone("writing /trials")

    def result(self, name: str, data: Any, **attrs: Any) -> None:
        raise DryRunDone(f"writing /results/{name}")

    def rows(self, name: str, row_shape: Sequence[int], *, dtype: Any = "float32", chunk_rows: int = 64, group: str = "results", **attrs: Any) -> Rows:
        raise DryRunDone(f"writing /{group}/{name}")

    def truncate(self, where: str, n: int) -> None:
        return None

    def save_model(self, model: nn.Module | None = None, name: str = "model", hparams: Mapping[str, Any] | None = None) -> Path:
        raise DryRunDone(f"writing {name}.pt")

    def figure(self, fig: Any, name: str, dpi: int = 120) -> Path:
        try:
            import matplotlib.pyplot as plt

            plt.close(fig)
        except Exception:  # pragma: no cover
            pass
        raise DryRunDone(f"writing {name}.png")

    def figures(self) -> list[Path]:
        raise DryRunDone("making the figures")

    def close(self, exc: BaseException | None = None) -> None:
        """Nothing to close: nothing was opened."""
        self._closed = True
