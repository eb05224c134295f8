"""The options of ``rnntk online-lru``, ``online-lru-gradcheck`` and ``online-lru-memory``,
declared once (torch-free: the CLI imports it for --help). Options the three commands share
are declared by one field factory each (:func:`_arch`, :func:`_task`, ...)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from rnntk.engine.config_cli import check_options, option, positive


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


M, T, R = "Model", "Task", "Learning rule"
FILE_TASKS = ("cifar", "lra-listops", "imdb")


def _arch() -> Any:
    return option("lru", "lru, rnn (linear RNN baseline) or gru.", panel=M, choices=Arch)


def _task() -> Any:
    help = "copy, digits (sklearn 8x8, offline), listops-synth, or from --data-dir: cifar (CIFAR-10 binary), lra-listops (TSV), imdb (aclImdb)."
    return option("copy", help, panel=T, choices=Task)


def _data_dir() -> Any:
    return option(None, "Folder with the files of cifar / lra-listops / imdb (never downloaded).", panel=T)


def _pattern_len() -> Any:
    return option(10, "Copy: pattern length P (T = 2P + pad + 1).", panel=T, min=1)


def _pad_len() -> Any:
    return option(7, "Copy: steps between pattern and stop token (upstream's effective 7).", panel=T, min=0)


def _bits() -> Any:
    return option(7, "Copy: bits per step.", panel=T, min=1)


def _layers(default: int) -> Any:
    return option(default, "Sequence layers.", panel=M, min=1)


def _d_model(default: int) -> Any:
    return option(default, "Model width H.", panel=M, min=1)


def _d_hidden(default: int) -> Any:
    return option(default, "Recurrent state size N (GRU: must equal --d-model).", panel=M, min=1)


def _activation() -> Any:
    return option("full_glu", "Post-recurrence block.", panel=M, choices=Act)


def _r_min() -> Any:
    return option(0.0, "LRU ring init: min |λ|.", panel=M)


def _r_max() -> Any:
    return option(1.0, "LRU ring init: max |λ|.", panel=M)


def _rnn_activation() -> Any:
    return option("linear", "RNN nonlinearity ρ: linear, tanh, relu.", panel=M)


def _dtype(default: str) -> Any:
    return option(default, "float32 or float64.")


def model_options(arch: str, layers: int, d_model: int, d_hidden: int, activation: str, norm: str, dropout: float, pooling: str, readout: int,
                  r_min: float, r_max: float, max_phase: float, rnn_activation: str, task: str) -> dict[str, Any]:  # fmt: skip
    """The keyword arguments of :func:`rnntk.online.data.build_model` (``pooling`` "auto"
    resolved for ``task``); ``ValueError`` naming the option when they do not fit together."""
    from rnntk.online.data import default_pooling
    from rnntk.online.models.seq_model import POOLINGS

    if arch == "gru" and d_hidden != d_model:
        raise ValueError(f"bad --d-hidden {d_hidden}: a GRU layer outputs its state, so --d-hidden must equal --d-model ({d_model})")
    if not 0.0 <= r_min < r_max <= 1.0:
        raise ValueError(f"bad --r-min/--r-max {r_min}/{r_max}: need 0 <= r-min < r-max <= 1")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"bad --dropout {dropout}: must be in [0, 1)")
    if norm not in ("pre", "post", "none"):
        raise ValueError(f"bad --norm '{norm}': pre, post or none")
    if rnn_activation not in ("linear", "tanh", "relu"):
        raise ValueError(f"bad --rnn-activation '{rnn_activation}': linear, tanh or relu")
    pool = default_pooling(task) if pooling == "auto" else pooling
    if pool not in POOLINGS:
        raise ValueError(f"bad --pooling '{pooling}': auto, {', '.join(POOLINGS)}")
    if task == "copy" and pool not in ("none",):
        raise ValueError(f"bad --pooling '{pool}' for the copy task: its outputs are per step (use none)")
    if not (math.isfinite(max_phase) and max_phase > 0):
        raise ValueError(f"bad --max-phase {max_phase}: must be a finite number > 0")
    return dict(arch=arch, layers=layers, d_model=d_model, d_hidden=d_hidden, activation=activation, norm=norm, dropout=dropout, pooling=pool,
                readout=readout, r_min=r_min, r_max=r_max, max_phase=max_phase, rnn_activation=rnn_activation)  # fmt: skip


def rule_name(rule: str, arch: str, exec: str = "sequence", pooling: str = "none") -> str:
    """The canonical name of ``rule`` on ``arch`` (rnntk.online.rules.RULE_CLASSES); ``ValueError``
    when it does not apply, or cannot stream with ``exec`` streaming."""
    from rnntk.online.rules import make_rule

    try:
        r = make_rule(rule, arch)
    except ValueError as e:
        raise ValueError(f"bad --rule: {e}") from None
    if exec == "streaming" and not r.streams:
        raise ValueError(f"bad --exec streaming: {r.name} needs the whole sequence (use --exec sequence)")
    if exec == "streaming" and pooling == "pool":
        raise ValueError("bad --exec streaming with --pooling pool: the error exists only at the end (use pool_st)")
    return r.name


RULE_HELP = "online_full (LRU), online_snap (SnAp-1; = online_full on the LRU), online_truncated, online_spat, bptt; upstream spellings (online_spatial, online_1truncated, online_snap1) accepted."


@dataclass
class TrainConfig:
    """Options of ``rnntk online-lru`` (see its --help). ``rule`` becomes its canonical name;
    ``rec_lr_factor`` left None is 0.5 for the LRU, 1.0 for rnn/gru."""

    rule: str = option("online_full", RULE_HELP, panel=R)
    arch: str = _arch()
    task: str = _task()
    data_dir: Optional[Path] = _data_dir()
    pattern_len: int = _pattern_len()
    pad_len: int = _pad_len()
    bits: int = _bits()
    train_samples: int = option(20000, "Copy / listops-synth: training sequences.", panel=T, min=1)
    val_samples: int = option(1000, "Copy / listops-synth: validation sequences.", panel=T, min=1)
    test_samples: int = option(1000, "Copy / listops-synth: test sequences.", panel=T, min=1)
    digits_order: str = option("pixel", "Digits: pixel (T 64) or row (T 8).", panel=T)
    pad_to: int = option(0, "Digits: append zeros up to this many steps.", panel=T, min=0)
    max_len: int = option(256, "ListOps: token cap (synthetic 256; LRA file default 2048 when <= 256).", panel=T, min=5)
    limit: int = option(0, "File tasks: keep at most N rows per split (0 = all).", panel=T, min=0)
    layers: int = _layers(4)
    d_model: int = _d_model(128)
    d_hidden: int = _d_hidden(64)
    activation: str = _activation()
    norm: str = option("pre", "pre (upstream CLI default), post or none.", panel=M)
    dropout: float = option(0.1, "Dropout (masks shared over time).", panel=M)
    pooling: str = option("auto", "auto (copy: none; classification: pool_st), none, pool, last, pool_st.", panel=M)
    readout: int = option(0, "Width of a ReLU readout before the decoder (0 = none).", panel=M, min=0)
    r_min: float = _r_min()
    r_max: float = _r_max()
    max_phase: float = option(6.28, "LRU ring init: max phase.", panel=M)
    rnn_activation: str = _rnn_activation()
    opt_groups: str = option("standard", "standard (λ,γ,B at rec lr, no decay), b_fast_decay (B with the rest), b_decay (B at rec lr, decayed).", panel=R)
    lr: float = option(1e-3, "Base learning rate.", panel=R)
    rec_lr_factor: float = option(None, "Recurrent lr / lr (default 0.5 for lru, 1.0 for rnn/gru).", panel=R, preset=True)
    weight_decay: float = option(0.0, "AdamW decay (never on the recurrent group).", panel=R, min=0.0)
    warmup_epochs: float = option(0.0, "Linear warm-up length.", panel=R, min=0.0)
    schedule: str = option("cosine", "cosine or constant.", panel=R)
    lr_min: float = option(0.0, "Final lr of the cosine.", panel=R, min=0.0)
    batch_size: int = option(50, "Sequences per update.", panel=R, min=1)
    accumulate: int = option(1, "Micro-batches per update (gradient accumulation).", panel=R, min=1)
    epochs: int = option(25, "Passes over the training set.", panel=R, min=1)
    steps: int = option(0, "Total updates instead of --epochs (0 = use epochs).", panel=R, min=0)
    exec: str = option("sequence", "sequence (vectorised over T) or streaming (one step at a time, memory constant in T).", panel=R, choices=Exec)
    update_every: int = option(0, "Streaming: update parameters every K steps (0 = once per batch, upstream).", panel=R, min=0)
    grad_check_batches: int = option(2, "Batches per epoch on which every rule's gradient is compared with BPTT (upstream 20).", panel=R, min=0)
    eval_samples: int = option(0, "Cap on val/test sequences evaluated per epoch (0 = all; the final test uses all).", min=0)
    dtype: str = _dtype("float32")
    grad_check_rules: tuple[str, ...] = ()  # library only: () = every online rule that fits the architecture
    trace_trials: int = 4  # library only

    def __post_init__(self) -> None:
        check_options(self)
        self.rule = rule_name(self.rule, self.arch, self.exec, self.model_options["pooling"])
        if self.update_every and self.exec != "streaming":
            raise ValueError("bad --update-every: parameter updates inside a sequence need --exec streaming")
        if self.update_every and self.accumulate > 1:
            raise ValueError("bad --update-every with --accumulate: choose one")
        if self.opt_groups not in ("standard", "b_fast_decay", "b_decay"):
            raise ValueError(f"bad --opt-groups '{self.opt_groups}': standard, b_fast_decay or b_decay")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"bad --schedule '{self.schedule}': cosine or constant")
        if self.task in FILE_TASKS and self.data_dir is None:
            raise ValueError(f"--task {self.task} reads local files: give --data-dir (nothing is downloaded)")
        if self.rec_lr_factor is None:
            self.rec_lr_factor = 0.5 if self.arch == "lru" else 1.0
        positive(self, "lr", "rec_lr_factor")
        if not math.isfinite(self.weight_decay):
            raise ValueError(f"bad --weight-decay {self.weight_decay}: must be a finite number >= 0")
        if self.accumulate > self.batch_size:
            raise ValueError(f"bad --accumulate {self.accumulate}: more micro-batches than --batch-size {self.batch_size}")

    @property
    def model_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`rnntk.online.data.build_model`."""
        return model_options(self.arch, self.layers, self.d_model, self.d_hidden, self.activation, self.norm, self.dropout, self.pooling,
                             self.readout, self.r_min, self.r_max, self.max_phase, self.rnn_activation, self.task)  # fmt: skip


@dataclass
class GradcheckConfig:
    """Options of ``rnntk online-lru-gradcheck`` (see its --help)."""

    rules: str = option("", "Comma-separated rules to compare with BPTT (default: every online rule of --arch).", panel=R)
    arch: str = _arch()
    task: str = _task()
    data_dir: Optional[Path] = _data_dir()
    pattern_len: int = _pattern_len()
    pad_len: int = _pad_len()
    bits: int = _bits()
    layers: int = _layers(4)
    d_model: int = _d_model(128)
    d_hidden: int = _d_hidden(64)
    activation: str = _activation()
    r_min: float = _r_min()
    r_max: float = _r_max()
    rnn_activation: str = _rnn_activation()
    batch_size: int = option(50, "Sequences in the batch.", min=1)
    exec: str = option("sequence", "Execution mode of the online rules.", panel=R, choices=Exec)
    dtype: str = _dtype("float64")

    def __post_init__(self) -> None:
        check_options(self)
        self.rule_names  # noqa: B018 - validates --rules (and the model options)

    @property
    def model_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`rnntk.online.data.build_model` (no dropout, upstream's norm)."""
        return model_options(self.arch, self.layers, self.d_model, self.d_hidden, self.activation, "pre", 0.0, "auto", 0,
                             self.r_min, self.r_max, 6.28, self.rnn_activation, self.task)  # fmt: skip

    @property
    def rule_names(self) -> list[str]:
        """The canonical names of the rules compared with BPTT."""
        from rnntk.online.train import default_check_rules

        names = [s.strip() for s in self.rules.split(",") if s.strip()] or list(default_check_rules(self.arch))
        pool = self.model_options["pooling"]
        return [rule_name(n, self.arch, self.exec, pool) for n in names]


@dataclass
class MemoryConfig:
    """Options of ``rnntk online-lru-memory`` (see its --help)."""

    seq_lens: str = option("64,256,1024", "Comma-separated sequence lengths T.")
    rules: str = option("bptt,online_full", "Comma-separated rules (bptt runs in sequence mode only).", panel=R)
    modes: str = option("streaming", "Execution modes of the online rules: sequence, streaming.", panel=R)
    arch: str = _arch()
    layers: int = _layers(1)
    d_model: int = _d_model(32)
    d_hidden: int = _d_hidden(32)
    batch_size: int = option(4, "Sequences per gradient computation.", min=1)
    dtype: str = _dtype("float32")

    def __post_init__(self) -> None:
        check_options(self)
        self.lengths  # noqa: B018 - validates --seq-lens
        self.combos  # noqa: B018 - validates --modes, --rules and the model options

    @property
    def lengths(self) -> list[int]:
        """The sequence lengths T."""
        try:
            Ts = [int(t) for t in self.seq_lens.split(",") if t.strip()]
        except ValueError:
            raise ValueError(f"bad --seq-lens '{self.seq_lens}': use comma-separated integers") from None
        if not Ts or min(Ts) < 1:
            raise ValueError(f"bad --seq-lens '{self.seq_lens}': each length must be >= 1")
        return Ts

    @property
    def combos(self) -> list[tuple[str, str]]:
        """(rule, execution mode) rows of the table."""
        md = [m.strip() for m in self.modes.split(",") if m.strip()]
        if any(m not in ("sequence", "streaming") for m in md) or not md:
            raise ValueError(f"bad --modes '{self.modes}': sequence and/or streaming")
        names = [s.strip() for s in self.rules.split(",")]
        if not self.rules.strip() or any(not n for n in names):
            raise ValueError(f"bad --rules '{self.rules}': give comma-separated rules, e.g. bptt,online_full")
        combos: list[tuple[str, str]] = []
        for n in names:
            r = rule_name(n, self.arch)
            combos += [(r, "sequence")] if r == "bptt" else [(r, m) for m in md]
        self.model_options  # noqa: B018
        return combos

    @property
    def model_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`rnntk.online.models.seq_model.build_seq_model`."""
        return model_options(self.arch, self.layers, self.d_model, self.d_hidden, "full_glu", "pre", 0.0, "auto", 0, 0.0, 1.0, 6.28, "linear", "copy")
