"""The neurogym adapter's cost in a training iteration (issue 18 target: <= 10 % of an iteration).

    python benchmarks/neurogym_adapter.py                 # PerceptualDecisionMaking-v0, dt 20 ms
    python benchmarks/neurogym_adapter.py --task neurogym:DelayComparison-v0 --dt 20 --repeats 7

SOFO iterations of ``sofo-train --task neurogym:...`` (cpu-small sizes: n 64, batch 64, K 64)
and Adam+BPTT iterations, each timed (a) drawing a fresh batch with the adapter, prefetch off
(``NeurogymTask.sample``: ``env.new_trial()`` per row, padding, mask, table), (b) reusing one
pre-generated batch and (c) drawing with prefetch on (``RNNTK_NEUROGYM_PREFETCH=1``: the next
batch is built in a background thread while the iteration runs), each arm a block of ``--block`` consecutive
iterations (median), the arms interleaved (their order rotates between repeats), median of the
repeats. Prints the medians, the ratio of the medians (a)/(b), (c)/(b) and the median of the
per-repeat ratios (each arm paired with the (b) timed next to it, so slow drifts of the machine's
load cancel); for (c) also in the process's CPU time, which counts the prefetch thread (prefetch
hides the generation behind the iteration, it does not make it cheaper), and the cost of a batch split into neurogym's own ``env.seed`` + ``env.new_trial()``
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
    ap.add_argument("--block", type=int, default=3, help="consecutive iterations timed per arm and repeat")
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
    from rnntk.sofo.neurogym_problem import NeurogymProblem
    from rnntk.sofo.optimizer import SOFO
    from rnntk.sofo.problems import make_problem

    prob = make_problem(args.task, hidden=args.hidden, task_kwargs=json.dumps({"dt": args.dt}))
    ahead = make_problem(args.task, hidden=args.hidden, task_kwargs=json.dumps({"dt": args.dt}))  # arm (c): prefetch on
    assert isinstance(prob, NeurogymProblem) and isinstance(ahead, NeurogymProblem), "--task must be neurogym:<EnvId>"
    prob.task.prefetch = False  # arm (a): the batch built in the loop
    ahead.task.prefetch = True
    gen, gen_ahead = torch.Generator().manual_seed(0), torch.Generator().manual_seed(3)
    model = prob.make_model(gen)
    adam_model = prob.make_model(torch.Generator().manual_seed(0))
    sofo = SOFO(dict(model.named_parameters()), n_tangents=args.K, damping=1e-2, lr=1.0, generator=torch.Generator().manual_seed(1))
    adam = torch.optim.Adam(adam_model.parameters(), lr=1e-2)
    fixed = prob.sample(args.batch, gen)

    def sofo_iter(b) -> None:
        sofo.step(lambda V: prob.sketch(model, V, b, "generic"))

    def adam_iter(b) -> None:
        loss = prob.loss(adam_model, b)  # pyright: ignore[reportArgumentType]  (typed LeakyRNN; a LeakyRNN here)
        adam.zero_grad()
        loss.backward()
        adam.step()

    raw = NeurogymTask(args.task, {"dt": args.dt}, prefetch=False)  # a second copy: neurogym's own new_trial() alone
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

    def block(fn, arm: str) -> tuple[float, float, float]:
        """Median over ``--block`` consecutive iterations of (wall s, this thread's CPU s, the
        process's CPU s, which counts the prefetch thread), each iteration including its sample
        (none for ``pre``). ``ahead`` starts with one untimed iteration (its thread builds the first
        timed batch meanwhile, as in a run) and ends by joining the thread for the batch after the
        last, untimed, so that it never runs during another arm's timing."""
        if arm == "ahead":
            fn(ahead.sample(args.batch, gen_ahead))
            fn(ahead.sample(args.batch, gen_ahead))  # the second call in a row with the generator starts the thread
        out = []
        for _ in range(args.block):
            c0, p0, t0 = time.thread_time(), time.process_time(), time.perf_counter()
            b = fixed if arm == "pre" else (ahead.sample(args.batch, gen_ahead) if arm == "ahead" else prob.sample(args.batch, gen))
            fn(b)
            out.append((time.perf_counter() - t0, time.thread_time() - c0, time.process_time() - p0))
        if arm == "ahead":
            ahead.task.close()
        return tuple(statistics.median(x[i] for x in out) for i in range(3))  # type: ignore[return-value]

    arms = ("fresh", "pre", "ahead")
    times: dict[str, list[float]] = {k: [] for k in ("sample", "new_trial", "own")}
    for n in ("sofo", "adam"):
        for arm in arms:
            for unit in ("", "_cpu", "_proc"):
                times[f"{n}_{arm}{unit}"] = []
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
        t0 = time.perf_counter()
        prob.sample(args.batch, gen)
        times["sample"].append(time.perf_counter() - t0)
        for name, fn in (("sofo", sofo_iter), ("adam", adam_iter)):
            for arm in arms[r % 3 :] + arms[: r % 3]:  # rotate which arm runs first
                w, c, pc = block(fn, arm)
                times[f"{name}_{arm}"].append(w)
                times[f"{name}_{arm}_cpu"].append(c)
                times[f"{name}_{arm}_proc"].append(pc)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"{args.task} dt {args.dt:g} ms: {fixed.trials.steps} steps, batch {args.batch}, n {args.hidden}, K {args.K}; "
        f"median of {args.repeats} repeats of {args.block} iterations per arm, interleaved"
    )
    if args.busy:
        print(f"  with {args.busy} busy-looping background process(es)")
    s, nt, own = med["sample"], med["new_trial"], med["own"]
    print(
        f"  adapter sample (batch {args.batch}): {s * 1e3:.2f} ms wall; alone, CPU time: neurogym's env.seed + {args.batch} env.new_trial() {nt * 1e3:.2f} ms, the adapter's own assembly {own * 1e3:.2f} ms (median paired difference)"
    )

    def ratio(name: str, arm: str, unit: str) -> float:
        return statistics.median(a / b for a, b in zip(times[f"{name}_{arm}{unit}"], times[f"{name}_pre{unit}"]))

    for name in ("sofo", "adam"):
        f, p, h = med[f"{name}_fresh"], med[f"{name}_pre"], med[f"{name}_ahead"]
        print(
            f"  {name}: iteration with a fresh batch {f * 1e3:.1f} ms, with a pre-generated batch {p * 1e3:.1f} ms, ratio {f / p:.3f} "
            f"(median of paired ratios {ratio(name, 'fresh', ''):.3f}; in thread CPU time {ratio(name, 'fresh', '_cpu'):.3f})"
        )
        print(
            f"  {name}: iteration with prefetch (next batch built in a thread) {h * 1e3:.1f} ms, ratio {h / p:.3f} "
            f"(median of paired ratios {ratio(name, 'ahead', ''):.3f}; main-thread CPU {ratio(name, 'ahead', '_cpu'):.3f}; "
            f"process CPU, prefetch thread included, {ratio(name, 'ahead', '_proc'):.3f})"
        )


if __name__ == "__main__":
    main()
