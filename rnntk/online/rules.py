"""Learning-rule names, upstream aliases, and which rule fits which architecture (spec §2, §7)."""

from __future__ import annotations

RULES = ("online_full", "online_snap", "online_truncated", "online_spat", "bptt")
ALIASES = {
    "online_spatial": "online_spat",
    "online_1truncated": "online_truncated",
    "online_snap1": "online_snap",
    "spatial": "online_spat",
    "truncated": "online_truncated",
    "full": "online_full",
    "snap": "online_snap",
    "snap1": "online_snap",
}
FITS = {
    "lru": ("bptt", "online_full", "online_snap", "online_truncated", "online_spat"),
    "rnn": ("bptt", "online_snap", "online_truncated", "online_spat"),
    "gru": ("bptt", "online_snap", "online_truncated", "online_spat"),
}


def canonical_rule(rule: str) -> str:
    """The rnntk name of ``rule`` (upstream spellings accepted); ValueError if unknown."""
    r = ALIASES.get(rule, rule)
    if r not in RULES:
        raise ValueError(
            f"unknown rule '{rule}' (choose one of {', '.join(RULES)}; upstream spellings "
            f"{', '.join(k for k in ALIASES if k.startswith('online'))} are accepted)"
        )
    return r


def resolve_rule(rule: str, arch: str) -> str:
    """The rule the learner runs for ``arch``: on the LRU, ``online_snap`` is ``online_full``
    (SnAp-1 of a diagonal recurrence is exact). ValueError naming what fits otherwise."""
    r = canonical_rule(rule)
    if r not in FITS[arch]:
        fits = "; ".join(f"{a}: {', '.join(v)}" for a, v in FITS.items())
        raise ValueError(f"rule {r} does not apply to --arch {arch} ({fits})")
    if arch == "lru" and r == "online_snap":
        return "online_full"
    return r
