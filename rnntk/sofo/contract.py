"""SOFO's models under the recurrent-model contract (:mod:`rnntk.core.models`).

* :class:`MotorContract`: the network part of :class:`~rnntk.sofo.models.motor_rnn.MotorRNN`,
  noise-free (eta = 1). The arm is outside: its state ``[theta, omega] (batch, 4)`` is appended
  to the task input, ``u = [u_task (n_in), theta (2), omega (2)]``; the readout is the torque
  ``relu(z) C (batch, 2)``. Continuous: ``tau dz/dt = -z + relu(z) W + b + u_task B_in + [theta, omega] F``.
* :class:`KalmanContract`: :class:`~rnntk.sofo.models.kalman_rnn.KalmanRNN` (discrete),
  ``u = (y_t, 1, first_t)``, readout ``z O``.
Both read the model's current parameters (``model.params()``); SOFO's functional steps with
noise and explicit params stay in the slice.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from rnntk.core.models import register_adapter, register_model
from rnntk.sofo.models.constrained_motor import ConstrainedMotorRNN, EffectiveMotorView, rebuild
from rnntk.sofo.models.kalman_rnn import KalmanRNN
from rnntk.sofo.models.motor_rnn import MotorRNN

register_model(MotorRNN)
register_model(KalmanRNN)
register_model(ConstrainedMotorRNN, build=rebuild)


class MotorContract:
    """The network of MotorRNN, arm state as extra input (see module doc)."""

    time = "continuous"

    def __init__(self, model: MotorRNN) -> None:
        self.model = model
        self.n, self.n_in, self.n_out = model.n, model.n_in + 4, 2
        self.dt, self.tau = model.dt, model.tau

    def rhs(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        p = self.model.params()
        drive = torch.relu(x) @ p["W"][:-1] + p["W"][-1]
        if u is not None:
            k = self.model.n_in
            drive = drive + u[:, :k] @ p["B_in"] + u[:, k:] @ p["F"]
        return -x + drive

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        return x + self.dt / self.tau * self.rhs(x, u)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) @ self.model.params()["C"]

    def recurrent_weight(self) -> torch.Tensor:
        """``W[:-1]^T (n, n)`` (the model stores row-vector weights; the last row is the bias)."""
        return self.model.params()["W"][:-1].T

    def hparams(self) -> dict[str, Any]:
        return self.model.hparams()


class KalmanContract:
    """KalmanRNN, discrete; ``u (batch, 3) = (y_t, 1, first_t)``."""

    time = "discrete"

    def __init__(self, model: KalmanRNN) -> None:
        self.model = model
        self.n, self.n_in, self.n_out = model.n, 3, 1

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        if u is None:
            u = torch.zeros(x.shape[0], 3, dtype=x.dtype, device=x.device)
        return self.model.step(self.model.params(), x, u)[0]

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.model.params()["O"]

    def recurrent_weight(self) -> torch.Tensor:
        """``C^T (n, n)`` (the model stores row-vector weights)."""
        return self.model.params()["C"].T

    def hparams(self) -> dict[str, Any]:
        return self.model.hparams()


register_adapter(MotorRNN)(MotorContract)
register_adapter(KalmanRNN)(KalmanContract)
register_adapter(ConstrainedMotorRNN)(lambda m: MotorContract(EffectiveMotorView(m)))  # type: ignore[arg-type]
