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
  rnntk.engine              Run, checkpoints, seeding, devices (rnntk.Run)
  rnntk.core                trial batches, the recurrent-model contract, vanilla/leaky RNNs
  rnntk.analysis            analyses of any model of the contract
  rnntk.ode, rnntk.cordsnet, rnntk.selftest, rnntk.runs   the other slices (each lists its names)

``__all__`` is the whole public top level; each slice's ``__all__`` lists its own names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what IDEs and type checkers see; at run time each name is imported on first use
    from rnntk import analysis, cordsnet, core, engine, floss, ode, online, runs, selftest, sofo
    from rnntk.analysis.lyapunov import lyapunov_spectrum
    from rnntk.cordsnet import eigs as conv_eigs
    from rnntk.cordsnet.model import CordsNet, load_cordsnet
    from rnntk.engine.run import Run
    from rnntk.ode import odeint_adjoint_gq
    from rnntk.online import online_gradients
    from rnntk.sofo import SOFO

_MODULES = {
    "analysis": "rnntk.analysis",
    "conv_eigs": "rnntk.cordsnet.eigs",
    "cordsnet": "rnntk.cordsnet",
    "core": "rnntk.core",
    "engine": "rnntk.engine",
    "floss": "rnntk.floss",
    "ode": "rnntk.ode",
    "online": "rnntk.online",
    "runs": "rnntk.runs",
    "selftest": "rnntk.selftest",
    "sofo": "rnntk.sofo",
}
_NAMES = {
    "CordsNet": "rnntk.cordsnet.model",
    "Run": "rnntk.engine.run",
    "SOFO": "rnntk.sofo",
    "load_cordsnet": "rnntk.cordsnet.model",
    "lyapunov_spectrum": "rnntk.analysis.lyapunov",
    "odeint_adjoint_gq": "rnntk.ode",
    "online_gradients": "rnntk.online",
}

__all__ = [
    "CordsNet",
    "Run",
    "SOFO",
    "__version__",
    "analysis",
    "conv_eigs",
    "cordsnet",
    "core",
    "engine",
    "floss",
    "load_cordsnet",
    "lyapunov_spectrum",
    "ode",
    "odeint_adjoint_gq",
    "online",
    "online_gradients",
    "runs",
    "selftest",
    "sofo",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use, so ``import rnntk`` (and ``rnntk --help``) stays fast."""
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'rnntk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *globals()})
