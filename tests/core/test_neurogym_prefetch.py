"""The neurogym adapter's prefetch (the next batch built in a background thread): the batches, the
generator and the environment's stream are those of the path without prefetch, bit for bit, for
every pinned environment; a worker's exception surfaces at the sample() call that takes its batch;
no thread is left after close(); sofo-train on a neurogym task resumes bit-identically and stops on
SIGINT with exit 130 and a checkpoint."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import run_cli

pytest.importorskip("neurogym", reason="the neurogym extra is not installed")

from test_neurogym_batch import BEFORE, batch_hash  # noqa: E402

from rnntk.core import neurogym as ngt  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*render_modes:UserWarning")
NAME = "rnntk-neurogym-prefetch"


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == NAME and t.is_alive()]


def stream(task: ngt.NeurogymTask, batch: int, seed: int, calls: int = 4) -> list[str]:
    """Hashes of ``calls`` batches from one generator, one batch of the environment's own stream
    (it continues from the last batch), two more from the generator, and the generator's state."""
    g = torch.Generator().manual_seed(seed)
    out = [batch_hash(task.sample(batch, g)) for _ in range(calls)]
    out.append(batch_hash(task.sample(batch)))
    out += [batch_hash(task.sample(batch, g)) for _ in range(3)]
    out.append(str(hash(g.get_state().numpy().tobytes())))
    return out


@pytest.mark.parametrize("env,kw,loss_on,batch,seed,h1,h2", BEFORE, ids=[f"{r[0]}-{r[2]}-{r[3]}" for r in BEFORE])
def test_batches_identical_with_prefetch_on_and_off(env, kw, loss_on, batch, seed, h1, h2):
    make = lambda on: ngt.NeurogymTask("neurogym:" + env, kw, loss_on=loss_on, fixation_weight=1.0 if kw else 0.5, prefetch=on)  # noqa: E731
    on, off = make(True), make(False)
    a, b = stream(on, batch, seed), stream(off, batch, seed)
    assert a == b
    assert a[0] == h1  # the pinned hash of the first batch
    assert on.prefetched == 3 and off.prefetched == 0  # batches 3, 4 and 8 came from the thread (from the 2nd call in a row with a generator)
    on.close()
    assert not prefetch_threads()


@pytest.mark.parametrize("env", ["PostDecisionWager-v0", "IntervalDiscrimination-v0"])
def test_padded_length_growing_on_a_long_trial(env):
    """Callable timing specs: with a padded length set too short, trials grow it; the prefetched
    batch (built from the padded length of its time) and ``steps`` match the path without prefetch."""
    make = lambda on: ngt.NeurogymTask("neurogym:" + env, loss_on="all", steps=3, prefetch=on)  # noqa: E731
    on, off = make(True), make(False)
    for task in (on, off):
        task.steps = 3
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(6):
        a, b = on.sample(8, g1), off.sample(8, g2)
        assert batch_hash(a) == batch_hash(b) and on.steps == off.steps
    assert on.prefetched >= 3 and on.steps > 3
    on.close()


def test_other_generators_batch_sizes_and_env_access_discard_the_prefetched_batch():
    make = lambda on: ngt.NeurogymTask("neurogym:PerceptualDecisionMaking-v0", {"dt": 20}, prefetch=on)  # noqa: E731
    on, off = make(True), make(False)
    got = {}
    for task in (on, off):
        g, v = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
        hs = [batch_hash(task.sample(8, g)) for _ in range(3)]
        hs.append(batch_hash(task.sample(8, v)))  # another generator in between (a validation batch)
        hs += [batch_hash(task.sample(8, g)) for _ in range(2)]
        hs.append(batch_hash(task.sample(5, g)))  # another batch size
        hs += [batch_hash(task.sample(5, g)) for _ in range(2)]
        task.env.seed(123)  # the environment reached from outside: the prefetched batch is stale
        hs += [batch_hash(task.sample(5, g)) for _ in range(2)]
        hs.append(str(hash(task.input_stream(50, g).numpy().tobytes())))  # the drive stream reaches the environment too
        hs += [batch_hash(task.sample(5, g)) for _ in range(2)]
        got[task.prefetch] = hs
    assert got[True] == got[False]
    assert on.prefetched >= 3
    on.close()


def test_a_caller_drawing_between_batches_turns_prefetch_off():
    """floss draws the noise of a constrained network from the trials' generator between batches:
    the peeked seed is never the next one; batches stay identical, and after MAX_MISSES misses in
    a row prefetch stops (no thread working for nothing)."""
    make = lambda on: ngt.NeurogymTask("neurogym:PerceptualDecisionMaking-v0", {"dt": 20}, prefetch=on)  # noqa: E731
    on, off = make(True), make(False)
    got = {}
    for task in (on, off):
        g = torch.Generator().manual_seed(4)
        hs = []
        for _ in range(ngt.MAX_MISSES + 4):
            hs.append(batch_hash(task.sample(8, g)))
            torch.randn(3, generator=g)  # the noise
        got[task is on] = hs
    assert got[True] == got[False]
    assert on.prefetched == 0 and on.prefetch is False and on._pending is None and not prefetch_threads()


def test_worker_exception_surfaces_at_the_next_sample(monkeypatch):
    task = ngt.NeurogymTask("neurogym:PerceptualDecisionMaking-v0", {"dt": 20}, prefetch=True)
    g = torch.Generator().manual_seed(0)
    real = type(task._env).new_trial

    def new_trial(self, **kw):
        if threading.current_thread().name == NAME:
            raise RuntimeError("boom in the trial generator")
        return real(self, **kw)

    monkeypatch.setattr(type(task._env), "new_trial", new_trial)
    task.sample(4, g)
    task.sample(4, g)  # starts the thread for the 3rd batch, which raises there
    with pytest.raises(RuntimeError, match="boom in the trial generator"):
        task.sample(4, g)
    monkeypatch.setattr(type(task._env), "new_trial", real)
    task.sample(4, g)  # and the task goes on
    task.close()


def test_no_thread_left_after_close_and_at_exit():
    task = ngt.NeurogymTask("neurogym:PerceptualDecisionMaking-v0", {"dt": 20}, prefetch=True)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        task.sample(64, g)
    assert task._pending is not None
    task.close()
    assert task._pending is None and not prefetch_threads()
    task.sample(64, g)
    task.sample(64, g)
    ngt._close_all()  # what the interpreter runs at exit
    assert task._pending is None and not prefetch_threads()


TINY = ("--task", "neurogym:PerceptualDecisionMaking-v0", "--task-kwargs", '{"dt": 100}', "--optimizer", "both", "--hidden", "8", "--batch", "4",
        "--eval-batch", "8", "-K", "4", "--eval-every", "2", "-q")  # fmt: skip


def test_prefetch_switch(monkeypatch):
    for value, on in (("1", True), ("0", False), ("", False)):
        monkeypatch.setenv(ngt.PREFETCH_ENV, value)
        assert ngt.NeurogymTask("neurogym:GoNogo-v0", loss_on="all").prefetch is on
        assert ngt.NeurogymTask("neurogym:GoNogo-v0", loss_on="all", prefetch=not on).prefetch is (not on)
    monkeypatch.delenv(ngt.PREFETCH_ENV)
    assert ngt.NeurogymTask("neurogym:GoNogo-v0", loss_on="all").prefetch is False  # off unless asked
    monkeypatch.setenv(ngt.PREFETCH_ENV, "maybe")
    with pytest.raises(ValueError, match="bad RNNTK_NEUROGYM_PREFETCH='maybe'"):
        ngt.NeurogymTask("neurogym:GoNogo-v0", loss_on="all")


def test_sofo_train_neurogym_resume_is_bit_identical(tmp_path, monkeypatch):
    """A run with prefetch on cut after 3 iterations and resumed to 6 (the trial generator's state
    in the checkpoint is the one without prefetch) logs the same metrics as a run of 6 without
    prefetch."""
    monkeypatch.setenv(ngt.PREFETCH_ENV, "0")
    assert run_cli("sofo-train", "--iters", "6", *TINY, "--out", tmp_path / "ref").code == 0
    monkeypatch.setenv(ngt.PREFETCH_ENV, "1")
    assert run_cli("sofo-train", "--iters", "3", *TINY, "--out", tmp_path / "cut").code == 0
    r = run_cli("sofo-train", "--resume", tmp_path / "cut", "--iters", "6", "-q")
    assert r.code == 0, r.stderr
    a = h5py.File(tmp_path / "ref" / "run.h5", "r")["metrics"]
    b = h5py.File(tmp_path / "cut" / "run.h5", "r")["metrics"]
    np.testing.assert_array_equal(b["step"][:], np.arange(6))
    for k in ("sofo_loss", "adam_loss", "sofo_eig_max", "adam_grad_norm"):
        np.testing.assert_array_equal(a[k][:], b[k][:], err_msg=k)


def test_sofo_train_neurogym_sigint_exits_130_with_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv(ngt.PREFETCH_ENV, "1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
    from test_reliability_signals import assert_interrupted, signal_inside

    args = ["sofo-train", "--iters", "100000", *TINY[:-1], "--checkpoint-every", "1"]
    code, dt, out, err = signal_inside(args, tmp_path / "run", sig=signal.SIGINT, wait_for="ckpt-last.pt", settle=0.5)
    assert_interrupted(code, dt, out, err, expect=130)
    assert (tmp_path / "run" / "ckpt-last.pt").is_file()
