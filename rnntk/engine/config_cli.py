"""Options declared once: a method's config dataclass is the single source of every option's
name, default, help (with units) and validation; the command is built from it.

A config writes its CLI options as dataclass fields with :func:`option`::

    @dataclass
    class FlossConfig:
        n_units: int = option(80, "Units.", flags=("--n-units", "-N"), min=1, panel="Network")
        init: str = option("gaussian", "Recurrent init.", choices=Init)   # an Enum: the CLI choices
        g: float = 1.0                                                     # library-only field

        def __post_init__(self) -> None:
            check_options(self)            # choices and min/max from the metadata
            if self.floss_k > self.n_units:
                raise ValueError(f"bad --floss-k {self.floss_k}: at most --n-units = {self.n_units} exponents exist")

and the command module::

    @config_command(app, "floss", FlossConfig, resumable=("epochs",))
    def floss_cmd(opts: RunOptions, cfg: FlossConfig) -> None: ...

:func:`config_command` synthesises the Typer signature from the fields (``typer.Option`` with
the field's flags, help, panel, min/max; Enum choices for variants), appends the shared run
options of :func:`rnntk.engine.options.engine_command`, builds the config from the parsed
values and turns the ``ValueError`` of its ``__post_init__`` into the one-line exit-2 error.
Fields marked ``preset=True`` have no CLI default (None): the command's ``defaults`` hook
(e.g. a preset table per task) or else the dataclass default fills them. TOML presets
(``--config``) and ``--resume`` work as for every engine command.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import math
import types
import typing
from dataclasses import MISSING, dataclass, field
from typing import Annotated, Any, Callable, Mapping, Optional, Sequence

import typer

from rnntk.engine.config import plain
from rnntk.engine.errors import UserError
from rnntk.engine.options import RunOptions, engine_command

META = "rnntk_option"


@dataclass(frozen=True)
class OptionSpec:
    """How a config field appears on the command line (kept in ``field(metadata=...)``)."""

    help: str
    flags: tuple[str, ...] = ()  # default: ("--field-name",); e.g. ("--n-tangents", "-K") or ("--noise/--no-noise",)
    panel: Optional[str] = None  # rich help panel
    min: Optional[float] = None
    max: Optional[float] = None
    choices: Optional[type[enum.Enum]] = None  # the CLI offers the Enum's values; the field holds the value (str)
    metavar: Optional[str] = None
    preset: bool = False  # no CLI default: filled by the command's defaults hook, else the field default

    def flag(self, name: str) -> str:
        """The long flag, e.g. ``--n-tangents`` (used in error messages)."""
        return (self.flags[0].split("/")[0] if self.flags else "--" + name.replace("_", "-")).strip()


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    flags: Sequence[str] = (),
    panel: Optional[str] = None,
    min: Optional[float] = None,
    max: Optional[float] = None,
    choices: Optional[type[enum.Enum]] = None,
    metavar: Optional[str] = None,
    preset: bool = False,
    default_factory: Any = MISSING,
) -> Any:
    """A dataclass field that is also a CLI option (see the module docstring)."""
    spec = OptionSpec(help=help, flags=tuple(flags), panel=panel, min=min, max=max, choices=choices, metavar=metavar, preset=preset)
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata={META: spec})
    return field(default=default, metadata={META: spec})


def option_fields(cls: type) -> list[tuple[dataclasses.Field, OptionSpec]]:
    """The CLI fields of config class ``cls``, in declaration order, with their specs."""
    return [(f, f.metadata[META]) for f in dataclasses.fields(cls) if META in f.metadata]


def flag_of(cls_or_cfg: Any, name: str) -> str:
    """The long CLI flag of field ``name`` (``--name-with-dashes`` for library-only fields)."""
    cls = cls_or_cfg if isinstance(cls_or_cfg, type) else type(cls_or_cfg)
    for f, spec in option_fields(cls):
        if f.name == name:
            return spec.flag(name)
    return "--" + name.replace("_", "-")


def check_options(cfg: Any) -> None:
    """``ValueError`` naming the option when a CLI field of ``cfg`` is outside its choices or
    its min/max (the same bounds the CLI enforces). Call it first in ``__post_init__``."""
    for f, spec in option_fields(type(cfg)):
        v = getattr(cfg, f.name)
        if v is None:
            continue
        flag = spec.flag(f.name)
        if spec.choices is not None:
            allowed = [c.value for c in spec.choices]
            if plain(v) not in allowed:
                raise ValueError(f"bad {flag} '{plain(v)}': use one of {', '.join(map(str, allowed))}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if spec.min is not None and not v >= spec.min:
                raise ValueError(f"bad {flag} {v}: must be >= {spec.min:g}")
            if spec.max is not None and not v <= spec.max:
                raise ValueError(f"bad {flag} {v}: must be <= {spec.max:g}")


def positive(cfg: Any, *names: str) -> None:
    """``ValueError`` unless each named field of ``cfg`` is a finite number > 0 (None = unset)."""
    for name in names:
        v = getattr(cfg, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError(f"bad {flag_of(cfg, name)} {v}: must be a finite number > 0")


def finite(cfg: Any, *names: str) -> None:
    """``ValueError`` unless each named field of ``cfg`` is a finite number (None = unset)."""
    for name in names:
        v = getattr(cfg, name)
        if v is not None and not math.isfinite(v):
            raise ValueError(f"bad {flag_of(cfg, name)} {v}: must be a finite number")


def _unoptional(tp: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``Optional[T]`` / ``T | None``, else ``(tp, False)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _parameter(f: dataclasses.Field, spec: OptionSpec, tp: Any) -> inspect.Parameter:
    base, optional = _unoptional(tp)
    if spec.choices is not None:
        base = spec.choices
    default = None if spec.preset else (f.default if f.default is not MISSING else f.default_factory())  # type: ignore[misc]
    if spec.choices is not None and default is not None:
        default = spec.choices(default)
    ann = Optional[base] if (optional or spec.preset) else base
    kw: dict[str, Any] = {"help": spec.help or None}
    if spec.panel is not None:
        kw["rich_help_panel"] = spec.panel
    if spec.min is not None:
        kw["min"] = spec.min
    if spec.max is not None:
        kw["max"] = spec.max
    if spec.metavar is not None:
        kw["metavar"] = spec.metavar
    flags = spec.flags or ("--" + f.name.replace("_", "-"),)
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[ann, typer.Option(*flags, **kw)])


Defaults = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def build_config(cls: type, values: Mapping[str, Any], context: Optional[Mapping[str, Any]] = None, defaults: Optional[Defaults] = None) -> Any:
    """Build config ``cls`` from parsed option values (Enums → their values). Preset fields
    left None take ``defaults({**context, **values})`` then the dataclass default. A
    ``ValueError`` of the config becomes a one-line :class:`UserError` (exit 2)."""
    vals = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in values.items()}
    preset = {f.name for f, spec in option_fields(cls) if spec.preset}
    fill = dict(defaults({**(context or {}), **vals})) if defaults is not None else {}
    for name in preset:
        if vals.get(name) is None:
            if name in fill:
                vals[name] = fill[name]
            else:
                vals.pop(name, None)
    try:
        return cls(**vals)
    except ValueError as e:
        raise UserError(" ".join(str(e).split())) from None


@dataclass(frozen=True)
class ConfigCommand:
    """What :func:`config_command` registered (read by tests and tools)."""

    name: str
    config: type
    extra: tuple[str, ...]
    defaults: Optional[Defaults]


CONFIG_COMMANDS: dict[str, ConfigCommand] = {}


def config_command(
    app: typer.Typer,
    name: str,
    config: type,
    *,
    extra: Sequence[inspect.Parameter] = (),
    extra_after: Optional[str] = None,
    defaults: Optional[Defaults] = None,
    resumable: Sequence[str] = (),
    large_work: bool = False,
    **command_kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(opts: RunOptions, cfg: config, **extra)`` as ``rnntk <name>``: its options
    are ``extra`` (parameters that are not config fields, e.g. a positional file or a preset
    name; first, or after the field ``extra_after``) and every :func:`option` field of
    ``config`` in order, then the shared run options.
    ``defaults(values) -> {field: value}`` fills preset fields left unset. The run's recorded
    config holds the option values as given, preset fields resolved."""
    hints = typing.get_type_hints(config)
    fields = option_fields(config)
    params = [inspect.Parameter("opts", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=RunOptions)]
    own = [_parameter(f, spec, hints[f.name]) for f, spec in fields]
    at = 0 if extra_after is None else 1 + [p.name for p in own].index(extra_after)
    own[at:at] = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in extra]
    params += own
    extra_names = tuple(p.name for p in extra)
    preset = [f.name for f, spec in fields if spec.preset]

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        def command(opts: RunOptions, **values: Any) -> None:
            extras = {k: values.pop(k) for k in extra_names}
            cfg = build_config(config, values, extras, defaults)
            opts.options.update({k: plain(getattr(cfg, k)) for k in preset})
            fn(opts, cfg, **extras)

        command.__name__ = fn.__name__
        command.__doc__ = fn.__doc__
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        engine_command(app, name, resumable=resumable, large_work=large_work, **command_kwargs)(command)
        CONFIG_COMMANDS[name] = ConfigCommand(name, config, extra_names, defaults)
        return fn

    return deco
