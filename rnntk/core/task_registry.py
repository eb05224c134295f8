"""Describers of every named task, for ``rnntk task show NAME``.

A slice registers its built-in tasks with :func:`register_task` in its ``task_info`` module, each
under its command (``register_task("copy", describe, command="floss")``): a task is named
``COMMAND:TASK`` (``floss:copy``, ``online-lru:copy``), or by its bare name where only one command
has it (``double-reach``). :data:`PROVIDERS` lists those modules by name, imported on first lookup
only (the core never imports a slice). ``neurogym:<EnvId>`` tasks are described by the core itself
(:class:`rnntk.core.neurogym.NeurogymTask`).

A describer returns a :class:`TaskSpec`: a sampler of :class:`~rnntk.core.trials.TrialBatch`
(its table may hold ``trial_len`` and ``period_<name>_start/_end`` step indices, as neurogym
tasks do), the time step in seconds (None: unitless steps), channel names, and optionally the
timing specs per period in ms.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    import torch

    from rnntk.core.trials import TrialBatch

PROVIDERS: tuple[str, ...] = ("rnntk.sofo.task_info", "rnntk.floss.task_info", "rnntk.online.task_info", "rnntk.ode.task_info", "rnntk.cordsnet.task_info")


@dataclass
class TaskSpec:
    """What ``rnntk task show`` needs of a task (see the module doc).

    sample(batch, generator) -> TrialBatch; dt: seconds or None; inputs/outputs: a name per
    channel; timing: rows ``{"period", "spec", "max_ms"}`` (neurogym) or empty; labels: True
    when the targets are class labels ``(B, T)`` rather than values ``(B, T, n_out)``; notes:
    lines printed after the description (time units, what the loss scores, the protocol).
    """

    name: str
    sample: Callable[[int, "torch.Generator"], "TrialBatch"]
    dt: Optional[float]
    inputs: list[str]
    outputs: list[str]
    description: str = ""
    timing: list[dict[str, Any]] = field(default_factory=list)
    labels: bool = False
    notes: list[str] = field(default_factory=list)  # extra lines: what is scored, time units, the protocol


@dataclass
class _Entry:
    command: str
    task: str
    describe: Callable[..., TaskSpec]
    data: bool  # reads local files: describe(data_dir=...) needs --data-dir


_REGISTRY: dict[str, _Entry] = {}
_loaded = False


def register_task(name: str, describe: Callable[..., TaskSpec], command: str = "", data: bool = False) -> None:
    """Register ``describe() -> TaskSpec`` for the built-in task ``name`` of ``command`` (its
    ``--task`` value); ``data=True``: a file task, called as ``describe(data_dir=PATH)``."""
    _REGISTRY[f"{command}:{name}" if command else name] = _Entry(command, name, describe, data)


def _load() -> None:
    global _loaded
    if not _loaded:
        for mod in PROVIDERS:
            importlib.import_module(mod)
        _loaded = True


def task_names() -> list[str]:
    """Every registered built-in task as ``COMMAND:TASK`` (sorted)."""
    _load()
    return sorted(_REGISTRY)


def resolve(name: str) -> str:
    """The registered ``COMMAND:TASK`` of ``name`` (qualified, or a bare task name that one
    command has); ``ValueError`` (one line) when unknown or ambiguous."""
    _load()
    if name in _REGISTRY:
        return name
    hits = [k for k, e in _REGISTRY.items() if e.task == name]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise ValueError(f"task '{name}' is ambiguous: {' or '.join(sorted(hits))}")
    raise ValueError(f"unknown task '{name}': see rnntk task show --list (or use neurogym:<EnvId>)")


def task_listing() -> list[dict[str, Any]]:
    """One row per registered task: ``name`` (what to type: the bare name where unambiguous),
    ``qualified``, ``command``, ``task``, ``data`` (needs --data-dir)."""
    _load()
    counts: dict[str, int] = {}
    for e in _REGISTRY.values():
        counts[e.task] = counts.get(e.task, 0) + 1
    rows = []
    for k in sorted(_REGISTRY, key=lambda k: (_REGISTRY[k].command, k)):
        e = _REGISTRY[k]
        rows.append({"name": e.task if counts[e.task] == 1 else k, "qualified": k, "command": e.command, "task": e.task, "data": e.data})
    return rows


def describe_task(name: str, kwargs: Optional[dict[str, Any]] = None, data_dir: Optional[Path] = None) -> TaskSpec:
    """The :class:`TaskSpec` of ``name`` (a built-in task, bare or ``COMMAND:TASK``, or
    ``neurogym:<EnvId>`` with ``kwargs``); ``data_dir``: the files of a file task.
    ``ValueError`` (one line) for an unknown name or options that do not apply."""
    from rnntk.core import neurogym as ngt

    if ngt.is_neurogym(name):
        if data_dir is not None:
            raise ValueError("--data-dir applies to file tasks only (online-lru:cifar, ...), not neurogym tasks")
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
    key = resolve(name)
    e = _REGISTRY[key]
    if e.data and data_dir is None:
        raise ValueError(f"task {key} reads local files: give --data-dir DIR (as for {e.command} --task {e.task}; nothing is downloaded)")
    if not e.data and data_dir is not None:
        raise ValueError(f"--data-dir applies to file tasks only, not {key}")
    spec = e.describe(data_dir=Path(data_dir)) if e.data and data_dir is not None else e.describe()
    spec.name = key
    return spec
