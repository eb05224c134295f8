"""Task and model construction for ``rnntk online-lru`` (importable: the commands and the
benchmarks use the same builders)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch

from rnntk.online.models.seq_model import SeqModel, build_seq_model
from rnntk.online.tasks.copy import copy_task
from rnntk.online.tasks.listops import listops_synth
from rnntk.online.tasks.seq_digits import seq_digits
from rnntk.online.tasks.seq_loaders import DataError, SeqData, load_cifar10, load_imdb, load_lra_listops

TASKS = ("copy", "digits", "listops-synth", "cifar", "lra-listops", "imdb")
FILE_TASKS = ("cifar", "lra-listops", "imdb")


def load_task(
    task: str,
    generator: torch.Generator,
    *,
    data_dir: Optional[Path] = None,
    pattern_len: int = 10,
    pad_len: int = 7,
    bits: int = 7,
    train_samples: int = 20000,
    val_samples: int = 1000,
    test_samples: int = 1000,
    digits_order: str = "pixel",
    pad_to: int = 0,
    max_len: int = 256,
    limit: int = 0,
) -> tuple[SeqData, SeqData, SeqData]:
    """(train, val, test) of ``task``. Synthetic tasks draw from ``generator``; file tasks
    read ``data_dir`` (:class:`DataError` if missing or malformed). ``limit`` > 0 keeps at
    most that many rows of each file split (quick runs)."""
    if task == "copy":
        mk = lambda n: copy_task(n, pattern_len, pad_len, bits, generator)  # noqa: E731
        return mk(train_samples), mk(val_samples), mk(test_samples)
    if task == "digits":
        return seq_digits(digits_order, pad_to, generator)
    if task == "listops-synth":
        mk = lambda n: listops_synth(n, max_len, generator=generator)  # noqa: E731
        return mk(train_samples), mk(val_samples), mk(test_samples)
    if task not in FILE_TASKS:
        raise ValueError(f"unknown task '{task}' ({', '.join(TASKS)})")
    if data_dir is None:
        raise DataError(f"--task {task} reads local files: give --data-dir (nothing is downloaded)")
    if task == "cifar":
        return load_cifar10(data_dir, generator, limit=limit)
    if task == "lra-listops":
        return load_lra_listops(data_dir, max_len=max_len if max_len > 256 else 2048, limit=limit)
    return load_imdb(data_dir, generator, limit=limit)


def default_pooling(task: str) -> str:
    """copy: per-step outputs (none); classification tasks: pool_st (every LRA sweep)."""
    return "none" if task == "copy" else "pool_st"


def build_model(data: SeqData, generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float32, **model_opts: Any) -> SeqModel:
    """A :class:`SeqModel` sized for ``data`` (d_in, n_out, classes) with ``model_opts``
    (arch, layers, d_model, d_hidden, activation, norm, dropout, pooling, readout, r_min,
    r_max, max_phase, rnn_activation)."""
    m = build_seq_model(d_in=data.d_in, n_classes=data.n_classes, n_out=data.n_out, generator=generator, **model_opts)
    return m.to(dtype)
