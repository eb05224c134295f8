"""The options every engine command shares, defined once, and the wrapper that turns a
method function into a CLI command with rnntk's conventions.

A command module writes::

    @engine_command(app, "sofo-train", resumable=("iters", "time_budget"))
    def sofo_train(opts: RunOptions, task: Annotated[str, typer.Option(...)] = "double-reach", ...):
        with opts.open_run() as run:      # config = every resolved option, seed, device
            ...

and gets ``--device --seed --out --force --resume --config --quiet --log-every
--checkpoint-every`` (help panel "Run options"), config-file defaults that flags override,
``--resume`` consistency checks, exit codes (0/1/2/3/130/143), a one-line error on stderr,
and one JSON line on stdout at the end, on failure too.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional, Sequence

import typer

from rnntk.engine.config import plain, read_toml
from rnntk.engine.errors import EXIT_INTERNAL, EXIT_USER, Interrupted, RnntkError, UserError

if TYPE_CHECKING:  # torch is imported only when a run opens (fast --help)
    from rnntk.engine.run import Run

PANEL = "Run options"
ENGINE_COMMANDS: set[str] = set()
_NOT_CONFIG = {"config", "resume", "ctx"}


def _load_config(ctx: typer.Context, param: Any, value: Optional[Path]) -> Optional[Path]:
    """Eager ``--config`` callback: the file's values become defaults that flags override."""
    if value is None:
        return value
    if ctx.meta.get("rnntk_resume_config") is not None:
        raise UserError("--resume reuses the run's own config.toml; do not combine it with --config")
    data = read_toml(value)
    params = {p.name: p for p in ctx.command.params if p.name not in _NOT_CONFIG}
    cleaned: dict[str, Any] = {}
    for k, v in data.items():
        key = k.replace("-", "_")
        if key not in params:
            raise UserError(f"{value}: unknown option '{k}' for rnntk {ctx.info_name} (see rnntk {ctx.info_name} --help)")
        if isinstance(v, dict):
            raise UserError(f"{value}: '{k}' is a table; rnntk config files hold flat 'option = value' lines")
        want = _toml_kind(params[key])
        if want is not None and not _toml_value_ok(want, v):
            raise UserError(
                f"{value}: '{k} = {_short(v)}' must be {want} for --{key.replace('_', '-')}" + (" (TOML true or false)" if want == "a boolean" else "")
            )
        check_int_range(v, f"'{k}' in {value}")
        cleaned[key] = v
    ctx.default_map = {**(ctx.default_map or {}), **cleaned}
    ctx.meta["rnntk_config_file"] = str(value)
    return value


INT_LIMIT = 2**63  # HDF5 and torch store 64-bit signed integers


def _short(v: Any) -> str:
    t = json.dumps(v, default=str) if not isinstance(v, float) else repr(v)
    return t if len(t) <= 40 else t[:37] + "..."


def _toml_kind(param: Any) -> Optional[str]:
    """What a config file must give for ``param``: 'a boolean', 'an integer', 'a number',
    'a string', 'a list'; None when anything may be passed on to the option's parser."""
    import enum
    import typing

    ann = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if typing.get_origin(ann) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        ann = args[0] if len(args) == 1 else None
    if typing.get_origin(ann) in (list, tuple) or getattr(param, "multiple", False):
        return "a list"
    if ann is bool or getattr(param, "is_flag", False):
        return "a boolean"
    if ann is int:
        return "an integer"
    if ann is float:
        return "a number"
    if ann is str:  # free text such as --seed 3 / auto: numbers too
        return "a string or a number"
    if ann is Path or (isinstance(ann, type) and issubclass(ann, enum.Enum)):
        return "a string"
    return None


def _toml_value_ok(kind: str, v: Any) -> bool:
    if kind == "a boolean":
        return isinstance(v, bool)
    if kind == "an integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "a number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "a string":
        return isinstance(v, str)
    if kind == "a string or a number":
        return isinstance(v, (str, int, float)) and not isinstance(v, bool)
    if kind == "a list":
        return isinstance(v, list)
    return True


def check_int_range(v: Any, where: str) -> None:
    """:class:`UserError` when ``v`` (or an item of it) is an integer that a 64-bit signed
    integer cannot hold (HDF5 attributes, torch sizes)."""
    if isinstance(v, bool):
        return
    if isinstance(v, int) and not -INT_LIMIT <= v < INT_LIMIT:
        raise UserError(f"bad {where} {v}: integers must be below 2**63")
    if isinstance(v, (list, tuple)):
        for x in v:
            check_int_range(x, where)


@dataclass
class RunOptions:
    """The resolved common options, handed to the method function as its first argument."""

    command: str
    device: str = "auto"
    seed: str = "0"
    out: Optional[Path] = None
    force: bool = False
    resume: Optional[Path] = None
    quiet: bool = False
    log_every: int = 50
    checkpoint_every: Optional[int] = None
    threads: Optional[str] = None
    config_file: Optional[str] = None
    dry_run: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # the method's resolved options
    run: Optional["Run"] = None

    def open_run(self, config: Optional[dict[str, Any]] = None, **open_kwargs: Any) -> "Run":
        """Open the run folder with ``config`` = the method options (plus ``config``
        updates, e.g. a preset's resolved values), the seed and the device."""
        from rnntk.engine.run import Run
        from rnntk.engine.seeding import resolve_seed

        cfg = {**self.options, **(config or {})}
        seed = resolve_seed(self.seed)
        cfg.update(seed=seed, device=self.device)
        if self.dry_run:  # a run that writes nothing and stops before the first step (rnntk.engine.run_dry)
            from rnntk.engine.run_dry import DryRun

            opener = DryRun.open_dry
        else:
            opener = Run.open
        self.run = opener(
            self.resume if self.resume is not None else self.out,
            command=self.command,
            config=cfg,
            seed=seed,
            device=self.device,
            force=self.force,
            resume=self.resume is not None,
            progress="none" if self.quiet else "auto",
            log_every=self.log_every,
            checkpoint_every=self.checkpoint_every,
            argv=["rnntk", *sys.argv[1:]],
            **open_kwargs,
        )
        return self.run


def _common_parameters() -> list[inspect.Parameter]:
    K = inspect.Parameter.KEYWORD_ONLY
    O = typer.Option
    return [
        inspect.Parameter(
            "device",
            K,
            default="auto",
            annotation=Annotated[str, O("--device", help="auto, cpu, cuda or cuda:N.", envvar="RNNTK_DEVICE", rich_help_panel=PANEL)],
        ),
        inspect.Parameter(
            "seed",
            K,
            default="0",
            annotation=Annotated[
                str, O("--seed", help="Integer, or 'auto' (= SLURM_ARRAY_TASK_ID; 'auto+BASE' adds BASE).", envvar="RNNTK_SEED", rich_help_panel=PANEL)
            ],
        ),
        inspect.Parameter(
            "out",
            K,
            default=None,
            annotation=Annotated[Optional[Path], O("--out", "-o", help="Run folder (default: runs/<command>-<UTC>-s<seed>).", rich_help_panel=PANEL)],
        ),
        inspect.Parameter(
            "force", K, default=False, annotation=Annotated[bool, O("--force", help="Replace an existing run folder at --out.", rich_help_panel=PANEL)]
        ),
        inspect.Parameter(
            "resume",
            K,
            default=None,
            annotation=Annotated[
                Optional[Path],
                O(
                    "--resume",
                    metavar="RUN_DIR",
                    help="Continue RUN_DIR from its last checkpoint (its config.toml is reused).",
                    is_eager=True,
                    callback=_load_resume,
                    rich_help_panel=PANEL,
                ),
            ],
        ),
        inspect.Parameter(
            "config",
            K,
            default=None,
            annotation=Annotated[
                Optional[Path],
                O(
                    "--config",
                    metavar="FILE.toml",
                    help="Option defaults from a TOML file (flags override it).",
                    is_eager=True,
                    callback=_load_config,
                    rich_help_panel=PANEL,
                ),
            ],
        ),
        inspect.Parameter(
            "quiet",
            K,
            default=False,
            annotation=Annotated[bool, O("--quiet", "-q", help="No progress output (errors and the JSON line only).", rich_help_panel=PANEL)],
        ),
        inspect.Parameter(
            "log_every",
            K,
            default=50,
            annotation=Annotated[int, O("--log-every", min=1, help="Append metrics to run.h5 every N rows (or every 10 s).", rich_help_panel=PANEL)],
        ),
        inspect.Parameter(
            "threads",
            K,
            default=None,
            annotation=Annotated[
                Optional[str],
                O(
                    "--threads",
                    metavar="N|auto",
                    help="CPU threads for torch: a number, or 'auto' (1 thread for small work, which more threads only slow down on a busy machine; every CPU of the affinity mask / SLURM_CPUS_PER_TASK where the command's work is large). Default: OMP_NUM_THREADS when set, else auto.",
                    envvar="RNNTK_THREADS",
                    rich_help_panel=PANEL,
                ),
            ],
        ),
        inspect.Parameter(
            "checkpoint_every",
            K,
            default=None,
            annotation=Annotated[
                Optional[int],
                O("--checkpoint-every", min=1, help="Write ckpt-last.pt every N steps (default: 10 x --log-every, and every 5 min).", rich_help_panel=PANEL),
            ],
        ),
        inspect.Parameter(
            "dry_run",
            K,
            default=False,
            annotation=Annotated[
                bool,
                O(
                    "--dry-run",
                    help="Check every option, build the model, print the resolved config, the parameter count and estimates of peak memory and run.h5 size; write nothing.",
                    rich_help_panel=PANEL,
                ),
            ],
        ),
    ]


def _emit_json(outcome: dict[str, Any]) -> None:
    sys.stdout.flush()
    from rnntk.engine.files import dumps_strict

    print(dumps_strict(outcome), flush=True)  # NaN/inf → null: strict parsers read it


def require_positive(**values: Optional[float]) -> None:
    """One-line :class:`UserError` unless every given option value is a finite number > 0
    (keyword names are option names, ``adam_lr`` → ``--adam-lr``; None means unset)."""
    for name, v in values.items():
        if v is not None and not (math.isfinite(v) and v > 0):
            raise UserError(f"bad --{name.replace('_', '-')} {v}: must be a finite number > 0")


def check_path_limits(path: Path | str, option: str) -> None:
    """One-line :class:`UserError` when ``path`` (given to ``option``, e.g. "--out") cannot be
    a file name here: a component longer than the filesystem's NAME_MAX bytes, or an absolute
    path of PATH_MAX bytes or more (limits read with ``os.pathconf`` on the nearest existing
    parent; 255 and 4096 when unknown)."""
    raw = os.path.abspath(os.fsencode(os.fspath(path)))
    base = raw
    while base != os.path.dirname(base) and not os.path.isdir(base):  # isdir never raises
        base = os.path.dirname(base)

    def limit(name: str, default: int) -> int:
        try:
            v = os.pathconf(base, name)
        except (OSError, ValueError):
            return default
        return v if v and v > 0 else default

    name_max, path_max = limit("PC_NAME_MAX", 255), limit("PC_PATH_MAX", 4096)
    for comp in raw.split(b"/"):
        if len(comp) > name_max:
            shown = os.fsdecode(comp)
            raise UserError(f"bad {option}: the name '{shown[:24]}...' is {len(comp)} bytes long; this filesystem allows at most {name_max} bytes per name")
    if len(raw) >= path_max:
        raise UserError(f"bad {option}: the path is {len(raw)} bytes long (absolute); this system allows paths shorter than {path_max} bytes")


def error_line(msg: str) -> None:
    """Print one ``rnntk: error: ...`` line on stderr (no traceback)."""
    print(f"rnntk: error: {' '.join(str(msg).split())}", file=sys.stderr, flush=True)


def _read_run_config(ctx: typer.Context, run_dir: Path) -> dict[str, Any]:
    """RUN_DIR/config.toml, checked to be a run of this command."""
    name = ctx.info_name
    check_path_limits(run_dir, "--resume")
    if not run_dir.is_dir():
        raise UserError(f"--resume: no such run folder: {run_dir}")
    cfg_path = run_dir / "config.toml"
    if not cfg_path.is_file():
        raise UserError(f"--resume: {run_dir} has no config.toml file; not an rnntk run folder")
    try:
        with open(cfg_path, encoding="utf-8", errors="replace") as fh:
            first = [fh.readline()]
    except OSError as e:
        raise UserError(f"--resume: cannot read {cfg_path}: {e.strerror}") from None
    words = first[0].split() if first else []
    other = words[2].rstrip(":") if len(words) > 2 and words[:2] == ["#", "rnntk"] else None
    if other is None:
        raise UserError(f"--resume: {cfg_path} was not written by rnntk (no '# rnntk <command>' header)")
    if other != name:
        raise UserError(f"--resume: {run_dir} is a run of 'rnntk {other}', not 'rnntk {name}'")
    return read_toml(cfg_path)


def _load_resume(ctx: typer.Context, param: Any, value: Optional[Path]) -> Optional[Path]:
    """Eager ``--resume`` callback: the run's stored config becomes the defaults."""
    if value is None:
        return value
    if ctx.meta.get("rnntk_config_file"):
        raise UserError("--resume reuses the run's own config.toml; do not combine it with --config")
    stored = _read_run_config(ctx, Path(value))
    known = {p.name for p in ctx.command.params if p.name not in _NOT_CONFIG}
    unknown = [k for k in stored if k not in known]
    if unknown:
        raise UserError(f"--resume: {value}/config.toml has option '{unknown[0]}' that rnntk {ctx.info_name} does not know (another rnntk version?)")
    ctx.default_map = {**(ctx.default_map or {}), **stored}
    ctx.meta["rnntk_resume_config"] = stored
    return value


def _check_resume(ctx: typer.Context, values: dict[str, Any], resumable: Sequence[str]) -> None:
    """Refuse flags that change a resumed run's config (except ``resumable`` and --device)."""
    stored = ctx.meta.get("rnntk_resume_config", {})
    if values.get("out") is not None:
        raise UserError("--resume continues the run in RUN_DIR; do not combine it with --out")
    from rnntk.engine.seeding import resolve_seed

    for key, new in values.items():
        if key not in stored or key in resumable or key in ("device", "quiet", "log_every", "checkpoint_every", "threads"):
            continue
        src = ctx.get_parameter_source(key)
        if key == "seed":  # 'auto' resolves to the same seed under the same Slurm task
            try:
                same = resolve_seed(new) == int(stored[key])
            except (UserError, ValueError, TypeError):
                same = False
        else:
            same = str(plain(new)) == str(stored[key])
        if src is not None and src.name in ("COMMANDLINE", "ENVIRONMENT") and not same:
            hint = f" (changeable: {', '.join('--' + r.replace('_', '-') for r in resumable)})" if resumable else ""
            raise UserError(
                f"--resume: --{key.replace('_', '-')} {plain(new)} differs from the run's {key} = {stored[key]}; a resumed run keeps its config{hint}"
            )


COMMON_NAMES = [p.name for p in _common_parameters()]


def engine_command(
    app: typer.Typer, name: str, *, resumable: Sequence[str] = (), large_work: bool = False, **command_kwargs: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(opts: RunOptions, **method_options)`` as ``rnntk <name>`` with the
    common options appended. ``resumable``: options a ``--resume`` may change (e.g. iters).
    ``large_work``: the command's tensor work is big enough to gain from several CPU threads
    (``--threads auto`` then uses every usable CPU; else one, see :mod:`rnntk.engine.threads`)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn, eval_str=True)
        params = list(sig.parameters.values())
        if not params or params[0].name != "opts":
            raise TypeError(f"{fn.__name__}: the first parameter must be 'opts: RunOptions'")
        method_params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params[1:]]
        clash = {p.name for p in method_params} & set(COMMON_NAMES)
        if clash:
            raise TypeError(f"{fn.__name__}: options {sorted(clash)} are common options; do not redeclare them")
        ctx_param = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)

        def wrapper(ctx: typer.Context, **kwargs: Any) -> None:
            common = {k: kwargs.pop(k) for k in COMMON_NAMES}
            opts = RunOptions(command=name)
            code = 0
            try:
                from rnntk.engine import threads as _threads

                # before anything imports torch: OpenMP reads its wait policy when torch loads
                _threads.apply(common["threads"], large=large_work)
                for k, v in {**kwargs, **common}.items():  # before any folder is made
                    check_int_range(v, "--" + k.replace("_", "-"))
                common.pop("config", None)
                if common["out"] is not None:  # before any folder is made or looked at
                    check_path_limits(common["out"], "--out")
                if common["resume"] is not None:
                    _check_resume(ctx, {**kwargs, **common}, resumable)
                opts = RunOptions(command=name, config_file=ctx.meta.get("rnntk_config_file"), options={k: plain(v) for k, v in kwargs.items()}, **common)
                if opts.dry_run:
                    outcome = _dry_run(opts, fn, kwargs)
                else:
                    fn(opts, **kwargs)
                    outcome = opts.run.outcome if opts.run is not None and opts.run.outcome else {"status": "completed", "run_dir": None}
            except (RnntkError, KeyboardInterrupt) as e:
                if isinstance(e, KeyboardInterrupt):
                    import signal as _signal

                    e = Interrupted(_signal.SIGINT)
                code = e.exit_code
                error_line(e.one_line())
                status = "error" if isinstance(e, UserError) else ("interrupted" if isinstance(e, Interrupted) else None)
                outcome = _failure_outcome(opts, status, e.one_line())
            except Exception as e:  # noqa: BLE001 - an internal bug: one line, exit 1
                bad = _oom_or_name(e)
                if bad is not None:  # out of memory, or a path the filesystem refuses: exit 2
                    error_line(bad)
                    _emit_json({**_failure_outcome(opts, "failed", bad), "status": "failed", "error": bad})
                    raise typer.Exit(EXIT_USER) from None
                disk = _disk_failure(opts, e)
                if disk is not None:  # a command's own file write hit a full disk: exit 2
                    error_line(disk)
                    _emit_json({**_failure_outcome(opts, "failed", disk), "status": "failed", "error": disk})
                    raise typer.Exit(EXIT_USER) from None
                code = EXIT_INTERNAL
                if os.environ.get("RNNTK_DEBUG"):
                    traceback.print_exc()
                error_line(f"internal error: {type(e).__name__}: {e} (set RNNTK_DEBUG=1 for a traceback)")
                outcome = _failure_outcome(opts, "failed", f"{type(e).__name__}: {e}")
            _emit_json(outcome)
            if code:
                raise typer.Exit(code)

        wrapper.__name__ = fn.__name__.replace("_", "-")
        wrapper.__doc__ = fn.__doc__
        wrapper.__signature__ = sig.replace(parameters=[ctx_param, *method_params, *_common_parameters()])  # type: ignore[attr-defined]
        ENGINE_COMMANDS.add(name)
        app.command(name, **command_kwargs)(wrapper)
        return fn

    return deco


def _dry_run(opts: RunOptions, fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run ``fn`` with a run that writes nothing (:mod:`rnntk.engine.run_dry`) up to its first
    step or write, print what it found, and return the JSON outcome."""
    from rnntk.engine import dry_run

    dry_run.ESTIMATES.clear()
    where: Optional[str] = None
    try:
        fn(opts, **kwargs)
    except dry_run.DryRunDone as done:
        where = done.where
    return dry_run.report(opts.command, opts.run, where, opts.options)


def _oom_or_name(e: BaseException) -> Optional[str]:
    """One line for a failed allocation (:func:`rnntk.engine.limits.is_oom`) or a file name
    too long (ENAMETOOLONG) anywhere in a command; None for anything else."""
    import errno

    from rnntk.engine.limits import is_oom, oom_line

    if is_oom(e):
        return oom_line(e, hint="use smaller sizes; what was written before is kept")
    if isinstance(e, OSError) and e.errno == errno.ENAMETOOLONG:
        name = os.fsdecode(e.filename) if e.filename is not None else "?"
        shown = name if len(name) <= 60 else name[:28] + "..." + name[-28:]
        return f"cannot use path {shown}: {e.strerror}"
    return None


def _disk_failure(opts: RunOptions, e: BaseException) -> Optional[str]:
    """One line naming the disk when ``e`` is a write the run folder's disk refused."""
    if not isinstance(e, (OSError, RuntimeError)):
        return None
    from rnntk.engine.files import write_failure

    where = opts.run.dir if opts.run is not None else (opts.out or Path("."))
    return write_failure(getattr(e, "filename", None) or where, e)


def _failure_outcome(opts: RunOptions, status: Optional[str], error: str) -> dict[str, Any]:
    if opts.run is not None and opts.run.outcome:
        return opts.run.outcome
    if opts.run is not None and opts.dry_run:  # nothing was written
        return {"status": status or "failed", "run_dir": None, "command": opts.command, "error": error}
    if opts.run is not None:  # failed before close (should not happen): report what we know
        return {"status": status or "failed", "run_dir": str(opts.run.dir), "error": error}
    return {"status": status or "failed", "run_dir": None, "command": opts.command, "error": error}
