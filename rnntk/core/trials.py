"""The shape every trial generator returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class TrialBatch:
    """A batch of trials, batch-first.

    inputs:  (B, T, n_in)   network input per time step
    targets: (B, T, n_out)  desired output per time step
    mask:    (B, T) or (B, T, n_out)  loss weight per step (0 = not scored)
    table:   per-trial columns, each a 1-D tensor/array of length B (written to /trials)
    dt:      time step in seconds (None for tasks without physical time)
    extra:   task-specific tensors (e.g. latent states, baseline estimates)
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    table: dict[str, torch.Tensor] = field(default_factory=dict)
    dt: float | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def steps(self) -> int:
        return int(self.inputs.shape[1])
