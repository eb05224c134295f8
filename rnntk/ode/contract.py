"""The ODE slice's rate-RNN field under the recurrent-model contract (:mod:`rnntk.core.models`):
``tau dx/dt = -x + W tanh(x) + b`` (autonomous: ``n_in = 0``, ``u`` ignored), Euler-stepped
with ``dt`` (seconds; the field itself is integrated by an ODE solver in training, so ``dt`` is
the adapter's, default ``tau / 10``); readout: the state."""

from __future__ import annotations

from typing import Any, Optional

import torch

from rnntk.core.models import register_adapter
from rnntk.ode.train import RateRNNField


class RateRNNContract:
    """:class:`~rnntk.ode.train.RateRNNField` as a continuous model."""

    time = "continuous"

    def __init__(self, field: RateRNNField, dt: Optional[float] = None) -> None:
        self.field = field
        self.n = self.n_out = field.W.shape[0]
        self.n_in = 0
        self.tau = field.tau
        self.dt = self.tau / 10 if dt is None else float(dt)

    def rhs(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        return self.tau * self.field(torch.zeros((), dtype=x.dtype, device=x.device), x)

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        return x + self.dt / self.tau * self.rhs(x, u)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def hparams(self) -> dict[str, Any]:
        return {"n": self.n, "tau": self.tau}


register_adapter(RateRNNField)(RateRNNContract)
