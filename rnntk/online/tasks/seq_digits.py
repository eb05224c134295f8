"""Sequential digits: scikit-learn's bundled 8×8 digits (1 797 images, 10 classes, no
download) read pixel by pixel (T = 64, d_in = 1) or row by row (T = 8, d_in = 8), scaled by
1/16, optionally followed by zeros up to ``pad_to`` steps to lengthen the memory gap.
Dense labels; loss on every step (pad included), accuracy at the last step. A small stand-in
for sequential CIFAR."""

from __future__ import annotations

import torch

from rnntk.online.tasks.seq_loaders import SeqData, classification


def seq_digits(
    order: str = "pixel", pad_to: int = 0, generator: torch.Generator | None = None, n_val: int = 150, n_test: int = 297
) -> tuple[SeqData, SeqData, SeqData]:
    """(train, val, test) splits, shuffled by ``generator``; x (n, T, d_in)."""
    from sklearn.datasets import load_digits

    if order not in ("pixel", "row"):
        raise ValueError(f"unknown digits order '{order}' (pixel, row)")
    data, target = load_digits(return_X_y=True)
    x = torch.tensor(data, dtype=torch.float32) / 16.0
    x = x.view(-1, 64, 1) if order == "pixel" else x.view(-1, 8, 8)
    T = x.shape[1]
    if pad_to:
        if pad_to < T:
            raise ValueError(f"pad_to {pad_to} is shorter than the sequence ({T} steps)")
        x = torch.cat([x, torch.zeros(x.shape[0], pad_to - T, x.shape[2])], 1)
    labels = torch.tensor(target, dtype=torch.long)
    perm = torch.randperm(x.shape[0], generator=generator)
    x, labels = x[perm], labels[perm]
    full = classification(x, labels, torch.full((x.shape[0],), x.shape[1]), 10)

    def rows(a: int, b: int) -> SeqData:
        return SeqData(full.x[a:b], full.y[a:b], full.mask[a:b], full.eval_mask[a:b], 10)

    n = x.shape[0]
    return rows(n_test + n_val, n), rows(n_test, n_test + n_val), rows(0, n_test)
