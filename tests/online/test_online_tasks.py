"""Task generators and local-file loaders of ``rnntk online-lru`` (O16 and the loaders on small
files written here)."""

import numpy as np
import pytest
import torch

from rnntk.online.tasks.copy import copy_length, copy_task
from rnntk.online.tasks.listops import VOCAB, evaluate, listops_synth
from rnntk.online.tasks.seq_digits import seq_digits
from rnntk.online.tasks.seq_loaders import DataError, load_cifar10, load_imdb, load_lra_listops


def test_O16_copy_generator():
    """O16: shapes (b, T, 8) / (b, T, 7), stop token position, mask sums to P, targets equal the
    inputs shifted by P + pad + 1 steps; seeded by the given generator."""
    P, pad = 5, 7
    d = copy_task(16, P, pad, 7, torch.Generator().manual_seed(0))
    T = copy_length(P, pad)
    assert T == 18 and d.x.shape == (16, T, 8) and d.y.shape == (16, T, 7) and d.n_classes == 2
    assert torch.all(d.x[:, P + pad, 7] == 1) and d.x[:, :, 7].sum() == 16
    assert torch.all(d.mask.sum(1) == P) and torch.all(d.mask[:, T - P :] == 1)
    shift = P + pad + 1
    assert torch.equal(d.y[:, shift:].float(), d.x[:, : T - shift, :7])
    assert torch.all(d.y[:, : T - P] == 0) and torch.all(d.x[:, P:, :7] == 0)
    assert 0.35 < float(d.x[:, :P, :7].mean()) < 0.65
    again = copy_task(16, P, pad, 7, torch.Generator().manual_seed(0))
    assert torch.equal(again.x, d.x)
    with pytest.raises(ValueError):
        copy_task(4, 0)


def test_digits_pixel_row_and_padding():
    tr, va, te = seq_digits("pixel", 0, torch.Generator().manual_seed(0))
    assert len(tr) + len(va) + len(te) == 1797 and len(te) == 297
    assert tr.x.shape[1:] == (64, 1) and tr.x.max() <= 1 and tr.n_classes == 10
    assert torch.all(tr.eval_mask.sum(1) == 1) and torch.all(tr.eval_mask[:, -1] == 1)
    assert torch.all(tr.y[:, :, 0] == tr.y[:, :1, 0])  # dense labels
    tr2, _, _ = seq_digits("row", 100, torch.Generator().manual_seed(0))
    assert tr2.x.shape[1:] == (100, 8) and torch.all(tr2.x[:, 8:] == 0)
    with pytest.raises(ValueError, match="shorter"):
        seq_digits("pixel", 10)


def test_listops_generator_values_and_cap():
    assert evaluate("[MAX 2 9 [MIN 4 7 ] 0 ]".split()) == 9
    assert evaluate("[SM 7 8 [MED 1 5 3 ] ]".split()) == (7 + 8 + 3) % 10
    d = listops_synth(40, max_len=64, generator=torch.Generator().manual_seed(1))
    assert d.x.shape[1] <= 64 and d.vocab == len(VOCAB) and d.d_in == len(VOCAB)
    lengths = d.mask.sum(1).long()
    assert torch.all(lengths <= 64) and torch.all(d.eval_mask.argmax(1) == lengths - 1)
    inv = {i: t for i, t in enumerate(VOCAB)}
    for i in range(5):
        toks = [inv[int(t)] for t in d.x[i, : lengths[i]]]
        assert evaluate(toks) == int(d.y[i, 0, 0])
    x = d.batch(torch.arange(3))[0]
    assert x.shape == (3, d.x.shape[1], len(VOCAB)) and torch.all(x.sum(-1) == 1)


def _cifar_files(folder, n=6):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = np.zeros((n, 3073), dtype=np.uint8)
        rec[:, 0] = rng.integers(0, 10, n)
        rec[:, 1:] = rng.integers(0, 256, (n, 3072))
        rec.tofile(folder / name)
    return rec


def test_cifar_binary_loader(tmp_path):
    last = _cifar_files(tmp_path)
    tr, va, te = load_cifar10(tmp_path, torch.Generator().manual_seed(0))
    assert len(tr) + len(va) == 30 and len(te) == 6 and te.x.shape[1:] == (1024, 3)
    assert torch.equal(te.y[:, 0, 0], torch.tensor(last[:, 0], dtype=torch.long))
    # pixel t of record 0 is (R, G, B) at position t, normalised by the training statistics
    raw = torch.tensor(last[0, 1:].reshape(3, 1024).T, dtype=torch.float32) / 255
    assert torch.corrcoef(torch.stack([raw[:, 0], te.x[0, :, 0]]))[0, 1] > 0.999
    (tmp_path / "test_batch.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="malformed CIFAR-10 binary file .*test_batch.bin"):
        load_cifar10(tmp_path, torch.Generator())
    (tmp_path / "data_batch_3.bin").unlink()
    with pytest.raises(DataError, match="missing data file .*data_batch_3.bin"):
        load_cifar10(tmp_path, torch.Generator())
    with pytest.raises(DataError, match="no such data folder"):
        load_cifar10(tmp_path / "nope", torch.Generator())


def test_lra_listops_tsv_loader(tmp_path):
    rows = ["Source\tTarget", "( ( [MAX 2 9 ] 3 ) )\t9", "[SM 1 2 ]\t3"]
    for split in ("train", "val", "test"):
        (tmp_path / f"basic_{split}.tsv").write_text("\n".join(rows) + "\n")
    tr, va, te = load_lra_listops(tmp_path)
    assert len(tr) == 2 and tr.x.shape[1] == 9 and tr.mask.sum(1).tolist() == [9, 4]
    assert tr.y[:, 0, 0].tolist() == [9, 3]
    (tmp_path / "basic_val.tsv").write_text("Source\tTarget\n[MAX 2 BOGUS ]\t2\n")
    with pytest.raises(DataError, match="line 2: unknown token 'BOGUS'"):
        load_lra_listops(tmp_path)
    (tmp_path / "basic_val.tsv").write_text("expr,label\n")
    with pytest.raises(DataError, match="first line must be"):
        load_lra_listops(tmp_path)


def test_imdb_byte_loader(tmp_path):
    root = tmp_path / "aclImdb"
    for split in ("train", "test"):
        for lab, text in (("pos", "Great film!"), ("neg", "Bad.")):
            (root / split / lab).mkdir(parents=True)
            for i in range(3):
                (root / split / lab / f"{i}_1.txt").write_text(text * (i + 1))
    tr, va, te = load_imdb(tmp_path, torch.Generator().manual_seed(0), max_len=16)
    assert len(tr) + len(va) == 6 and len(te) == 6 and te.vocab == 257
    assert te.x.shape[1] == 16 and int(te.x[0, 0]) == ord("B") + 1 and int(te.y[0, 0, 0]) == 0
    assert te.mask.sum(1).tolist()[:3] == [4, 8, 12]
    (root / "test" / "neg" / "0_1.txt").write_text("")
    with pytest.raises(DataError, match="empty file"):
        load_imdb(tmp_path, torch.Generator())
    (root / "test" / "neg" / "0_1.txt").write_text("ok")
    import shutil

    shutil.rmtree(root / "test" / "pos")
    with pytest.raises(DataError, match="missing IMDB folder"):
        load_imdb(tmp_path, torch.Generator())
