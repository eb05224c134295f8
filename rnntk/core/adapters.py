"""The two reference RNNs of the core under the recurrent-model contract.

:class:`~rnntk.core.vanilla_rnn.VanillaRNN` speaks it directly but for ``time``;
:class:`~rnntk.core.leaky_rnn.LeakyRNN` is continuous (``dt``, ``tau`` in seconds) and reads out
``C phi(x) + d``.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from rnntk.core.constrained_rnn import ConstrainedRNN, rebuild
from rnntk.core.leaky_rnn import ACTIVATIONS, LeakyRNN
from rnntk.core.models import register_adapter, register_model
from rnntk.core.vanilla_rnn import VanillaRNN

register_model(VanillaRNN)
register_model(LeakyRNN)
register_model(ConstrainedRNN, build=rebuild)  # speaks the contract itself (continuous, analytic tangent)


class VanillaContract:
    """VanillaRNN as a discrete model: ``step``, ``tangent``, ``readout`` are the model's own."""

    time = "discrete"

    def __init__(self, model: VanillaRNN) -> None:
        self.model = model
        self.n, self.n_in, self.n_out = model.n, model.n_in, model.n_out

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        return self.model.step(x, u)

    def tangent(self, x: torch.Tensor, Q: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.model.tangent(x, Q, u)

    def recurrent_weight(self) -> torch.Tensor:
        """``J (n, n)``."""
        return self.model.J

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.readout(x)

    def hparams(self) -> dict[str, Any]:
        return self.model.hparams()


class LeakyContract:
    """LeakyRNN: ``tau dx/dt = -x + W phi(x) + U u + b`` (currents x), ``y = C phi(x) + d``."""

    time = "continuous"

    def __init__(self, model: LeakyRNN) -> None:
        self.model = model
        self.n, self.n_in, self.n_out = model.n_hidden, model.n_in, model.n_out
        self.dt, self.tau = model.dt, model.tau

    def rhs(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        m = self.model
        drive = m.b if u is None else u @ m.U.T + m.b
        return -x + ACTIVATIONS[m.activation](x) @ m.W.T + drive

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        return self.model.step(x, u)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        return ACTIVATIONS[m.activation](x) @ m.C.T + m.d

    def recurrent_weight(self) -> torch.Tensor:
        """``W (n, n)``."""
        return self.model.W

    def hparams(self) -> dict[str, Any]:
        return self.model.hparams()


register_adapter(VanillaRNN)(VanillaContract)
register_adapter(LeakyRNN)(LeakyContract)
