"""The reach tasks' network (:class:`~rnntk.sofo.models.motor_rnn.MotorRNN`) under biological
constraints (``sofo-train --task double-reach --dale-ratio 0.8 --connectivity 0.5 --no-autapses``).

The recurrent, input and torque weights come from a :class:`~rnntk.core.constrained_rnn.ConstrainedRNN`
(``self.core``) in its column convention: MotorRNN's row-vector weights are
``W[:-1] = W_rec^T``, ``B_in = W_in^T``, ``C = W_out^T`` (so Dale's law fixes the sign of each row
of ``W[:-1]``: a unit's outgoing weights). The bias row ``bias (n,)``, the arm feedback ``F``
and ``z0`` stay free. The trained parameters are ``z0``, ``bias``, ``F`` and the core's free
vectors ``core.theta_*`` (connected, non-fixed entries; Dale magnitudes ``|theta|``), so SOFO's
tangents and Adam's steps stay in the constrained set. The rate noise is MotorRNN's own
(``--noise``); ``--rec-noise/--input-noise`` do not apply here. ``run.h5`` ``/model`` holds the
effective ``core/W_rec`` (from unit j to unit i), ``core/W_in``, ``core/W_out`` and the masks.
Init: MotorRNN's draws for ``B_in``, ``F``, ``C`` (masked); ``W_rec`` from the core (Dale-balanced
magnitudes, masked) rescaled to spectral radius ``init_gain`` (default upstream's ≈ 0.5/√(n+1)).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import nn

from rnntk.core.constrained_rnn import Connectivity, ConstrainedRNN
from rnntk.sofo.models.motor_rnn import MotorRNN, Params


class ConstrainedMotorRNN(MotorRNN):
    """MotorRNN whose network weights obey Dale's law and connectivity masks (see module doc)."""

    def __init__(
        self,
        n_in: int = 6,
        n: int = 64,
        *,
        dt: float = 0.002,
        tau: float = 0.02,
        noise: bool = True,
        generator: Optional[torch.Generator] = None,
        init_gain: Optional[float] = None,
        dale_ratio: Optional[float] = None,
        connectivity: Connectivity = None,
        autapses: bool = True,
        seed: int = 0,
        missing_connectivity_ok: bool = False,
    ) -> None:
        super().__init__(n_in, n, dt=dt, tau=tau, noise=noise, generator=generator, init_gain=init_gain)
        W, B_in, C = self.W.detach().clone(), self.B_in.detach().clone(), self.C.detach().clone()
        del self.W, self.B_in, self.C
        g = float(init_gain) if init_gain is not None else 0.5 / math.sqrt(n + 1)
        self.core = ConstrainedRNN(
            n_in,
            n,
            2,
            dt=dt,
            tau=tau,
            g=g,
            dale_ratio=dale_ratio,
            connectivity=connectivity,
            autapses=autapses,
            seed=seed,
            generator=generator,
            missing_connectivity_ok=missing_connectivity_ok,
        )
        for p in (self.core.b, self.core.b_out):  # MotorRNN has its own bias row and no torque bias
            p.requires_grad_(False)
        eff = self.core.effective()
        with torch.no_grad():
            self.core.set_effective({"in": B_in.T * self.core.mask_in, "rec": eff["W_rec"].detach(), "out": C.T * self.core.mask_out})
        self.bias = nn.Parameter(W[-1].clone())
        self.dale_ratio, self.connectivity, self.autapses, self.seed = dale_ratio, self.core.connectivity, bool(autapses), int(seed)

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "dale_ratio": self.dale_ratio, "connectivity": self.connectivity, "autapses": self.autapses, "seed": self.seed}

    @staticmethod
    def _core_part(p: Params) -> Params:
        return {k[5:]: v for k, v in p.items() if k.startswith("core.")}

    def motor_params(self, p: Params) -> Params:
        """MotorRNN's ``{z0, W, B_in, F, C}`` from the free parameters ``p`` (named as the model's)."""
        eff = self.core.effective(self._core_part(p))
        W = torch.cat([eff["W_rec"].T, p["bias"][None]], 0)
        return {"z0": p["z0"], "W": W, "B_in": eff["W_in"].T, "F": p["F"], "C": eff["W_out"].T}

    def motor_tangents(self, p: Params, V: Params) -> Params:
        """The tangents of :meth:`motor_params` along ``V (K, *shape)`` (analytic, through
        :meth:`ConstrainedRNN.push_tangent`: zero on masked and fixed weights)."""
        d = self.core.push_tangent(self._core_part(V), self._core_part(p))
        dW = torch.cat([d["W_rec"].transpose(1, 2), V["bias"][:, None]], 1)
        return {"z0": V["z0"], "W": dW, "B_in": d["W_in"].transpose(1, 2), "F": V["F"], "C": d["W_out"].transpose(1, 2)}

    def _motor(self, p: Params) -> Params:
        """``p`` as MotorRNN's weights (already such when it has ``W``: e.g. inside :meth:`rollout`)."""
        return p if "W" in p else self.motor_params(p)

    def step(self, p: Params, state: tuple[torch.Tensor, ...], u: torch.Tensor, eta: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        return super().step(self._motor(p), state, u, eta)

    def tangent_step(
        self, p: Params, state: tuple[torch.Tensor, ...], dstate: tuple[torch.Tensor, ...], V: Params, u: torch.Tensor, eta: torch.Tensor
    ) -> tuple[Any, torch.Tensor, Any, torch.Tensor]:
        return super().tangent_step(self.motor_params(p), state, dstate, self.motor_tangents(p, V), u, eta)

    def rollout(self, p: Params, u: torch.Tensor, eta: torch.Tensor) -> dict[str, torch.Tensor]:
        return super().rollout(self._motor(p), u, eta)  # the effective weights once per rollout

    def fit_state_dict(self, state_dict: Any) -> None:
        """See :meth:`ConstrainedRNN.fit_state_dict` (the core's keys carry the prefix ``core.``)."""
        self.core.fit_state_dict(self._core_part(dict(state_dict)))


def rebuild(**hparams: Any) -> ConstrainedMotorRNN:
    """The registry's builder (the connectivity ``.npz`` optional: masks come from the state dict)."""
    return ConstrainedMotorRNN(**hparams, missing_connectivity_ok=True)


class EffectiveMotorView:
    """What :class:`~rnntk.sofo.contract.MotorContract` reads, with the effective weights as ``params()``."""

    def __init__(self, model: ConstrainedMotorRNN) -> None:
        self._m = model
        self.n, self.n_in, self.dt, self.tau = model.n, model.n_in, model.dt, model.tau

    def params(self) -> Params:
        return self._m.motor_params(self._m.params())

    def hparams(self) -> dict[str, Any]:
        return self._m.hparams()
