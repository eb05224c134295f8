"""``rnntk task show`` for online-lru's tasks (registered in :mod:`rnntk.core.task_registry` as
``online-lru:<task>``), drawn by the same builders as ``rnntk online-lru`` at its default options.

Sequence tasks have no timed periods and no physical time step (dt none): the table shows the
sequence length, what the loss mask scores (copy: the recall window; classification: every real
step, accuracy at the last one) and, for the copy task, the pattern / delay / stop / recall
stretches found in the generated sequences. The file tasks (cifar, lra-listops, imdb) read the
folder given with ``--data-dir``, as the command does; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from rnntk.core.task_registry import TaskSpec, register_task
from rnntk.core.trials import TrialBatch
from rnntk.online.config import FILE_TASKS, TrainConfig
from rnntk.online.tasks.seq_loaders import SeqData

COMMAND = "online-lru"


def copy_trials(cfg: TrainConfig, batch: int, generator: torch.Generator) -> TrialBatch:
    """``batch`` copy sequences as a :class:`TrialBatch`: inputs ``(B, T, bits + 1)``, targets
    ``(B, T, bits)`` (0/1 per bit), mask ``(B, T)``; table: the stretches ``period_pattern``,
    ``period_delay``, ``period_stop``, ``period_recall`` (steps), read off the generated inputs
    (stop token) and mask (recall window)."""
    from rnntk.online.tasks.copy import copy_task

    d = copy_task(batch, cfg.pattern_len, cfg.pad_len, cfg.bits, generator)
    B, T = d.x.shape[:2]
    stop = d.x[:, :, cfg.bits].argmax(1)  # the stop token's step
    scored = d.mask > 0
    rec0 = scored.float().argmax(1)  # first scored step
    rec1 = T - scored.flip(1).float().argmax(1)  # one past the last scored step
    pat1 = torch.full((B,), cfg.pattern_len)
    table = {"trial_len": torch.full((B,), T), "period_pattern_start": torch.zeros(B, dtype=torch.long), "period_pattern_end": pat1}
    table.update(period_delay_start=pat1, period_delay_end=stop, period_stop_start=stop, period_stop_end=stop + 1)
    table.update(period_recall_start=rec0, period_recall_end=rec1)
    return TrialBatch(d.x, d.y.float(), d.mask, {k: v.long() for k, v in table.items()})


def seq_trials(d: SeqData, batch: int) -> TrialBatch:
    """The first ``batch`` rows of a classification split as a :class:`TrialBatch`: inputs
    ``(B, T, d_in)`` (tokens one-hot), targets the label per step ``(B, T)``, mask the loss mask
    (real steps); table: ``label``, ``trial_len`` (real steps) and the periods ``sequence``
    (the real steps) and ``readout`` (the step scored for accuracy)."""
    idx = torch.arange(min(batch, len(d)))
    x, y, mask, ev = d.batch(idx)
    T = x.shape[1]
    t = torch.arange(T)
    last = (ev * t).sum(1).long()  # the accuracy step (one per row)
    n = last + 1
    table = {"label": y[:, 0, 0].long(), "trial_len": n, "period_sequence_start": torch.zeros_like(n), "period_sequence_end": n}
    table.update(period_readout_start=last, period_readout_end=n)
    return TrialBatch(x, y[..., 0], mask, table)


def _copy_spec() -> TaskSpec:
    cfg = TrainConfig(task="copy")
    b = cfg.bits
    return TaskSpec(
        "copy",
        lambda n, g: copy_trials(cfg, n, g),
        None,
        [f"pattern bit {i}" for i in range(b)] + ["stop token"],
        [f"bit {i}" for i in range(b)],
        description=f"online-lru --task copy (P {cfg.pattern_len}, pad {cfg.pad_len}, {b} bits: --pattern-len, --pad-len, --bits)",
        notes=[
            "a discrete-time sequence task: no physical time step; T = 2P + pad + 1",
            f"loss and accuracy on the recall window only (the last P steps), {b} two-way choices per scored step",
        ],
    )


def _digits_spec() -> TaskSpec:
    from rnntk.online.tasks.seq_digits import seq_digits

    cfg = TrainConfig(task="digits")

    def sample(n: int, g: torch.Generator) -> TrialBatch:
        return seq_trials(seq_digits(cfg.digits_order, cfg.pad_to, g)[0], n)

    d_in = 1 if cfg.digits_order == "pixel" else 8
    return TaskSpec(
        "digits",
        sample,
        None,
        ["pixel / 16"] if d_in == 1 else [f"column {j} / 16" for j in range(d_in)],
        [str(c) for c in range(10)],
        description=f"online-lru --task digits: scikit-learn's 8x8 digits read {cfg.digits_order} by {cfg.digits_order} (--digits-order), training split",
        labels=True,
        notes=["sequential image classification: no physical time step; dense labels, loss on every step, accuracy at the last step"],
    )


def _listops_spec() -> TaskSpec:
    from rnntk.online.tasks.listops import VOCAB, listops_synth

    cfg = TrainConfig(task="listops-synth")
    return TaskSpec(
        "listops-synth",
        lambda n, g: seq_trials(listops_synth(n, cfg.max_len, generator=g), n),
        None,
        [f"token {t}" for t in VOCAB],
        [str(c) for c in range(10)],
        description=f"online-lru --task listops-synth: nested MAX/MIN/MED/SM expressions of at most {cfg.max_len} tokens (--max-len), right-padded",
        labels=True,
        notes=["a token sequence (one-hot inputs): no physical time step; loss on every real token, accuracy at the last real token"],
    )


def _file_spec(task: str, data_dir: Optional[Path] = None) -> TaskSpec:
    from rnntk.online.data import load_task

    assert data_dir is not None  # the registry asks for --data-dir first

    def sample(n: int, g: torch.Generator) -> TrialBatch:
        return seq_trials(load_task(task, g, data_dir=data_dir, limit=n)[0], n)

    ins, what = {
        "cifar": (["R", "G", "B"], "CIFAR-10 binary batches read pixel by pixel (T 1024), normalised per channel"),
        "lra-listops": ([], "LRA ListOps TSV files (tokens one-hot)"),
        "imdb": ([], "aclImdb reviews as bytes (one-hot, 257 symbols)"),
    }[task]
    if task == "lra-listops":
        from rnntk.online.tasks.listops import VOCAB

        ins = [f"token {t}" for t in VOCAB]
    elif task == "imdb":
        ins = ["<pad>"] + [f"byte {i}" for i in range(256)]
    n_cls = 2 if task == "imdb" else 10
    return TaskSpec(
        task,
        sample,
        None,
        ins,
        [str(c) for c in range(n_cls)],
        description=f"online-lru --task {task} --data-dir {data_dir}: {what}; training split",
        labels=True,
        notes=["a sequence classification task: no physical time step; loss on every real step, accuracy at the last real step"],
    )


register_task("copy", _copy_spec, command=COMMAND)
register_task("digits", _digits_spec, command=COMMAND)
register_task("listops-synth", _listops_spec, command=COMMAND)
for _t in FILE_TASKS:
    register_task(_t, lambda data_dir=None, t=_t: _file_spec(t, data_dir), command=COMMAND, data=True)
