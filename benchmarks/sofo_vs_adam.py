"""SOFO vs Adam+BPTT on the quick start's configuration (the cpu-small presets of
``rnntk sofo-train``), measured side by side in one run, in task terms.

    python benchmarks/sofo_vs_adam.py            # both tasks, full preset length
    python benchmarks/sofo_vs_adam.py --quick    # a few iterations, for a smoke test
    python benchmarks/sofo_vs_adam.py --tasks double-reach --no-memory

For each task, SOFO (the preset's K, damping, lr) and Adam at three learning rates (the preset's
and its neighbours x1/3, x3) step *interleaved* on the same training batches (same init, same
noise), each timed around its own optimiser step, so background load hits them alike. Every
``--eval-every`` iterations each is evaluated on the same fixed validation trials (64 double
reaches with fixed noise; 128 Kalman trials). Adam keeps going until it has had both as many
iterations and as much optimiser wall-clock as SOFO. Prints, for the best Adam lr:
  double reach: median end-of-hold distance to target over reachable validation targets (both
    reaches), reach_success (holds ending within 2 cm), at equal wall-clock and at equal
    iterations, and the ratio Adam/SOFO of the median error (issue 14 target: >= 2 at equal
    wall-clock);
  kalman: validation MSE / MSE of the context-aware Kalman filter (target <= 1.1 for SOFO), and
    Adam's, at equal wall-clock and equal iterations;
  (c) seconds per iteration SOFO / Adam; (d) extra peak memory of one double-reach iteration at
  T = 500 and 5000 (separate processes) and its growth, SOFO vs Adam.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import subprocess
import sys
import time

import torch
from peakmem import peak_rss, reset_peak_rss

from rnntk.sofo.config import preset_values
from rnntk.sofo.optimizer import SOFO
from rnntk.sofo.problems import ReachProblem, make_problem

ADAM_FACTORS = (1 / 3, 1.0, 3.0)


def preset(task: str) -> dict:
    """The quick start's values for ``task`` (the cpu-small preset of ``rnntk sofo-train``)."""
    return preset_values("cpu-small", task)


def iteration(kind: str, opt, prob, model, b) -> None:
    """One optimiser iteration: a SOFO step (hand-written tangents) or Adam + BPTT."""
    if kind == "sofo":
        opt.step(lambda V: prob.sketch(model, V, b, "manual"))
    else:
        loss = prob.loss(model, b)
        opt.zero_grad()
        loss.backward()
        opt.step()


def contrast(task: str, iters: int | None, eval_every: int, seed: int = 0, device: str = "cpu", log=print) -> dict:
    """Interleaved SOFO / Adam x3 run on ``task``; returns per-arm eval snapshots
    ``[(iteration, optimiser seconds, val loss, task metrics)]`` and per-iteration times."""
    c = preset(task)
    n_it = iters or c["iters"]
    dev = torch.device(device)
    prob = make_problem(task, hidden=c["hidden"], dt=c["dt"], steps=c["steps"])
    model = prob.make_model(torch.Generator().manual_seed(seed)).to(dev)
    val = prob.sample(64 if task != "kalman" else 128, torch.Generator().manual_seed(seed + 10_007)).to(dev)
    arms = {"sofo": (copy.deepcopy(model), None)}
    arms["sofo"] = (arms["sofo"][0], SOFO(dict(arms["sofo"][0].named_parameters()), n_tangents=c["n_tangents"], damping=c["damping"], lr=c["lr"],
                                         generator=torch.Generator(device=dev).manual_seed(seed + 2)))
    for f in ADAM_FACTORS:
        m = copy.deepcopy(model)
        arms[f"adam {c['adam_lr'] * f:.3g}"] = (m, torch.optim.Adam(m.parameters(), lr=c["adam_lr"] * f, eps=1e-7))
    snaps = {k: [] for k in arms}
    times = {k: [] for k in arms}
    wall = dict.fromkeys(arms, 0.0)

    def snap(k: str, it: int) -> None:
        v, t = prob.evaluate_task(arms[k][0], val)
        snaps[k].append((it, wall[k], v if math.isfinite(v) else float("inf"), t))

    for k in arms:
        snap(k, 0)
    data = torch.Generator().manual_seed(seed + 1)
    it = 0
    while True:
        active = [k for k in arms if (k == "sofo" and it < n_it) or (k != "sofo" and (it < n_it or wall[k] < wall["sofo"]))]
        if not active:
            break
        b = prob.sample(c["batch"], data).to(dev)
        it += 1
        for k in active:
            m, opt = arms[k]
            t0 = time.perf_counter()
            iteration("sofo" if k == "sofo" else "adam", opt, prob, m, b)
            if device != "cpu":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            times[k].append(dt)
            wall[k] += dt
            if it % eval_every == 0 or (k == "sofo" and it == n_it):
                snap(k, it)
        if it % (5 * eval_every) == 0:
            log(f"  [{task}] iteration {it}: " + ", ".join(f"{k} {snaps[k][-1][2]:.3f}" for k in arms))
    return {"snaps": snaps, "times": times, "iters": n_it, "config": c}


def at_wall(snaps: list, w: float):
    """The snapshot taken nearest to ``w`` seconds of optimiser time."""
    return min(snaps, key=lambda s: abs(s[1] - w))


def at_iter(snaps: list, n: int):
    return [s for s in snaps if s[0] <= n][-1]


def report(task: str, res: dict, log=print) -> dict:
    """Print the contrast and return its headline numbers."""
    snaps, n = res["snaps"], res["iters"]
    key = "reach_error" if task != "kalman" else "mse_over_kf"
    score = lambda s: s[3].get(key, float("inf")) if math.isfinite(s[2]) else float("inf")
    sofo = snaps["sofo"][-1]
    W = sofo[1]
    adams = [k for k in snaps if k != "sofo"]
    eq_w = {k: at_wall(snaps[k], W) for k in adams}
    eq_i = {k: at_iter(snaps[k], n) for k in adams}
    best_w = min(adams, key=lambda k: score(eq_w[k]))
    best_i = min(adams, key=lambda k: score(eq_i[k]))
    c = res["config"]
    log(f"{task}: n={c['hidden']}, B={c['batch']}, " + (f"dt={c['dt'] * 1000:g} ms, " if task != "kalman" else f"T={c['steps']}, ")
        + f"K={c['n_tangents']}, lr {c['lr']:g}, damping {c['damping']:g}; {n} SOFO iterations, {W:.1f} s of SOFO optimiser time")
    fmt = (lambda s: f"val loss {s[2]:.4f}, median end-of-hold error {100 * s[3]['reach_error']:.1f} cm (hold 1 {100 * s[3]['reach_error_hold1']:.1f}, "
           f"hold 2 {100 * s[3].get('reach_error_hold2', float('nan')):.1f}), reach_success {s[3]['reach_success']:.2f}") if task != "kalman" else \
          (lambda s: f"MSE {s[2]:.4f} = {s[3]['mse_over_kf']:.3f} x the Kalman filter's")
    log(f"  SOFO                           @ it {sofo[0]:5d}, {sofo[1]:6.1f} s: {fmt(sofo)}")
    for k in adams:
        log(f"  {k:<12} equal wall-clock @ it {eq_w[k][0]:5d}, {eq_w[k][1]:6.1f} s: {fmt(eq_w[k])}")
        log(f"  {k:<12} equal iterations @ it {eq_i[k][0]:5d}, {eq_i[k][1]:6.1f} s: {fmt(eq_i[k])}")
    rw, ri = score(eq_w[best_w]) / score(sofo), score(eq_i[best_i]) / score(sofo)
    what = "median end-of-hold error" if task != "kalman" else "MSE / KF MSE"
    log(f"  => {what}: SOFO {score(sofo):.4g}; best Adam at equal wall-clock ({best_w}) {score(eq_w[best_w]):.4g}, ratio Adam/SOFO = {rw:.2f}; "
        f"at equal iterations ({best_i}) {score(eq_i[best_i]):.4g}, ratio Adam/SOFO = {ri:.2f}")
    t_s, t_a = statistics.median(res["times"]["sofo"]), statistics.median(res["times"][best_i])
    log(f"  (c) seconds per iteration: SOFO {t_s:.3f}, Adam {t_a:.3f}; ratio SOFO/Adam = {t_s / t_a:.2f}")
    return {"sofo": score(sofo), "adam_equal_wall": score(eq_w[best_w]), "adam_equal_iters": score(eq_i[best_i]), "ratio_wall": rw, "ratio_iters": ri}


def memory_child(kind: str, steps: int, device: str) -> None:
    """One iteration in this process; print the extra peak memory in MB."""
    prob = ReachProblem("double-reach", hidden=32, dt=0.01, duration=steps * 0.01)
    model = prob.make_model(torch.Generator().manual_seed(0)).to(device)
    b = prob.sample(32, torch.Generator().manual_seed(1)).to(torch.device(device))
    opt = SOFO(dict(model.named_parameters()), n_tangents=32, generator=torch.Generator().manual_seed(2)) if kind == "sofo" else torch.optim.Adam(model.parameters())
    if device == "cpu":
        base = reset_peak_rss()
    else:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    iteration(kind, opt, prob, model, b)
    peak = peak_rss() if device == "cpu" else torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps({"extra_mb": peak - base}))


def memory(kind: str, steps: int, device: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--memory-child", kind, str(steps), "--device", device], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["extra_mb"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a few iterations only (smoke test)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tasks", default="double-reach,kalman")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--no-memory", action="store_true", help="skip (d), the peak-memory subprocesses")
    ap.add_argument("--iters", type=int, default=None, help="SOFO iterations (default: the preset's)")
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--memory-child", nargs=2, metavar=("KIND", "STEPS"))
    a = ap.parse_args()
    if a.memory_child:
        memory_child(a.memory_child[0], int(a.memory_child[1]), a.device)
        return
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"device {a.device}, torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    out = {}
    for task in a.tasks.split(","):
        res = contrast(task, 6 if a.quick else a.iters, 2 if a.quick else a.eval_every, device=a.device, log=lambda s: print(s, flush=True))
        out[task] = report(task, res, log=lambda s: print(s, flush=True))
    print(json.dumps({"summary": out}))
    if a.no_memory:
        return
    mem = {(k, T): memory(k, T, a.device) for k in ("sofo", "adam") for T in (500, 5000)}
    gs, ga = mem[("sofo", 5000)] / max(mem[("sofo", 500)], 1e-9), mem[("adam", 5000)] / max(mem[("adam", 500)], 1e-9)
    print(f"(d) extra peak memory of one iteration (MB): SOFO T=500 {mem[('sofo', 500)]:.1f}, T=5000 {mem[('sofo', 5000)]:.1f} (growth {gs:.2f}x); "
          f"Adam T=500 {mem[('adam', 500)]:.1f}, T=5000 {mem[('adam', 5000)]:.1f} (growth {ga:.2f}x)")


if __name__ == "__main__":
    main()
