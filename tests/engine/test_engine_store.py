"""The run.h5 layout: metrics columns, traces, tables, results; crash safety under kill -9."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np

from rnntk.engine import RunFile, summarize


def test_metrics_columns_align_and_backfill(tmp_path):
    f = RunFile(tmp_path / "r.h5", "w")
    f.append_metrics([{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.5}])
    f.append_metrics([{"step": 2, "loss": 0.25, "val": 9.0}])
    f.close()
    with h5py.File(tmp_path / "r.h5", "r") as h:
        assert h["metrics/step"][:].tolist() == [0, 1, 2]
        assert h["metrics/step"].dtype == np.int64
        assert h["metrics/loss"][:].tolist() == [1.0, 0.5, 0.25]
        val = h["metrics/val"][:]
        assert np.isnan(val[:2]).all() and val[2] == 9.0
        assert h["metrics/loss"].maxshape == (None,)
        assert h.attrs["format"] == "rnntk-run"


def test_truncate_metrics_drops_rows_from_step(tmp_path):
    f = RunFile(tmp_path / "r.h5", "w")
    f.append_metrics([{"step": s, "loss": float(s)} for s in range(10)])
    assert f.truncate_metrics(6) == 6
    f.append_metrics([{"step": 6, "loss": 60.0}])
    f.close()
    with h5py.File(tmp_path / "r.h5", "r") as h:
        assert h["metrics/step"][:].tolist() == [0, 1, 2, 3, 4, 5, 6]
        assert h["metrics/loss"][-1] == 60.0


def test_trace_layout_attrs_scale_and_gzip(tmp_path):
    f = RunFile(tmp_path / "r.h5", "w")
    x = np.random.default_rng(0).standard_normal((4, 30, 5))
    f.write_trace("activity", x, dt=0.01, units="Hz", t0=0.5, description="rates")
    f.write_trace("activity", x[:2], dt=0.01, append=True)
    f.close()
    with h5py.File(tmp_path / "r.h5", "r") as h:
        d = h["traces/activity"]
        assert d.shape == (6, 30, 5) and d.dtype == np.float32
        np.testing.assert_array_equal(d[:4], x.astype(np.float32))
        assert d.compression == "gzip" and d.shuffle
        assert d.attrs["dt"] == 0.01 and d.attrs["units"] == "Hz" and d.attrs["t0"] == 0.5
        assert json.loads(d.attrs["dims"]) == ["trial", "time", "unit"]
        assert [d.dims[i].label for i in range(3)] == ["trial", "time", "unit"]
        t = d.dims[1][0][:]
        np.testing.assert_allclose(t, 0.5 + 0.01 * np.arange(30))


def test_trace_chunks_stay_under_one_mib(tmp_path):
    f = RunFile(tmp_path / "r.h5", "w")
    f.write_trace("big", np.zeros((64, 1000, 100)), dt=0.002)
    f.close()
    with h5py.File(tmp_path / "r.h5", "r") as h:
        c = h["traces/big"].chunks
        assert np.prod(c) * 4 <= 1 << 20


def test_tables_results_and_summary(tmp_path):
    f = RunFile(tmp_path / "r.h5", "w")
    f.set_attrs(command="demo", status="completed", seed=3)
    f.write_table("trials", {"condition": ["left", "right"], "coherence": np.array([0.1, -0.2])})
    f.write_array("results", "eigvals", np.array([1 + 2j, 0.5 - 1j]))
    f.write_array("results", "lyapunov", np.array([[-0.1, -0.5]]))
    f.append_metrics([{"step": 0, "loss": 3.0}, {"step": 1, "loss": 1.0}, {"step": 2, "loss": 2.0}])
    f.close()
    s = summarize(tmp_path / "r.h5")
    assert s["attrs"]["command"] == "demo"
    assert s["metrics"]["loss"] == {"n": 3, "first": 3.0, "last": 2.0, "min": 1.0, "max": 3.0, "units": ""}
    assert s["results"]["eigvals"]["dtype"] == "complex128"
    assert s["trials"]["condition"]["shape"] == [2]
    with h5py.File(tmp_path / "r.h5", "r") as h:
        assert h["trials/condition"].asstr()[:].tolist() == ["left", "right"]
        np.testing.assert_array_equal(h["results/eigvals"][:], [1 + 2j, 0.5 - 1j])


_WRITER = textwrap.dedent(
    """
    import sys, time
    from rnntk.engine import Run
    run = Run.open(sys.argv[1], command="killtest", config={"a": 1}, seed=0, device="cpu",
                   progress="none", log_every=5, flush_secs=1e9)
    for step in run.steps(10**9):
        run.log(step, loss=0.5 * step, other=float(step) ** 2)
        if (step + 1) % 5 == 0:
            print(f"flushed {run.h5.n_rows()}", flush=True)
        time.sleep(0.002)
    """
)


def test_kill_9_leaves_readable_file_with_every_flushed_row(tmp_path):
    """Oracle: the child reports how many rows it has flushed; after SIGKILL the file must
    open and hold at least that many rows, with the values the child wrote."""
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-c", _WRITER, str(out)], stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    flushed = 0
    for line in p.stdout:
        flushed = int(line.split()[1])
        if flushed >= 60:
            break
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    with h5py.File(out / "run.h5", "r") as h:
        assert h.attrs["status"] == "running"
        steps = h["metrics/step"][:]
        loss = h["metrics/loss"][:]
        other = h["metrics/other"][:]
    assert len(steps) >= flushed >= 60
    np.testing.assert_array_equal(steps, np.arange(len(steps)))
    np.testing.assert_array_equal(loss, 0.5 * steps)
    np.testing.assert_array_equal(other, steps.astype(float) ** 2)
    s = summarize(out / "run.h5")  # what `rnntk inspect` reads
    assert s["attrs"]["status"] == "running" and s["n_rows"] == len(steps)
