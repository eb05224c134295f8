"""Describers of every named task, for ``rnntk task show NAME``.

A slice registers its built-in tasks with :func:`register_task` in its ``task_info`` module;
:data:`PROVIDERS` lists those modules, imported on first lookup only (the core never imports a
slice at import time). ``neurogym:<EnvId>`` tasks are described by the core itself
(:class:`rnntk.core.neurogym.NeurogymTask`).

A describer returns a :class:`TaskSpec`: a sampler of :class:`~rnntk.core.trials.TrialBatch`
(its table may hold ``trial_len`` and ``period_<name>_start/_end`` step indices, as neurogym
tasks do), the time step in seconds (None: unitless steps), channel names, and optionally the
timing specs per period in ms.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    import torch

    from rnntk.core.trials import TrialBatch

PROVIDERS: tuple[str, ...] = ("rnntk.sofo.task_info", "rnntk.floss.task_info")


@dataclass
class TaskSpec:
    """What ``rnntk task show`` needs of a task (see the module doc).

    sample(batch, generator) -> TrialBatch; dt: seconds or None; inputs/outputs: a name per
    channel; timing: rows ``{"period", "spec", "max_ms"}`` (neurogym) or empty; labels: True
    when the targets are class labels ``(B, T)`` rather than values ``(B, T, n_out)``.
    """

    name: str
    sample: Callable[[int, "torch.Generator"], "TrialBatch"]
    dt: Optional[float]
    inputs: list[str]
    outputs: list[str]
    description: str = ""
    timing: list[dict[str, Any]] = field(default_factory=list)
    labels: bool = False


_REGISTRY: dict[str, Callable[[], TaskSpec]] = {}
_loaded = False


def register_task(name: str, describe: Callable[[], TaskSpec]) -> None:
    """Register ``describe() -> TaskSpec`` for the built-in task ``name``."""
    _REGISTRY[name] = describe


def _load() -> None:
    global _loaded
    if not _loaded:
        for mod in PROVIDERS:
            importlib.import_module(mod)
        _loaded = True


def task_names() -> list[str]:
    """Every registered built-in task name (sorted)."""
    _load()
    return sorted(_REGISTRY)


def describe_task(name: str, kwargs: Optional[dict[str, Any]] = None) -> TaskSpec:
    """The :class:`TaskSpec` of ``name`` (a built-in task or ``neurogym:<EnvId>`` with ``kwargs``);
    ``ValueError`` (one line) for an unknown name."""
    from rnntk.core import neurogym as ngt

    if ngt.is_neurogym(name):
        try:
            task = ngt.NeurogymTask(name, kwargs or {})
            scored = "loss mask on the decision period"
        except ngt.NoDecisionPeriod:  # e.g. ReadySetGo-v0: shown as trained with --loss-on all
            task = ngt.NeurogymTask(name, kwargs or {}, loss_on="all")
            scored = "no decision period: loss mask on every step (--loss-on all)"
        return TaskSpec(
            task.name,
            task.sample,
            task.dt,
            task.input_names(),
            task.output_names(),
            description=f"neurogym {task.id} (dt {task.dt_ms:g} ms), padded to {task.steps} steps; {scored}",
            timing=task.timing_table(),
            labels=True,
        )
    if kwargs:
        raise ValueError(f"--task-kwargs apply to neurogym:<EnvId> tasks only, not {name}")
    _load()
    if name not in _REGISTRY:
        raise ValueError(f"unknown task '{name}': use one of {', '.join(task_names())} or neurogym:<EnvId>")
    return _REGISTRY[name]()
