"""Neural ODEs: gradients by the Gauss-Legendre quadrature adjoint (``odeint_adjoint_gq``,
torchdiffeq's ``odeint_adjoint`` plus ``gtol``), Wong-Zakai SDEs, ``rnntk ode-train``.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnntk.ode.config import ODEConfig
    from rnntk.ode.gq_adjoint import odeint_adjoint_gq
    from rnntk.ode.gradients import GRADIENTS, Gradient, make_gradient
    from rnntk.ode.train import train_ode

_LAZY: dict[str, str] = {
    "odeint_adjoint_gq": "rnntk.ode.gq_adjoint",
    "ODEConfig": "rnntk.ode.config",
    "train_ode": "rnntk.ode.train",
    "GRADIENTS": "rnntk.ode.gradients",
    "Gradient": "rnntk.ode.gradients",
    "make_gradient": "rnntk.ode.gradients",
}
__all__ = ["GRADIENTS", "Gradient", "ODEConfig", "make_gradient", "odeint_adjoint_gq", "train_ode"]


def __getattr__(name: str) -> Any:
    """Import on first use, so that ``rnntk <command>`` loads torch only after the thread policy is set."""
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
