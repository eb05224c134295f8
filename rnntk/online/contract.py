"""The online slice's recurrent layers under the recurrent-model contract
(:mod:`rnntk.core.models`). All discrete; a layer's input is ``u (batch, d_model)``.

* LRU: the complex state ``h (batch, N)`` as the real ``x = [Re h, Im h] (batch, 2N)``;
  ``h' = lambda h + gamma (B u)``; ``readout(x) = Re(C h) (batch, H)``.
* LinearRNN: ``x' = A rho(x) + B u``; ``readout(x) = C x``.
* GRUCell: the GRU step; ``readout(x) = x``.
The layers' skip term ``D u`` (LRU, LinearRNN) depends on the input, not the state: it is not
part of ``readout`` (a layer's output is ``readout(x_t) + D * u_t``). The online rules' detach
flags stay in the slice (:meth:`LinearRNN.step`, :meth:`GRUCell.step`).

A whole :class:`~rnntk.online.models.seq_model.SeqModel` (what ``online-lru`` checkpoints) is a
:class:`~rnntk.core.models.RecurrentStack` (:class:`SeqModelLayers`): its recurrent layers, each
driven by its own input ``lay.pre(z)`` computed by the stack in eval mode (no dropout).
"""

from __future__ import annotations

from typing import Any, Optional, cast

import torch

from rnntk.core.models import RecurrentModel, register_adapter, register_model
from rnntk.online.models.lru import LRU
from rnntk.online.models.rnns import GRUCell, LinearRNN
from rnntk.online.models.seq_model import SeqModel, SequenceLayer, build_seq_model

register_model(SeqModel, build=build_seq_model)  # build_seq_model keeps the hparams for checkpoints


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

    def tangent(self, x: torch.Tensor, Q: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``diag(lambda) Q`` on ``[Re, Im]`` rows of ``Q (batch, 2N, k)`` (the state drops out)."""
        lam, N = self.layer.lam(), self.layer.d_hidden
        lr, li = lam.real.to(Q.dtype)[:, None], lam.imag.to(Q.dtype)[:, None]
        top, bot = Q[:, :N], Q[:, N:]
        return torch.cat([lr * top - li * bot, li * top + lr * bot], 1)

    def recurrent_weight(self) -> torch.Tensor:
        """``diag(lambda)`` on ``[Re h, Im h]``: ``[[Re L, -Im L], [Im L, Re L]]`` ``(2N, 2N)``."""
        lam = self.layer.lam()
        re, im = torch.diag(lam.real), torch.diag(lam.imag)
        return torch.cat([torch.cat([re, -im], 1), torch.cat([im, re], 1)], 0)


class LinearRNNContract(_Layer):
    """LinearRNN layer: ``x' = A rho(x) + B u``, ``readout = C x``."""

    def __init__(self, layer: LinearRNN) -> None:
        super().__init__(layer, layer.d_hidden)

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        return self.layer.step(self._u(x, u), x)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.layer.C.transpose(0, 1)

    def tangent(self, x: torch.Tensor, Q: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``A (rho'(x) Q)`` for ``Q (batch, N, k)``."""
        return self.layer.A @ (self.layer.drho(x)[..., :, None] * Q)

    def recurrent_weight(self) -> torch.Tensor:
        """``A (N, N)``."""
        return self.layer.A

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


class SeqModelLayers:
    """The recurrent layers of a :class:`SeqModel` (a :class:`~rnntk.core.models.RecurrentStack`)."""

    def __init__(self, model: SeqModel) -> None:
        self.model = model
        self.n_in = model.encoder.in_features
        wrap = {LRU: LRUContract, LinearRNN: LinearRNNContract, GRUCell: GRUContract}
        self._layers: list[tuple[str, RecurrentModel]] = [(f"layer{i}", wrap[type(lay.rec)](lay.rec)) for i, lay in enumerate(model.layers)]

    def layers(self) -> list[tuple[str, RecurrentModel]]:
        return list(self._layers)

    def layer_inputs(self, u: torch.Tensor) -> list[torch.Tensor]:
        """``u (batch, T, d_in)`` -> each layer's input ``lay.pre(z) (batch, T, d_model)`` (eval mode)."""
        was = self.model.training
        self.model.eval()
        try:
            z = self.model.encoder(u)
            out = []
            for layer in self.model.layers:
                lay = cast(SequenceLayer, layer)
                v = lay.pre(z)
                out.append(v)
                z = lay.post(z, lay.rec(v))
            return out
        finally:
            self.model.train(was)


register_adapter(LRU)(LRUContract)
register_adapter(SeqModel)(SeqModelLayers)
register_adapter(LinearRNN)(LinearRNNContract)
register_adapter(GRUCell)(GRUContract)
