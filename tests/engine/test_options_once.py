"""Options declared once (issue 15.3): every command's CLI options are built from its config
dataclass (rnntk.engine.config_cli), so the CLI and library callers share names, defaults and
validation. Oracle: the Typer app's click parameters against ``dataclasses.fields``."""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Annotated, Optional

import pytest
import typer
from conftest import assert_user_error, run_cli

from rnntk.cli import app
from rnntk.engine.config_cli import CONFIG_COMMANDS, build_config, option_fields
from rnntk.engine.options import ENGINE_COMMANDS

CLICK = typer.main.get_command(app).commands  # type: ignore[attr-defined]


def _plain(v):
    return v.value if isinstance(v, enum.Enum) else v


def test_every_engine_command_is_built_from_its_config():
    assert set(CONFIG_COMMANDS) == ENGINE_COMMANDS
    methods = {"sofo-train", "floss", "ode-train", "selftest", "online-lru", "online-lru-gradcheck", "online-lru-memory", "cordsnet-eval", "cordsnet-eigs"}
    methods |= {"lyapunov", "eigs", "fixed-points"}
    assert set(CONFIG_COMMANDS) >= methods


@pytest.mark.parametrize("name", sorted(CONFIG_COMMANDS))
def test_cli_defaults_equal_config_defaults(name):
    spec = CONFIG_COMMANDS[name]
    params = {p.name: p for p in CLICK[name].params}
    fields = option_fields(spec.config)
    assert fields, name
    for f, opt in fields:
        p = params[f.name]  # every option field is a CLI option of that name and flags
        assert opt.flag(f.name) in p.opts, (name, f.name, p.opts)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if opt.preset:  # filled from a preset / per-task table when left unset
            assert p.default is None, (name, f.name)
        else:
            assert _plain(p.default) == default, (name, f.name, p.default, default)
    # resolved: what the command builds from its own defaults is the library's default config
    cli_defaults = {p.name: _plain(p.default) for p in CLICK[name].params if p.name in {f.name for f, _ in fields} | set(spec.extra)}
    extras = {k: cli_defaults.pop(k) for k in spec.extra}
    built = build_config(spec.config, cli_defaults, extras, spec.defaults)
    assert built == spec.config()


@pytest.mark.parametrize("name", sorted(CONFIG_COMMANDS))
def test_config_refuses_out_of_range_values_naming_the_option(name):
    """Library callers get the bounds and choices the CLI enforces, as a ValueError naming the option."""
    cls = CONFIG_COMMANDS[name].config
    checked = 0
    for f, opt in option_fields(cls):
        bad = "no-such-choice" if opt.choices is not None else (opt.min - 1 if opt.min is not None else None)
        if bad is None:
            continue
        with pytest.raises(ValueError, match=opt.flag(f.name)):
            cls(**{f.name: bad})
        checked += 1
    assert checked >= 2, name


# per command: CLI arguments that pass the CLI's parser but not the config's __post_init__,
# the same values as library keyword arguments, and the start of the one-line error
BAD = {
    "sofo-train": (["--lr", "-1"], dict(lr=-1.0), "bad --lr -1.0: must be a finite number > 0"),
    "floss": (["--n-units", "10", "--floss-k", "11"], dict(n_units=10, floss_k=11), "bad --floss-k 11: at most --n-units = 10"),
    "ode-train": (["--method", "nosuch"], dict(method="nosuch"), "bad --method 'nosuch'"),
    "selftest": (["--sleep", "inf"], dict(sleep=float("inf")), "bad --sleep inf"),
    "online-lru": (["--dropout", "1.5"], dict(dropout=1.5), "bad --dropout 1.5: must be in [0, 1)"),
    "online-lru-gradcheck": (["--rules", "nosuch"], dict(rules="nosuch"), "bad --rule: unknown rule 'nosuch'"),
    "online-lru-memory": (["--modes", "fast"], dict(modes="fast"), "bad --modes 'fast'"),
    "cordsnet-eval": (["--init", "random", "--alpha", "1.5"], dict(init="random", alpha=1.5), "bad --alpha 1.5: must be in (0, 1]"),
    "cordsnet-eigs": (["MODEL.pth", "--method", "power", "--which", "LR"], dict(method="power", which="LR"), "--method power finds the largest-|lambda|"),
    "lyapunov": (["MODEL.pt", "--horizons", "0,10"], dict(horizons="0,10"), "bad --horizons '0,10': each must be between 1 and --steps 2000"),
    "eigs": (["MODEL.pt", "--state", "fixed-point:2"], dict(state="fixed-point:2"), "--state fixed-point:I and --fixed-points FILE go together"),
    "fixed-points": (["MODEL.pt", "--tol-slow", "1e-14"], dict(tol_slow=1e-14), "bad --tol-slow 1e-14: must be >= --tol-q 1e-12"),
}


def test_bad_value_table_covers_every_config_command():
    assert set(BAD) == set(CONFIG_COMMANDS)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_value_is_one_line_exit_2_naming_the_option(name, tmp_path):
    args, kwargs, needle = BAD[name]
    r = run_cli(name, *args, "--out", tmp_path / "r", "-q", cwd=tmp_path)
    assert_user_error(r, needle)
    assert not (tmp_path / "r").exists()  # refused before any folder is made
    with pytest.raises(ValueError, match=re.escape(needle)):  # the library raises the same message
        CONFIG_COMMANDS[name].config(**kwargs)


def test_config_command_builds_options_from_fields():
    """The mechanism on a toy config: flags, short flags, bool pairs, Enum choices, Optional,
    preset fields (no CLI default; the hook, then the field default), an extra parameter placed
    after a field, and a __post_init__ ValueError turned into a one-line UserError."""
    from dataclasses import dataclass
    from enum import Enum
    from inspect import Parameter

    from rnntk.engine.config_cli import check_options, config_command, option
    from rnntk.engine.errors import UserError

    class Kind(str, Enum):
        a = "a"
        b = "b"

    @dataclass
    class Toy:
        kind: str = option("a", "The kind.", choices=Kind)
        n_units: int = option(8, "Units.", flags=("--n-units", "-N"), min=1)
        noise: bool = option(True, "Noise.", flags=("--noise/--no-noise",))
        size: int = option(3, "Size from the table.", preset=True)
        budget: Optional[float] = option(None, "Seconds.", metavar="SEC")
        library_only: int = 5

        def __post_init__(self) -> None:
            check_options(self)
            if self.size > self.n_units:
                raise ValueError(f"bad --size {self.size}: at most --n-units {self.n_units}")

    app = typer.Typer()
    table = {"big": {"size": 6}}
    extra = Parameter("table", Parameter.KEYWORD_ONLY, default="small", annotation=Annotated[str, typer.Option("--table")])
    config_command(app, "toy-test", Toy, extra=[extra], extra_after="kind", defaults=lambda v: table.get(v["table"], {}))(lambda opts, cfg, table: None)
    try:
        params = {p.name: p for p in typer.main.get_command(app).params}  # type: ignore[attr-defined]
        assert list(params)[:6] == ["kind", "table", "n_units", "noise", "size", "budget"] and "library_only" not in params
        assert params["n_units"].opts == ["--n-units", "-N"] and params["noise"].secondary_opts == ["--no-noise"]
        assert params["kind"].default is Kind.a and params["size"].default is None
        assert params["budget"].metavar == "SEC" and params["n_units"].min == 1
        spec = CONFIG_COMMANDS["toy-test"]
        assert build_config(Toy, {"kind": Kind.b, "size": None}, {"table": "small"}, spec.defaults) == Toy(kind="b", size=3)
        assert build_config(Toy, {"size": None}, {"table": "big"}, spec.defaults).size == 6
        with pytest.raises(UserError, match=r"^bad --size 9: at most --n-units 8$"):
            build_config(Toy, {"size": 9}, {"table": "small"}, spec.defaults)
        with pytest.raises(ValueError, match="bad --n-units 0: must be >= 1"):
            Toy(n_units=0)
    finally:
        CONFIG_COMMANDS.pop("toy-test", None)
        ENGINE_COMMANDS.discard("toy-test")
