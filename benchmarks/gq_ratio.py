"""GQ adjoint vs torchdiffeq's adjoint, seminorm adjoint and direct backprop, side by side.

    python benchmarks/gq_ratio.py                      # the issue-7 grid (several minutes)
    python benchmarks/gq_ratio.py --only g1d spheres   # some settings
    python benchmarks/gq_ratio.py --quick              # small widths, a smoke test
    python benchmarks/gq_ratio.py --auto-cost          # gq_nodes="auto" vs the gtol rule (issue 12)
    python benchmarks/gq_ratio.py --only g1d sines2k --mem-repeats 5   # memory: median of 5 processes

Every setting is a real `rnntk ode-train` problem (`ODEProblem`, the task generators and
vector fields of the CLI), at spec §8's sizes:

    g1d       width 2000, state 2 × 4, one output interval
    spheres   width 1000, batch 200 (state 200 × 5), one output interval
    sines10   width 1000, 15 series × [x, v], 10 regular times on [0, 2π] (9 intervals)
    sines50   width 1000, the same with 50 times (49 intervals)
    sines2k   width 2000, 10 times: the memory setting
    ou        width 20, Wong–Zakai ODE, 40 × 45 paths, 101 times (100 intervals)

For each, from the same initial weights (and the same Wong–Zakai noise), methods interleaved,
median of --repeats: (i) seconds per training step (forward solve + loss + backward), (ii) the
extra peak memory of one step, each method in its own process (CPU: peak RSS after resetting the
kernel's counter), median of --mem-repeats processes (one process's reading varies by 0-30 MB on
sines2k, as whether the allocator returns 16 MB parameter-sized buffers to the kernel varies), (iii) NFE forward/backward and GQ nodes, (iv) relative gradient error against
direct. ``gq`` is the default ``gq_nodes="auto"``, ``gq-rule`` the gtol rule alone
(``gq_nodes=None``). Prints adjoint/GQ and direct/GQ, and what ``--adjoint auto`` picks for the setting.
Targets (issue 7): g1d: adjoint/GQ ≥ 5 and direct/GQ ≥ 1; spheres: adjoint/GQ ≥ 3; sines2k:
adjoint memory ≥ 3× GQ's and GQ's ≤ 2× direct's. dopri5, rtol = atol = 1e-3, gtol 0.1, float32.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from peakmem import peak_rss, reset_peak_rss
from rnntk.ode.gradients import make_gradient
from rnntk.ode.train import ODEConfig, ODEProblem, auto_adjoint

METHODS = ("gq", "gq-rule", "adjoint", "seminorm", "direct")
SETTINGS = {
    "g1d": dict(task="g1d", width=2000, n_train=2, batch=2),
    "spheres": dict(task="spheres", width=1000, n_train=200, batch=200),
    "sines10": dict(task="sines", width=1000, ntimes=10),
    "sines50": dict(task="sines", width=1000, ntimes=50),
    "sines2k": dict(task="sines", width=2000, ntimes=10),
    "ou": dict(task="ou", width=20, ntimes=101),
}
QUICK = {"g1d": dict(width=200), "spheres": dict(width=100), "sines10": dict(width=100), "sines50": dict(width=100),
         "sines2k": dict(width=200), "ou": dict(width=20, ntimes=21)}


def problem(name: str, quick: bool, seed: int = 0):
    kw = dict(SETTINGS[name], **(QUICK[name] if quick else {}))
    cfg = ODEConfig(rtol=1e-3, atol=1e-3, method="dopri5", gtol=0.1, **kw)
    torch.manual_seed(seed)
    prob = ODEProblem(cfg, torch.Generator().manual_seed(seed))
    batch = prob.batches(torch.Generator().manual_seed(seed))[0]
    return prob, batch


def step(method: str, prob: ODEProblem, batch: tuple):
    """One training step's forward + loss + backward; returns (seconds, grads, stats). ``gq`` is
    the default (``gq_nodes="auto"``), ``gq-rule`` the gtol rule alone (``gq_nodes=None``)."""
    prob.gradient = make_gradient("gq" if method.startswith("gq") else method)
    prob.cfg.gq_nodes = None if method == "gq-rule" else "auto"
    mods = prob.modules()
    mods.zero_grad()
    if prob.cfg.task == "ou":  # the same Wong–Zakai noise for every method
        prob.sde.noise.generator.manual_seed(1234)
    t0 = time.perf_counter()
    loss, st, _ = prob.loss(batch, torch.device("cpu"))
    loss.backward()
    dt = time.perf_counter() - t0
    grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in mods.parameters()]
    st = {"nfe_forward": st.nfe_forward, "nfe_backward": st.nfe_backward, "nodes": list(st.nodes_per_interval)}
    return dt, grads, st


def rel_err(a, b) -> float:
    num = sum(float((x - y).pow(2).sum()) for x, y in zip(a, b)) ** 0.5
    den = sum(float(y.pow(2).sum()) for y in b) ** 0.5
    return num / max(den, 1e-30)


def memory_child(name: str, quick: bool, method: str) -> None:
    prob, batch = problem(name, quick)
    step(method, prob, batch)  # warm-up (allocator, lazy init)
    base = reset_peak_rss()
    step(method, prob, batch)
    print(json.dumps({"extra_mb": peak_rss() - base}))


def memory(name: str, quick: bool, method: str, repeats: int = 3) -> float:
    """Median over ``repeats`` fresh processes of one step's extra peak RSS (MB)."""
    args = [sys.executable, __file__, "--memory-child", name, method] + (["--quick"] if quick else [])
    vals = []
    for _ in range(max(1, repeats)):
        out = subprocess.run(args, capture_output=True, text=True, check=True)
        vals.append(json.loads(out.stdout.strip().splitlines()[-1])["extra_mb"])
    return statistics.median(vals)


def _nodes(st: dict) -> str:
    n = st.get("nodes") or []
    return f"{min(n)}–{max(n)} per interval × {len(n)}" if n and min(n) != max(n) else (f"{n[0]} × {len(n)}" if n else "-")


def run(name: str, quick: bool, repeats: int, mem_repeats: int = 3) -> None:
    prob, batch = problem(name, quick)
    mods = prob.modules()
    P = sum(p.numel() for p in mods.parameters())
    times = {m: [] for m in METHODS}
    grads, stats = {}, {}
    for r in range(repeats + 1):
        for m in METHODS:
            dt, g, st = step(m, prob, batch)
            if r == 0:  # first round: warm-up, gradients and stats
                grads[m], stats[m] = g, st
            else:
                times[m].append(dt)
    med = {m: statistics.median(v) for m, v in times.items()}
    mem = {m: [] for m in METHODS}
    for _ in range(max(1, mem_repeats)):  # methods interleaved, one fresh process each
        for m in METHODS:
            mem[m].append(memory(name, quick, m, 1))
    mem = {m: statistics.median(v) for m, v in mem.items()}
    cfg = prob.cfg
    K, S = prob.shape(batch)
    st = stats["gq"]
    print(f"{name}: {cfg.task}, width {cfg.width}, {P:,} parameters, state {S} numbers, {K} output intervals; "
          f"GQ NFE fwd {st['nfe_forward']} bwd {st['nfe_backward']}, nodes {_nodes(st)}")
    for m in METHODS:
        err = rel_err(grads[m], grads["direct"]) if m != "direct" else 0.0
        print(f"    {m:9s} {med[m]:8.3f} s/step   NFE fwd/bwd {stats[m]['nfe_forward']!s:>5}/{stats[m]['nfe_backward']!s:<5} "
              f"extra peak memory {mem[m]:8.1f} MB   grad rel. error vs direct {err:.1e}")
    print(f"    time ratios: adjoint/GQ = {med['adjoint'] / med['gq']:.2f}, seminorm/GQ = {med['seminorm'] / med['gq']:.2f}, "
          f"direct/GQ = {med['direct'] / med['gq']:.2f}, direct/gq-rule = {med['direct'] / med['gq-rule']:.2f}, "
          f"GQ/gq-rule = {med['gq'] / med['gq-rule']:.2f}")
    def ratio(a: float, b: float) -> str:  # below 1 MB the RSS counter is noise: give a bound
        if min(a, b) >= 1.0:
            return f"{a / b:.2f}"
        if a >= 1.0:
            return f"> {a:.0f} (denominator < 1 MB)"
        if b >= 1.0:
            return f"< {1.0 / b:.2f} (numerator < 1 MB)"
        return "n/a (both < 1 MB)"

    print(f"    memory ratios: adjoint/GQ = {ratio(mem['adjoint'], mem['gq'])}, GQ/direct = {ratio(mem['gq'], mem['direct'])}, "
          f"GQ/gq-rule = {ratio(mem['gq'], mem['gq-rule'])}"
          f"   --adjoint auto picks: {auto_adjoint(K, P, S)}")


def auto_cost(names: list, quick: bool, repeats: int) -> None:
    """Issue 12: time per training step of GQ with gq_nodes="auto" against the gtol rule alone,
    interleaved, median of ``repeats``; and each one's gradient error against direct backprop."""
    ratios = []
    for name in names:
        prob, batch = problem(name, quick)
        times = {m: [] for m in ("gq", "gq-rule")}
        grads, stats = {}, {}
        for r in range(repeats + 1):
            for m in ("gq-rule", "gq", "direct") if r == 0 else ("gq-rule", "gq"):
                dt, g, st = step(m, prob, batch)
                if r == 0:
                    grads[m], stats[m] = g, st
                else:
                    times[m].append(dt)
        med = {m: statistics.median(v) for m, v in times.items()}
        ratios.append(med["gq"] / med["gq-rule"])
        print(f"{name}: auto {med['gq']:.3f} s/step (nodes {_nodes(stats['gq'])}, NFE bwd {stats['gq']['nfe_backward']}), "
              f"rule {med['gq-rule']:.3f} s/step (nodes {_nodes(stats['gq-rule'])}, NFE bwd {stats['gq-rule']['nfe_backward']}); "
              f"auto/rule = {ratios[-1]:.2f}; grad rel. error vs direct: auto {rel_err(grads['gq'], grads['direct']):.1e}, "
              f"rule {rel_err(grads['gq-rule'], grads['direct']):.1e}", flush=True)
    print(f"auto/rule time: max {max(ratios):.2f}, geometric mean {statistics.geometric_mean(ratios):.2f} (target ≤ 1.2)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", nargs="+", choices=list(SETTINGS))
    ap.add_argument("--mem-repeats", type=int, default=3, help="processes per method for the memory median")
    ap.add_argument("--memory-child", nargs=2, metavar=("SETTING", "METHOD"))
    ap.add_argument("--auto-cost", action="store_true", help="gq_nodes='auto' vs the gtol rule only")
    a = ap.parse_args()
    if a.memory_child:
        memory_child(a.memory_child[0], a.quick, a.memory_child[1])
        return
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, dopri5 rtol=atol=1e-3, gtol 0.1, float32, "
          f"median of {2 if a.quick else a.repeats} interleaved steps")
    if a.auto_cost:
        auto_cost(a.only or list(SETTINGS), a.quick, 2 if a.quick else a.repeats)
        return
    for name in a.only or list(SETTINGS):
        run(name, a.quick, 2 if a.quick else a.repeats, 1 if a.quick else a.mem_repeats)


if __name__ == "__main__":
    main()
