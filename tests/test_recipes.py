"""Every recipe in tasks/ names only options its command knows, with valid values; the README
Python snippets run."""

import re
import tomllib
from pathlib import Path

import pytest
import typer

from rnntk.cli import app

ROOT = Path(__file__).resolve().parents[1]


# recipe file prefix -> the command whose --config reads it
RECIPE_COMMANDS = [("sofo-", "sofo-train"), ("gq-", "ode-train"), ("floss-", "floss"), ("selftest", "selftest"),
                   ("online-lru", "online-lru"), ("cordsnet-eval", "cordsnet-eval"), ("cordsnet-eigs", "cordsnet-eigs")]


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "tasks").glob("*.toml") if not p.name.startswith("sweep-")), ids=lambda p: p.name)
def test_recipe_resolves_with_the_real_parser(path):
    """The command's own parser reads the recipe as --config: unknown keys or bad values fail."""
    command = next(c for prefix, c in RECIPE_COMMANDS if path.name.startswith(prefix))
    cmd = typer.main.get_command(app).commands[command]
    ctx = cmd.make_context(command, ["--config", str(path)])
    cfg = tomllib.loads(path.read_text())
    for key, value in cfg.items():
        got = ctx.params[key.replace("-", "_")]
        assert getattr(got, "value", got) == value, (path.name, key)


@pytest.mark.parametrize("path", sorted((ROOT / "tasks").glob("sweep-*.toml")), ids=lambda p: p.name)
def test_sweep_recipe_names_real_options(path, tmp_path):
    """A sweep recipe's command exists and each of its jobs' config files resolves with that
    command's own parser (unknown keys or bad values fail)."""
    from rnntk.engine.config import to_toml
    from rnntk.runs.sweep import check_options, load_sweep

    sweep = load_sweep(path)
    cmd = typer.main.get_command(app).commands[sweep.command]
    check_options(sweep, {p.name: p for p in cmd.params})
    for job in sweep.jobs():
        cfg = tmp_path / f"{job.name}.toml"
        cfg.write_text(to_toml(job.options))
        ctx = cmd.make_context(sweep.command, ["--config", str(cfg)])
        for key, value in job.options.items():
            got = ctx.params[key.replace("-", "_")]
            assert getattr(got, "value", got) == value, (path.name, job.name, key)


def test_readme_python_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    runnable = [b for b in blocks if "SOFO(" in b or "Run.open" in b or "rnntk.floss" in b]
    assert len(runnable) >= 3
    for b in runnable:
        exec(compile(b.replace("range(1000", "range(3").replace("range(100)", "range(3)"), "README", "exec"), {})
