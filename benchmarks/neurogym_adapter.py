"""The neurogym adapter's cost in a training iteration (issue 18 target: <= 10 % of an iteration).

    python benchmarks/neurogym_adapter.py                 # PerceptualDecisionMaking-v0, dt 20 ms
    python benchmarks/neurogym_adapter.py --task neurogym:DelayComparison-v0 --dt 20 --repeats 7

One SOFO iteration of ``sofo-train --task neurogym:...`` (cpu-small sizes: n 64, batch 64, K 64)
and one Adam+BPTT iteration, each timed (a) drawing a fresh batch with the adapter
(``NeurogymTask.sample``: ``env.new_trial()`` per row, padding, mask, table) and (b) reusing one
pre-generated batch, interleaved (the order of (a) and (b) alternates between repeats), median of
the repeats. Prints the medians, the ratio of the medians (a)/(b) and the median of the per-repeat
ratios (each (a) paired with the (b) timed next to it, so slow drifts of the machine's load
cancel), and the cost of a batch split into neurogym's own ``env.seed`` + ``env.new_trial()``
calls and the adapter's assembly (padding, mask, table): on a second copy of the environment,
the bare calls and a whole ``sample`` are timed next to each other (order alternating, in this
thread's CPU time), and the median of their paired differences is the adapter's own cost. The
iteration ratios are given in wall time and in this thread's CPU time (which a loaded machine's
waiting for a core does not inflate).
``--busy N`` starts N busy-looping processes for the duration (a loaded machine). Needs
``pip install 'rnntk[neurogym]'``. Times are wall clock on whatever else runs on the machine; the
interleaving makes the ratio, not the absolute times, the figure to read.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="neurogym:PerceptualDecisionMaking-v0")
    ap.add_argument("--dt", type=float, default=20.0, help="neurogym dt (ms)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("-K", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--busy", type=int, default=0, help="busy-looping background processes to start (a loaded machine)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        run(args)
    finally:
        for b in busy:
            b.kill()
            b.wait()


def run(args: argparse.Namespace) -> None:
    from rnntk.core.neurogym import NeurogymTask
    from rnntk.sofo.optimizer import SOFO
    from rnntk.sofo.problems import make_problem

    prob = make_problem(args.task, hidden=args.hidden, task_kwargs=json.dumps({"dt": args.dt}))
    gen = torch.Generator().manual_seed(0)
    model = prob.make_model(gen)
    adam_model = prob.make_model(torch.Generator().manual_seed(0))
    sofo = SOFO(dict(model.named_parameters()), n_tangents=args.K, damping=1e-2, lr=1.0, generator=torch.Generator().manual_seed(1))
    adam = torch.optim.Adam(adam_model.parameters(), lr=1e-2)
    fixed = prob.sample(args.batch, gen)

    def sofo_iter(b) -> None:
        sofo.step(lambda V: prob.sketch(model, V, b, "generic"))

    def adam_iter(b) -> None:
        loss = prob.loss(adam_model, b)
        adam.zero_grad()
        loss.backward()
        adam.step()

    raw = NeurogymTask(args.task, {"dt": args.dt})  # a second copy: neurogym's own new_trial() alone
    raw_gen = torch.Generator().manual_seed(2)

    def new_trials_only() -> float:  # CPU time of this thread
        t0 = time.thread_time()
        raw.seed(int(torch.randint(0, 2**31 - 1, (1,), generator=raw_gen)))
        for _ in range(args.batch):
            raw.env.new_trial()
        return time.thread_time() - t0

    def raw_sample() -> float:
        t0 = time.thread_time()
        raw.sample(args.batch, raw_gen)
        return time.thread_time() - t0

    def fresh(fn) -> tuple[float, float, float]:
        """(sample wall s, iteration wall s including the sample, the same in thread CPU s)."""
        c0, t0 = time.thread_time(), time.perf_counter()
        b = prob.sample(args.batch, gen)
        t1 = time.perf_counter()
        fn(b)
        return t1 - t0, time.perf_counter() - t0, time.thread_time() - c0

    def pre(fn) -> tuple[float, float]:
        c0, t0 = time.thread_time(), time.perf_counter()
        fn(fixed)
        return time.perf_counter() - t0, time.thread_time() - c0

    keys = ("sample", "new_trial", "own", *(f"{n}_{k}" for n in ("sofo", "adam") for k in ("fresh", "pre", "fresh_cpu", "pre_cpu")))
    times: dict[str, list[float]] = {k: [] for k in keys}
    sofo_iter(fixed)  # warm-up
    adam_iter(fixed)
    for r in range(args.repeats):
        for _ in range(5):  # short: five pairs per repeat
            if r % 2:
                a = new_trials_only()
                b = raw_sample()
            else:
                b = raw_sample()
                a = new_trials_only()
            times["new_trial"].append(a)
            times["own"].append(b - a)
        for name, fn in (("sofo", sofo_iter), ("adam", adam_iter)):
            if r % 2:  # alternate which of the pair runs first
                p, pc = pre(fn)
                s, f, fc = fresh(fn)
            else:
                s, f, fc = fresh(fn)
                p, pc = pre(fn)
            times["sample"].append(s)
            times[f"{name}_fresh"].append(f)
            times[f"{name}_pre"].append(p)
            times[f"{name}_fresh_cpu"].append(fc)
            times[f"{name}_pre_cpu"].append(pc)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.task} dt {args.dt:g} ms: {fixed.trials.steps} steps, batch {args.batch}, n {args.hidden}, K {args.K}; median of {args.repeats}, interleaved")
    if args.busy:
        print(f"  with {args.busy} busy-looping background process(es)")
    s, nt, own = med["sample"], med["new_trial"], med["own"]
    print(
        f"  adapter sample (batch {args.batch}): {s * 1e3:.2f} ms wall in the loop; alone, CPU time: neurogym's env.seed + {args.batch} env.new_trial() {nt * 1e3:.2f} ms, the adapter's own assembly {own * 1e3:.2f} ms (median paired difference)"
    )
    for name in ("sofo", "adam"):
        f, p = med[f"{name}_fresh"], med[f"{name}_pre"]
        paired = statistics.median(a / b for a, b in zip(times[f"{name}_fresh"], times[f"{name}_pre"]))
        cpu = statistics.median(a / b for a, b in zip(times[f"{name}_fresh_cpu"], times[f"{name}_pre_cpu"]))
        print(
            f"  {name}: iteration with a fresh batch {f * 1e3:.1f} ms, with a pre-generated batch {p * 1e3:.1f} ms, ratio {f / p:.3f} (median of paired ratios {paired:.3f}; in thread CPU time {cpu:.3f})"
        )


if __name__ == "__main__":
    main()
