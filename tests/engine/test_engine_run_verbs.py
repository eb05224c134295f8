"""The verbs methods use instead of touching ``run.h5``: annotate, read_metrics, rows /
truncate (results that grow a block of trials per step, cut back on --resume) and rng
(named random streams). Oracle: the file read back with plain h5py, and torch generators
seeded by hand from :func:`derive_seed`."""

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from rnntk.engine import Run
from rnntk.engine.seeding import derive_seed, stream_generator


def _open(out, **kw):
    return Run.open(out, command="verbs", seed=5, device="cpu", progress="none", log_every=100, **kw)


def test_annotate_root_and_group(tmp_path):
    with _open(tmp_path / "a") as run:
        run.annotate(task="xor", n_bits=3, flossing=True, shape=[2, 3])
        run.annotate("results", classes="cat,dog")
        run.annotate("traces", group="kept as an attribute named group")
    with h5py.File(tmp_path / "a" / "run.h5", "r") as f:
        assert f.attrs["task"] == "xor" and f.attrs["n_bits"] == 3 and bool(f.attrs["flossing"])
        assert f.attrs["shape"] == "[2, 3]"  # containers as JSON
        assert f["results"].attrs["classes"] == "cat,dog"
        assert f["traces"].attrs["group"] == "kept as an attribute named group"


def test_read_metrics_flushes_and_selects(tmp_path):
    with _open(tmp_path / "m") as run:
        assert run.read_metrics() == {}
        for step in range(5):
            run.log(step, loss=1.0 / (step + 1), **({"val": 2.0 * step} if step % 2 == 0 else {}))
        m = run.read_metrics(["loss", "val", "never_logged"])  # rows still buffered (log_every=100)
        assert set(m) == {"step", "loss", "val"}
        np.testing.assert_array_equal(m["step"], np.arange(5))
        np.testing.assert_allclose(m["loss"], 1.0 / np.arange(1, 6))
        np.testing.assert_array_equal(np.isnan(m["val"]), [False, True, False, True, False])
        assert {"step", "loss", "val", "wall_time"} == set(run.read_metrics())
    with h5py.File(tmp_path / "m" / "run.h5", "r") as f:
        np.testing.assert_allclose(f["metrics/loss"][:], m["loss"])


def test_rows_grow_truncate_and_read(tmp_path):
    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((k, 3, 4)).astype(np.float32) for k in (2, 5, 1)]
    with _open(tmp_path / "r") as run:
        rows = run.rows("logits", (3, 4), chunk_rows=4, dims="trial,step,class", units="logit")
        assert len(rows) == 0
        for b in blocks:
            rows.append(torch.from_numpy(b))
        assert len(rows) == 8
        np.testing.assert_array_equal(rows.read(), np.concatenate(blocks))
        again = run.rows("logits", (3, 4))  # opened as it is, attrs kept
        assert len(again) == 8
        again.truncate(3)
        np.testing.assert_array_equal(rows.read(), np.concatenate(blocks)[:3])
        run.trace("layer0", np.ones((4, 2, 3)), dt=0.01)
        run.truncate("traces/layer0", 1)
        run.truncate("traces/absent", 0)  # no-op
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        ds = f["results/logits"]
        assert ds.shape == (3, 3, 4) and ds.maxshape == (None, 3, 4) and ds.dtype == np.float32
        assert ds.chunks == (4, 3, 4) and ds.compression == "gzip"
        assert ds.attrs["dims"] == "trial,step,class" and ds.attrs["units"] == "logit"
        assert f["traces/layer0"].shape == (1, 2, 3)


def test_rows_continue_after_resume(tmp_path):
    """A resumed run reopens run.h5 when it commits; rows made before continue after it."""
    out = tmp_path / "res"
    with _open(out) as run:
        run.track(nn.Linear(2, 2))
        for step in run.steps(2):
            run.rows("x", (2,)).append(np.full((1, 2), step, dtype=np.float32))
            run.log(step, loss=1.0)
    with _open(out, resume=True) as run:
        run.track(nn.Linear(2, 2))
        for step in run.steps(4):
            rows = run.rows("x", (2,))
            rows.truncate(step)
            rows.append(np.full((1, 2), step, dtype=np.float32))
            run.log(step, loss=1.0)
    with h5py.File(out / "run.h5", "r") as f:
        np.testing.assert_array_equal(f["results/x"][:, 0], [0, 1, 2, 3])


def test_rng_streams(tmp_path):
    with _open(tmp_path / "g") as run:
        a1 = torch.rand(6, generator=run.rng("data/val"))
        a2 = torch.rand(6, generator=run.rng("data/val"))
        b = torch.rand(6, generator=run.rng("data/shuffle/0"))
        legacy = torch.rand(6, generator=run.rng("sofo-train/val", legacy_offset=10_007))
        assert run.rng("x", device="cpu").device.type == "cpu"
    torch.testing.assert_close(a1, a2, rtol=0, atol=0)  # same stream, same numbers
    assert not torch.equal(a1, b)
    oracle = torch.rand(6, generator=torch.Generator().manual_seed(derive_seed(5, "data/val")))
    torch.testing.assert_close(a1, oracle, rtol=0, atol=0)
    torch.testing.assert_close(legacy, torch.rand(6, generator=torch.Generator().manual_seed(5 + 10_007)), rtol=0, atol=0)
    with _open(tmp_path / "n") as run:
        x = run.np_rng("baseline").standard_normal(4)
        y = run.np_rng("baseline", legacy_offset=0).standard_normal(4)
    np.testing.assert_array_equal(x, np.random.default_rng(derive_seed(5, "baseline")).standard_normal(4))
    np.testing.assert_array_equal(y, np.random.default_rng(5).standard_normal(4))
    g = stream_generator(7, "s")
    assert g.initial_seed() == derive_seed(7, "s") and stream_generator(7, "s", legacy_offset=3).initial_seed() == 10


def test_read_metrics_is_the_metrics_reader(tmp_path):
    """The verb and the engine's file reader agree (one layout)."""
    from rnntk.engine import read_metrics

    with _open(tmp_path / "k") as run:
        for step in range(3):
            run.log(step, a=float(step))
        live = run.read_metrics()
    saved = read_metrics(tmp_path / "k" / "run.h5")
    assert set(live) == set(saved)
    for k in ("step", "a"):
        np.testing.assert_array_equal(live[k], saved[k])


@pytest.mark.parametrize("where", ["results", "/results"])
def test_annotate_group_spelling(tmp_path, where):
    with _open(tmp_path / where.strip("/")) as run:
        run.annotate(where, note="x")
    with h5py.File(tmp_path / where.strip("/") / "run.h5", "r") as f:
        assert f["results"].attrs["note"] == "x"


def test_figures_skip_a_maker_the_file_cannot_feed(tmp_path, capsys, monkeypatch):
    """A resumed run that an older rnntk started lacks datasets a newer maker reads: run.figures()
    makes the figures it can, warns in one line for the other, and the run still closes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rnntk.engine import figures

    def good(reader):
        fig, ax = plt.subplots()
        ax.plot(reader.metrics()["loss"])
        return [("loss_curve", fig)]

    def stale(reader):
        return [("needs_new", reader.f["/results/added_later"][()])]

    monkeypatch.setitem(figures.FIGURES, "verbs", [good, stale])
    with _open(tmp_path / "f") as run:  # a fresh run: a maker's error is a bug, and it surfaces
        run.log(0, loss=1.0)
        run.log(1, loss=0.5)
        with pytest.raises(KeyError):
            run.figures()
    capsys.readouterr()
    with _open(tmp_path / "f", resume=True) as run:  # no checkpoint yet: it starts again, resumed
        run.log(0, loss=1.0)
        run.log(1, loss=0.5)
        made = run.figures()
    assert [p.name for p in made] == ["loss_curve.png"]
    assert (tmp_path / "f" / "loss_curve.png").stat().st_size > 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rnntk: warning")]
    assert len(err) == 1 and err[0].startswith("rnntk: warning: a figure could not be made") and "stale: KeyError" in err[0]
    with h5py.File(tmp_path / "f" / "run.h5", "r") as f:
        np.testing.assert_allclose(f["metrics/loss"][:], [1.0, 0.5])
