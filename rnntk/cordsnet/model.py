"""CordsNet (Soo et al., NeurIPS 2024): a convolutional recurrent network of 2, 4, 6 or 8
areas (R2/R4/R6/R8), each a rate tensor ``r_j`` of shape ``(C_j, H_j, W_j)`` obeying

    r_j <- (1 - alpha) r_j + alpha relu(W_j * r_j + b_j + U_j * h_j)      (alpha = dt/tau = 0.2)

with ``*`` a 3x3 convolution, ``b_j`` a per-unit bias map and ``h_j`` the area's input from
the stem and the areas below (no feedback). All areas update **synchronously** (every area at
step t+1 reads the states of step t). Parameter and buffer names equal upstream's
(``wmws2/cordsnet``), so an upstream state dict loads with ``strict=True``.

The *mini* configuration (``image_size`` != 224 or ``width`` != 1) is an rnntk-only,
**non-upstream** variant for CPU demos: area sizes follow the stride arithmetic (each stride-2
stage maps n -> ceil(n/2)) and channel counts are scaled by ``width``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

BASE_CHANNELS = (64, 64, 128, 128, 256, 256, 512, 512)
STRIDES = (1, 1, 2, 1, 2, 1, 2, 1)
DEPTHS = (2, 4, 6, 8)
ALPHA = 0.2
DT = 0.002  # s per Euler step (upstream: 2 ms)
TAU = 0.010  # s
POOLS = ("none", "gap", "avg2")
_TRAINING_KEYS = ("area_bias.", "target_", "prelu.weight", "running_mean", "running_var", "num_batches_tracked", "bn")


def _half(n: int) -> int:
    return (n + 1) // 2


def area_shapes(depth: int, image_size: int = 224, width: float = 1.0) -> list[tuple[int, int, int]]:
    """``(C_j, H_j, W_j)`` of each area j < depth (224, width 1: 64x56x56 ... 512x7x7)."""
    c0 = stem_channels(width)
    n = _half(_half(image_size))  # 7x7 s2 stem conv, then 3x3 s2 avg-pool
    out = []
    for j in range(depth):
        if STRIDES[j] == 2:
            n = _half(n)
        out.append((c0 * BASE_CHANNELS[j] // 64, n, n))
    return out


def stem_channels(width: float) -> int:
    """Channels of the stem and of areas 0-1: ``round(64 * width)`` (at least 1)."""
    return max(1, int(round(64 * width)))


@dataclass
class SimResult:
    """What :meth:`CordsNet.simulate` returns.

    logits: ``(B, T_readout, classes)`` (T_readout = 1 for ``readout="final"``).
    traces: area index -> ``(B, T_rec, C, H', W')`` over the stimulus (+ post) phase.
    spontaneous: area index -> ``(T_rec_spont, C, H', W')`` recorded spontaneous trajectory.
    spont_state / final_state: per-area states ``(1, C, H, W)`` / ``(B, C, H, W)``.
    """

    logits: torch.Tensor
    traces: dict[int, torch.Tensor] = field(default_factory=dict)
    spontaneous: dict[int, torch.Tensor] = field(default_factory=dict)
    spont_state: list[torch.Tensor] = field(default_factory=list)
    final_state: list[torch.Tensor] = field(default_factory=list)


def pool_state(x: torch.Tensor, pool: str) -> torch.Tensor:
    """Spatial pooling for recordings: ``none``, ``gap`` (global mean, H=W=1) or ``avg2``
    (2x2 mean, ceil mode). ``x``: ``(B, C, H, W)``."""
    if pool == "none":
        return x
    if pool == "gap":
        return x.mean(dim=(-2, -1), keepdim=True)
    if pool == "avg2":
        return F.avg_pool2d(x, 2, 2, ceil_mode=True)
    raise ValueError(f"unknown pooling {pool!r}; use one of {POOLS}")


class CordsNet(nn.Module):
    """The R``depth`` CordsNet. ``classes``: readout size (ImageNet 1000); ``in_channels``: 3
    (RGB) or 1 (MNIST); ``image_size``/``width``: 224/1.0 for upstream, else the mini variant.
    ``nonlinearity``: ``relu`` (upstream) or ``linear`` (within-area ReLU removed, training
    stage 3; inter-area ReLUs kept)."""

    def __init__(
        self, depth: int = 8, classes: int = 1000, in_channels: int = 3, image_size: int = 224, width: float = 1.0, nonlinearity: str = "relu"
    ) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {DEPTHS}, got {depth}")
        if image_size < 1 or width <= 0 or classes < 1 or in_channels < 1:
            raise ValueError("image_size, width, classes and in_channels must be positive")
        if nonlinearity not in ("relu", "linear"):
            raise ValueError(f"nonlinearity must be relu or linear, got {nonlinearity!r}")
        self.depth, self.classes, self.in_channels = depth, classes, in_channels
        self.image_size, self.width, self.nonlinearity = image_size, float(width), nonlinearity
        self.shapes = area_shapes(depth, image_size, width)
        c0 = stem_channels(width)
        chans_in = [c0] + [s[0] for s in self.shapes[:-1]]
        wn = weight_norm
        self.inp_conv = wn(nn.Conv2d(in_channels, c0, 7, 2, 3, bias=False))
        self.inp_avgpool = nn.AvgPool2d(3, 2, 1)
        self.inp_skip = wn(nn.Conv2d(c0, c0, 3, 1, 1, bias=False))
        self.area_conv = nn.ModuleList([wn(nn.Conv2d(c, c, 3, 1, 1, bias=False)) for c, _, _ in self.shapes])
        self.conv_bias = nn.ParameterList([nn.Parameter(torch.zeros(c, h, w)) for c, h, w in self.shapes])
        self.area_area = nn.ModuleList([wn(nn.Conv2d(ci, c, 3, STRIDES[j], 1, bias=False)) for j, (ci, (c, _, _)) in enumerate(zip(chans_in, self.shapes))])
        self.skip_area = nn.ModuleList(
            [wn(nn.Conv2d(self.shapes[2 * i + 1][0], self.shapes[2 * i + 2][0], 1, 2, 0, bias=False)) for i in range(depth // 2 - 1)]
        )
        self.out_fc = wn(nn.Linear(self.shapes[-1][0], classes))

    # ------------------------------------------------------------------ description
    @property
    def upstream(self) -> bool:
        """True for the upstream configuration (224 x 224 input, full widths)."""
        return self.image_size == 224 and self.width == 1.0

    def hparams(self) -> dict[str, Any]:
        """Constructor arguments (plain values), stored in rnntk checkpoints."""
        return dict(
            depth=self.depth, classes=self.classes, in_channels=self.in_channels, image_size=self.image_size, width=self.width, nonlinearity=self.nonlinearity
        )

    def describe(self) -> str:
        kind = "upstream" if self.upstream else f"mini, non-upstream: image {self.image_size}, width {self.width:g}"
        return f"CordsNet R{self.depth} ({kind}; {self.classes} classes, {self.in_channels} input channel(s))"

    def recurrent_weight(self, j: int) -> torch.Tensor:
        """Effective (weight-normalised) recurrent kernel of area j, ``(C_j, C_j, 3, 3)``."""
        return cast(torch.Tensor, self.area_conv[j].weight)  # a parametrized (weight-norm) attribute

    # ------------------------------------------------------------------ dynamics
    def stem(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, S, S)`` images -> ``(B, C_0, H_0, W_0)`` drive (no bias: zero image -> 0)."""
        return self.inp_avgpool(self.inp_conv(images))

    def zero_state(self, batch: int = 1) -> list[torch.Tensor]:
        """Per-area zero states ``(batch, C_j, H_j, W_j)`` on the model's device and dtype."""
        p = self.conv_bias[0]
        return [torch.zeros(batch, c, h, w, device=p.device, dtype=p.dtype) for c, h, w in self.shapes]

    def drives(self, inp: Optional[torch.Tensor]) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """The constant stimulus terms of one phase: ``U_0 * inp`` (area 0) and
        ``InpSkip(inp)`` (area 1); ``None`` for a zero image."""
        if inp is None:
            return None, None
        return self.area_area[0](inp), self.inp_skip(inp)

    def area_input(self, j: int, rs: Sequence[torch.Tensor], skip1: Optional[torch.Tensor]) -> torch.Tensor:
        """``h_j`` for an area j >= 1 from the states ``rs`` of the same time step."""
        relu = torch.relu
        if j == 1:
            return relu(rs[0]) if skip1 is None else relu(rs[0]) + skip1
        if j % 2 == 0:
            return relu(rs[j - 1]) + relu(rs[j - 2])
        return relu(rs[j - 1]) + self.skip_area[j // 2 - 1](relu(rs[j - 2]))

    def step(self, rs: Sequence[torch.Tensor], drive: tuple[Optional[torch.Tensor], Optional[torch.Tensor]], alpha: float = ALPHA) -> list[torch.Tensor]:
        """One synchronous Euler step of all areas: ``r_j(t+1)`` from the ``r(t)`` of every
        area (never a bottom-up in-place loop). ``drive``: from :meth:`drives`."""
        zs = self.preactivations(rs, drive)
        act = zs if self.nonlinearity == "linear" else [torch.relu(z) for z in zs]
        return [(1 - alpha) * r + alpha * a for r, a in zip(rs, act)]

    def preactivations(self, rs: Sequence[torch.Tensor], drive: tuple[Optional[torch.Tensor], Optional[torch.Tensor]]) -> list[torch.Tensor]:
        """``z_j = W_j * r_j + b_j + U_j * h_j`` of every area from the states ``rs`` (one time
        step); the ReLU Jacobian's gate at a state is ``z_j > 0``."""
        d0, skip1 = drive
        zs = []
        for j in range(self.depth):
            z = self.area_conv[j](rs[j]) + self.conv_bias[j]
            if j == 0:
                if d0 is not None:
                    z = z + d0
            else:
                z = z + self.area_area[j](self.area_input(j, rs, skip1))
            zs.append(z)
        return zs

    def readout(self, rs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits ``(B, classes)`` = FC(GAP(relu(r_{D-1}) + relu(r_{D-2})))."""
        x = torch.relu(rs[-1]) + torch.relu(rs[-2])
        return self.out_fc(x.mean(dim=(-2, -1)))

    def run_phase(
        self,
        rs: list[torch.Tensor],
        drive: tuple[Optional[torch.Tensor], Optional[torch.Tensor]],
        steps: int,
        alpha: float = ALPHA,
        record: Sequence[int] = (),
        stride: int = 1,
        pool: str = "none",
        readout_every: bool = False,
        check: Optional[Callable[[], None]] = None,
        rates: Optional[list[torch.Tensor]] = None,
    ) -> tuple[list[torch.Tensor], dict[int, list[torch.Tensor]], list[torch.Tensor]]:
        """Run ``steps`` steps from ``rs``; returns (states, recorded states per area every
        ``stride`` steps, logits after each step if ``readout_every``). ``check`` is called
        before every step (a run's interrupt check; it may raise to stop). ``rates``: a list
        that receives, after each step, the population rate of every area (mean over its units),
        ``(B, depth)``."""
        rec: dict[int, list[torch.Tensor]] = {j: [] for j in record}
        logits = []
        for t in range(1, steps + 1):
            if check is not None:
                check()
            rs = self.step(rs, drive, alpha)
            if rates is not None:
                rates.append(torch.stack([r.mean(dim=(1, 2, 3)) for r in rs], 1))
            if readout_every:
                logits.append(self.readout(rs))
            if rec and t % stride == 0:
                for j in record:
                    rec[j].append(pool_state(rs[j], pool))
        return rs, rec, logits

    def spontaneous(
        self,
        steps: int = 100,
        alpha: float = ALPHA,
        record: Sequence[int] = (),
        stride: int = 1,
        pool: str = "none",
        check: Optional[Callable[[], None]] = None,
        rates: Optional[list[torch.Tensor]] = None,
    ) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        """The image-independent spontaneous phase (zero image, bias-driven), simulated once at
        batch 1. Returns the end states ``(1, C, H, W)`` and recordings ``(T_rec, C, H', W')``
        (``rates``: see :meth:`run_phase`)."""
        rs, rec, _ = self.run_phase(self.zero_state(1), (None, None), steps, alpha, record, stride, pool, check=check, rates=rates)
        return rs, {j: torch.stack(v, 0)[:, 0] if v else self._empty(0, j, pool) for j, v in rec.items()}

    def _empty(self, batch: int, j: int, pool: str) -> torch.Tensor:
        """A recording with no time points: ``(batch, 0, C, H', W')`` (``(0, C, H', W')`` for batch 0)."""
        c, h, w = pool_state(torch.zeros(1, *self.shapes[j]), pool).shape[1:]
        p = self.conv_bias[0]
        return torch.zeros(*((batch,) if batch else ()), 0, c, h, w, device=p.device, dtype=p.dtype)

    def simulate(
        self,
        images: torch.Tensor,
        alpha: float = ALPHA,
        spont_steps: int = 100,
        stim_steps: int = 100,
        post_steps: int = 0,
        record: Sequence[int] = (),
        record_stride: int = 1,
        record_pool: str = "none",
        readout: str = "final",
        spont: Optional[tuple[list[torch.Tensor], dict[int, torch.Tensor]]] = None,
        check: Optional[Callable[[], None]] = None,
        rates: Optional[list[torch.Tensor]] = None,
    ) -> SimResult:
        """Upstream's eval protocol: states from 0, ``spont_steps`` with a zero image (computed
        once at batch 1 and broadcast, or given as ``spont`` from :meth:`spontaneous`), then
        ``stim_steps`` with ``images`` ``(B, C_in, S, S)`` (normalised), then ``post_steps``
        with a zero image. ``readout``: ``final`` (after the last stimulus step, upstream) or
        ``every`` (after each stimulus and post step). Time unit: one Euler step = alpha*tau.
        ``check`` is called before every Euler step (it may raise to stop). ``rates``: a list
        that receives each stimulus/post step's per-area population rates ``(B, depth)``."""
        if readout not in ("final", "every"):
            raise ValueError("readout must be 'final' or 'every'")
        if stim_steps < 1:
            raise ValueError("stim_steps must be >= 1")
        B = images.shape[0]
        with parametrize.cached():
            if spont is None:
                spont = self.spontaneous(spont_steps, alpha, record, record_stride, record_pool, check=check)
            s_state, s_rec = spont
            rs = [s.expand(B, *s.shape[1:]) for s in s_state]
            drive = self.drives(self.stem(images))
            rs, rec, logits = self.run_phase(rs, drive, stim_steps, alpha, record, record_stride, record_pool, readout == "every", check=check, rates=rates)
            final_logits = [self.readout(rs)] if readout == "final" else logits
            if post_steps:
                rs, rec2, logits2 = self.run_phase(
                    rs, (None, None), post_steps, alpha, record, record_stride, record_pool, readout == "every", check=check, rates=rates
                )
                for j in rec:
                    rec[j] += rec2[j]
                final_logits += logits2
        traces = {j: (torch.stack(v, 1) if v else self._empty(B, j, record_pool)) for j, v in rec.items()}
        return SimResult(torch.stack(final_logits, 1), traces, s_rec, s_state, rs)


# ---------------------------------------------------------------------- loading
class CheckpointError(ValueError):
    """A checkpoint that does not fit (one-line message); commands turn it into a UserError."""


def normalise_state_dict(sd: Mapping[str, Any], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Strip a leading ``module.`` (DDP), map old-style ``weight_g``/``weight_v`` weight-norm
    keys to the parametrization names, refuse training-stage keys (``area_bias.*``,
    ``target_*``, ``prelu.weight``, BatchNorm)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not isinstance(k, str):
            raise CheckpointError(f"{source}: state-dict key {k!r} is not a string")
        if k.startswith("module."):
            k = k[len("module.") :]
        if k.endswith(".weight_g"):
            k = k[: -len("weight_g")] + "parametrizations.weight.original0"
        elif k.endswith(".weight_v"):
            k = k[: -len("weight_v")] + "parametrizations.weight.original1"
        out[k] = v
    bad = [k for k in out if any(k.startswith(t) or ("." + t) in k or (t == "bn" and ".bn" in k) for t in _TRAINING_KEYS)]
    if bad:
        raise CheckpointError(
            f"{source} holds keys of an upstream training stage ({', '.join(bad[:3])}{'...' if len(bad) > 3 else ''}), "
            "not an inference CordsNet; use a stage-5 (final) checkpoint"
        )
    return out


def infer_hparams(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict[str, Any]:
    """Depth, classes, input channels, width and image size from upstream-named tensors."""
    try:
        js = [int(k.split(".")[1]) for k in sd if k.startswith("area_conv.")]
        depth = max(js) + 1
        classes = int(sd["out_fc.bias"].shape[0])
        v = sd["inp_conv.parametrizations.weight.original1"]
        in_channels, c0 = int(v.shape[1]), int(v.shape[0])
        h0 = int(sd["conv_bias.0"].shape[-1])
    except (KeyError, ValueError, IndexError, AttributeError):
        raise CheckpointError(f"{source} is not a CordsNet state dict (no area_conv.*, out_fc.bias, inp_conv or conv_bias.0 tensors)") from None
    if depth not in DEPTHS:
        raise CheckpointError(f"{source}: {depth} areas found; CordsNet has 2, 4, 6 or 8")
    width = c0 / 64
    image_size = 224 if (h0 == 56 and c0 == 64) else 4 * h0
    return dict(depth=depth, classes=classes, in_channels=in_channels, image_size=image_size, width=width, nonlinearity="relu")


def load_cordsnet(path: Path | str, expect: Optional[Mapping[str, Any]] = None) -> CordsNet:
    """Load a CordsNet from an upstream state dict (bare, under ``state_dict``/``model``,
    ``module.``-prefixed) or an rnntk checkpoint, strictly, with ``weights_only=True``.

    ``expect``: hyper-parameters the caller insists on (e.g. ``{"depth": 8}``); a checkpoint
    that disagrees raises :class:`CheckpointError` naming both values. Errors from the file
    itself (missing, pickled objects, corrupt) are :class:`rnntk.engine.UserError`.
    """
    from rnntk.engine.checkpoint import FORMAT, load_file, load_state_into
    from rnntk.engine.errors import UserError

    src = str(path)
    raw = load_file(path)
    hp: Optional[dict[str, Any]] = None
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        if raw.get("model") != "CordsNet":
            raise CheckpointError(f"{src} holds a {raw.get('model') or 'unnamed'} checkpoint, not a CordsNet")
        hp = dict(raw.get("hparams") or {})
        raw = raw.get("state_dict")
    elif isinstance(raw, dict):
        for key in ("state_dict", "model"):
            if isinstance(raw.get(key), dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise CheckpointError(f"{src} is not a state dict of tensors")
    sd = normalise_state_dict(raw, src)
    found = infer_hparams(sd, src)
    if hp is None:
        hp = found
    for key, want in (expect or {}).items():
        if want is None:
            continue
        have = hp.get(key)
        if (have is None or float(have) != float(want)) if isinstance(want, (int, float)) and not isinstance(want, bool) else have != want:
            raise CheckpointError(f"{src} is a CordsNet with {key} = {have}, but {key} = {want} was asked for")
    try:
        model = CordsNet(**hp)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{src}: hyper-parameters do not fit CordsNet ({e})") from None
    try:
        load_state_into(model, sd, source=src)
    except UserError as e:
        raise CheckpointError(str(e)) from None
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of stored values (weight-norm g and v counted, as in the state dict)."""
    return sum(p.numel() for p in model.parameters())


def effective_units(model: CordsNet) -> list[int]:
    """``N_j = C_j H_j W_j`` of each area's recurrent operator."""
    return [math.prod(s) for s in model.shapes]
