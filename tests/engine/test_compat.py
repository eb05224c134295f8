"""``rnntk.engine.compat``: the only module that imports a dependency's private modules.
Each name must still resolve and behave as rnntk uses it (oracles: closed forms and the
public torchdiffeq API); no other module of rnntk/ or benchmarks/ may import a private
module of a dependency (checked on the syntax tree)."""

from __future__ import annotations

import ast
import inspect
import math
from pathlib import Path

import pytest
import torch

from rnntk.engine import compat

ROOT = Path(__file__).resolve().parents[2]


def test_every_name_resolves():
    assert sorted(compat.__all__) == sorted(compat._PRIVATE)
    for name in compat.__all__:
        assert getattr(compat, name) is not None, name
    with pytest.raises(AttributeError):
        compat.not_a_name  # noqa: B018


def test_click_exceptions_as_the_cli_uses_them():
    cx = compat.click_exceptions
    assert issubclass(cx.ClickException, Exception) and issubclass(cx.NoArgsIsHelpError, cx.UsageError)
    e = cx.ClickException("bad thing")
    assert e.format_message() == "bad thing" and e.exit_code == 1


def test_torchdiffeq_solver_table_and_input_check():
    import torchdiffeq

    assert {"dopri5", "rk4", "euler", "bosh3"} <= set(compat.TD_SOLVERS)
    assert issubclass(compat.TD_SOLVERS["dopri5"], compat.RKAdaptiveStepsizeODESolver)
    assert not issubclass(compat.TD_SOLVERS["rk4"], compat.RKAdaptiveStepsizeODESolver)
    assert list(inspect.signature(compat.td_check_inputs).parameters) == ["func", "y0", "t", "rtol", "atol", "method", "options", "event_fn", "SOLVERS"]
    # a tuple state is flattened: solving the flattened problem with the normalised inputs
    # equals torchdiffeq's public odeint on the tuple (oracle: the public API)
    y0 = (torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([[0.5]], dtype=torch.float64))
    t = torch.linspace(0, 1, 3, dtype=torch.float64)

    def f(t, y):
        return (-y[0], 2 * y[1])

    shapes, f_, y_flat, t_, rtol, atol, method, options, _, _ = compat.td_check_inputs(f, y0, t, 1e-9, 1e-9, "dopri5", None, None, compat.TD_SOLVERS)
    assert [tuple(s) for s in shapes] == [(2,), (1, 1)] and y_flat.shape == (3,)
    sol = compat.TD_SOLVERS[method](func=f_, y0=y_flat, rtol=rtol, atol=atol, **options).integrate(t_)
    ref = torchdiffeq.odeint(f, y0, t, rtol=1e-9, atol=1e-9)
    got = compat.td_flat_to_shape(sol, (len(t),), shapes)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r)


def test_torchdiffeq_interp_norms_and_callbacks():
    c = [torch.tensor(float(v), dtype=torch.float64) for v in (1, 2, 3, 4, 5)]
    t0, t1 = torch.tensor(0.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64)
    x = 0.5  # t = 1 on [0, 2]
    assert float(compat.td_interp_evaluate(c, t0, t1, torch.tensor(1.0, dtype=torch.float64))) == pytest.approx(sum((i + 1) * x**i for i in range(5)))
    a, b = torch.tensor([3.0, -4.0]), torch.tensor([1.0, 1.0, 1.0])
    assert float(compat.td_rms_norm(a)) == pytest.approx(math.sqrt(12.5))
    assert float(compat.td_mixed_norm((a, b))) == pytest.approx(math.sqrt(12.5))
    assert "callback_step" in compat.td_callback_names
    assert [n + "_adjoint" for n in compat.td_callback_names] == list(compat.td_adjoint_callback_names)


def test_tree_map_over_nested_state():
    state = {"h": torch.ones(2, 3), "c": (torch.zeros(1), [torch.full((2,), 2.0)])}
    out = compat.tree_map(lambda t: t * 3, state)
    assert torch.equal(out["h"], torch.full((2, 3), 3.0)) and torch.equal(out["c"][1][0], torch.full((2,), 6.0))
    assert isinstance(out["c"], tuple) and isinstance(out["c"][1], list)


def test_mem_tracker_sees_a_cpu_allocation():
    mt = compat.MemTracker()
    with mt:
        x = torch.empty(1 << 22, dtype=torch.uint8)
        x.fill_(1)
    assert int(mt.get_tracker_snapshot("peak")[torch.device("cpu")]["Total"]) >= 1 << 22


def _private_imports(source: str) -> list[str]:
    """Imports of a non-rnntk module path with a private component (``pkg._x``), or of a
    private name from one (``from pkg import _x``)."""
    out = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        mods: list[str] = []
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        private = [
            m for m in mods if m.split(".")[0] not in ("rnntk", "__future__") and any(p.startswith("_") and not p.startswith("__") for p in m.split("."))
        ]
        if private:
            out.append(f"{node.lineno}: {private[0]}")
    # attribute chains into a private part of an imported package: torch.utils._pytree.x, torch._C._f()
    modules = {
        (a.asname or a.name).split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names if not a.name.startswith("rnntk")
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in modules:
                out.append(f"{node.lineno}: {ast.unparse(node)}")
    return out


def test_the_private_import_check_finds_them():
    src = "from typer._click import exceptions\nimport torchdiffeq._impl.misc\nfrom torch.distributed._tools.mem_tracker import MemTracker\nfrom numpy import _core\n"
    assert len(_private_imports(src)) == 4
    chains = "import torch\nimport numpy as np\nx = torch.utils._pytree.tree_map(f, s)\nold = torch._C._get_mkldnn_enabled()\ny = self._cache\nz = np.random.rand()\n"
    assert sorted(b.split(": ")[1] for b in _private_imports(chains)) == ["torch._C", "torch._C._get_mkldnn_enabled", "torch.utils._pytree"]
    assert _private_imports("from rnntk.engine.compat import click_exceptions\nimport torch.nn.functional as F\nfrom rnntk.x import _private\n") == []


@pytest.mark.parametrize("folder", ["rnntk", "benchmarks"])
def test_no_private_imports_outside_compat(folder):
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if path == ROOT / "rnntk" / "engine" / "compat.py":
            continue
        bad += [f"{path.relative_to(ROOT)}:{b}" for b in _private_imports(path.read_text())]
    assert bad == [], "import these through rnntk.engine.compat: " + ", ".join(bad)
