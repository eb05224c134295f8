"""The biological-constraint options shared by the trainers that build a
:class:`~rnntk.core.constrained_rnn.ConstrainedRNN` (``sofo-train``, ``floss``), declared once
(torch-free: the CLIs import it for --help). A slice's config dataclass inherits
:class:`ConstraintOptions` and calls :meth:`ConstraintOptions.check_constraints` in its
``__post_init__``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rnntk.engine.config_cli import option

C = "Biological constraints"


@dataclass
class ConstraintOptions:
    """``--dale-ratio``, ``--connectivity``, ``--no-autapses``, ``--rec-noise``, ``--input-noise``."""

    dale_ratio: Optional[float] = option(
        None,
        "Dale's law: this fraction of units is excitatory (e.g. 0.8); the recurrent weight from unit j keeps unit j's sign, magnitudes trained as |theta|.",
        panel=C,
        min=0.0,
        max=1.0,
        metavar="P",
    )
    connectivity: Optional[str] = option(
        None,
        "Connection masks: a density in (0, 1] (seeded draw) or FILE.npz with mask_in/mask_rec/mask_out (and fixed_*, W_* for untrained weights).",
        panel=C,
        metavar="DENSITY|FILE.npz",
    )
    no_autapses: bool = option(False, "No self-connections (zero diagonal of W_rec).", panel=C)
    rec_noise: float = option(0.0, "Recurrent noise: stationary std of the currents' noise (a.u.; sqrt(2 dt/tau) per step).", panel=C, min=0.0)
    input_noise: float = option(0.0, "Input noise std (a.u.), scaled by sqrt(2 tau/dt) per step.", panel=C, min=0.0)

    def check_constraints(self) -> None:
        """``ValueError`` (one line, naming the option) for a bad ``--connectivity``."""
        c = self.connectivity
        if c is None:
            return
        if str(c).endswith(".npz"):
            if not Path(c).is_file():
                raise ValueError(f"bad --connectivity {c}: file not found")
            return
        try:
            d = float(c)
        except ValueError:
            raise ValueError(f"bad --connectivity {c!r}: give a density in (0, 1] or a FILE.npz") from None
        if not (math.isfinite(d) and 0 < d <= 1):
            raise ValueError(f"bad --connectivity {c}: a density must be in (0, 1]")

    @property
    def constrained(self) -> bool:
        """Whether any constraint or noise option is set."""
        return self.dale_ratio is not None or self.connectivity is not None or self.no_autapses or self.rec_noise > 0 or self.input_noise > 0

    def constraint_kwargs(self) -> dict[str, Any]:
        """:class:`~rnntk.core.constrained_rnn.ConstrainedRNN` keywords (the seed is the caller's)."""
        c = self.connectivity
        conn: Any = None if c is None else (str(c) if str(c).endswith(".npz") else float(c))
        return dict(
            dale_ratio=self.dale_ratio, connectivity=conn, autapses=not self.no_autapses, rec_noise=float(self.rec_noise), input_noise=float(self.input_noise)
        )
