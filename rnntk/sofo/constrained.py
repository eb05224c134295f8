"""SOFO on the constrained rate RNN (:class:`rnntk.core.constrained_rnn.ConstrainedRNN`) and the
constraint options of ``sofo-train`` (``--dale-ratio``, ``--connectivity``, ``--no-autapses``,
``--rec-noise``, ``--input-noise``).

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


def constraint_kwargs(cfg: Any) -> dict[str, Any]:
    """:class:`ConstrainedRNN` keywords from a config with ``dale_ratio``, ``connectivity``
    (``FILE.npz`` or a density), ``no_autapses``, ``rec_noise``, ``input_noise``."""
    conn = getattr(cfg, "connectivity", None)
    if conn is not None and not str(conn).endswith(".npz"):
        conn = float(conn)
    return dict(
        dale_ratio=getattr(cfg, "dale_ratio", None),
        connectivity=conn,
        autapses=not getattr(cfg, "no_autapses", False),
        rec_noise=float(getattr(cfg, "rec_noise", 0.0)),
        input_noise=float(getattr(cfg, "input_noise", 0.0)),
    )


def constrained(cfg: Any) -> bool:
    """Whether any constraint or noise option is set (the tasks then build a :class:`ConstrainedRNN`)."""
    kw = constraint_kwargs(cfg)
    return kw["dale_ratio"] is not None or kw["connectivity"] is not None or not kw["autapses"] or kw["rec_noise"] > 0 or kw["input_noise"] > 0


def sketch_constrained(model: ConstrainedRNN, V: Params, trials: TrialBatch, loss: Any, noise: Optional[torch.Tensor] = None, impl: str = "auto") -> Sketch:
    """SOFO's sketch of ``loss`` summed over the trial's steps (outputs ``y_t = readout(x_t)``
    after each step from ``x_0 = 0``), tangents ``V`` over the model's free parameters, the
    noise ``noise (B, T, n + n_in)`` shared by all tangents."""
    p = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    x0 = model.initial_state(trials.batch).to(trials.inputs.dtype)
    tstep = model.tangent_step if impl in ("auto", "manual") else None
    return sketch_recurrent(model.step_output, p, V, x0, trials.inputs, trials.targets, trials.mask, loss, noise=noise, tangent_step=tstep)
