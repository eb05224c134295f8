"""Analyses of any model of the contract (:mod:`rnntk.core.models`): Lyapunov spectra, fixed points, eigenvalues."""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnntk.analysis.eigs import EigResult, jacobian_operator, leading_eigs, weight_operator
    from rnntk.analysis.fixed_points import FixedPoints, fixed_points
    from rnntk.analysis.lyapunov import LyapunovResult, condition_numbers, long_term_jacobian_singular_values, lyapunov_spectrum

_LAZY: dict[str, str] = {
    "lyapunov_spectrum": "rnntk.analysis.lyapunov",
    "LyapunovResult": "rnntk.analysis.lyapunov",
    "condition_numbers": "rnntk.analysis.lyapunov",
    "long_term_jacobian_singular_values": "rnntk.analysis.lyapunov",
    "fixed_points": "rnntk.analysis.fixed_points",
    "FixedPoints": "rnntk.analysis.fixed_points",
    "EigResult": "rnntk.analysis.eigs",
    "jacobian_operator": "rnntk.analysis.eigs",
    "leading_eigs": "rnntk.analysis.eigs",
    "weight_operator": "rnntk.analysis.eigs",
}
__all__ = [
    "EigResult",
    "FixedPoints",
    "LyapunovResult",
    "condition_numbers",
    "fixed_points",
    "jacobian_operator",
    "leading_eigs",
    "long_term_jacobian_singular_values",
    "lyapunov_spectrum",
    "weight_operator",
]


def __getattr__(name: str) -> Any:
    """Import on first use, so that ``rnntk <command>`` loads torch only after the thread policy is set."""
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
