"""Resume is exact for every engine command (issue 13, item 4).

For each command: one uninterrupted run; one run stopped at a random checkpointed step by
SIGTERM or by kill -9, then continued with ``--resume``. Every dataset of the two ``run.h5``
files must be equal bit for bit (NaN positions included), except wall-clock timings.
The step is drawn at random; its value is in the failure message.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import cli_env, run_cli

MINI = Path(__file__).resolve().parents[2] / "checkpoints" / "cordsnet-mini-digits.pth"

# wall-clock measurements differ between any two runs
TIMINGS = {"metrics/wall_time", "results/floss_seconds", "results/task_seconds", "results/floss_overhead", "metrics/seconds"}

COMMANDS = {
    "selftest": ["selftest", "--iters", "24", "--hidden", "8", "--batch", "4", "--steps", "10", "--sleep", "0.15"],
    "cordsnet-eval": ["cordsnet-eval", "--checkpoint", MINI, "--data", "digits", "--limit", "40", "--batch-size", "2", "--spont-steps", "10",
                      "--stim-steps", "60", "--record-layers", "1", "--record-stride", "10"],
    "online-lru": ["online-lru", "--task", "copy", "--pattern-len", "3", "--pad-len", "2", "--bits", "3", "--layers", "1", "--d-model", "8",
                   "--d-hidden", "8", "--batch-size", "2", "--train-samples", "24", "--val-samples", "4", "--test-samples", "4", "--epochs", "2",
                   "--grad-check-batches", "3"],
    "sofo-train": ["sofo-train", "--task", "kalman", "--iters", "24", "--batch", "8", "--hidden", "8", "-K", "4", "--eval-batch", "8", "--steps", "20"],
    "ode-train": ["ode-train", "--task", "g1d", "--epochs", "24", "--n-train", "20", "--batch", "10", "--width", "8"],
    "floss": ["floss", "--n-units", "12", "--floss-k", "4", "--delay", "6", "--trial-len", "30", "--batch", "4", "--epochs", "24",
              "--floss-before", "3", "--floss-every", "8", "--floss-epochs", "40", "--floss-times", "2", "--le-every", "6", "--le-len", "40",
              "--eval-every", "6", "--eval-batch", "8", "--floss-len", "30"],
}


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, np.asarray(obj[()])) if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_same_datasets(a: Path, b: Path, note: str) -> None:
    da, db = _datasets(a), _datasets(b)
    assert sorted(da) == sorted(db), f"{note}: datasets differ: {sorted(set(da) ^ set(db))}"
    for name in da:
        if name in TIMINGS or "seconds" in name or (name.startswith("metrics/") and name.endswith(("_time", "_s"))):
            continue  # wall-clock measurements (epoch_time, iter_s, ...)
        x, y = da[name], db[name]
        assert x.shape == y.shape and x.dtype == y.dtype, f"{note}: {name} {x.shape}/{x.dtype} vs {y.shape}/{y.dtype}"
        if x.dtype.kind in "fc":
            assert np.array_equal(np.isnan(x), np.isnan(y)), f"{note}: {name}: NaN positions differ"
            assert x.tobytes() == y.tobytes(), f"{note}: {name} differs (max |diff| {np.nanmax(np.abs(x - y)) if x.size else 0})"
        else:
            assert np.array_equal(x, y), f"{note}: {name} differs"


def _ckpt_step(run_dir: Path) -> int | None:
    """The step of ``ckpt-last.pt`` (None while there is none or it is being replaced)."""
    import torch

    try:
        return int(torch.load(run_dir / "ckpt-last.pt", weights_only=True, map_location="cpu")["step"])
    except Exception:  # noqa: BLE001 - not there yet, or mid-rename
        return None


def interrupt_at(args: list, out: Path, step: int, sig: int) -> int:
    """Start ``rnntk ARGS --out OUT --checkpoint-every 1``, send ``sig`` once its checkpoint is
    at ``step`` or later; returns the exit code."""
    p = subprocess.Popen([sys.executable, "-m", "rnntk", *map(str, args), "--out", str(out), "--checkpoint-every", "1", "--log-every", "1", "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    t0 = time.monotonic()
    while p.poll() is None and time.monotonic() - t0 < 120:
        s = _ckpt_step(out)
        if s is not None and s >= step:
            p.send_signal(sig)
            break
        time.sleep(0.02)
    _, e = p.communicate(timeout=120)
    assert p.returncode != 0, f"the run finished before step {step} could be interrupted (make it slower)\n{e[-1500:]}"
    if sig != signal.SIGKILL:
        assert "Traceback" not in e, e
    return p.returncode


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted runs, one per command (made once, on demand)."""
    done: dict[str, Path] = {}

    def get(cmd: str) -> Path:
        if cmd not in done:
            d = tmp_path_factory.mktemp(cmd) / "ref"
            r = run_cli(*COMMANDS[cmd], "--out", d, "--checkpoint-every", "1", "--log-every", "1", "-q", timeout=300)
            assert r.code == 0, r.stderr
            done[cmd] = d
        return done[cmd]

    return get


FAST = {("selftest", signal.SIGTERM)}  # the others take 15-40 s each on 2 busy cores: marked slow
CASES = [pytest.param(c, s, id=f"{c}-{n}", marks=() if (c, s) in FAST else pytest.mark.slow)
         for c in sorted(COMMANDS) for s, n in ((signal.SIGTERM, "sigterm"), (signal.SIGKILL, "kill-9"))]


@pytest.mark.parametrize("cmd,sig", CASES)
def test_resume_after_interrupt_is_bit_identical(cmd, sig, tmp_path, reference):
    ref = reference(cmd)
    n_steps = {"selftest": 24, "cordsnet-eval": 20, "online-lru": 24, "floss": 24, "sofo-train": 24, "ode-train": 24}[cmd]
    seed = int.from_bytes(os.urandom(4), "little")
    step = random.Random(seed).randint(2, n_steps // 2)
    note = f"{cmd} interrupted by {signal.Signals(sig).name} at checkpoint step >= {step} (seed {seed})"
    out = tmp_path / "run"
    code = interrupt_at(COMMANDS[cmd], out, step, sig)
    assert code in ((143,) if sig == signal.SIGTERM else (-9,)), f"{note}: exit {code}"
    r = run_cli(cmd, "--resume", out, "-q", timeout=300)
    assert r.code == 0, f"{note}: resume failed: {r.stderr}"
    assert r.json["status"] == "completed"
    assert_same_datasets(ref / "run.h5", out / "run.h5", note)
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
