"""The exceptions the engine turns into exit codes.

| exception        | exit | meaning                                                    |
|------------------|------|------------------------------------------------------------|
| ``UserError``     | 2    | bad input: path, option value, checkpoint, device, ...     |
| ``NonFiniteError``| 3    | a logged metric became NaN/inf; last good checkpoint kept   |
| ``Interrupted``   | 130/143 | SIGINT / SIGTERM / SIGUSR2 (preemption); checkpointed   |

Anything else is an internal error (exit 1).
"""

from __future__ import annotations

import signal

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USER = 2
EXIT_NONFINITE = 3


class RnntkError(Exception):
    """Base of the errors that carry an exit code and a one-line message."""

    exit_code = EXIT_INTERNAL

    def one_line(self) -> str:
        """The message folded onto one line (what the CLI prints on stderr)."""
        return " ".join(str(self).split())


class UserError(RnntkError):
    """A problem with the user's input. Printed as one line on stderr; exit 2."""

    exit_code = EXIT_USER


class NonFiniteError(RnntkError):
    """A metric became NaN or inf. ``step`` and ``name`` say where; exit 3."""

    exit_code = EXIT_NONFINITE

    def __init__(self, step: int, name: str, value: float, note: str = "") -> None:
        self.step, self.name, self.value, self.note = int(step), name, float(value), note
        msg = f"non-finite {name}={value} at step {step}; training stopped"
        super().__init__(msg + (f"; {note}" if note else ""))


class Interrupted(RnntkError):
    """The run received SIGINT/SIGTERM/SIGUSR2; it was checkpointed. Exit 128+signal
    (130 for SIGINT, 143 for SIGTERM and SIGUSR2, so Slurm requeue scripts see one code)."""

    def __init__(self, signum: int, step: int | None = None, note: str = "") -> None:
        self.signum = int(signum)
        self.step = step
        name = signal.Signals(signum).name
        at = f" at step {step}" if step is not None else ""
        super().__init__(f"interrupted by {name}{at}" + (f"; {note}" if note else ""))

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return 130 if self.signum == signal.SIGINT else 143


class StorageError(UserError):
    """Writing the run folder failed (disk full, quota, read-only or failing disk). What
    was committed before stays readable; the run stops with exit 2."""
