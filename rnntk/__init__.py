"""rnntk: train and analyse recurrent networks as models of the brain.

The methods are importable PyTorch APIs; ``rnntk <command>`` wraps each of them on one
shared engine (:mod:`rnntk.engine`: device, seeding, run folder, HDF5, checkpoints).

Public API (imported lazily, so ``import rnntk`` stays fast):
  rnntk.sofo                second-order forward-mode optimisation (SOFO optimizer, sketches, losses)
  rnntk.lyapunov_spectrum   Lyapunov exponents of any recurrent model (batched, differentiable)
  rnntk.floss               gradient flossing: floss a model's first k exponents towards a target
  rnntk.odeint_adjoint_gq   neural-ODE gradients by the Gauss–Legendre quadrature adjoint
  rnntk.online              online learning rules for LRU / RNN / GRU stacks (online_gradients, StreamingLearner)
  rnntk.online_gradients    one sequence's gradients by an online rule, into .grad
  rnntk.CordsNet            the CordsNet conv-RNN; rnntk.load_cordsnet reads upstream checkpoints (weights_only)
  rnntk.conv_eigs           matrix-free eigen-analysis of conv operators (Arnoldi, ARPACK, dense, power)
  rnntk.engine              Run, checkpoints, seeding, devices
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_MODULES = {"sofo": "rnntk.sofo", "engine": "rnntk.engine", "online": "rnntk.online", "conv_eigs": "rnntk.cordsnet.eigs", "floss": "rnntk.floss"}
_FUNCTIONS = {
    "lyapunov_spectrum": "rnntk.analysis.lyapunov",
    "odeint_adjoint_gq": "rnntk.ode.gq_adjoint",
    "online_gradients": "rnntk.online",
    "CordsNet": "rnntk.cordsnet.model",
    "load_cordsnet": "rnntk.cordsnet.model",
}

__all__ = ["__version__", *_MODULES, *_FUNCTIONS]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'rnntk' has no attribute {name!r}")
