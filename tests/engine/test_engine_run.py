"""Run (Python API): folder rules, statuses, non-finite guard, signals, exact resume."""

import datetime as dt
import json
import os
import signal
import tomllib

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from rnntk.engine import Interrupted, NonFiniteError, Run, UserError, default_run_dir


def train(out, n_steps, *, resume=False, sigterm_at=None, crash_at=None, checkpoint_every=4, seed=3, nan_at=None):
    """A tiny real training loop: a 2-layer tanh MLP regressing a fixed random teacher with
    SGD+momentum, data and dropout noise drawn from the run's RNGs every step."""
    with Run.open(out, command="tiny", config={"lr": 0.05}, seed=seed, device="cpu", progress="none",
                  resume=resume, log_every=3, checkpoint_every=checkpoint_every) as run:
        net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(0.1), nn.Linear(16, 2))
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        run.track(net, opt, hparams={"hidden": 16})
        teacher = torch.randn(4, 2, generator=torch.Generator().manual_seed(99))
        for step in run.steps(n_steps):
            x = torch.randn(32, 4, generator=run.generator)
            y = torch.tanh(x @ teacher) + 0.01 * torch.randn(32, 2)  # global torch RNG too
            loss = ((net(x) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if nan_at is not None and step == nan_at:
                loss = loss / 0.0 * 0.0
            run.log(step, loss=loss, noise=float(np.random.rand()))  # numpy global RNG too
            if sigterm_at is not None and step == sigterm_at:
                os.kill(os.getpid(), signal.SIGTERM)
            if crash_at is not None and step == crash_at:
                raise RuntimeError("simulated crash")
        run.save_model()
    return run


def metrics(out):
    with h5py.File(out / "run.h5", "r") as f:
        return {k: f["metrics"][k][:] for k in f["metrics"] if k != "wall_time"}


def test_fresh_run_layout_and_summary(tmp_path):
    run = train(tmp_path / "a", 10)
    files = {p.name for p in (tmp_path / "a").iterdir()}
    assert {"run.h5", "config.toml", "summary.json", "ckpt-last.pt", "model.pt"} <= files
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["step"] == 10
    assert summary["final"]["loss"] == pytest.approx(metrics(tmp_path / "a")["loss"][-1])
    assert run.outcome["status"] == "completed"
    cfg = tomllib.loads((tmp_path / "a" / "config.toml").read_text())
    assert cfg == {"lr": 0.05}
    with h5py.File(tmp_path / "a" / "run.h5", "r") as f:
        for g in ("config", "metrics", "traces", "results", "trials", "model"):
            assert g in f
        assert f.attrs["status"] == "completed" and f.attrs["seed"] == 3
        assert f["model/0.weight"].shape == (16, 4) and f["model/0.weight"].dtype == np.float32
        assert "lr = 0.05" in f["config/toml"].asstr()[()]
        assert f["config"].attrs["lr"] == 0.05


def test_same_seed_is_bit_identical_and_other_seed_differs(tmp_path):
    train(tmp_path / "a", 12)
    train(tmp_path / "b", 12)
    train(tmp_path / "c", 12, seed=4)
    a, b, c = metrics(tmp_path / "a"), metrics(tmp_path / "b"), metrics(tmp_path / "c")
    np.testing.assert_array_equal(a["loss"], b["loss"])
    np.testing.assert_array_equal(a["noise"], b["noise"])
    assert not np.array_equal(a["loss"], c["loss"])


def test_sigterm_then_resume_is_bit_identical(tmp_path):
    ref = train(tmp_path / "ref", 20)
    with pytest.raises(Interrupted) as e:
        train(tmp_path / "cut", 20, sigterm_at=9, checkpoint_every=100)
    assert e.value.exit_code == 143
    with h5py.File(tmp_path / "cut" / "run.h5", "r") as f:
        assert f.attrs["status"] == "interrupted"
        assert f["checkpoints/last"].attrs["step"] == 10
    train(tmp_path / "cut", 20, resume=True)
    a, b = metrics(tmp_path / "ref"), metrics(tmp_path / "cut")
    np.testing.assert_array_equal(b["step"], np.arange(20))  # no duplicated rows
    np.testing.assert_array_equal(a["loss"], b["loss"])
    np.testing.assert_array_equal(a["noise"], b["noise"])
    sd_ref = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)["state_dict"]
    sd_cut = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)["state_dict"]
    for k in sd_ref:
        assert torch.equal(sd_ref[k], sd_cut[k])
    assert ref.outcome["status"] == "completed"


def test_crash_after_checkpoint_resume_drops_rows_past_it(tmp_path):
    """Rows logged after the last checkpoint (steps 8..10) are replayed, not duplicated."""
    train(tmp_path / "ref", 16)
    with pytest.raises(RuntimeError):
        train(tmp_path / "cut", 16, crash_at=10, checkpoint_every=4)
    with h5py.File(tmp_path / "cut" / "run.h5", "r") as f:
        assert f.attrs["status"] == "failed" and "simulated crash" in f.attrs["error"]
        assert f["metrics/step"][-1] == 10
    train(tmp_path / "cut", 16, resume=True)
    a, b = metrics(tmp_path / "ref"), metrics(tmp_path / "cut")
    np.testing.assert_array_equal(b["step"], np.arange(16))
    np.testing.assert_array_equal(a["loss"], b["loss"])


def test_resume_extends_a_completed_run(tmp_path):
    train(tmp_path / "ref", 14)
    train(tmp_path / "x", 8)
    train(tmp_path / "x", 14, resume=True)
    np.testing.assert_array_equal(metrics(tmp_path / "ref")["loss"], metrics(tmp_path / "x")["loss"])


def test_nonfinite_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteError) as e:
        train(tmp_path / "n", 20, nan_at=6, checkpoint_every=4)
    assert e.value.exit_code == 3 and e.value.step == 6 and e.value.name == "loss"
    assert "step 6" in str(e.value) and "(step 4)" in str(e.value)
    with h5py.File(tmp_path / "n" / "run.h5", "r") as f:
        assert f.attrs["status"] == "nonfinite"
        assert f["checkpoints/last"].attrs["step"] == 4
        assert np.isnan(f["metrics/loss"][-1]) and f["metrics/step"][-1] == 6
    ck = torch.load(tmp_path / "n" / "ckpt-last.pt", weights_only=True)
    assert ck["step"] == 4 and all(torch.isfinite(v).all() for v in ck["state_dict"].values())
    summary = json.loads((tmp_path / "n" / "summary.json").read_text())
    assert summary["status"] == "nonfinite" and "non-finite loss" in summary["error"]


def test_output_folder_rules(tmp_path):
    train(tmp_path / "a", 2)
    with pytest.raises(UserError, match="output folder exists"):
        train(tmp_path / "a", 2)
    train_forced = Run.open(tmp_path / "a", command="tiny", force=True, device="cpu", progress="none")
    train_forced.close()
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["step"] == 0
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    with pytest.raises(UserError, match="not an rnntk run folder"):
        Run.open(precious, command="tiny", force=True, device="cpu")
    assert (precious / "chapter1.tex").read_text() == "years of work"
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        Run.open(tmp_path / "file", command="tiny", device="cpu")


def test_default_run_dir_names(tmp_path, monkeypatch):
    for k in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(k, raising=False)
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    d = default_run_dir("sofo-train", 7, tmp_path, now)
    assert d.name == "sofo-train-20260102T030405Z-s7"
    d.mkdir()
    assert default_run_dir("sofo-train", 7, tmp_path, now).name == "sofo-train-20260102T030405Z-s7-2"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "555")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "12")
    assert default_run_dir("floss", 12, tmp_path, now).name == "floss-20260102T030405Z-s12-j555_12"


def test_time_budget_stops_early(tmp_path):
    with Run.open(tmp_path / "t", command="tiny", device="cpu", progress="none") as run:
        import time

        for step in run.steps(10**6, time_budget=0.2):
            time.sleep(0.01)
            run.log(step, x=1.0)
    assert 5 <= run.step < 100 and "time budget" in run.stopped_early
    assert run.outcome["status"] == "completed" and "stopped_early" in run.outcome


def test_force_never_deletes_a_folder_rnntk_did_not_write(tmp_path, monkeypatch):
    site = tmp_path / "hugo"
    site.mkdir()
    (site / "config.toml").write_text("title = 'my site'\n")  # someone else's config.toml
    (site / "content.md").write_text("x")
    with pytest.raises(UserError, match="not an rnntk run folder"):
        Run.open(site, command="tiny", force=True, device="cpu")
    assert (site / "content.md").exists()
    train(tmp_path / "r", 2)
    monkeypatch.chdir(tmp_path / "r")
    with pytest.raises(UserError, match="current folder"):
        Run.open(".", command="tiny", force=True, device="cpu")
    assert (tmp_path / "r" / "run.h5").exists()
    (tmp_path / "link").symlink_to(tmp_path / "r")
    with pytest.raises(UserError, match="symbolic link"):
        Run.open(tmp_path / "link", command="tiny", force=True, device="cpu")


def test_failed_resume_leaves_the_run_untouched(tmp_path):
    train(tmp_path / "r", 10)
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    ck = torch.load(tmp_path / "r" / "ckpt-last.pt", weights_only=True)
    ck["state_dict"]["0.weight"] = torch.zeros(3, 3)
    torch.save(ck, tmp_path / "r" / "ckpt-last.pt")
    with pytest.raises(UserError, match="has shape"):
        train(tmp_path / "r", 20, resume=True)
    after = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    assert after["summary.json"] == before["summary.json"]
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        assert f.attrs["status"] == "completed" and f["metrics/step"].shape == (10,)
    # damaged structure: one line, not a KeyError
    torch.save({"format": "rnntk-checkpoint"}, tmp_path / "r" / "ckpt-last.pt")
    with pytest.raises(UserError, match="damaged rnntk checkpoint: 'step'"):
        train(tmp_path / "r", 20, resume=True)


def test_resume_with_fewer_steps_than_done_is_refused(tmp_path):
    train(tmp_path / "r", 10)
    with pytest.raises(UserError, match="already at step 10"):
        train(tmp_path / "r", 5, resume=True)
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        assert f.attrs["status"] == "completed" and f["metrics/step"].shape == (10,)


def _post_loop_rng(out, n, resume=False):
    with Run.open(out, command="tiny", seed=1, device="cpu", progress="none", resume=resume, checkpoint_every=100) as run:
        net = nn.Linear(3, 1)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        run.track(net, opt)
        for step in run.steps(n):
            x = torch.randn(8, 3, generator=run.generator)
            loss = (net(x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.log(step, loss=loss)
        torch.randn(100, generator=run.generator)  # post-loop analysis drawing random numbers
        torch.randn(100)


def test_resume_after_post_loop_randomness_is_bit_identical(tmp_path):
    _post_loop_rng(tmp_path / "ref", 20)
    _post_loop_rng(tmp_path / "x", 10)
    _post_loop_rng(tmp_path / "x", 20, resume=True)
    np.testing.assert_array_equal(metrics(tmp_path / "ref")["loss"], metrics(tmp_path / "x")["loss"])


def test_stop_counts_the_step_and_checkpoints_it(tmp_path):
    with Run.open(tmp_path / "s", command="tiny", device="cpu", progress="none", checkpoint_every=100) as run:
        net = nn.Linear(2, 1)
        run.track(net)
        for step in run.steps(50):
            run.log(step, loss=1.0 / (step + 1))
            if step == 4:
                run.stop("early stopping: loss < 0.25")
    assert run.step == 5 and "early stopping" in run.stopped_early
    assert torch.load(tmp_path / "s" / "ckpt-last.pt", weights_only=True)["step"] == 5


def test_failed_metric_append_is_rolled_back(tmp_path, monkeypatch):
    from rnntk.engine import store

    f = store.RunFile(tmp_path / "r.h5", "w")
    f.append_metrics([{"step": 0, "a": 1.0}])
    real = store.RunFile._metric_ds

    def boom(self, name, dtype, n):
        if name == "b":
            raise OSError("disk full")
        return real(self, name, dtype, n)

    monkeypatch.setattr(store.RunFile, "_metric_ds", boom)
    with pytest.raises(OSError):
        f.append_metrics([{"step": 1, "a": 2.0, "b": 3.0}])
    monkeypatch.setattr(store.RunFile, "_metric_ds", real)
    assert all(f.f["metrics"][k].shape == (1,) for k in f.f["metrics"])
    f.append_metrics([{"step": 1, "a": 2.0, "b": 3.0}])
    assert f.f["metrics/step"][:].tolist() == [0, 1]
    f.close()
