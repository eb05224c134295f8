"""The neurogym adapter's cost in a training iteration (issue 18 target: <= 10 % of an iteration).

    python benchmarks/neurogym_adapter.py                 # PerceptualDecisionMaking-v0, dt 20 ms
    python benchmarks/neurogym_adapter.py --task neurogym:DelayComparison-v0 --dt 20 --repeats 7

One SOFO iteration of ``sofo-train --task neurogym:...`` (cpu-small sizes: n 64, batch 64, K 64)
and one Adam+BPTT iteration, each timed (a) drawing a fresh batch with the adapter
(``NeurogymTask.sample``: ``env.new_trial()`` per row, padding, mask, table) and (b) reusing one
pre-generated batch, interleaved, median of the repeats. Prints the medians and the ratios
(a)/(b). Needs ``pip install 'rnntk[neurogym]'``. Times are wall clock on whatever else runs on
the machine; the interleaving makes the ratio, not the absolute times, the figure to read.
"""

from __future__ import annotations

import argparse
import json
import statistics
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
    args = ap.parse_args()
    torch.set_num_threads(1)

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

    times: dict[str, list[float]] = {k: [] for k in ("sample", "sofo_fresh", "sofo_pre", "adam_fresh", "adam_pre")}
    sofo_iter(fixed), adam_iter(fixed)  # warm-up
    for _ in range(args.repeats):
        for name, fn in (("sofo", sofo_iter), ("adam", adam_iter)):
            t0 = time.perf_counter()
            b = prob.sample(args.batch, gen)
            t1 = time.perf_counter()
            fn(b)
            t2 = time.perf_counter()
            fn(fixed)
            t3 = time.perf_counter()
            times["sample"].append(t1 - t0)
            times[f"{name}_fresh"].append(t2 - t0)
            times[f"{name}_pre"].append(t3 - t2)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.task} dt {args.dt:g} ms: {fixed.trials.steps} steps, batch {args.batch}, n {args.hidden}, K {args.K}; median of {args.repeats}, interleaved")
    print(f"  adapter sample (batch {args.batch}): {med['sample'] * 1e3:.1f} ms")
    for name in ("sofo", "adam"):
        fresh, pre = med[f"{name}_fresh"], med[f"{name}_pre"]
        print(f"  {name}: iteration with a fresh batch {fresh * 1e3:.1f} ms, with a pre-generated batch {pre * 1e3:.1f} ms, ratio {fresh / pre:.3f}")


if __name__ == "__main__":
    main()
