"""The ODE slice's rate-RNN field under the recurrent-model contract (:mod:`rnntk.core.models`):
``tau dx/dt = -x + W tanh(x) + b`` (autonomous: ``n_in = 0``, ``u`` ignored), Euler-stepped
with ``dt`` (seconds; the field itself is integrated by an ODE solver in training, so ``dt`` is
the adapter's, default ``tau / 10``); readout: the state.

``ode-train`` checkpoints its modules as an ``nn.ModuleDict`` (``model_class`` ``"ModuleDict"``,
hparams ``task, width, n_units, tau``): :func:`ode_modules` rebuilds it for ``--task rate-rnn``,
and the adapter of a ``ModuleDict`` is the contract of its ``"field"``."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from rnntk.core.models import register_adapter, register_model
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

    def recurrent_weight(self) -> torch.Tensor:
        """``W (n, n)``."""
        return self.field.W

    def hparams(self) -> dict[str, Any]:
        return {"n": self.n, "tau": self.tau}


register_adapter(RateRNNField)(RateRNNContract)


def ode_modules(task: str, width: int = 100, n_units: int = 20, tau: float = 0.05) -> nn.ModuleDict:
    """The modules of an ``ode-train --task rate-rnn`` checkpoint, ``{"field": RateRNNField}``
    (weights to be loaded); the other tasks train neural-ODE fields, not recurrent networks."""
    from rnntk.engine.errors import UserError

    if task != "rate-rnn":
        raise UserError(f"an ode-train --task {task} run holds a neural ODE field, not a recurrent network (only --task rate-rnn is)")
    return nn.ModuleDict({"field": RateRNNField(int(n_units), float(tau))})


def _modules_contract(m: nn.ModuleDict) -> RateRNNContract:
    field = m["field"] if "field" in m else None
    if not isinstance(field, RateRNNField):
        raise TypeError("this ModuleDict holds no RateRNNField (an ode-train --task rate-rnn model)")
    return RateRNNContract(field)


register_model(nn.ModuleDict, name="ModuleDict", build=ode_modules)
register_adapter(nn.ModuleDict)(_modules_contract)
