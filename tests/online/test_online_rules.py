"""Learning rules are objects chosen by name at the edge (issue 15 item 5): every registered
name and upstream alias resolves to a :class:`Rule` class, the learner tests no rule name,
architecture name or ``kind`` string, and a rule object passed directly runs as its name does."""

import ast
from pathlib import Path

import pytest
import torch

from rnntk.online import ALIASES, FITS, RULE_CLASSES, RULES, Rule, make_rule, online_gradients
from rnntk.online.alignment import gradient_of
from rnntk.online.models.seq_model import ARCHS, build_seq_model
from rnntk.online.rules import BPTT, OnlineFull, OnlineSnap, OnlineSpat, OnlineTruncated

PKG = Path(__file__).resolve().parents[2] / "rnntk" / "online"
VARIANT_NAMES = set(RULES) | set(ALIASES) | set(ARCHS)


def test_every_name_and_alias_resolves_to_a_rule_class():
    assert RULES == ("online_full", "online_snap", "online_truncated", "online_spat", "bptt")
    for name, cls in RULE_CLASSES.items():
        assert issubclass(cls, Rule) and cls.name == name
    for name in list(RULES) + list(ALIASES):
        for arch in ARCHS:
            canon = ALIASES.get(name, name)
            if canon not in FITS[arch]:
                with pytest.raises(ValueError, match="does not apply"):
                    make_rule(name, arch)
                continue
            r = make_rule(name, arch)
            assert isinstance(r, Rule) and arch in r.fits
            assert r.name == ("online_full" if (arch, canon) == ("lru", "online_snap") else canon)
    with pytest.raises(ValueError, match="unknown rule"):
        make_rule("rtrl", "lru")


def test_fits_table_and_rule_objects():
    assert FITS == {
        "lru": ("bptt", "online_full", "online_snap", "online_truncated", "online_spat"),
        "rnn": ("bptt", "online_snap", "online_truncated", "online_spat"),
        "gru": ("bptt", "online_snap", "online_truncated", "online_spat"),
    }
    assert isinstance(make_rule(OnlineSnap(), "lru"), OnlineFull)  # SnAp-1 of a diagonal recurrence is exact
    spat = OnlineSpat()
    assert make_rule(spat, "gru") is spat
    with pytest.raises(ValueError, match="does not apply"):
        make_rule(OnlineFull(), "rnn")
    assert not BPTT.streams and not BPTT.spatial and OnlineTruncated.spatial


def _string_compares(path: Path) -> list[str]:
    """Comparisons (==, !=, in, not in) in ``path`` against a rule, alias or architecture name, or
    on an attribute named rule / kind / arch: the if/elif chains that variants-as-objects removed."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        for side in [node.left, *node.comparators]:
            for sub in ast.walk(side):
                if isinstance(sub, ast.Constant) and sub.value in VARIANT_NAMES:
                    found.append(f"{path.name}:{node.lineno} compares with {sub.value!r}")
                if isinstance(sub, ast.Attribute) and sub.attr in ("rule", "kind", "arch"):
                    found.append(f"{path.name}:{node.lineno} compares .{sub.attr}")
    return found


@pytest.mark.parametrize("module", ["learner.py", "streaming_backward.py"])
def test_no_rule_or_architecture_string_tests_in_the_learner(module):
    assert _string_compares(PKG / module) == []


def test_the_ast_check_sees_a_rule_name_comparison(tmp_path):
    """The check above can fail: the learner before the change (``self.rule == "online_truncated"``)."""
    bad = tmp_path / "learner.py"
    bad.write_text('def f(self, rec):\n    if rec.kind == "lru" and self.rule in ("online_full", "online_snap"):\n        pass\n')
    found = _string_compares(bad)
    assert any("'lru'" in f for f in found) and any("'online_full'" in f for f in found) and any(".kind" in f for f in found)


def test_a_rule_object_runs_as_its_name():
    """A subclass of a rule under a new name is accepted as an object (no registry entry needed)
    and gives the gradient of the rule it extends; names and objects give the same numbers."""

    class MyTruncated(OnlineTruncated):
        name = "my_truncated"

    m = build_seq_model(d_in=3, n_classes=3, n_out=1, layers=1, d_model=4, d_hidden=3, dropout=0.0, generator=torch.Generator().manual_seed(0)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 7, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 7, 1), generator=g)
    mask = torch.ones(2, 7, dtype=torch.float64)
    for exec in ("sequence", "streaming"):
        by_name = gradient_of(m, (x, y, mask), "online_truncated", exec)
        by_obj = gradient_of(m, (x, y, mask), MyTruncated(), exec)  # type: ignore[arg-type]
        for k in by_name:
            assert torch.equal(by_name[k], by_obj[k]), (exec, k)
    with pytest.raises(ValueError, match="bptt cannot stream"):
        online_gradients(m, x, y, mask, BPTT(), "streaming")
