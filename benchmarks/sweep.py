"""rnntk sweep: a local sweep of N selftest jobs on 2 workers vs the same jobs one after another,
and the sweep layer's own cost per job. Measured side by side in one run, interleaved.

    python benchmarks/sweep.py                  # 8 jobs, selftest --iters 100, 2 repeats
    python benchmarks/sweep.py --jobs 8 --iters 200 --repeats 3

Prints, per repeat and as medians:
- sequential: `rnntk selftest` N times in a row (the same configs and seeds the sweep runs);
- sweep -j 2: `rnntk sweep` with 2 worker processes; ratio sweep / sequential (target <= 0.6);
- sweep -j 1: the same sweep with one worker; (sweep -j 1 - sequential) / N is the sweep
  layer's cost per job including its process and polling (target <= 0.2 s);
- bookkeeping: expansion + manifest + config files + state reads, in process, per job.
On 2 cores, 2 workers can at best halve the time; background load takes the cores from both.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RNNTK = [sys.executable, "-m", "rnntk"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def sweep_file(root: Path, n: int, iters: int) -> Path:
    f = root / "bench.toml"
    f.write_text(f'command = "selftest"\nseeds = {n}\n[options]\niters = {iters}\n')
    return f


def timed(argv: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def sequential(root: Path, n: int, iters: int) -> float:
    out = root / "seq"
    shutil.rmtree(out, ignore_errors=True)
    (root / "cfg.toml").write_text(f"iters = {iters}\n")
    t = time.perf_counter()
    for s in range(n):
        subprocess.run(RNNTK + ["selftest", "--config", str(root / "cfg.toml"), "--seed", str(s), "--out", str(out / f"s{s}"), "--quiet"], cwd=root, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def sweep(root: Path, f: Path, workers: int) -> float:
    out = root / f"sweep-j{workers}"
    shutil.rmtree(out, ignore_errors=True)
    return timed(RNNTK + ["sweep", str(f), "--out", str(out), "--jobs", str(workers)], root)


def bookkeeping(root: Path, n: int) -> float:
    """Seconds per job for expansion, manifest, config files and state reads (in process)."""
    from rnntk.runs.sweep import load_sweep, states, write_manifest

    f = root / "book.toml"
    f.write_text(f'command = "selftest"\nseeds = {n}\n[options]\niters = 5\n[grid]\nlr = [0.1, 0.01]\n')
    t = time.perf_counter()
    for _ in range(5):
        out = root / "book"
        shutil.rmtree(out, ignore_errors=True)
        sw = load_sweep(f)
        jobs = sw.jobs()
        write_manifest(out, sw, jobs)
        states(out, jobs)
    return (time.perf_counter() - t) / (5 * 2 * n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    print(f"# {a.jobs} selftest jobs (--iters {a.iters}), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        f = sweep_file(root, a.jobs, a.iters)
        ratios, per_job = [], []
        for r in range(a.repeats):
            order = ["seq", "j2", "j1"] if r % 2 == 0 else ["j1", "j2", "seq"]
            t = {}
            for k in order:
                t[k] = sequential(root, a.jobs, a.iters) if k == "seq" else sweep(root, f, int(k[1]))
            ratios.append(t["j2"] / t["seq"])
            per_job.append((t["j1"] - t["seq"]) / a.jobs)
            print(f"repeat {r}: sequential {t['seq']:.1f} s, sweep -j 2 {t['j2']:.1f} s (ratio {ratios[-1]:.2f}), sweep -j 1 {t['j1']:.1f} s (layer cost {per_job[-1]:+.3f} s/job)")
        book = bookkeeping(root, a.jobs)
    print(f"median ratio sweep -j 2 / sequential: {statistics.median(ratios):.2f} (target <= 0.6)")
    print(f"median sweep-layer cost per job (sweep -j 1 vs sequential): {statistics.median(per_job):+.3f} s (target <= 0.2)")
    print(f"bookkeeping per job (expand, manifest, configs, states; in process): {1000 * book:.2f} ms")
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
