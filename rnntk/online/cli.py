"""``rnntk online-lru`` (training with an online learning rule), ``rnntk online-lru-gradcheck``
(gradient alignment of each rule with BPTT on one batch) and ``rnntk online-lru-memory``
(memory of each rule vs sequence length).

Three sibling engine commands rather than a Typer sub-group: every engine command is a flat
``rnntk <name>`` whose first argument names it (the CLI's error handling, ``--config`` and
``--resume`` key on that name), and users type ``rnntk online-lru --task copy ...`` to train.
Every option (name, default, help, validation) is a field of a dataclass in
:mod:`rnntk.online.config`.
"""

from __future__ import annotations

from typing import Any

import typer

from rnntk.engine.config_cli import config_command
from rnntk.engine.errors import UserError
from rnntk.engine.options import RunOptions
from rnntk.online.config import GradcheckConfig, MemoryConfig, TrainConfig


def _check_seq_fits(device: str, T: int, B: int, layers: int, width: int, isz: int, per_step: int = 0) -> None:
    """Refuse (one line, exit 2) sequences whose tensors cannot fit: ``B`` sequences of ``T``
    steps holding ``per_step`` values each plus ~32 activations per layer and unit (float of
    ``isz`` bytes; the factor is what ``online-lru-memory`` measures for BPTT)."""
    from rnntk.engine.device import resolve_device
    from rnntk.engine.limits import check_fits

    need = float(B) * float(T) * (per_step * 4.0 + 32.0 * layers * width * isz)
    check_fits(
        need,
        resolve_device(device),
        f"{B} sequences of {T} steps" + (f" through {layers} layers of width {width}" if layers else ""),
        hint="use shorter sequences, a smaller --batch-size / sample count, or --exec streaming",
    )


def _data(cfg: TrainConfig | GradcheckConfig, seed: str, **kw: Any) -> Any:
    """(train, val, test) of ``cfg.task``, drawn before the run folder exists (a missing or
    malformed file is reported first)."""
    from rnntk.engine.seeding import resolve_seed, stream_generator
    from rnntk.online.data import load_task
    from rnntk.online.tasks.seq_loaders import DataError

    gen = stream_generator(resolve_seed(seed), "online-lru/data", legacy_offset=17)  # before the run folder; legacy: README figures
    try:
        return load_task(cfg.task, gen, data_dir=cfg.data_dir, pattern_len=cfg.pattern_len, pad_len=cfg.pad_len, bits=cfg.bits, **kw)
    except (DataError, ValueError) as e:
        raise UserError(str(e)) from None


def _isz(dtype: Any) -> int:
    import torch

    return torch.empty((), dtype=dtype).element_size()


def online_lru_cmd(opts: RunOptions, cfg: TrainConfig) -> None:
    """Train an LRU / linear-RNN / GRU stack with an online learning rule (Zucchet et al. 2023).

    Records train/val/test loss and accuracy, each rule's gradient cosine and norm ratio to BPTT
    per layer, |λ| statistics, hidden-state traces and the final λ. Example:
    [bold]rnntk online-lru --task copy --pattern-len 5 --layers 2 --d-model 48 --d-hidden 48 --rule online_full[/bold].
    Presets: [bold]--config tasks/online-lru-copy-p5.toml[/bold] (and table1 / figure2 rows)."""
    from rnntk.engine.device import resolve_dtype
    from rnntk.online.data import build_model
    from rnntk.online.train import train_online

    dt = resolve_dtype(cfg.dtype)
    if cfg.task == "copy":  # the generated sequences, before generating them
        n = cfg.train_samples + cfg.val_samples + cfg.test_samples
        _check_seq_fits(opts.device, 2 * cfg.pattern_len + cfg.pad_len + 1, n, 0, 0, 0, cfg.bits + 2)
    kw = dict(train_samples=cfg.train_samples, val_samples=cfg.val_samples, test_samples=cfg.test_samples)
    data = _data(cfg, opts.seed, **kw, digits_order=cfg.digits_order, pad_to=cfg.pad_to, max_len=cfg.max_len, limit=cfg.limit)
    if cfg.exec == "sequence":  # activations kept over the whole sequence (measured: ~32 values per step, layer and width)
        _check_seq_fits(opts.device, data[0].steps, cfg.batch_size, cfg.layers, max(cfg.d_model, cfg.d_hidden), _isz(dt))
    with opts.open_run() as run:
        model = build_model(data[0], run.generator, dt, **cfg.model_options).to(run.device)
        run.annotate(rule=cfg.rule, arch=cfg.arch, task=cfg.task, seq_len=data[0].steps)
        train_online(model, data, cfg, run)


def online_lru_gradcheck_cmd(opts: RunOptions, cfg: GradcheckConfig) -> None:
    """Gradient alignment (Figure 2 style): cosine, norm ratio and relative error of each rule's
    gradient to BPTT's per group (encoder, layer_k, decoder), on one batch at initialisation.
    The group [bold]all[/bold] weights every group equally: each group is rescaled so that its
    BPTT gradient has unit norm, then cos is taken over the whole (so the encoder, whose BPTT
    gradient is ~100x the others' on the copy task at init, cannot dominate); its norm ratio and
    relative error are the root-mean-square of the groups'. Writes gradcheck.csv and
    /results/grad_{cos,relnorm,rel_err} (rule × group); prints the table on stderr; summary.json
    gets cos_GROUP_RULE for every group.
    Example: [bold]rnntk online-lru-gradcheck --layers 2 --d-model 16 --d-hidden 16[/bold]."""
    from rnntk.engine.device import resolve_dtype
    from rnntk.online.reports import gradcheck_report

    dt = resolve_dtype(cfg.dtype)
    B = cfg.batch_size
    data = _data(cfg, opts.seed, train_samples=B, val_samples=1, test_samples=1, limit=max(B, 1))
    # the BPTT reference keeps the activations of the whole sequence
    _check_seq_fits(opts.device, data[0].steps, B, cfg.layers, max(cfg.d_model, cfg.d_hidden), _isz(dt))
    with opts.open_run() as run:
        gradcheck_report(cfg, data, dt, run)


def online_lru_memory_cmd(opts: RunOptions, cfg: MemoryConfig) -> None:
    """Memory of one gradient computation per rule vs T: bytes saved for backward (autograd
    hooks) plus trace and carried-state bytes (copy-like random inputs, 8 channels). Writes
    memory.csv and /results/memory_{saved,traces,total} (row, T); prints the table on stderr."""
    from rnntk.engine.device import resolve_device, resolve_dtype
    from rnntk.engine.limits import check_fits
    from rnntk.online.reports import memory_report

    dt = resolve_dtype(cfg.dtype)
    isz, B, Ts = _isz(dt), cfg.batch_size, cfg.lengths
    per_step = B * (9 * isz + 56 + cfg.layers * (8 * cfg.d_model + 4 * cfg.d_hidden) * isz)  # inputs, targets, mask, activations kept
    check_fits(float(max(Ts)) * per_step, resolve_device(opts.device), f"--seq-lens up to {max(Ts)} with --batch-size {B}", hint="use shorter --seq-lens")
    with opts.open_run() as run:
        memory_report(cfg, dt, run)


def register(app: typer.Typer) -> None:
    """Add the online commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    config_command(app, "online-lru", TrainConfig, resumable=("epochs", "steps"))(online_lru_cmd)
    config_command(app, "online-lru-gradcheck", GradcheckConfig)(online_lru_gradcheck_cmd)
    config_command(app, "online-lru-memory", MemoryConfig)(online_lru_memory_cmd)
