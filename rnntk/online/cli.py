"""``rnntk online-lru`` (training with an online learning rule), ``rnntk online-lru-gradcheck``
(gradient alignment of each rule with BPTT on one batch) and ``rnntk online-lru-memory``
(memory of each rule vs sequence length).

Three sibling engine commands rather than a Typer sub-group: every engine command is a flat
``rnntk <name>`` whose first argument names it (the CLI's error handling, ``--config`` and
``--resume`` key on that name), and users type ``rnntk online-lru --task copy ...`` to train.
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rnntk.engine.errors import UserError
from rnntk.engine.options import RunOptions, engine_command, require_positive

O = typer.Option
M, T, R = "Model", "Task", "Learning rule"


class Arch(str, Enum):
    lru = "lru"
    rnn = "rnn"
    gru = "gru"


class Task(str, Enum):
    copy = "copy"
    digits = "digits"
    listops_synth = "listops-synth"
    cifar = "cifar"
    lra_listops = "lra-listops"
    imdb = "imdb"


class Exec(str, Enum):
    sequence = "sequence"
    streaming = "streaming"


class Act(str, Enum):
    full_glu = "full_glu"
    half_glu1 = "half_glu1"
    half_glu2 = "half_glu2"
    gelu = "gelu"
    none = "none"


Rule = Annotated[
    str,
    O(
        "--rule",
        help="online_full (LRU), online_snap (SnAp-1; = online_full on the LRU), online_truncated, online_spat, bptt; upstream spellings (online_spatial, online_1truncated, online_snap1) accepted.",
        rich_help_panel=R,
    ),
]
ArchO = Annotated[Arch, O("--arch", help="lru, rnn (linear RNN baseline) or gru.", rich_help_panel=M)]
TaskO = Annotated[
    Task,
    O(
        "--task",
        help="copy, digits (sklearn 8x8, offline), listops-synth, or from --data-dir: cifar (CIFAR-10 binary), lra-listops (TSV), imdb (aclImdb).",
        rich_help_panel=T,
    ),
]
DataDir = Annotated[Optional[Path], O("--data-dir", help="Folder with the files of cifar / lra-listops / imdb (never downloaded).", rich_help_panel=T)]
PatLen = Annotated[int, O("--pattern-len", min=1, help="Copy: pattern length P (T = 2P + pad + 1).", rich_help_panel=T)]
PadLen = Annotated[int, O("--pad-len", min=0, help="Copy: steps between pattern and stop token (upstream's effective 7).", rich_help_panel=T)]
Bits = Annotated[int, O("--bits", min=1, help="Copy: bits per step.", rich_help_panel=T)]
Layers = Annotated[int, O("--layers", min=1, help="Sequence layers.", rich_help_panel=M)]
DModel = Annotated[int, O("--d-model", min=1, help="Model width H.", rich_help_panel=M)]
DHidden = Annotated[int, O("--d-hidden", min=1, help="Recurrent state size N (GRU: must equal --d-model).", rich_help_panel=M)]
ActO = Annotated[Act, O("--activation", help="Post-recurrence block.", rich_help_panel=M)]
RMin = Annotated[float, O("--r-min", help="LRU ring init: min |λ|.", rich_help_panel=M)]
RMax = Annotated[float, O("--r-max", help="LRU ring init: max |λ|.", rich_help_panel=M)]
RnnAct = Annotated[str, O("--rnn-activation", help="RNN nonlinearity ρ: linear, tanh, relu.", rich_help_panel=M)]
Dtype = Annotated[str, O("--dtype", help="float32 or float64.")]


def _model_opts(
    arch: Arch,
    layers: int,
    d_model: int,
    d_hidden: int,
    activation: Act,
    norm: str,
    dropout: float,
    pooling: str,
    readout: int,
    r_min: float,
    r_max: float,
    max_phase: float,
    rnn_activation: str,
    task: str,
) -> dict[str, Any]:
    from rnntk.online.data import default_pooling
    from rnntk.online.models.seq_model import POOLINGS

    if arch == Arch.gru and d_hidden != d_model:
        raise UserError(f"bad --d-hidden {d_hidden}: a GRU layer outputs its state, so --d-hidden must equal --d-model ({d_model})")
    if not 0.0 <= r_min < r_max <= 1.0:
        raise UserError(f"bad --r-min/--r-max {r_min}/{r_max}: need 0 <= r-min < r-max <= 1")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"bad --dropout {dropout}: must be in [0, 1)")
    if norm not in ("pre", "post", "none"):
        raise UserError(f"bad --norm '{norm}': pre, post or none")
    if rnn_activation not in ("linear", "tanh", "relu"):
        raise UserError(f"bad --rnn-activation '{rnn_activation}': linear, tanh or relu")
    pool = default_pooling(task) if pooling == "auto" else pooling
    if pool not in POOLINGS:
        raise UserError(f"bad --pooling '{pooling}': auto, {', '.join(POOLINGS)}")
    if task == "copy" and pool not in ("none",):
        raise UserError(f"bad --pooling '{pool}' for the copy task: its outputs are per step (use none)")
    require_positive(max_phase=max_phase)
    return dict(
        arch=arch.value,
        layers=layers,
        d_model=d_model,
        d_hidden=d_hidden,
        activation=activation.value,
        norm=norm,
        dropout=dropout,
        pooling=pool,
        readout=readout,
        r_min=r_min,
        r_max=r_max,
        max_phase=max_phase,
        rnn_activation=rnn_activation,
    )


def _rule(rule: str, arch: Arch, exec: str = "sequence", pooling: str = "none") -> str:
    from rnntk.online.rules import make_rule

    try:
        r = make_rule(rule, arch.value)  # the rule's name -> its object (rnntk.online.rules.RULE_CLASSES)
    except ValueError as e:
        raise UserError(f"bad --rule: {e}") from None
    if exec == "streaming" and not r.streams:
        raise UserError(f"bad --exec streaming: {r.name} needs the whole sequence (use --exec sequence)")
    if exec == "streaming" and pooling == "pool":
        raise UserError("bad --exec streaming with --pooling pool: the error exists only at the end (use pool_st)")
    return r.name


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


def _data(task: Task, gen: Any, **kw: Any) -> Any:
    from rnntk.online.data import load_task
    from rnntk.online.tasks.seq_loaders import DataError

    try:
        return load_task(task.value, gen, **kw)
    except (DataError, ValueError) as e:
        raise UserError(str(e)) from None


def online_lru_cmd(
    opts: RunOptions,
    rule: Rule = "online_full",
    arch: ArchO = Arch.lru,
    task: TaskO = Task.copy,
    data_dir: DataDir = None,
    pattern_len: PatLen = 10,
    pad_len: PadLen = 7,
    bits: Bits = 7,
    train_samples: Annotated[int, O("--train-samples", min=1, help="Copy / listops-synth: training sequences.", rich_help_panel=T)] = 20000,
    val_samples: Annotated[int, O("--val-samples", min=1, help="Copy / listops-synth: validation sequences.", rich_help_panel=T)] = 1000,
    test_samples: Annotated[int, O("--test-samples", min=1, help="Copy / listops-synth: test sequences.", rich_help_panel=T)] = 1000,
    digits_order: Annotated[str, O("--digits-order", help="Digits: pixel (T 64) or row (T 8).", rich_help_panel=T)] = "pixel",
    pad_to: Annotated[int, O("--pad-to", min=0, help="Digits: append zeros up to this many steps.", rich_help_panel=T)] = 0,
    max_len: Annotated[int, O("--max-len", min=5, help="ListOps: token cap (synthetic 256; LRA file default 2048 when <= 256).", rich_help_panel=T)] = 256,
    limit: Annotated[int, O("--limit", min=0, help="File tasks: keep at most N rows per split (0 = all).", rich_help_panel=T)] = 0,
    layers: Layers = 4,
    d_model: DModel = 128,
    d_hidden: DHidden = 64,
    activation: ActO = Act.full_glu,
    norm: Annotated[str, O("--norm", help="pre (upstream CLI default), post or none.", rich_help_panel=M)] = "pre",
    dropout: Annotated[float, O("--dropout", help="Dropout (masks shared over time).", rich_help_panel=M)] = 0.1,
    pooling: Annotated[str, O("--pooling", help="auto (copy: none; classification: pool_st), none, pool, last, pool_st.", rich_help_panel=M)] = "auto",
    readout: Annotated[int, O("--readout", min=0, help="Width of a ReLU readout before the decoder (0 = none).", rich_help_panel=M)] = 0,
    r_min: RMin = 0.0,
    r_max: RMax = 1.0,
    max_phase: Annotated[float, O("--max-phase", help="LRU ring init: max phase.", rich_help_panel=M)] = 6.28,
    rnn_activation: RnnAct = "linear",
    opt_groups: Annotated[
        str, O("--opt-groups", help="standard (λ,γ,B at rec lr, no decay), b_fast_decay (B with the rest), b_decay (B at rec lr, decayed).", rich_help_panel=R)
    ] = "standard",
    lr: Annotated[float, O("--lr", help="Base learning rate.", rich_help_panel=R)] = 1e-3,
    rec_lr_factor: Annotated[Optional[float], O("--rec-lr-factor", help="Recurrent lr / lr (default 0.5 for lru, 1.0 for rnn/gru).", rich_help_panel=R)] = None,
    weight_decay: Annotated[float, O("--weight-decay", min=0.0, help="AdamW decay (never on the recurrent group).", rich_help_panel=R)] = 0.0,
    warmup_epochs: Annotated[float, O("--warmup-epochs", min=0.0, help="Linear warm-up length.", rich_help_panel=R)] = 0.0,
    schedule: Annotated[str, O("--schedule", help="cosine or constant.", rich_help_panel=R)] = "cosine",
    lr_min: Annotated[float, O("--lr-min", min=0.0, help="Final lr of the cosine.", rich_help_panel=R)] = 0.0,
    batch_size: Annotated[int, O("--batch-size", min=1, help="Sequences per update.", rich_help_panel=R)] = 50,
    accumulate: Annotated[int, O("--accumulate", min=1, help="Micro-batches per update (gradient accumulation).", rich_help_panel=R)] = 1,
    epochs: Annotated[int, O("--epochs", min=1, help="Passes over the training set.", rich_help_panel=R)] = 25,
    steps: Annotated[int, O("--steps", min=0, help="Total updates instead of --epochs (0 = use epochs).", rich_help_panel=R)] = 0,
    exec: Annotated[
        Exec, O("--exec", help="sequence (vectorised over T) or streaming (one step at a time, memory constant in T).", rich_help_panel=R)
    ] = Exec.sequence,
    update_every: Annotated[
        int, O("--update-every", min=0, help="Streaming: update parameters every K steps (0 = once per batch, upstream).", rich_help_panel=R)
    ] = 0,
    grad_check_batches: Annotated[
        int, O("--grad-check-batches", min=0, help="Batches per epoch on which every rule's gradient is compared with BPTT (upstream 20).", rich_help_panel=R)
    ] = 2,
    eval_samples: Annotated[int, O("--eval-samples", min=0, help="Cap on val/test sequences evaluated per epoch (0 = all; the final test uses all).")] = 0,
    dtype: Dtype = "float32",
) -> None:
    """Train an LRU / linear-RNN / GRU stack with an online learning rule (Zucchet et al. 2023).

    Records train/val/test loss and accuracy, each rule's gradient cosine and norm ratio to BPTT
    per layer, |λ| statistics, hidden-state traces and the final λ. Example:
    [bold]rnntk online-lru --task copy --pattern-len 5 --layers 2 --d-model 48 --d-hidden 48 --rule online_full[/bold].
    Presets: [bold]--config tasks/online-lru-copy-p5.toml[/bold] (and table1 / figure2 rows)."""
    import torch

    from rnntk.engine.device import resolve_dtype
    from rnntk.online.data import build_model
    from rnntk.online.train import TrainConfig, train_online

    mo = _model_opts(arch, layers, d_model, d_hidden, activation, norm, dropout, pooling, readout, r_min, r_max, max_phase, rnn_activation, task.value)
    r = _rule(rule, arch, exec.value, mo["pooling"])
    if update_every and exec != Exec.streaming:
        raise UserError("bad --update-every: parameter updates inside a sequence need --exec streaming")
    if update_every and accumulate > 1:
        raise UserError("bad --update-every with --accumulate: choose one")
    if opt_groups not in ("standard", "b_fast_decay", "b_decay"):
        raise UserError(f"bad --opt-groups '{opt_groups}': standard, b_fast_decay or b_decay")
    if schedule not in ("cosine", "constant"):
        raise UserError(f"bad --schedule '{schedule}': cosine or constant")
    if task.value in ("cifar", "lra-listops", "imdb") and data_dir is None:
        raise UserError(f"--task {task.value} reads local files: give --data-dir (nothing is downloaded)")
    factor = rec_lr_factor if rec_lr_factor is not None else (0.5 if arch == Arch.lru else 1.0)
    require_positive(lr=lr, rec_lr_factor=factor)
    if not math.isfinite(weight_decay):
        raise UserError(f"bad --weight-decay {weight_decay}: must be a finite number >= 0")
    if accumulate > batch_size:
        raise UserError(f"bad --accumulate {accumulate}: more micro-batches than --batch-size {batch_size}")
    dt = resolve_dtype(dtype)
    from rnntk.engine.seeding import resolve_seed

    if task == Task.copy:  # the generated sequences, before generating them
        _check_seq_fits(opts.device, 2 * pattern_len + pad_len + 1, train_samples + val_samples + test_samples, 0, 0, 0, bits + 2)
    # data first: a missing or malformed file is reported before a run folder is created
    data = _data(
        task,
        torch.Generator().manual_seed(resolve_seed(opts.seed) + 17),
        data_dir=data_dir,
        pattern_len=pattern_len,
        pad_len=pad_len,
        bits=bits,
        train_samples=train_samples,
        val_samples=val_samples,
        test_samples=test_samples,
        digits_order=digits_order,
        pad_to=pad_to,
        max_len=max_len,
        limit=limit,
    )
    if exec == Exec.sequence:  # activations kept over the whole sequence (measured: ~32 values per step, layer and width)
        _check_seq_fits(opts.device, data[0].steps, batch_size, layers, max(d_model, d_hidden), torch.empty((), dtype=dt).element_size())
    with opts.open_run(config={"rec_lr_factor": factor}) as run:
        model = build_model(data[0], run.generator, dt, **mo).to(run.device)
        run.h5.set_attrs(rule=r, arch=arch.value, task=task.value, seq_len=data[0].steps)
        cfg = TrainConfig(
            rule=r,
            exec=exec.value,
            update_every=update_every,
            opt_groups=opt_groups,
            lr=lr,
            rec_lr_factor=factor,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            schedule=schedule,
            lr_min=lr_min,
            batch_size=batch_size,
            accumulate=accumulate,
            epochs=epochs,
            steps=steps,
            grad_check_batches=grad_check_batches,
            eval_samples=eval_samples,
        )
        train_online(model, data, cfg, run)


def online_lru_gradcheck_cmd(
    opts: RunOptions,
    rules: Annotated[str, O("--rules", help="Comma-separated rules to compare with BPTT (default: every online rule of --arch).", rich_help_panel=R)] = "",
    arch: ArchO = Arch.lru,
    task: TaskO = Task.copy,
    data_dir: DataDir = None,
    pattern_len: PatLen = 10,
    pad_len: PadLen = 7,
    bits: Bits = 7,
    layers: Layers = 4,
    d_model: DModel = 128,
    d_hidden: DHidden = 64,
    activation: ActO = Act.full_glu,
    r_min: RMin = 0.0,
    r_max: RMax = 1.0,
    rnn_activation: RnnAct = "linear",
    batch_size: Annotated[int, O("--batch-size", min=1, help="Sequences in the batch.")] = 50,
    exec: Annotated[Exec, O("--exec", help="Execution mode of the online rules.", rich_help_panel=R)] = Exec.sequence,
    dtype: Dtype = "float64",
) -> None:
    """Gradient alignment (Figure 2 style): cosine, norm ratio and relative error of each rule's
    gradient to BPTT's per group (encoder, layer_k, decoder), on one batch at initialisation.
    The group [bold]all[/bold] weights every group equally: each group is rescaled so that its
    BPTT gradient has unit norm, then cos is taken over the whole (so the encoder, whose BPTT
    gradient is ~100x the others' on the copy task at init, cannot dominate); its norm ratio and
    relative error are the root-mean-square of the groups'. Writes gradcheck.csv and
    /results/grad_{cos,relnorm,rel_err} (rule × group); prints the table on stderr; summary.json
    gets cos_GROUP_RULE for every group.
    Example: [bold]rnntk online-lru-gradcheck --layers 2 --d-model 16 --d-hidden 16[/bold]."""
    import sys

    import numpy as np
    import torch

    from rnntk.engine.device import resolve_dtype
    from rnntk.engine.files import write_text_atomic
    from rnntk.online.alignment import gradient_alignment, param_groups
    from rnntk.online.data import build_model
    from rnntk.online.train import default_check_rules

    mo = _model_opts(arch, layers, d_model, d_hidden, activation, "pre", 0.0, "auto", 0, r_min, r_max, 6.28, rnn_activation, task.value)
    names = [s.strip() for s in rules.split(",") if s.strip()] or list(default_check_rules(arch.value))
    rl = [_rule(n, arch, exec.value, mo["pooling"]) for n in names]
    dt = resolve_dtype(dtype)
    from rnntk.engine.seeding import resolve_seed

    data = _data(
        task,
        torch.Generator().manual_seed(resolve_seed(opts.seed) + 17),
        data_dir=data_dir,
        pattern_len=pattern_len,
        pad_len=pad_len,
        bits=bits,
        train_samples=batch_size,
        val_samples=1,
        test_samples=1,
        limit=max(batch_size, 1),
    )
    # the BPTT reference keeps the activations of the whole sequence
    _check_seq_fits(opts.device, data[0].steps, batch_size, layers, max(d_model, d_hidden), torch.empty((), dtype=dt).element_size())
    with opts.open_run() as run:
        model = build_model(data[0], run.generator, dt, **mo).to(run.device)
        n = min(batch_size, len(data[0]))
        x, y, mask, _ = data[0].batch(torch.arange(n), run.device, dt)
        al = gradient_alignment(model, (x, y, mask), rl, exec.value, check=lambda: run.check_interrupt(checkpoint=False))
        groups = [*param_groups(model), "all"]
        lines = ["rule,group,cos,relnorm,rel_err"]
        print(f"{'rule':<18}{'group':<10}{'cos':>10}{'|g|/|bptt|':>12}{'rel err':>10}", file=sys.stderr)
        for r_ in rl:
            for g in groups:
                v = al[r_][g]
                lines.append(f"{r_},{g},{v['cos']:.8g},{v['relnorm']:.8g},{v['rel_err']:.8g}")
                print(f"{r_:<18}{g:<10}{v['cos']:>10.4f}{v['relnorm']:>12.4f}{v['rel_err']:>10.2e}", file=sys.stderr)
        write_text_atomic(run.path("gradcheck.csv"), "\n".join(lines) + "\n")
        for k in ("cos", "relnorm", "rel_err"):
            run.result(
                f"grad_{k}",
                np.array([[al[r_][g][k] for g in groups] for r_ in rl]),
                rules=rl,
                groups=groups,
                description=f"{k} of each rule's gradient vs BPTT, (rule, group)",
            )
        run.finish(**{f"cos_{g}_{r_}": al[r_][g]["cos"] for r_ in rl for g in groups})


def online_lru_memory_cmd(
    opts: RunOptions,
    seq_lens: Annotated[str, O("--seq-lens", help="Comma-separated sequence lengths T.")] = "64,256,1024",
    rules: Annotated[str, O("--rules", help="Comma-separated rules (bptt runs in sequence mode only).", rich_help_panel=R)] = "bptt,online_full",
    modes: Annotated[str, O("--modes", help="Execution modes of the online rules: sequence, streaming.", rich_help_panel=R)] = "streaming",
    arch: ArchO = Arch.lru,
    layers: Layers = 1,
    d_model: DModel = 32,
    d_hidden: DHidden = 32,
    batch_size: Annotated[int, O("--batch-size", min=1, help="Sequences per gradient computation.")] = 4,
    dtype: Dtype = "float32",
) -> None:
    """Memory of one gradient computation per rule vs T: bytes saved for backward (autograd
    hooks) plus trace and carried-state bytes (copy-like random inputs, 8 channels). Writes
    memory.csv and /results/memory_{saved,traces,total} (row, T); prints the table on stderr."""
    import sys

    import numpy as np
    import torch

    from rnntk.engine.device import resolve_dtype
    from rnntk.engine.files import write_text_atomic
    from rnntk.online.memory import rule_memory
    from rnntk.online.models.seq_model import build_seq_model

    try:
        Ts = [int(t) for t in seq_lens.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"bad --seq-lens '{seq_lens}': use comma-separated integers") from None
    if not Ts or min(Ts) < 1:
        raise UserError(f"bad --seq-lens '{seq_lens}': each length must be >= 1")
    md = [m.strip() for m in modes.split(",") if m.strip()]
    if any(m not in ("sequence", "streaming") for m in md) or not md:
        raise UserError(f"bad --modes '{modes}': sequence and/or streaming")
    combos = []
    names = [s.strip() for s in rules.split(",")]
    if not rules.strip() or any(not n for n in names):
        raise UserError(f"bad --rules '{rules}': give comma-separated rules, e.g. bptt,online_full")
    for n in names:
        r = _rule(n, arch)
        combos += [(r, "sequence")] if r == "bptt" else [(r, m) for m in md]
    mo = _model_opts(arch, layers, d_model, d_hidden, Act.full_glu, "pre", 0.0, "auto", 0, 0.0, 1.0, 6.28, "linear", "copy")
    dt = resolve_dtype(dtype)
    from rnntk.engine.device import resolve_device
    from rnntk.engine.limits import check_fits

    isz = torch.empty((), dtype=dt).element_size()
    per_step = batch_size * (9 * isz + 56 + layers * (8 * d_model + 4 * d_hidden) * isz)  # inputs, targets, mask, activations kept
    check_fits(
        float(max(Ts)) * per_step, resolve_device(opts.device), f"--seq-lens up to {max(Ts)} with --batch-size {batch_size}", hint="use shorter --seq-lens"
    )
    with opts.open_run() as run:
        res = {k: np.zeros((len(combos), len(Ts))) for k in ("saved", "traces", "total")}
        print(f"{'rule':<18}{'exec':<10}" + "".join(f"{'T=' + str(t):>14}" for t in Ts) + "   (total bytes)", file=sys.stderr)
        lines = ["rule,exec,T,saved_bytes,trace_bytes,total_bytes"]
        for i, (r, m) in enumerate(combos):
            for j, T in enumerate(Ts):
                model = build_seq_model(d_in=8, n_classes=2, n_out=7, generator=torch.Generator().manual_seed(run.seed), **mo).to(run.device, dt)
                g = torch.Generator().manual_seed(run.seed + T)
                x = torch.randn(batch_size, T, 8, generator=g).to(run.device, dt)
                y = torch.randint(0, 2, (batch_size, T, 7), generator=g).to(run.device)
                mem = rule_memory(model, x, y, torch.ones(batch_size, T, device=run.device, dtype=dt), r, m)
                for k in res:
                    res[k][i, j] = mem[k]
                lines.append(f"{r},{m},{T},{mem['saved']},{mem['traces']},{mem['total']}")
                run.check_interrupt()
            print(f"{r:<18}{m:<10}" + "".join(f"{int(res['total'][i, j]):>14d}" for j in range(len(Ts))), file=sys.stderr)
        write_text_atomic(run.path("memory.csv"), "\n".join(lines) + "\n")
        labels = [f"{r}/{m}" for r, m in combos]
        for k, v in res.items():
            run.result(f"memory_{k}", v, rows=labels, seq_lens=Ts, units="bytes")
        run.finish(**{f"growth_{r}_{m}": float(res["total"][i, -1] / res["total"][i, 0]) for i, (r, m) in enumerate(combos)})


def register(app: typer.Typer) -> None:
    """Add the online commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    engine_command(app, "online-lru", resumable=("epochs", "steps"))(online_lru_cmd)
    engine_command(app, "online-lru-gradcheck")(online_lru_gradcheck_cmd)
    engine_command(app, "online-lru-memory")(online_lru_memory_cmd)
