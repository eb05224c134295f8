"""SOFO on the constrained rate RNN (:class:`rnntk.core.constrained_rnn.ConstrainedRNN`; the
options ``--dale-ratio``, ``--connectivity``, ``--no-autapses``, ``--rec-noise``, ``--input-noise``
are :class:`rnntk.core.constraint_options.ConstraintOptions`).

SOFO perturbs the model's parameters, which are the free parameters of the parametrisation
(``theta_*`` over connected, non-fixed entries only; Dale magnitudes as ``|theta|``), so every
tangent lives in the constrained set: a masked or fixed weight has no tangent component, and a
Dale-constrained weight moves along its column's sign. :func:`sketch_constrained` runs SOFO's
forward-mode sketch with the model's hand-written tangent step (or ``vmap(jvp)`` with
``impl="generic"``); the two are tested equal.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from rnntk.core.constrained_rnn import ConstrainedRNN
from rnntk.core.trials import TrialBatch
from rnntk.sofo.optimizer import Params, Sketch, sketch_recurrent


def sketch_constrained(model: ConstrainedRNN, V: Params, trials: TrialBatch, loss: Any, noise: Optional[torch.Tensor] = None, impl: str = "auto") -> Sketch:
    """SOFO's sketch of ``loss`` summed over the trial's steps (outputs ``y_t = readout(x_t)``
    after each step from ``x_0 = 0``), tangents ``V`` over the model's free parameters, the
    noise ``noise (B, T, n + n_in)`` shared by all tangents."""
    p = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    x0 = model.initial_state(trials.batch).to(trials.inputs.dtype)
    tstep = model.tangent_step if impl in ("auto", "manual") else None
    return sketch_recurrent(model.step_output, p, V, x0, trials.inputs, trials.targets, trials.mask, loss, noise=noise, tangent_step=tstep)
