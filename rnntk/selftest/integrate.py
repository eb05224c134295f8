"""Evidence integration: a noisy input whose mean (the coherence) must be accumulated.

Trial b: coherence c_b ~ U(-1, 1); input u_t = c_b + sigma * xi_t (xi ~ N(0, 1));
target y_t = (1/T) * sum_{s<=t} u_s (the running integral, scaled to [-1, 1]).
"""

from __future__ import annotations

import torch

from rnntk.core.trials import TrialBatch


def integration_trials(
    batch: int, steps: int = 50, *, noise: float = 0.5, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> TrialBatch:
    """Sample ``batch`` integration trials of ``steps`` time steps (1 input, 1 output)."""
    c = torch.rand(batch, 1, 1, generator=generator, dtype=dtype) * 2 - 1
    u = c + noise * torch.randn(batch, steps, 1, generator=generator, dtype=dtype)
    y = torch.cumsum(u, dim=1) / steps
    return TrialBatch(u, y, torch.ones_like(y), {"coherence": c.reshape(batch)}, dt=0.01)
