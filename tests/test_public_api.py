"""The public API (issue 15.6): ``rnntk.__all__`` and each package's ``__all__`` list names
that import, the same names are visible to type checkers (imported under ``TYPE_CHECKING``),
and ``import rnntk`` does not import torch (lazy names keep ``rnntk --help`` fast)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "rnntk"
PACKAGES = ["rnntk", *(f"rnntk.{p.parent.name}" for p in sorted(PKG.glob("*/__init__.py")))]


def _static_names(init: Path) -> set[str]:
    """Names a type checker sees in a package's ``__init__``: the imports under
    ``if TYPE_CHECKING:`` and what the module binds at its top level."""
    names: set[str] = set()
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for imp in node.body:
                if isinstance(imp, (ast.Import, ast.ImportFrom)):
                    names |= {a.asname or a.name.split(".")[0] for a in imp.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
    return names


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_imports(name: str):
    mod = importlib.import_module(name)
    assert isinstance(mod.__all__, list) and mod.__all__ == sorted(set(mod.__all__), key=mod.__all__.index), "duplicates"
    for public in mod.__all__:
        assert getattr(mod, public) is not None, f"{name}.{public}"
        exec(f"from {name} import {public}", {})  # the spelling users write
    with pytest.raises(AttributeError):
        mod.no_such_name_here  # noqa: B018


@pytest.mark.parametrize("name", PACKAGES)
def test_public_names_are_visible_to_type_checkers(name: str):
    init = PKG.parent / Path(*name.split(".")) / "__init__.py"
    hidden = set(importlib.import_module(name).__all__) - _static_names(init)
    assert not hidden, f"{name}: {sorted(hidden)} are in __all__ but not imported under TYPE_CHECKING"


def test_the_names_the_issue_promises():
    import rnntk
    from rnntk.ode import odeint_adjoint_gq
    from rnntk.sofo import SOFO

    assert rnntk.SOFO is SOFO and rnntk.odeint_adjoint_gq is odeint_adjoint_gq
    assert callable(rnntk.floss) and rnntk.floss.floss is not None  # the package is callable (README)
    assert {"Run", "SOFO", "CordsNet", "lyapunov_spectrum", "odeint_adjoint_gq", "online_gradients"} <= set(rnntk.__all__)


def test_import_rnntk_does_not_import_torch():
    code = "import sys, rnntk, rnntk.engine, rnntk.sofo, rnntk.ode; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
