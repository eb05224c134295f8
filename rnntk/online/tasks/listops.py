"""Synthetic ListOps (Nangia & Bowman 2018, as in LRA): nested MAX / MIN / MED / SM (sum mod
10) over digits, e.g. ``[MAX 2 9 [MIN 4 7 ] 0 ]`` → 9; 10 classes. Expressions are drawn by a
seeded recursive generator (one Python call per expression while building the data set) and
kept only if they have at most ``max_len`` tokens. Token ids (shared with the LRA TSV loader):
0 pad, 1–10 digits, then the operators, ``]`` and LRA's parentheses."""

from __future__ import annotations

import numpy as np
import torch

from rnntk.online.tasks.seq_loaders import SeqData, classification

OPS = ("[MAX", "[MIN", "[MED", "[SM")
VOCAB = ("<pad>", *[str(i) for i in range(10)], *OPS, "]", "(", ")")
_ID = {t: i for i, t in enumerate(VOCAB)}


def encode(tokens: list[str]) -> list[int]:
    """Token strings → ids (KeyError for an unknown token)."""
    return [_ID[t] for t in tokens]


def evaluate(tokens: list[str]) -> int:
    """Value of a ListOps expression (parentheses ignored)."""
    stack: list[list] = [[]]
    for t in tokens:
        if t in ("(", ")"):
            continue
        if t in OPS:
            stack.append([t])
        elif t == "]":
            op, *args = stack.pop()
            v = {"[MAX": max, "[MIN": min, "[MED": lambda a: int(np.median(a)), "[SM": lambda a: sum(a) % 10}[op](args)
            stack[-1].append(int(v))
        else:
            stack[-1].append(int(t))
    return int(stack[0][0])


def _expr(rng: np.random.Generator, depth: int, max_depth: int, max_args: int) -> list[str]:
    if depth >= max_depth or (depth > 0 and rng.random() < 0.65):
        return [str(int(rng.integers(10)))]
    out = [OPS[int(rng.integers(len(OPS)))]]
    for _ in range(int(rng.integers(2, max_args + 1))):
        out += _expr(rng, depth + 1, max_depth, max_args)
    return out + ["]"]


def listops_synth(n: int, max_len: int = 256, max_depth: int = 6, max_args: int = 5, generator: torch.Generator | None = None) -> SeqData:
    """``n`` expressions of at most ``max_len`` tokens: x (n, T) token ids (one-hot at batch
    time, vocabulary :data:`VOCAB`), right-padded; labels their values."""
    if max_len < 5:
        raise ValueError(f"listops max_len must be >= 5 (got {max_len})")
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    seqs, labels = [], []
    while len(seqs) < n:
        e = _expr(rng, 0, max_depth, max_args)
        if len(e) <= max_len and len(e) > 1:
            seqs.append(encode(e))
            labels.append(evaluate(e))
    T = max(len(s) for s in seqs)
    x = torch.zeros(n, T, dtype=torch.long)
    for j, s in enumerate(seqs):
        x[j, : len(s)] = torch.tensor(s)
    return classification(x, torch.tensor(labels), torch.tensor([len(s) for s in seqs]), 10, vocab=len(VOCAB))
