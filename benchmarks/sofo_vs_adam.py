"""SOFO vs Adam+BPTT on the cpu-small double reach, measured side by side in one run.

    python benchmarks/sofo_vs_adam.py            # about 5 minutes on 2 CPU cores
    python benchmarks/sofo_vs_adam.py --quick    # fewer iterations, for a smoke test

Same task generator and seed, same initial weights, same training batches and noise, same
fixed validation batch. Prints:
  (a) iterations to reach validation loss 0.60, Adam (best of several lr) / SOFO;
  (b) validation loss at equal wall-clock, SOFO / Adam (best lr);
  (c) seconds per iteration, SOFO / Adam (hand-written tangents, K = 32);
  (d) extra peak memory of one iteration at T = 500 and T = 5000 (each in its own process,
      ru_maxrss on CPU, max_memory_allocated on CUDA) and its growth factor, SOFO vs Adam.
Targets (issue): (a) SOFO ≤ 25 iterations and ratio ≥ 2.5; (b) ≤ 0.8; (c) ≤ 3;
(d) SOFO growth ≤ 1.3, Adam growth ≥ 4.
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
from rnntk.methods.sofo import SOFO
from rnntk.methods.sofo_problems import ReachProblem

TARGET = 0.60


def setup(seed: int = 0, device: str = "cpu"):
    prob = ReachProblem("double-reach", hidden=32, dt=0.01)
    model = prob.make_model(torch.Generator().manual_seed(seed)).to(device)
    val = prob.sample(64, torch.Generator().manual_seed(10_007)).to(torch.device(device))
    return prob, model, val


def iteration(kind: str, opt, prob, model, b) -> None:
    """One optimiser iteration: a SOFO step (hand-written tangents) or Adam + BPTT."""
    if kind == "sofo":
        opt.step(lambda V: prob.sketch(model, V, b, "manual"))
    else:
        loss = prob.loss(model, b)
        opt.zero_grad()
        loss.backward()
        opt.step()


def curve(kind: str, lr: float, iters: int, seed: int = 0, budget: float | None = None, device: str = "cpu"):
    """Validation loss after every iteration, and the per-iteration optimiser time."""
    prob, model, val = setup(seed, device)
    model = copy.deepcopy(model)
    data = torch.Generator().manual_seed(seed + 1)
    if kind == "sofo":
        opt = SOFO(dict(model.named_parameters()), n_tangents=32, damping=1e-3, lr=lr, generator=torch.Generator().manual_seed(seed + 2))
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-7)
    vals, times, wall = [prob.evaluate(model, val)], [], [0.0]
    for _ in range(iters):
        b = prob.sample(32, data).to(torch.device(device))
        t0 = time.perf_counter()
        iteration(kind, opt, prob, model, b)
        if device != "cpu":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        times.append(dt)
        wall.append(wall[-1] + dt)
        v = prob.evaluate(model, val)
        vals.append(v if math.isfinite(v) else float("inf"))
        if budget is not None and wall[-1] >= budget:
            break
    return vals, times, wall


def first_below(vals, target=TARGET):
    for i, v in enumerate(vals):
        if v <= target:
            return i
    return None


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
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--memory-child", nargs=2, metavar=("KIND", "STEPS"))
    a = ap.parse_args()
    if a.memory_child:
        memory_child(a.memory_child[0], int(a.memory_child[1]), a.device)
        return
    torch.set_num_threads(2)
    sofo_iters, adam_iters = (30, 60) if a.quick else (40, 200)
    adam_lrs = [3e-3, 1e-2, 3e-2]
    print(f"device {a.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("double reach cpu-small: n=32, B=32, dt=10 ms (T=200), K=32, lr 1, damping 1e-3; validation 64 trials, fixed noise")
    s_vals, s_times, s_wall = curve("sofo", 1.0, sofo_iters, device=a.device)
    print(f"SOFO  val loss: init {s_vals[0]:.3f}, @10 {s_vals[min(10, len(s_vals) - 1)]:.3f}, @25 {s_vals[min(25, len(s_vals) - 1)]:.3f}, last {s_vals[-1]:.3f}; {statistics.median(s_times):.3f} s/it")
    adam = {}
    for lr in adam_lrs:
        v, t, w = curve("adam", lr, adam_iters, device=a.device)
        adam[lr] = (v, t, w)
        print(f"Adam lr {lr:g}: val @25 {v[min(25, len(v) - 1)]:.3f}, @100 {v[min(100, len(v) - 1)]:.3f}, last {v[-1]:.3f}; first <= {TARGET}: {first_below(v)}; {statistics.median(t):.3f} s/it")
    s_hit = first_below(s_vals)
    hits = {lr: first_below(v) for lr, (v, _, _) in adam.items()}
    best_lr = min(adam, key=lambda lr: (hits[lr] if hits[lr] is not None else 10**9, adam[lr][0][-1]))
    a_hit = hits[best_lr]
    print()
    print(f"(a) iterations to val <= {TARGET}: SOFO {s_hit}, Adam best (lr {best_lr:g}) {a_hit if a_hit is not None else f'> {adam_iters}'}")
    if s_hit and a_hit:
        print(f"    ratio Adam/SOFO = {a_hit / s_hit:.2f}")
    elif s_hit:
        print(f"    ratio Adam/SOFO > {adam_iters / s_hit:.2f} (Adam did not reach it)")
    for budget in (7.5, s_wall[-1]):  # the spec's 7.5 s, and SOFO's whole run
        budget = min(budget, s_wall[-1])
        s_at = s_vals[max(i for i, w in enumerate(s_wall) if w <= budget)]
        best_at_budget = min((v[max(i for i, w in enumerate(wall) if w <= budget)], lr) for lr, (v, _, wall) in adam.items())
        print(f"(b) val loss at equal wall-clock ({budget:.1f} s of optimiser time): SOFO {s_at:.3f}, Adam best {best_at_budget[0]:.3f} (lr {best_at_budget[1]:g}); ratio SOFO/Adam = {s_at / best_at_budget[0]:.2f}")
    t_s, t_a = statistics.median(s_times), statistics.median(adam[best_lr][1])
    print(f"(c) seconds per iteration: SOFO {t_s:.3f}, Adam {t_a:.3f}; ratio SOFO/Adam = {t_s / t_a:.2f}")
    mem = {(k, T): memory(k, T, a.device) for k in ("sofo", "adam") for T in (500, 5000)}
    gs, ga = mem[("sofo", 5000)] / max(mem[("sofo", 500)], 1e-9), mem[("adam", 5000)] / max(mem[("adam", 500)], 1e-9)
    print(f"(d) extra peak memory of one iteration (MB): SOFO T=500 {mem[('sofo', 500)]:.1f}, T=5000 {mem[('sofo', 5000)]:.1f} (growth {gs:.2f}x); "
          f"Adam T=500 {mem[('adam', 500)]:.1f}, T=5000 {mem[('adam', 5000)]:.1f} (growth {ga:.2f}x)")


if __name__ == "__main__":
    main()
