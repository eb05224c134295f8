"""The multi-layer sequence model of the online-learning paper (spec §1.2–1.3).

x (batch, T, d_in) → encoder Linear(d_in → H) → L × SequenceLayer → [readout Linear(H → R)
+ ReLU] → decoder Linear(→ m·K) → log-softmax over K: log-probs (batch, T, m, K).

SequenceLayer: ``x → [LayerNorm if prenorm] → recurrent layer → post → x + post →
[LayerNorm if postnorm]``; ``post`` is one of full_glu, half_glu1, half_glu2, gelu, none;
dropout masks are shared across time (one per sequence and feature, :meth:`SeqModel.sample_masks`).
The model itself only computes values; how gradients flow through the recurrences (BPTT or an
online rule) is decided by :mod:`rnntk.online`, which drives the layers one by one.

Pooling: none (per-step logits), pool (mean over time, then decode; one prediction),
last (per-step logits, scored at the last step), pool_st (the running mean of the layer
stack's output up to t in the forward pass, the identity on x_t in the backward pass).
"""

from __future__ import annotations

import math
from typing import Optional, Union, cast

import torch
import torch.nn.functional as F
from torch import nn

from rnntk.online.models.lru import LRU
from rnntk.online.models.rnns import GRUCell, LinearRNN, _trunc_normal

ACTIVATIONS = ("full_glu", "half_glu1", "half_glu2", "gelu", "none")
POOLINGS = ("none", "pool", "last", "pool_st")
ARCHS = ("lru", "rnn", "gru")

#: A recurrent layer of the sequence model (one per arch of ARCHS).
RecLayer = Union[LRU, LinearRNN, GRUCell]


def dense(d_in: int, d_out: int, generator: Optional[torch.Generator]) -> nn.Linear:
    """Linear layer with Flax's LeCun-normal (truncated) kernel and zero bias."""
    lin = nn.Linear(d_in, d_out)
    with torch.no_grad():
        lin.weight.copy_(_trunc_normal((d_out, d_in), 1.0 / math.sqrt(d_in) / 0.87962566, generator))
        lin.bias.zero_()
    return lin


class SequenceLayer(nn.Module):
    """Norm + recurrent layer + GLU/MLP + residual (see module doc)."""

    rec: RecLayer
    norm: nn.Module
    out1: nn.Linear
    out2: nn.Linear
    dropout: float

    def __init__(
        self,
        rec: RecLayer,
        d_model: int,
        *,
        activation: str = "full_glu",
        norm: str = "pre",
        dropout: float = 0.1,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}' ({', '.join(ACTIVATIONS)})")
        if norm not in ("pre", "post", "none"):
            raise ValueError(f"unknown norm '{norm}' (pre, post, none)")
        self.rec, self.activation, self.norm_kind, self.dropout = rec, activation, norm, float(dropout)
        self.norm = nn.LayerNorm(d_model, eps=1e-6) if norm != "none" else nn.Identity()
        if activation == "full_glu":
            self.out1 = dense(d_model, d_model, generator)
        if activation in ("full_glu", "half_glu1", "half_glu2"):
            self.out2 = dense(d_model, d_model, generator)

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        """The recurrent layer's input: (batch, T, H)."""
        return self.norm(x) if self.norm_kind == "pre" else x

    def post(self, x: torch.Tensor, y: torch.Tensor, masks: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
        """Layer output from its input x and the recurrent layer's output y, (batch, T, H).
        masks: two dropout masks (batch, 1, H) or None."""
        m1, m2 = masks if masks is not None else (None, None)

        def drop(z: torch.Tensor, m: Optional[torch.Tensor]) -> torch.Tensor:
            return z if m is None else z * m

        a = self.activation
        if a == "none":
            z = y
        elif a == "gelu":
            z = drop(F.gelu(y, approximate="tanh"), m1)
        elif a == "full_glu":
            g = drop(F.gelu(y, approximate="tanh"), m1)
            z = drop(self.out1(g) * torch.sigmoid(self.out2(g)), m2)
        elif a == "half_glu1":
            g = drop(F.gelu(y, approximate="tanh"), m1)
            z = drop(g * torch.sigmoid(self.out2(g)), m2)
        else:  # half_glu2
            g = drop(F.gelu(y, approximate="tanh"), m1)
            z = drop(y * torch.sigmoid(self.out2(g)), m2)
        out = x + z
        return self.norm(out) if self.norm_kind == "post" else out


class SeqModel(nn.Module):
    """Encoder, L sequence layers, optional readout, decoder (see module doc).

    ``forward(x)`` → log-probs (batch, T', n_out, n_classes) with T' = 1 for ``pool`` and T
    otherwise; gradients of ``forward`` are those of BPTT (parallel scan for the LRU)."""

    encoder: nn.Linear
    layers: nn.ModuleList
    readout: Optional[nn.Linear]
    decoder: nn.Linear
    _hp: dict[str, object]

    def __init__(
        self,
        d_in: int,
        n_classes: int,
        *,
        n_out: int = 1,
        arch: str = "lru",
        layers: int = 4,
        d_model: int = 128,
        d_hidden: int = 64,
        activation: str = "full_glu",
        norm: str = "pre",
        dropout: float = 0.1,
        pooling: str = "none",
        readout: int = 0,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = 6.28,
        rnn_activation: str = "linear",
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown arch '{arch}' ({', '.join(ARCHS)})")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling '{pooling}' ({', '.join(POOLINGS)})")
        self.arch, self.pooling, self.n_out, self.n_classes = arch, pooling, n_out, n_classes
        self.encoder = dense(d_in, d_model, generator)

        def make_rec() -> RecLayer:
            if arch == "lru":
                return LRU(d_model, d_hidden, r_min=r_min, r_max=r_max, max_phase=max_phase, generator=generator)
            if arch == "rnn":
                return LinearRNN(d_model, d_hidden, activation=rnn_activation, generator=generator)
            return GRUCell(d_model, d_hidden, generator=generator)

        self.layers = nn.ModuleList(
            [SequenceLayer(make_rec(), d_model, activation=activation, norm=norm, dropout=dropout, generator=generator) for _ in range(layers)]
        )
        self.readout = dense(d_model, readout, generator) if readout else None
        self.decoder = dense(readout or d_model, n_out * n_classes, generator)

    @property
    def seq_layers(self) -> list[SequenceLayer]:
        """The sequence layers of ``self.layers`` (a ModuleList of SequenceLayer), typed."""
        return [cast(SequenceLayer, lay) for lay in self.layers]

    @property
    def recs(self) -> list[RecLayer]:
        return [lay.rec for lay in self.seq_layers]

    def sample_masks(
        self, batch: int, generator: Optional[torch.Generator] = None, device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32
    ) -> list[Optional[tuple[torch.Tensor, torch.Tensor]]]:
        """Dropout masks shared across time, per layer: two (batch, 1, H) inverted-dropout
        masks, or None when not training or dropout is 0."""
        out: list[Optional[tuple[torch.Tensor, torch.Tensor]]] = []
        for lay in self.seq_layers:
            p = lay.dropout
            if not self.training or p <= 0:
                out.append(None)
                continue
            H = lay.rec.d_model
            keep = torch.rand(2, batch, 1, H, generator=generator, device=generator.device if generator is not None else device) >= p
            m = (keep.to(dtype) / (1 - p)).to(device)
            out.append((m[0], m[1]))
        return out

    def pool(self, z: torch.Tensor, carry: Optional[tuple[torch.Tensor, float]] = None) -> tuple[torch.Tensor, tuple[torch.Tensor, float]]:
        """Apply the pooling to the stack output z (batch, T, H). carry = (running sum
        (batch, H), steps so far) from earlier chunks (pool_st in streaming). Returns
        (pooled (batch, T' , H), new carry)."""
        if self.pooling == "pool":
            return z.mean(1, keepdim=True), (z.sum(1), float(z.shape[1]))
        if self.pooling != "pool_st":
            return z, (z[:, -1], 0.0)
        s0, n0 = carry if carry is not None else (torch.zeros_like(z[:, 0]), 0.0)
        csum = s0.unsqueeze(1) + torch.cumsum(z.detach(), 1)
        cnt = n0 + torch.arange(1, z.shape[1] + 1, device=z.device, dtype=z.dtype).view(1, -1, 1)
        mean = csum / cnt
        return z + (mean - z.detach()), (csum[:, -1], n0 + z.shape[1])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(batch, T, H) → log-probs (batch, T, n_out, n_classes)."""
        if self.readout is not None:
            z = torch.relu(self.readout(z))
        logits = self.decoder(z)
        return torch.log_softmax(logits.view(*logits.shape[:-1], self.n_out, self.n_classes), -1)

    def forward(self, x: torch.Tensor, masks: Optional[list] = None) -> torch.Tensor:
        z = self.encoder(x)
        masks = masks or [None] * len(self.layers)
        for lay, m in zip(self.seq_layers, masks):
            u = lay.pre(z)
            z = lay.post(z, lay.rec(u), m)
        z, _ = self.pool(z)
        return self.decode(z)

    def hparams(self) -> dict:
        """Constructor arguments (for checkpoints)."""
        return dict(self._hp)


def build_seq_model(**kw: object) -> SeqModel:
    """:class:`SeqModel` with its constructor arguments remembered for checkpoints
    (``generator`` is not stored)."""
    m = SeqModel(**kw)  # type: ignore[arg-type]
    m._hp = {k: v for k, v in kw.items() if k != "generator"}
    return m
