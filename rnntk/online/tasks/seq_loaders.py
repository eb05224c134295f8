"""Sequence-classification data for ``rnntk online-lru``: the :class:`SeqData` container and
loaders of real data sets from local files the user points at (``--data-dir``); nothing is
downloaded and nothing is unpickled.

- CIFAR-10 binary batches (``data_batch_1..5.bin``, ``test_batch.bin``; records of 1 label
  byte + 3072 bytes R,G,B planes) as sequential colour CIFAR: T = 1024 pixels, d_in = 3.
- LRA ListOps TSV (``basic_train.tsv``, ``basic_val.tsv``, ``basic_test.tsv``; header
  ``Source<TAB>Target``), tokens as in :mod:`rnntk.online.tasks.listops`.
- IMDB ``aclImdb`` text (``train|test/pos|neg/*.txt``) at byte level (vocabulary 256 + pad).

Every missing or malformed file raises :class:`DataError` with a one-line message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch


class DataError(ValueError):
    """A missing or malformed data file (one-line message)."""


@dataclass
class SeqData:
    """One split of a sequence task.

    x: (n, T, d_in) float features, or (n, T) int64 token ids when ``vocab`` > 0 (one-hot at
    batch time); y: (n, T, n_out) int64 targets per step (dense labels); mask: (n, T) loss mask;
    eval_mask: (n, T) steps scored for accuracy (copy: the output window; classification: the
    last real step)."""

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    eval_mask: torch.Tensor
    n_classes: int
    vocab: int = 0

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def d_in(self) -> int:
        return self.vocab if self.vocab else int(self.x.shape[-1])

    @property
    def n_out(self) -> int:
        return int(self.y.shape[-1])

    @property
    def steps(self) -> int:
        return int(self.x.shape[1])

    def batch(self, idx: torch.Tensor, device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
        """(x (b, T, d_in) float, y, mask, eval_mask) of the rows ``idx``, on ``device``."""
        x = self.x[idx]
        if self.vocab:
            x = torch.nn.functional.one_hot(x, self.vocab)
        return (
            x.to(device=device, dtype=dtype),
            self.y[idx].to(device),
            self.mask[idx].to(device=device, dtype=dtype),
            self.eval_mask[idx].to(device=device, dtype=dtype),
        )


def classification(x: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor, n_classes: int, vocab: int = 0) -> SeqData:
    """A :class:`SeqData` with dense labels: loss on the real steps (< length), accuracy at
    the last real step. x: (n, T[, d]); labels, lengths: (n,)."""
    n, T = x.shape[:2]
    t = torch.arange(T).unsqueeze(0)
    mask = (t < lengths.unsqueeze(1)).float()
    ev = (t == (lengths - 1).unsqueeze(1)).float()
    y = labels.long().view(n, 1, 1).expand(n, T, 1).contiguous()
    return SeqData(x, y, mask, ev, n_classes, vocab)


def split_off(data: SeqData, n_val: int, generator: torch.Generator) -> tuple[SeqData, SeqData]:
    """Random (train, val) split of ``data`` with ``n_val`` validation rows."""
    perm = torch.randperm(len(data), generator=generator)

    def take(i: torch.Tensor) -> SeqData:
        return SeqData(data.x[i], data.y[i], data.mask[i], data.eval_mask[i], data.n_classes, data.vocab)

    return take(perm[n_val:]), take(perm[:n_val])


def _need(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"missing data file {path}")
    return path


def load_cifar10(data_dir: Path | str, generator: torch.Generator, n_val: int = 5000, limit: int = 0) -> tuple[SeqData, SeqData, SeqData]:
    """Sequential colour CIFAR-10 from the binary batches in ``data_dir``: (train, val, test),
    x (n, 1024, 3) normalised per channel, 10 classes. ``limit`` > 0 keeps the first rows."""
    d = Path(data_dir)
    if not d.is_dir():
        raise DataError(f"no such data folder: {d}")

    def read(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for nm in names:
            raw = np.fromfile(_need(d / nm), dtype=np.uint8)
            if raw.size == 0 or raw.size % 3073:
                raise DataError(f"malformed CIFAR-10 binary file {d / nm}: {raw.size} bytes is not a multiple of 3073")
            rec = raw.reshape(-1, 3073)
            if rec[:, 0].max() > 9:
                raise DataError(f"malformed CIFAR-10 binary file {d / nm}: label byte {int(rec[:, 0].max())} > 9")
            ys.append(torch.from_numpy(rec[:, 0].astype(np.int64)))
            xs.append(torch.from_numpy(rec[:, 1:].reshape(-1, 3, 1024).transpose(0, 2, 1).astype(np.float32) / 255.0))
        return torch.cat(xs), torch.cat(ys)

    xtr, ytr = read([f"data_batch_{i}.bin" for i in range(1, 6)])
    xte, yte = read(["test_batch.bin"])
    if limit:
        xtr, ytr, xte, yte = xtr[:limit], ytr[:limit], xte[:limit], yte[:limit]
    mean, std = xtr.mean((0, 1)), xtr.std((0, 1)).clamp(min=1e-6)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    full = classification(xtr, ytr, torch.full((len(ytr),), 1024), 10)
    n_val = min(n_val, len(ytr) // 10)
    train, val = split_off(full, n_val, generator)
    return train, val, classification(xte, yte, torch.full((len(yte),), 1024), 10)


def load_lra_listops(data_dir: Path | str, max_len: int = 2048, limit: int = 0) -> tuple[SeqData, SeqData, SeqData]:
    """LRA ListOps from ``basic_{train,val,test}.tsv`` in ``data_dir`` (tokens of
    :data:`rnntk.online.tasks.listops.VOCAB`, sequences cut at ``max_len``)."""
    from rnntk.online.tasks.listops import VOCAB, encode

    d = Path(data_dir)
    if not d.is_dir():
        raise DataError(f"no such data folder: {d}")

    def read(name: str) -> SeqData:
        path = _need(d / name)
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if not lines or lines[0].split("\t")[:2] != ["Source", "Target"]:
            raise DataError(f"malformed ListOps file {path}: first line must be 'Source<TAB>Target'")
        seqs, labels = [], []
        for i, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2 or not parts[1].strip().isdigit() or not 0 <= int(parts[1]) <= 9:
                raise DataError(f"malformed ListOps file {path}, line {i}: expected 'expression<TAB>label 0-9'")
            try:
                seqs.append(encode(parts[0].split())[:max_len])
            except KeyError as e:
                raise DataError(f"malformed ListOps file {path}, line {i}: unknown token {e}") from None
            labels.append(int(parts[1]))
            if limit and len(seqs) >= limit:
                break
        if not seqs:
            raise DataError(f"malformed ListOps file {path}: no examples")
        T = max(len(s) for s in seqs)
        x = torch.zeros(len(seqs), T, dtype=torch.long)
        for j, s in enumerate(seqs):
            x[j, : len(s)] = torch.tensor(s)
        return classification(x, torch.tensor(labels), torch.tensor([len(s) for s in seqs]), 10, vocab=len(VOCAB))

    return read("basic_train.tsv"), read("basic_val.tsv"), read("basic_test.tsv")


def load_imdb(data_dir: Path | str, generator: torch.Generator, max_len: int = 4096, n_val: int = 2500, limit: int = 0) -> tuple[SeqData, SeqData, SeqData]:
    """IMDB reviews at byte level from an ``aclImdb`` folder: token = byte + 1 (0 = pad),
    vocabulary 257, cut at ``max_len``; 2 classes (neg 0, pos 1). The validation split is
    taken from the training reviews (upstream has none and selects on the test set)."""
    d = Path(data_dir)
    if (d / "aclImdb").is_dir():
        d = d / "aclImdb"
    if not d.is_dir():
        raise DataError(f"no such data folder: {d}")

    def read(split: str) -> SeqData:
        seqs, labels = [], []
        for label, sub in ((0, "neg"), (1, "pos")):
            folder = d / split / sub
            if not folder.is_dir():
                raise DataError(f"missing IMDB folder {folder} (expected aclImdb/{{train,test}}/{{pos,neg}}/*.txt)")
            files = sorted(folder.glob("*.txt"))
            if not files:
                raise DataError(f"malformed IMDB folder {folder}: no .txt reviews")
            for f in files[: limit or None]:
                b = f.read_bytes()[:max_len]
                if not b:
                    raise DataError(f"malformed IMDB review {f}: empty file")
                seqs.append(np.frombuffer(b, dtype=np.uint8).astype(np.int64) + 1)
                labels.append(label)
        T = max(len(s) for s in seqs)
        x = torch.zeros(len(seqs), T, dtype=torch.long)
        for j, s in enumerate(seqs):
            x[j, : len(s)] = torch.from_numpy(s)
        return classification(x, torch.tensor(labels), torch.tensor([len(s) for s in seqs]), 2, vocab=257)

    full = read("train")
    train, val = split_off(full, min(n_val, len(full) // 10 or 1), generator)
    return train, val, read("test")
