"""CordsNet under the recurrent-model contract (:mod:`rnntk.core.models`), through its areas
flattened into one state: ``x = [r_0.flatten(), ..., r_{D-1}.flatten()] (batch, n)``, ``n`` the
sum of ``C_j H_j W_j``. The input is a flattened image ``u (batch, C_in S S)`` (or ``None``: the
spontaneous, bias-driven phase); ``readout`` gives the logits ``(batch, classes)``.
Continuous: ``dt = 2 ms``, ``tau = 10 ms`` (``alpha = dt/tau = 0.2``); ``rhs = -r + act(z)``.
The stem is recomputed at each step: analyses of the contract pay that; the slice's own
simulation computes the drive once per phase."""

from __future__ import annotations

from typing import Any, Optional

import torch

from rnntk.cordsnet.model import ALPHA, DT, TAU, CordsNet
from rnntk.core.models import register_adapter, register_model

register_model(CordsNet)


class CordsNetContract:
    """CordsNet with flattened areas (see module doc)."""

    time = "continuous"

    def __init__(self, model: CordsNet) -> None:
        self.model = model
        self.sizes = [c * h * w for c, h, w in model.shapes]
        self.n = sum(self.sizes)
        self.n_in = model.in_channels * model.image_size * model.image_size
        self.n_out = model.classes
        self.dt, self.tau = DT, TAU

    def areas(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x (batch, n)`` -> per-area states ``(batch, C_j, H_j, W_j)``."""
        return [p.reshape(x.shape[0], *s) for p, s in zip(torch.split(x, self.sizes, dim=1), self.model.shapes)]

    @staticmethod
    def flatten(rs: list[torch.Tensor]) -> torch.Tensor:
        """Per-area states -> ``(batch, n)``."""
        return torch.cat([r.flatten(1) for r in rs], dim=1)

    def _drive(self, u: Optional[torch.Tensor]) -> Any:
        if u is None:
            return self.model.drives(None)
        m = self.model
        return m.drives(m.stem(u.reshape(u.shape[0], m.in_channels, m.image_size, m.image_size)))

    def rhs(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        rs = self.areas(x)
        zs = self.model.preactivations(rs, self._drive(u))
        act = zs if self.model.nonlinearity == "linear" else [torch.relu(z) for z in zs]
        return self.flatten([a - r for r, a in zip(rs, act)])

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        return self.flatten(self.model.step(self.areas(x), self._drive(u), ALPHA))  # ALPHA = DT/TAU

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.readout(self.areas(x))

    def hparams(self) -> dict[str, Any]:
        return self.model.hparams()


register_adapter(CordsNet)(CordsNetContract)
