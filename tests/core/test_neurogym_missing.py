"""neurogym is an optional extra: without it, --task neurogym:<EnvId> is a one-line error saying
what to install (runs with and without the extra installed)."""

from __future__ import annotations

import builtins
import sys

import pytest
from conftest import assert_user_error, cli_env, run_cli

from rnntk.core import neurogym as ngt

PDM = "neurogym:PerceptualDecisionMaking-v0"


def test_missing_extra_is_one_line(monkeypatch):
    real = builtins.__import__

    def fake(name, *a, **k):
        if name in ("neurogym", "gymnasium") or name.startswith(("neurogym.", "gymnasium.")):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    for mod in [m for m in sys.modules if m.split(".")[0] in ("neurogym", "gymnasium")]:
        monkeypatch.delitem(sys.modules, mod)
    with pytest.raises(ngt.NeurogymMissing, match=r"pip install 'rnntk\[neurogym\]'") as e:
        ngt.NeurogymTask(PDM)
    assert "\n" not in str(e.value)


def test_missing_extra_cli(tmp_path):
    """The real CLI with neurogym shadowed by a module that cannot be imported: exit 2, one line."""
    (tmp_path / "shadow").mkdir()
    (tmp_path / "shadow" / "neurogym.py").write_text("raise ModuleNotFoundError(\"No module named 'neurogym'\", name='neurogym')\n")
    env = cli_env(PYTHONPATH=str(tmp_path / "shadow"))
    for cmd in (("sofo-train", "--iters", "1"), ("floss", "--epochs", "1")):
        r = run_cli(*cmd, "--task", PDM, "--out", tmp_path / cmd[0], env=env)
        assert_user_error(r, "pip install 'rnntk[neurogym]'")
