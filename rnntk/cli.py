"""The ``rnntk`` command line: a Typer app that registers one command per method.

Errors are one line on stderr with exit code 2 (usage and user errors), 3 (non-finite),
130/143 (signals) or 1 (internal bugs; ``RNNTK_DEBUG=1`` prints the traceback). Engine
commands print one JSON line on stdout at the end, on failure too.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Annotated, Optional, Sequence

_EARLY_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGUSR2") if hasattr(signal, n))
_PENDING: list[int] = []  # signals that arrived while the CLI was still importing


def _record_signal(signum: int, frame: object) -> None:
    _PENDING.append(signum)


def _is_cli_process() -> bool:
    """True when this process is the ``rnntk`` command (console script or ``python -m rnntk``),
    not a library import (a notebook must keep its own SIGINT handling)."""
    a0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return a0 == "rnntk" or (a0 == "__main__.py" and os.path.basename(os.path.dirname(sys.argv[0])) == "rnntk")


if _is_cli_process():  # from the first line on: a signal while importing is reported, not a traceback
    for _s in _EARLY_SIGNALS:
        try:
            signal.signal(_s, _record_signal)
        except (ValueError, OSError):  # not the main thread
            pass

import typer

from rnntk.engine import options as _common
from rnntk.engine.compat import click_exceptions as _cx

from . import __version__
from .engine.errors import Interrupted, RnntkError

app = typer.Typer(
    name="rnntk",
    help="Train and analyse recurrent networks as models of the brain.\n\n"
    "Every command writes a run folder (run.h5, config.toml, summary.json, checkpoints) and ends "
    "with one JSON line on stdout. Exit codes: 0 ok, 1 internal error, 2 bad input, 3 non-finite, "
    "130/143 interrupted (checkpointed; continue with --resume RUN_DIR).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"rnntk {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", "-V", help="Print the version and exit.", callback=_version, is_eager=True)] = None,
) -> None:
    """Train and analyse recurrent networks as models of the brain."""


def _register_commands() -> None:
    """Each slice adds its commands to `app`; no command module imports this one."""
    from rnntk.analysis import cli as analysis
    from rnntk.cordsnet import cli as cordsnet
    from rnntk.engine import inspect
    from rnntk.floss import cli as floss
    from rnntk.ode import cli as ode
    from rnntk.online import cli as online
    from rnntk.runs import cli as runs
    from rnntk.selftest import cli as selftest
    from rnntk.sofo import cli as sofo

    for part in (inspect, selftest, sofo, floss, analysis, ode, online, cordsnet, runs):
        part.register(app)


_register_commands()


def _subcommand(argv: Sequence[str]) -> Optional[str]:
    for a in argv:
        if not a.startswith("-"):
            return a
    return None


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of the ``rnntk`` console script (exits the process)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    sub = _subcommand(args)
    _install_early_signals()
    code = 0
    try:
        if _PENDING:  # arrived while importing: stop before anything is created
            raise Interrupted(_PENDING[0], note="before the run started")
        rv = command.main(args=args, prog_name="rnntk", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except _cx.NoArgsIsHelpError:
        code = 0  # Typer has printed the help already
    except _cx.ClickException as e:
        where = f"rnntk {sub} --help" if sub and sub in {c for c in getattr(command, "commands", {})} else "rnntk --help"
        _common.error_line(f"{e.format_message()} (see '{where}')")
        code = e.exit_code
        if sub in _common.ENGINE_COMMANDS:
            print(json.dumps({"status": "error", "run_dir": None, "command": sub, "error": " ".join(e.format_message().split())}), flush=True)
    except RnntkError as e:  # raised while parsing, e.g. by --config
        _common.error_line(e.one_line())
        code = e.exit_code
        if sub in _common.ENGINE_COMMANDS:
            status = "interrupted" if isinstance(e, Interrupted) else "error"
            print(json.dumps({"status": status, "run_dir": None, "command": sub, "error": e.one_line()}), flush=True)
    except typer.Abort:
        code = 1
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # e.g. `rnntk inspect run.h5 | head`
        _silence_stdout()
        code = 0
    except Exception as e:  # noqa: BLE001 - a bug: one line, exit 1, traceback on request
        if os.environ.get("RNNTK_DEBUG"):
            import traceback

            traceback.print_exc()
        _common.error_line(f"internal error: {type(e).__name__}: {e} (set RNNTK_DEBUG=1 for a traceback)")
        code = 1
    _ignore_signals()  # the outcome is decided (and printed): a late signal changes neither it nor the exit code
    sys.exit(code)


def _ignore_signals() -> None:
    for s in _EARLY_SIGNALS:
        try:
            signal.signal(s, signal.SIG_IGN)
        except (ValueError, OSError):
            pass


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _early_signal(signum: int, frame: object) -> None:
    """Before a run opens (parsing, building the model), a signal just stops the command
    (one error line and, for engine commands, the JSON line; exit 130/143)."""
    raise Interrupted(signum, note="before the run started")


def _install_early_signals() -> None:
    for s in _EARLY_SIGNALS:
        try:
            signal.signal(s, _early_signal)
        except (ValueError, OSError):  # not the main thread
            pass
