"""Methods never touch ``run.h5`` and never hand-roll a seed from the run seed (issue 15.4):
they use :class:`rnntk.engine.Run`'s verbs (``annotate``, ``read_metrics``, ``rows``,
``result``, ``trace``...) and named streams (``run.rng(name)``). Checked on the syntax tree
of every module outside ``rnntk/engine`` (the engine owns the file and the seeds)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "rnntk"
SEEDERS = {"manual_seed", "default_rng", "seed", "RandomState"}


def _is_run(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "run") or (isinstance(node, ast.Attribute) and node.attr == "run")


def _mentions_run_seed(node: ast.AST) -> bool:
    """``run.seed`` (``self.run.seed``) or ``resolve_seed(...)`` anywhere in ``node``."""
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute) and n.attr == "seed" and _is_run(n.value):
            return True
        if isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute)):
            name = n.func.id if isinstance(n.func, ast.Name) else n.func.attr
            if name == "resolve_seed":
                return True
    return False


def violations(source: str, filename: str = "<src>") -> list[str]:
    """Lines that reach into a run's HDF5 file (any ``.h5`` attribute) or seed a generator
    from the run seed by hand (``manual_seed(run.seed + k)``, ``default_rng(run.seed)``)."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute) and node.attr == "h5":
            out.append(f"{filename}:{node.lineno}: .h5 (use the Run verbs: annotate, read_metrics, rows, result, trace)")
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if name in SEEDERS and any(_mentions_run_seed(a) for a in [*node.args, *(k.value for k in node.keywords)]):
                out.append(f"{filename}:{node.lineno}: {name}(...run seed...) (use run.rng(stream) / run.np_rng(stream))")
    return out


def _method_modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "engine" not in p.relative_to(PKG).parts)


def test_the_checker_finds_what_it_forbids():
    bad = """
run.h5.set_attrs(task="x")
g = run.h5.f["metrics"]
gen = torch.Generator().manual_seed(run.seed + 3)
perm = torch.randperm(n, generator=torch.Generator(device=d).manual_seed(self.run.seed * 7919 + epoch))
rng = np.random.default_rng(run.seed)
data = make(torch.Generator().manual_seed(resolve_seed(opts.seed) + 17))
"""
    found = violations(bad)
    assert len(found) == 6, found  # the two .h5, the four seeds
    good = """
run.annotate(task="x")
m = run.read_metrics(["loss"])
gen = run.rng("floss/q0", legacy_offset=3)
perm = torch.randperm(n, generator=run.rng(f"shuffle/{epoch}", legacy_offset=7918 * run.seed + epoch))
probe = torch.Generator().manual_seed(0)  # a fixed constant, not the run's stream
noise = torch.Generator().manual_seed(sde.noise.seed)  # an object's own seed
path = run.path("eigs.csv"); name = "run.h5"
"""
    assert violations(good) == []


@pytest.mark.parametrize("path", _method_modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_methods_use_run_verbs(path: Path):
    assert violations(path.read_text(), str(path.relative_to(PKG.parent))) == []
