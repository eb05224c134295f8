"""The task a ``rnntk floss`` run trains on, behind one interface: the delayed XOR/parity/copy
tasks (binary cross-entropy per bit) or a neurogym task (``--task neurogym:<EnvId>``: softmax
cross-entropy on neurogym's class labels, masked to the decision period by default).

A source gives ``trials(batch, gen)`` (a :class:`TrialBatch`), ``drive(steps, gen)`` (one input
sequence ``(1, steps, n_in)`` for flossing and the probe spectra), ``loss``/``accuracy`` of the
logits ``(B, T, n_out)``, and its sizes ``n_in``/``n_out``.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import torch

from rnntk.core.trials import TrialBatch
from rnntk.floss.config import FlossConfig
from rnntk.floss.delayed_xor import accuracy, bce_loss, delayed_parity_trials


class ParitySource:
    """Delayed XOR / parity / copy (:func:`delayed_parity_trials`): 1 input, 1 output bit."""

    n_in = 1
    n_out = 1
    neurogym = False

    def __init__(self, cfg: FlossConfig) -> None:
        self.cfg = cfg

    def trials(self, batch: int, gen: torch.Generator) -> TrialBatch:
        c = self.cfg
        return delayed_parity_trials(batch, c.trial_len, c.delay, n_bits=c.n_bits, upstream_window=c.upstream_window, generator=gen)

    def drive(self, steps: int, gen: torch.Generator) -> torch.Tensor:
        """Task-distributed input bits (1, T, 1) (no targets needed, so any length works, also
        shorter than the delay)."""
        return torch.randint(0, 2, (1, steps, 1), generator=gen, device=gen.device).float()

    def loss(self, logits: torch.Tensor, tr: TrialBatch) -> torch.Tensor:
        return bce_loss(logits, tr.targets, tr.mask)

    def accuracy(self, logits: torch.Tensor, tr: TrialBatch) -> float:
        return float(accuracy(logits, tr.targets, tr.mask))

    def record(self, run: Any, logits: torch.Tensor, tr: TrialBatch) -> None:
        """Nothing beyond the test accuracy for the bit tasks."""


class NeurogymSource:
    """A neurogym task (:class:`rnntk.core.neurogym.NeurogymTask`); the accuracy is the decision
    accuracy (choice at the last decision step vs the ground truth)."""

    neurogym = True

    def __init__(self, cfg: FlossConfig) -> None:
        from rnntk.core.neurogym import NeurogymTask, parse_kwargs

        self.task = NeurogymTask(cfg.task, parse_kwargs(cfg.task_kwargs), loss_on=cfg.loss_on, fixation_weight=cfg.fixation_weight)
        self.n_in, self.n_out = self.task.n_in, self.task.n_out

    def trials(self, batch: int, gen: torch.Generator) -> TrialBatch:
        return self.task.sample(batch, gen)

    def drive(self, steps: int, gen: torch.Generator) -> torch.Tensor:
        """Observations of consecutive trials, ``(1, steps, n_in)`` (trial boundaries do not matter here)."""
        return self.task.input_stream(steps, gen).to(gen.device)

    def loss(self, logits: torch.Tensor, tr: TrialBatch) -> torch.Tensor:
        from rnntk.core.neurogym import masked_cross_entropy

        return masked_cross_entropy(logits, tr)

    def accuracy(self, logits: torch.Tensor, tr: TrialBatch) -> float:
        from rnntk.core.neurogym import decision_accuracy

        return decision_accuracy(logits, tr)

    def record(self, run: Any, logits: torch.Tensor, tr: TrialBatch) -> None:
        """``decision_accuracy``, psychometric tables and figure, the per-trial table (``/trials``),
        and the task's ``dt`` in seconds (run attrs ``task_dt_s``; ``task_kwargs`` as given, in ms)."""
        from rnntk.core.neurogym import decision_accuracy, record_decisions

        run.annotate(task_dt_s=self.task.dt, task_steps=int(self.task.steps or 0), task_kwargs=json.dumps(self.task.kwargs, sort_keys=True))
        run.result("decision_accuracy", decision_accuracy(logits, tr), description="held-out trials whose choice at the last decision step is correct")
        record_decisions(run, logits, tr)


def task_source(cfg: FlossConfig) -> ParitySource | NeurogymSource:
    """The source of ``cfg.task``."""
    return NeurogymSource(cfg) if cfg.task.startswith("neurogym:") else ParitySource(cfg)


def to_device(tr: TrialBatch, dev: Optional[torch.device]) -> TrialBatch:
    """The batch with its inputs, targets and mask on ``dev``."""
    return TrialBatch(tr.inputs.to(dev), tr.targets.to(dev), tr.mask.to(dev), tr.table, tr.dt, tr.extra)
