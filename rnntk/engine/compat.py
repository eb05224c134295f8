"""The one place where rnntk reaches into a dependency's private modules.

Nothing else in ``rnntk/`` or ``benchmarks/`` imports ``typer._click``, ``torchdiffeq._impl``
or ``torch.distributed._tools`` (``tests/engine/test_compat.py`` checks that, and that every
name below still resolves and behaves as rnntk uses it, so an upgrade that moves one fails
there, by name, rather than deep inside a command).

Why each is needed:
  click_exceptions           typer (>= 0.2x) vendors click as ``typer._click`` and re-exports
                             neither ``NoArgsIsHelpError`` nor ``ClickException``; the CLI
                             turns them into its own one-line errors.
  TD_SOLVERS, td_check_inputs, td_interp_evaluate, td_flat_to_shape, td_rms_norm,
  td_mixed_norm, td_callback_names, td_adjoint_callback_names, RKAdaptiveStepsizeODESolver
                             torchdiffeq's solver table, input normalisation, dense-output
                             interpolation, norms and callback names: ``odeint_adjoint_gq``
                             takes exactly what ``odeint_adjoint`` takes, so it must accept
                             and normalise inputs the way torchdiffeq does.
  tree_map                   torch's pytree map (no public path in torch): SOFO maps over a
                             model's state and noise, whatever their nesting.
  MemTracker                 torch's tensor-memory tracker (peak bytes on the CPU) for
                             ``benchmarks/online_lru_speed.py``.

Names are resolved on first use (PEP 562), so ``rnntk --help`` does not import torch; the
``TYPE_CHECKING`` imports make them visible to IDEs and type checkers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch.distributed._tools.mem_tracker import MemTracker
    from torch.utils._pytree import tree_map
    from torchdiffeq._impl.interp import _interp_evaluate as td_interp_evaluate
    from torchdiffeq._impl.misc import _all_adjoint_callback_names as td_adjoint_callback_names
    from torchdiffeq._impl.misc import _all_callback_names as td_callback_names
    from torchdiffeq._impl.misc import _check_inputs as td_check_inputs
    from torchdiffeq._impl.misc import _flat_to_shape as td_flat_to_shape
    from torchdiffeq._impl.misc import _mixed_norm as td_mixed_norm
    from torchdiffeq._impl.misc import _rms_norm as td_rms_norm
    from torchdiffeq._impl.odeint import SOLVERS as TD_SOLVERS
    from torchdiffeq._impl.rk_common import RKAdaptiveStepsizeODESolver
    from typer._click import exceptions as click_exceptions

# name -> (module, attribute); attribute None: the module itself
_PRIVATE: dict[str, tuple[str, str | None]] = {
    "click_exceptions": ("typer._click.exceptions", None),
    "TD_SOLVERS": ("torchdiffeq._impl.odeint", "SOLVERS"),
    "td_check_inputs": ("torchdiffeq._impl.misc", "_check_inputs"),
    "td_interp_evaluate": ("torchdiffeq._impl.interp", "_interp_evaluate"),
    "td_flat_to_shape": ("torchdiffeq._impl.misc", "_flat_to_shape"),
    "td_rms_norm": ("torchdiffeq._impl.misc", "_rms_norm"),
    "td_mixed_norm": ("torchdiffeq._impl.misc", "_mixed_norm"),
    "td_callback_names": ("torchdiffeq._impl.misc", "_all_callback_names"),
    "td_adjoint_callback_names": ("torchdiffeq._impl.misc", "_all_adjoint_callback_names"),
    "RKAdaptiveStepsizeODESolver": ("torchdiffeq._impl.rk_common", "RKAdaptiveStepsizeODESolver"),
    "MemTracker": ("torch.distributed._tools.mem_tracker", "MemTracker"),
    "tree_map": ("torch.utils._pytree", "tree_map"),
}

__all__ = [
    "MemTracker",
    "RKAdaptiveStepsizeODESolver",
    "TD_SOLVERS",
    "click_exceptions",
    "td_adjoint_callback_names",
    "td_callback_names",
    "td_check_inputs",
    "td_flat_to_shape",
    "td_interp_evaluate",
    "td_mixed_norm",
    "td_rms_norm",
    "tree_map",
]


def __getattr__(name: str) -> Any:
    if name in _PRIVATE:
        module, attr = _PRIVATE[name]
        mod = importlib.import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value  # resolved once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
