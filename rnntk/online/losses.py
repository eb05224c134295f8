"""The per-step loss of the online slice and upstream's loss weights."""

from __future__ import annotations

from typing import Optional

import torch


def loss_weights(mask: torch.Tensor, batch_size: Optional[int] = None) -> torch.Tensor:
    """Per-step loss weights (batch, T) from a 0/1 mask (batch, T): each sequence's active
    steps share weight 1, divided by the batch size (upstream's normalisation)."""
    b = mask.shape[0] if batch_size is None else batch_size
    return mask / mask.sum(1, keepdim=True).clamp(min=1) / b


def step_losses(logp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per (sequence, step), averaged over the n_out choices:
    logp (batch, T, n_out, K), y (batch, T, n_out) int64 → (batch, T)."""
    return -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(-1)
