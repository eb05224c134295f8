"""Gradient flossing benchmarks, measured side by side in one run.

    python benchmarks/floss.py                  # (a) + (b) + (c); (c) takes ~15 min on 2 cores
    python benchmarks/floss.py --skip-headline  # (a) only, seconds
    python benchmarks/floss.py --seeds 2 --delays 20 40 --epochs 2000

(a) one k-exponent spectrum (N = 80, k = 75, 55 steps, forward + backward): 16 trajectories
    batched vs a Python loop over them, and k = 75 vs the full k = N = 80 spectrum.
(b) flossing's share of training time at the default schedule (500 steps before training,
    2 × 500 during it), from the runs of (c).
(c) success rate (final accuracy ≥ 0.95) over seeds vs delay on the delayed XOR, with the
    default flossing schedule vs --no-floss. Each run is `rnntk floss` in its own single-thread
    process (OMP_NUM_THREADS=1), two at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from rnntk.floss.flossing import flossing_loss
from rnntk.analysis.lyapunov import initial_basis, lyapunov_spectrum
from rnntk.core.vanilla_rnn import VanillaRNN
from rnntk.floss.delayed_xor import delayed_parity_trials


def timeit(fn, repeats: int = 7) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def spectra_timing() -> None:
    torch.set_num_threads(1)
    m = VanillaRNN(80, batch=16, generator=torch.Generator().manual_seed(0))
    u = delayed_parity_trials(16, 55, 20, generator=torch.Generator().manual_seed(1)).inputs
    x0 = m.x0.detach()

    def run(k: int, batched: bool, grad: bool = True) -> None:
        q0 = initial_basis(80, k, generator=torch.Generator().manual_seed(2), dtype=torch.float32)
        with torch.set_grad_enabled(grad):
            if batched:
                lam = lyapunov_spectrum(m, u, k, x0=x0, q0=q0, warmup=16).exponents
            else:
                lam = torch.stack([lyapunov_spectrum(m, u[i : i + 1], k, x0=x0[i : i + 1], q0=q0, warmup=16).exponents[0] for i in range(16)])
            if grad:
                flossing_loss(lam).backward()
                m.zero_grad()

    print("(a) one spectrum of 16 trajectories, N=80, 55 steps, 1 thread: batched vs a Python loop over trajectories")
    for k, grad in ((75, True), (40, True), (10, True), (1, True), (75, False), (10, False)):
        tb = timeit(lambda: run(k, True, grad))
        tl = timeit(lambda: run(k, False, grad))
        what = "forward+backward" if grad else "forward only    "
        print(f"    k={k:2d} {what}: batched {tb * 1e3:7.1f} ms, loop {tl * 1e3:7.1f} ms, ratio loop/batched = {tl / tb:5.2f}")
    tb = timeit(lambda: run(75, True))
    tf = timeit(lambda: run(80, True))
    print(f"    full spectrum k=N=80 vs k=75 (batched, forward+backward): {tf * 1e3:.1f} vs {tb * 1e3:.1f} ms, ratio {tf / tb:.2f}")
    # why k = 75 stays near 2x on a CPU: the 55 QRs of 80 x 75 blocks are LAPACK calls made one
    # matrix at a time even inside batched torch.linalg.qr, so batching removes only op overhead
    A = torch.randn(16, 80, 75)
    tqb = timeit(lambda: [torch.linalg.qr(A) for _ in range(55)])
    tql = timeit(lambda: [torch.linalg.qr(A[i]) for _ in range(55) for i in range(16)])
    print(f"    the 55 QRs alone at k=75: batched {tqb * 1e3:.1f} ms, loop {tql * 1e3:.1f} ms (ratio {tql / tqb:.2f}); "
          f"they are {tqb / timeit(lambda: run(75, True, False)):.0%} of the batched forward spectrum")


def one_run(args: tuple[int, int, bool, int, Path]) -> dict:
    delay, seed, floss, epochs, root = args
    out = root / f"d{delay}-s{seed}-{'floss' if floss else 'none'}"
    cmd = [sys.executable, "-m", "rnntk", "floss", "--task", "xor", "--delay", str(delay), "--epochs", str(epochs),
           "--seed", str(seed), "--out", str(out), "--quiet", "--le-every", "0", "--le-len", "200"]
    if not floss:
        cmd.append("--no-floss")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    return {"delay": delay, "seed": seed, "floss": floss, **res.get("final", {}), "status": res["status"]}


def headline(delays: list[int], seeds: int, epochs: int) -> None:
    jobs = []
    with tempfile.TemporaryDirectory() as tmp:
        for d in delays:
            for s in range(seeds):
                for fl in (False, True):
                    jobs.append((d, s, fl, epochs, Path(tmp)))
        t0 = time.time()
        with ThreadPoolExecutor(max_workers=2) as ex:
            results = list(ex.map(one_run, jobs))
    print(f"(c) delayed XOR, N=80, B=16, T=300, {epochs} epochs; success = final accuracy (mean of last 100 epochs) >= 0.95; "
          f"{len(jobs)} runs in {time.time() - t0:.0f} s")
    print("    delay D (paper) | no flossing: successes, final acc       | flossing (500 before, 2x500 during): successes, final acc")
    for d in delays:
        row = []
        for fl in (False, True):
            rs = [r for r in results if r["delay"] == d and r["floss"] == fl]
            succ = sum(int(r.get("success", 0)) for r in rs)
            accs = ", ".join(f"{r.get('final_accuracy', float('nan')):.2f}" for r in rs)
            row.append(f"{succ}/{len(rs)} ({accs})")
        print(f"    {d:15d} | {row[0]:40s} | {row[1]}")
    fl = [r for r in results if r["floss"] and "floss_overhead" in r]
    if fl:
        ov = [r["floss_overhead"] for r in fl]
        print(f"(b) flossing share of training time at the default schedule: median {statistics.median(ov):.1%} "
              f"(min {min(ov):.1%}, max {max(ov):.1%}) over {len(ov)} runs; "
              f"flossing {statistics.median(r['floss_seconds'] for r in fl):.1f} s vs task {statistics.median(r['task_seconds'] for r in fl):.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-headline", action="store_true")
    ap.add_argument("--delays", type=int, nargs="+", default=[20, 40])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2000)
    a = ap.parse_args()
    print(f"torch {torch.__version__}")
    spectra_timing()
    if not a.skip_headline:
        headline(a.delays, a.seeds, a.epochs)


if __name__ == "__main__":
    main()
