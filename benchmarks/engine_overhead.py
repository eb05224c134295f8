"""Engine overhead: the same training loop bare vs inside ``Run`` (log every step, HDF5
flush every 50 rows, checkpoint every 100 steps), measured side by side, interleaved.

    python benchmarks/engine_overhead.py [--steps 300] [--repeats 5]

Prints the per-step time of each and the ratio Run/bare (target: <= 1.10 on a small RNN).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from rnntk.engine import Run
from rnntk.core.leaky_rnn import LeakyRNN
from rnntk.selftest.integrate import integration_trials


def loop(steps: int, run: Run | None) -> float:
    torch.manual_seed(0)
    model = LeakyRNN(1, 64, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = run.generator if run is not None else torch.Generator().manual_seed(0)
    if run is not None:
        run.track(model, opt, hparams=model.hparams())
    it = run.steps(steps) if run is not None else range(steps)
    t0 = time.perf_counter()
    for step in it:
        tr = integration_trials(32, 50, generator=gen)
        loss = torch.mean((model(tr.inputs)[0] - tr.targets) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if run is not None:
            run.log(step, loss=loss, grad_norm=1.0)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    bare, engine = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            bare.append(loop(a.steps, None))
            with Run.open(Path(tmp) / f"r{r}", command="bench", device="cpu", progress="none", log_every=50, checkpoint_every=100) as run:
                engine.append(loop(a.steps, run))
    b, e = statistics.median(bare), statistics.median(engine)
    print(f"bare loop      {b * 1e3:8.3f} ms/step (median of {a.repeats})")
    print(f"inside Run     {e * 1e3:8.3f} ms/step (log every step, flush/50, checkpoint/100)")
    print(f"ratio Run/bare {e / b:8.3f}")


if __name__ == "__main__":
    main()
