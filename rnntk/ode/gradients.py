"""Gradient strategies of ``rnntk ode-train``: one class per way of differentiating a solve,
chosen by name at the edge (:data:`GRADIENTS`, :func:`make_gradient`; ``--adjoint auto`` is
resolved to one of them by :func:`rnntk.ode.train.auto_adjoint` before training).

- :class:`GQ`: the Gauss–Legendre quadrature adjoint (:func:`~rnntk.ode.gq_adjoint.odeint_adjoint_gq`);
- :class:`Adjoint`, :class:`Seminorm`: torchdiffeq's ``odeint_adjoint`` (seminorm: the
  parameter adjoints left out of the backward step-size control);
- :class:`Direct`: backprop through the solver's operations (torchdiffeq's ``odeint``);
- :class:`SDEDirect`, :class:`SDEAdjoint`: the OU task's SDE solved by torchsde (Stratonovich,
  reversible Heun) with backprop or torchsde's adjoint, instead of the Wong–Zakai ODE.

Each provides ``solve(cfg, func, y0, t)`` for an ODE and ``sample_paths(cfg, sde, x0, t, next_seed)``
for the Wong–Zakai SDE of the OU task (ODE strategies: fresh Karhunen–Loève noise, then
``solve``). Solver options (rtol, atol, method, the GQ options, sde_dt) come from ``cfg``
(:class:`~rnntk.ode.config.ODEConfig`).
"""

from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar, Optional, cast

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from rnntk.ode.gq_adjoint import CountedField, odeint_adjoint_gq


class CountedStats:
    """Solver counts of the gradients other than GQ, with GQStats' field names: ``nfe_forward``
    at once and ``nfe_backward`` (calls of f after the forward) once backward has run; both
    None when nothing was counted (the torchsde baselines). No quadrature nodes."""

    nodes_per_interval: tuple[int, ...] = ()

    def __init__(self, counter: Optional[CountedField] = None) -> None:
        self._counter = counter
        self.nfe_forward: Optional[int] = None if counter is None else counter.n

    @property
    def nfe_backward(self) -> Optional[int]:
        return None if self._counter is None or self.nfe_forward is None else self._counter.n - self.nfe_forward


def _solver_options(cfg: Any) -> dict[str, Any]:
    return dict(rtol=cfg.rtol, atol=cfg.atol, method=cfg.method)


class Gradient(abc.ABC):
    """How ode-train differentiates a solve (see the module doc). ``solve`` returns the solution
    (len(t), *y0.shape) with its graph for ``backward`` and the solver stats (:class:`GQStats` or
    :class:`CountedStats`: forward NFE now, backward NFE and GQ nodes once backward has run)."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def solve(self, cfg: Any, func: nn.Module, y0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Solve dy/dt = func(t, y) from y0 (batch, n) at the times t (K + 1,)."""

    def sample_paths(self, cfg: Any, sde: Any, x0: torch.Tensor, t: torch.Tensor, next_seed: Callable[[], int]) -> tuple[torch.Tensor, Any]:
        """Paths of the Wong–Zakai SDE ``sde`` from x0 (paths, 1) at the times t: fresh
        Karhunen–Loève noise, then the ODE solve of this strategy. ``next_seed`` gives a
        Brownian seed to strategies that draw one (torchsde)."""
        sde.resample(tuple(x0.shape), dtype=x0.dtype, device=x0.device)
        return self.solve(cfg, sde, x0, t)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GQ(Gradient):
    """The Gauss–Legendre quadrature adjoint (options gtol, gq_nodes, gq_nmin, gq_trajectory)."""

    name = "gq"

    def solve(self, cfg: Any, func: nn.Module, y0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return odeint_adjoint_gq(
            func, y0, t, gtol=cfg.gtol, gq_nodes=cfg.gq_nodes, gq_nmin=cfg.gq_nmin, trajectory=cfg.gq_trajectory, return_stats=True, **_solver_options(cfg)
        )


class Adjoint(Gradient):
    """torchdiffeq's adjoint method (the parameter adjoints in the step-size control)."""

    name = "adjoint"
    adjoint_options: ClassVar[Optional[dict[str, str]]] = None

    def solve(self, cfg: Any, func: nn.Module, y0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, Any]:
        counted = CountedField(func)
        y = odeint_adjoint(counted, y0, t, adjoint_options=self.adjoint_options, adjoint_params=tuple(func.parameters()), **_solver_options(cfg))
        return cast(torch.Tensor, y), CountedStats(counted)


class Seminorm(Adjoint):
    """torchdiffeq's adjoint with ``norm="seminorm"`` (Kidger et al. 2021)."""

    name = "seminorm"
    adjoint_options = {"norm": "seminorm"}


class Direct(Gradient):
    """Backprop through the solver's operations."""

    name = "direct"

    def solve(self, cfg: Any, func: nn.Module, y0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, Any]:
        counted = CountedField(func)
        y = odeint(counted, y0, t, **_solver_options(cfg))
        return cast(torch.Tensor, y), CountedStats(counted)


class SDEDirect(Gradient):
    """The OU task's SDE by torchsde (step sde_dt), backprop through its solver; no NFE counts."""

    name = "sde-direct"
    adjoint: ClassVar[bool] = False

    def solve(self, cfg: Any, func: nn.Module, y0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, Any]:
        raise ValueError(f"--adjoint {self.name} trains an SDE with torchsde: only --task ou has one")

    def sample_paths(self, cfg: Any, sde: Any, x0: torch.Tensor, t: torch.Tensor, next_seed: Callable[[], int]) -> tuple[torch.Tensor, Any]:
        from rnntk.ode.wong_zakai import sdeint_baseline

        return sdeint_baseline(sde, x0, t, dt=cfg.sde_dt, seed=next_seed(), adjoint=self.adjoint), CountedStats()


class SDEAdjoint(SDEDirect):
    """The OU task's SDE by torchsde's adjoint (``sdeint_adjoint``)."""

    name = "sde-adjoint"
    adjoint = True


GRADIENTS: dict[str, type[Gradient]] = {c.name: c for c in (GQ, Adjoint, Seminorm, Direct, SDEDirect, SDEAdjoint)}


def make_gradient(name: str) -> Gradient:
    """The gradient strategy named ``name`` (a key of :data:`GRADIENTS`); ValueError otherwise
    (``auto`` is resolved from the problem's shape first, see :func:`rnntk.ode.train.auto_adjoint`)."""
    cls = GRADIENTS.get(name)
    if cls is None:
        raise ValueError(f"unknown gradient '{name}' (choose one of {', '.join(GRADIENTS)}; 'auto' is resolved by ode-train from the problem's shape)")
    return cls()
