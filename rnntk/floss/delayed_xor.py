"""Delayed XOR / parity / copy on random bit streams (gradient flossing's tasks).

Convention (the paper's): ``delay`` D is the *longest* lag. With ``n_bits`` = m the target is the
parity of m input bits spaced D/m apart (m must divide D):

    y_t = u_{t−D/m} ⊕ u_{t−2D/m} ⊕ … ⊕ u_{t−D}      (m = 2: delayed XOR; m = 1: copy, y_t = u_{t−D})

Upstream's code counts delays in bit spacing (its XOR ``delay = 10`` is the paper's D = 20).
Inputs are i.i.d. Bernoulli(½) bits (times ``amplitude``), one target channel per input
channel. A hidden prefix of D bits precedes the visible input, so every target is defined.
Scored steps (``mask``): t ≥ D (0-based), where every bit the target needs was shown; upstream
scores from t = D − 1, one step whose target depends on a hidden bit (ceiling 1 − ½/(T−D+1)):
``upstream_window=True`` restores that.
"""

from __future__ import annotations

import torch

from rnntk.core.trials import TrialBatch


def check_delay(delay: int, n_bits: int, steps: int) -> int:
    """Validate and return the bit spacing D/m; ValueError with the reason otherwise."""
    if n_bits < 1:
        raise ValueError(f"n_bits must be >= 1, got {n_bits}")
    if delay < 1:
        raise ValueError(f"delay must be >= 1, got {delay}")
    if delay % n_bits:
        raise ValueError(f"delay {delay} must be a multiple of the number of bits {n_bits}")
    if steps <= delay:
        raise ValueError(f"trial length {steps} must exceed the delay {delay}")
    return delay // n_bits


def delayed_parity_trials(
    batch: int,
    steps: int,
    delay: int,
    *,
    n_bits: int = 2,
    channels: int = 1,
    amplitude: float = 1.0,
    upstream_window: bool = False,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> TrialBatch:
    """Sample trials: inputs (B, T, S) in {0, amplitude}, targets (B, T, S) in {0, 1},
    mask (B, T) = 1 on scored steps. Table: ``n_scored`` per trial."""
    spacing = check_delay(delay, n_bits, steps)
    s = torch.randint(0, 2, (batch, steps + delay, channels), generator=generator)
    y = torch.zeros(batch, steps, channels, dtype=torch.long)
    for m in range(1, n_bits + 1):
        lag = m * spacing
        y ^= s[:, delay - lag : delay - lag + steps]
    first = delay - 1 if upstream_window else delay
    mask = (torch.arange(steps) >= first).to(dtype).expand(batch, steps).contiguous()
    return TrialBatch(
        amplitude * s[:, delay:].to(dtype),
        y.to(dtype),
        mask,
        {"n_scored": torch.full((batch,), steps - first)},
        dt=None,
    )


def accuracy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fraction of scored bits where (sigmoid(z) ≥ ½) equals the target."""
    correct = ((logits >= 0) == (targets >= 0.5)).to(logits.dtype) * mask[..., None]
    return correct.sum() / (mask.sum() * logits.shape[-1])


def bce_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy with logits over scored steps, trials and channels."""
    l = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none") * mask[..., None]
    return l.sum() / (mask.sum() * logits.shape[-1])
