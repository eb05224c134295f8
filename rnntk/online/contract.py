"""The online slice's recurrent layers under the recurrent-model contract
(:mod:`rnntk.core.models`). All discrete; a layer's input is ``u (batch, d_model)``.

* LRU: the complex state ``h (batch, N)`` as the real ``x = [Re h, Im h] (batch, 2N)``;
  ``h' = lambda h + gamma (B u)``; ``readout(x) = Re(C h) (batch, H)``.
* LinearRNN: ``x' = A rho(x) + B u``; ``readout(x) = C x``.
* GRUCell: the GRU step; ``readout(x) = x``.
The layers' skip term ``D u`` (LRU, LinearRNN) depends on the input, not the state: it is not
part of ``readout`` (a layer's output is ``readout(x_t) + D * u_t``). The online rules' detach
flags stay in the slice (:meth:`LinearRNN.step`, :meth:`GRUCell.step`).
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from rnntk.core.models import register_adapter
from rnntk.online.models.lru import LRU
from rnntk.online.models.rnns import GRUCell, LinearRNN


class _Layer:
    time = "discrete"

    def __init__(self, layer: Any, n: int) -> None:
        self.layer = layer
        self.n, self.n_in, self.n_out = n, layer.d_model, layer.d_model

    def _u(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        return torch.zeros(x.shape[0], self.n_in, dtype=x.dtype, device=x.device) if u is None else u

    def hparams(self) -> dict[str, Any]:
        return {"d_model": self.layer.d_model, "d_hidden": self.layer.d_hidden}


class LRUContract(_Layer):
    """LRU layer with the real state ``[Re h, Im h] (batch, 2N)``."""

    def __init__(self, layer: LRU) -> None:
        super().__init__(layer, 2 * layer.d_hidden)

    def _complex(self, x: torch.Tensor) -> torch.Tensor:
        N = self.layer.d_hidden
        return torch.complex(x[:, :N], x[:, N:])

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        h = self.layer.lam() * self._complex(x) + self.layer.drive(self._u(x, u)[:, None, :])[:, 0]
        return torch.cat([h.real, h.imag], dim=-1)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return (self._complex(x) @ self.layer.C().transpose(0, 1)).real


class LinearRNNContract(_Layer):
    """LinearRNN layer: ``x' = A rho(x) + B u``, ``readout = C x``."""

    def __init__(self, layer: LinearRNN) -> None:
        super().__init__(layer, layer.d_hidden)

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        return self.layer.step(self._u(x, u), x)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.layer.C.transpose(0, 1)

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "activation": self.layer.activation}


class GRUContract(_Layer):
    """GRU layer: the state is the output."""

    def __init__(self, layer: GRUCell) -> None:
        super().__init__(layer, layer.d_hidden)

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        return self.layer.step(self._u(x, u), x)[0]

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return x


register_adapter(LRU)(LRUContract)
register_adapter(LinearRNN)(LinearRNNContract)
register_adapter(GRUCell)(GRUContract)
