"""The layout rule of the code (README, "How the code is organised"): method slices import only
the engine, the core and the analyses, never each other; nothing below the slices imports a
slice or the CLI. Imports are read with ``ast`` (absolute and relative, at any depth, including
imports inside functions), so the check needs no import of torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "rnntk"
SLICES = ("sofo", "online", "floss", "cordsnet", "ode", "selftest")
SHARED = ("engine", "core", "analysis", "runs")
OLD_LAYERS = ("methods", "nets", "commands", "tasks")  # the horizontal layers before the slices


def _module(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    return ".".join(parts), is_pkg


def rnntk_imports(path: Path) -> set[str]:
    """Every ``rnntk.*`` module (or name in a module) that the file at ``path`` imports."""
    mod, is_pkg = _module(path)
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name == "rnntk" or a.name.startswith("rnntk.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "rnntk" or target.startswith("rnntk."):
                out |= {f"{target}.{a.name}" for a in node.names}
    return out


def part_of(dotted: str) -> str | None:
    """The top-level part of rnntk that a dotted name lies in (``rnntk.sofo.train`` -> ``sofo``)."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "rnntk" else None


def violations(pkg: Path = PKG) -> list[str]:
    bad = []
    for f in sorted(pkg.rglob("*.py")):
        here = part_of(_module(f)[0])
        for imp in sorted(rnntk_imports(f)):
            there = part_of(imp)
            rel = f.relative_to(pkg.parent)
            if here in SLICES and there in SLICES and there != here:
                bad.append(f"{rel}: slice '{here}' imports slice '{there}' ({imp})")
            elif here in SHARED and there in SLICES:
                bad.append(f"{rel}: shared '{here}' imports slice '{there}' ({imp})")
            elif here != "cli" and there == "cli" and here != "__main__":
                bad.append(f"{rel}: imports rnntk.cli (an import circle: the CLI calls register(app))")
            elif there in OLD_LAYERS:
                bad.append(f"{rel}: imports an old layer ({imp})")
    return bad


def test_slices_import_only_engine_core_analysis():
    assert violations() == []


def test_every_slice_has_register_and_init():
    for s in SLICES:
        assert (PKG / s / "__init__.py").is_file(), s
        tree = ast.parse((PKG / s / "cli.py").read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "register" for n in tree.body), f"{s}/cli.py has no register(app)"
    for old in OLD_LAYERS:
        assert not (PKG / old).exists(), f"the old layer {old}/ should be gone"


@pytest.mark.parametrize("case, expect", [
    ("from rnntk.online.learner import online_gradients\n", "slice 'sofo' imports slice 'online'"),
    ("from ..floss import train\n", "slice 'sofo' imports slice 'floss'"),
    ("def f():\n    import rnntk.ode.train\n", "slice 'sofo' imports slice 'ode'"),
    ("from ..cli import app\n", "imports rnntk.cli"),
    ("from rnntk.engine.run import Run\nfrom rnntk.core.trials import TrialBatch\nfrom .optimizer import SOFO\n", None),
])
def test_the_checker_sees_a_crossing(tmp_path, case, expect):
    """The rule itself is tested on a small fake package, so it cannot pass by reading nothing."""
    fake = tmp_path / "rnntk"
    for d in ("sofo", "online", "floss", "ode", "engine"):
        (fake / d).mkdir(parents=True)
        (fake / d / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "sofo" / "bad.py").write_text(case)
    global PKG
    old, PKG = PKG, fake
    try:
        found = violations(fake)
    finally:
        PKG = old
    if expect is None:
        assert found == []
    else:
        assert len(found) == 1 and expect in found[0], found
