"""The copy task of the online-learning paper (spec §4.1).

A sequence of T = 2P + pad + 1 steps: steps 1..P carry a P×bits Bernoulli(½) pattern in input
channels 0..bits−1; the stop token (channel ``bits``) comes at step P + pad + 1; the targets are
the pattern at the last P steps (T−P+1..T, right after the stop token), zeros elsewhere, and the
loss mask covers only those P steps. Each scored step holds ``bits`` independent 2-way choices.

Upstream pad semantics: its loader passes ``padding_length=5`` but the class reads
``pad_length``, so the effective pad is 7 (recall starts 8 steps after the pattern); rnntk's
default pad is therefore 7. Upstream samples with the global torch RNG; here the run's
generator is used, so data are reproducible.
"""

from __future__ import annotations

from typing import Optional

import torch

from rnntk.online.tasks.seq_loaders import SeqData


def copy_length(pattern_len: int, pad_len: int = 7) -> int:
    """T = 2P + pad + 1."""
    return 2 * pattern_len + pad_len + 1


def copy_task(n: int, pattern_len: int = 10, pad_len: int = 7, bits: int = 7, generator: Optional[torch.Generator] = None) -> SeqData:
    """``n`` copy-task sequences: x (n, T, bits+1) float, y (n, T, bits) int64 (2 classes),
    mask = eval_mask (n, T) with P ones at the end."""
    if pattern_len < 1 or pad_len < 0 or bits < 1 or n < 1:
        raise ValueError(f"copy task needs pattern_len >= 1, pad_len >= 0, bits >= 1, n >= 1 (got {pattern_len}, {pad_len}, {bits}, {n})")
    P = pattern_len
    T = copy_length(P, pad_len)
    pat = torch.randint(0, 2, (n, P, bits), generator=generator)
    x = torch.zeros(n, T, bits + 1)
    x[:, :P, :bits] = pat.float()
    x[:, P + pad_len, bits] = 1.0
    y = torch.zeros(n, T, bits, dtype=torch.long)
    y[:, T - P :] = pat
    mask = torch.zeros(n, T)
    mask[:, T - P :] = 1.0
    return SeqData(x, y, mask, mask.clone(), 2)
