"""SOFO vs Adam+BPTT on neurogym cognitive tasks with Dale's law (issue 18, item 6), side by side
in one run.

    python benchmarks/sofo_neurogym.py                       # PDM + DelayComparison, small budget
    python benchmarks/sofo_neurogym.py --iters 300 --eval-every 5
    python benchmarks/sofo_neurogym.py --tasks PerceptualDecisionMaking-v0 --hidden 128

For each task (``neurogym:<EnvId>``, dt 20 ms), one constrained rate RNN (``ConstrainedRNN``,
``--dale-ratio 0.8``: 80 % excitatory columns, softplus rates; the same problem and model that
``rnntk sofo-train --task neurogym:... --dale-ratio 0.8`` builds) is copied into SOFO (K tangents,
damping, lr 1, step capped at ``--max-step-norm`` 0.1 of the parameter norm: uncapped, the first
step with Dale's law is as large as the weights and the run turns NaN) and Adam at three learning rates (the preset's ``--adam-lr`` x1/3, x1, x3). All arms
step *interleaved* on the same training batches (same init), each timed around its own optimiser
step, so background load hits them alike. Every ``--eval-every`` iterations each arm is evaluated
on the same fixed validation batch (``--val-batch`` trials): decision accuracy = argmax of the
output at the last decision step vs neurogym's ground truth. SOFO runs ``--iters`` iterations;
each Adam arm runs until it has had both as many iterations and as much optimiser time as SOFO.

Prints per task: iterations and optimiser seconds to ``--target`` (0.9) decision accuracy for
SOFO and each Adam lr, the ratio SOFO / best Adam (issue 18 target: iterations <= 0.5), and the
accuracy of SOFO and of the best Adam at SOFO's total optimiser time (target: SOFO higher).
Needs ``pip install 'rnntk[neurogym]'``. Times are wall clock on whatever else runs on the
machine; read the ratios.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

ADAM_FACTORS = (1 / 3, 1.0, 3.0)


def contrast(task: str, args: argparse.Namespace, log=print) -> dict:
    """Interleaved SOFO / Adam x3 on ``task``; returns per-arm snapshots ``[(iteration, optimiser
    seconds, decision accuracy)]``."""
    from rnntk.sofo.optimizer import SOFO
    from rnntk.sofo.problems import make_problem

    constraints = dict(dale_ratio=args.dale_ratio, connectivity=None, autapses=True, rec_noise=0.0, input_noise=0.0)
    prob = make_problem(task, hidden=args.hidden, task_kwargs=json.dumps({"dt": args.dt}), constraints=constraints)
    model = prob.make_model(torch.Generator().manual_seed(args.seed))
    val = prob.sample(args.val_batch, torch.Generator().manual_seed(args.seed + 10_007))
    arms: dict[str, tuple] = {}
    m = copy.deepcopy(model)
    arms["sofo"] = (
        m,
        SOFO(
            dict(m.named_parameters()),
            n_tangents=args.K,
            damping=args.damping,
            lr=args.lr,
            max_step_norm=args.max_step_norm,
            generator=torch.Generator().manual_seed(args.seed + 2),
        ),
    )
    for f in ADAM_FACTORS:
        m = copy.deepcopy(model)
        arms[f"adam {args.adam_lr * f:.3g}"] = (m, torch.optim.Adam(m.parameters(), lr=args.adam_lr * f, eps=1e-7))
    snaps: dict[str, list] = {k: [] for k in arms}
    wall = dict.fromkeys(arms, 0.0)

    def snap(k: str, it: int) -> None:
        _, t = prob.evaluate_task(arms[k][0], val)
        snaps[k].append((it, wall[k], t["decision_accuracy"]))

    for k in arms:
        snap(k, 0)
    data = torch.Generator().manual_seed(args.seed + 1)
    it = 0
    while True:
        active = [k for k in arms if it < args.iters or (k != "sofo" and wall[k] < wall["sofo"])]
        if not active:
            break
        b = prob.sample(args.batch, data)
        it += 1
        for k in active:
            m, opt = arms[k]
            t0 = time.perf_counter()
            if k == "sofo":
                opt.step(lambda V, m=m: prob.sketch(m, V, b, "auto"))  # noqa: B023 - called at once
            else:
                loss = prob.loss(m, b)
                opt.zero_grad()
                loss.backward()
                opt.step()
            wall[k] += time.perf_counter() - t0
            if it % args.eval_every == 0 or (k == "sofo" and it == args.iters):
                snap(k, it)
        if it % (5 * args.eval_every) == 0:
            log(f"  [{prob.name}] iteration {it}: " + ", ".join(f"{k} {snaps[k][-1][2]:.3f}" for k in arms), flush=True)
    return {"snaps": snaps, "name": prob.name, "steps": val.trials.steps}


def first_reach(snaps: list, target: float):
    """The first snapshot with accuracy >= ``target``, or None."""
    return next((s for s in snaps if s[2] >= target), None)


def at_wall(snaps: list, w: float):
    """The last snapshot taken within ``w`` seconds of optimiser time."""
    return [s for s in snaps if s[1] <= w * 1.0001][-1]


def report(res: dict, args: argparse.Namespace, log=print) -> dict:
    """Print one task's contrast; return its headline ratios per target accuracy."""
    snaps = res["snaps"]
    sofo = snaps["sofo"]
    W = sofo[-1][1]
    adams = [k for k in snaps if k != "sofo"]
    log(
        f"{res['name']} (Dale 0.8, dt {args.dt:g} ms, {res['steps']} steps, n {args.hidden}, B {args.batch}, K {args.K}, "
        f"SOFO step cap {args.max_step_norm:g}, val {args.val_batch} trials): {args.iters} SOFO iterations, {W:.1f} s SOFO optimiser time"
    )
    out: dict = {}
    for tgt in args.target:
        hit = {k: first_reach(snaps[k], tgt) for k in snaps}
        to = lambda k, h=hit: f"it {h[k][0]}, {h[k][1]:.1f} s" if h[k] else f"not reached (>{snaps[k][-1][0]} it, >{snaps[k][-1][1]:.1f} s)"
        log(f"  to {tgt:.0%} decision accuracy: " + "; ".join(f"{k} {to(k)}" for k in snaps))
        reached = [k for k in adams if hit[k]]
        if hit["sofo"] and reached:
            best = min(reached, key=lambda k: hit[k][0])
            ri, rw = hit["sofo"][0] / hit[best][0], hit["sofo"][1] / min(hit[k][1] for k in reached)
            out[tgt] = ri
            log(f"  => to {tgt:.0%}: SOFO/best Adam ({best}) iterations = {ri:.2f}, wall time = {rw:.2f}")
        elif hit["sofo"]:
            mx = max(snaps[k][-1][0] for k in adams)
            out[tgt] = hit["sofo"][0] / mx
            log(f"  => to {tgt:.0%}: no Adam lr reached it; SOFO/best Adam iterations < {out[tgt]:.2f} (Adam ran {mx} it)")
        else:
            log(f"  => to {tgt:.0%}: SOFO did not reach it in {args.iters} iterations (raise --iters)")
    eqa = {k: at_wall(snaps[k], W) for k in adams}
    best_w = max(adams, key=lambda k: eqa[k][2])
    log(
        f"  => accuracy at equal wall time ({W:.1f} s): SOFO {sofo[-1][2]:.3f} (it {sofo[-1][0]}, best {max(s[2] for s in sofo):.3f}); "
        + ", ".join(f"{k} {eqa[k][2]:.3f} (it {eqa[k][0]})" for k in adams)
        + f"; SOFO - best Adam ({best_w}) = {sofo[-1][2] - eqa[best_w][2]:+.3f}"
    )
    out["acc_sofo"], out["acc_adam"] = sofo[-1][2], eqa[best_w][2]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["PerceptualDecisionMaking-v0", "DelayComparison-v0"], help="neurogym env ids")
    ap.add_argument("--iters", type=int, default=150, help="SOFO iterations per task")
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--val-batch", type=int, default=256)
    ap.add_argument("--dt", type=float, default=20.0, help="neurogym dt (ms)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("-K", type=int, default=64)
    ap.add_argument("--damping", type=float, default=1e-2)
    ap.add_argument("--lr", type=float, default=1.0, help="SOFO learning rate")
    ap.add_argument(
        "--max-step-norm", type=float, default=0.1, help="SOFO: cap the step at this fraction of the parameter norm (0 = off: lr 1 diverges to NaN with Dale)"
    )
    ap.add_argument("--adam-lr", type=float, default=1e-2, help="middle Adam lr (x1/3, x1, x3 are run)")
    ap.add_argument("--dale-ratio", type=float, default=0.8)
    ap.add_argument("--target", type=float, nargs="+", default=[0.8, 0.85, 0.9], help="decision accuracies to reach")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"SOFO vs Adam+BPTT (lr x1/3, x1, x3 of {args.adam_lr:g}), neurogym tasks, interleaved on identical batches and init; torch threads 1", flush=True)
    for t in args.tasks:
        report(contrast(t if t.startswith("neurogym:") else f"neurogym:{t}", args), args)


if __name__ == "__main__":
    main()
