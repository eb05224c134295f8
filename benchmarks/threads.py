"""Thread policy on an idle and on a busy machine (issue 13, item 1).

Runs each method's README quick command (shortened to a few iterations) as a user would,
in a fresh process, under three thread settings, interleaved and repeated (median):

- ``default``: rnntk's policy (passive OpenMP wait, ``--threads auto``), no env set;
- ``1thread``: ``OMP_NUM_THREADS=1``;
- ``old``:     the behaviour before the fix: 2 threads, active wait
               (``OMP_WAIT_POLICY=ACTIVE OMP_NUM_THREADS=2 RNNTK_THREADS=2``);

once with nothing else started by the benchmark ("idle") and once next to one busy
background process (a Python busy loop this script starts and stops). Prints wall seconds
and the ratios the targets are about:

- busy: default / 1thread <= 1.3
- idle: default / min(default, 1thread, old) <= 1.05

    python benchmarks/threads.py [--repeats 3] [--only selftest,floss]

On a shared machine "idle" only means that the benchmark adds no load; the interleaving
makes other load fall on all three settings alike.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CKPT = ROOT / "checkpoints" / "cordsnet-mini-digits.pth"

# README quick commands, with few iterations
COMMANDS: dict[str, list[str]] = {
    "selftest": ["selftest", "--iters", "100"],
    "sofo-train": ["sofo-train", "--task", "double-reach", "--iters", "4"],
    "online-lru": ["online-lru", "--task", "copy", "--rule", "online_full", "--steps", "5", "--train-samples", "32",
                   "--val-samples", "16", "--test-samples", "16", "--eval-samples", "16"],
    "floss": ["floss", "--task", "xor", "--delay", "40", "--epochs", "20", "--floss-before", "5", "--floss-times", "1",
              "--floss-epochs", "5", "--eval-every", "20", "--le-len", "200"],
    "cordsnet-eval": ["cordsnet-eval", "--checkpoint", str(CKPT), "--data", "digits", "--record-stride", "10", "--limit", "64"],
    "ode-train": ["ode-train", "--task", "spheres", "--adjoint", "gq", "--epochs", "1"],
}

SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "1thread": {"OMP_NUM_THREADS": "1"},
    "old": {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2", "RNNTK_THREADS": "2"},
}
_CLEAR = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "RNNTK_THREADS", "MKL_NUM_THREADS", "GOMP_SPINCOUNT", "SLURM_CPUS_PER_TASK")


def _busy_loop() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _run_once(args: list[str], setting: str, tmp: Path, i: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + sys of the child: spinning threads show here
    even when other load on a shared machine blurs the wall time)."""
    env = {k: v for k, v in os.environ.items() if k not in _CLEAR}
    env.update(SETTINGS[setting])
    out = tmp / f"run-{i}"
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "rnntk", *args, "--quiet", "--out", str(out)], env=env, cwd=tmp,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} [{setting}] exited {r.returncode}: {r.stderr.strip().splitlines()[-1:]}")
    shutil.rmtree(out, ignore_errors=True)
    return dt, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated command names")
    ap.add_argument("--conditions", default="idle,busy")
    a = ap.parse_args()
    names = [n for n in COMMANDS if not a.only or n in a.only.split(",")]
    conditions = a.conditions.split(",")
    print(f"# CPUs usable: {len(os.sched_getaffinity(0))}; load average at start: {os.getloadavg()[0]:.2f}; repeats {a.repeats} (median)")
    print(f"{'command':<14} {'machine':<5} " + " ".join(f"{s:>8}" for s in SETTINGS) + "   default/1thread  default/best  target"
          "   (wall s, median; then CPU s of default/1thread/old)")
    ok = True
    n = 0
    with tempfile.TemporaryDirectory(prefix="rnntk-threads-") as td:
        tmp = Path(td)
        for name in names:
            for cond in conditions:
                busy = _busy_loop() if cond == "busy" else None
                try:
                    times: dict[str, list[float]] = {s: [] for s in SETTINGS}
                    cpus: dict[str, list[float]] = {s: [] for s in SETTINGS}
                    order = list(SETTINGS)
                    for r in range(a.repeats):
                        for s in order[r % 3:] + order[: r % 3]:  # interleaved, order rotated
                            n += 1
                            w, c = _run_once(COMMANDS[name], s, tmp, n)
                            times[s].append(w)
                            cpus[s].append(c)
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
                med = {s: statistics.median(v) for s, v in times.items()}
                cpu = {s: statistics.median(v) for s, v in cpus.items()}
                r1 = med["default"] / med["1thread"]
                rb = med["default"] / min(med.values())
                if cond == "busy":
                    good, target = r1 <= 1.3, "busy: default/1thread <= 1.3"
                else:
                    good, target = rb <= 1.05, "idle: default/best <= 1.05"
                ok &= good
                print(f"{name:<14} {cond:<5} " + " ".join(f"{med[s]:8.2f}" for s in SETTINGS)
                      + f"   {r1:15.2f}  {rb:12.2f}  {'ok' if good else 'MISSED'} ({target})"
                      + "   cpu s " + " ".join(f"{cpu[s]:.1f}" for s in SETTINGS), flush=True)
    print("all targets met" if ok else "some targets missed")


if __name__ == "__main__":
    main()
