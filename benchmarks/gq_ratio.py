"""GQ adjoint vs torchdiffeq's adjoint, seminorm adjoint and direct backprop, side by side.

    python benchmarks/gq_ratio.py                 # g1d-like width 2000 and spheres-like width 1000
    python benchmarks/gq_ratio.py --quick         # small widths, a smoke test

For each setting, from the same initial weights, methods interleaved, median of --repeats:
(i) seconds per training step (forward solve + loss + backward), (ii) extra peak memory of one
step, each method in its own process (CPU: peak RSS after resetting the kernel's counter),
(iii) NFE forward/backward and GQ nodes, (iv) relative gradient error against direct.
Prints adjoint/GQ and direct/GQ. Targets (issue 7): g1d-like width 2000: adjoint/GQ ≥ 5 and
direct/GQ ≥ 1; spheres-like batch 200 width 1000: adjoint/GQ ≥ 3.
dopri5, rtol = atol = 1e-3, gtol 0.1 (upstream's training settings), float32.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from peakmem import peak_rss, reset_peak_rss
from rnntk.methods.gq_adjoint import odeint_adjoint_gq
from rnntk.methods.ode_train import MLPField

METHODS = ("gq", "adjoint", "seminorm", "direct")
TOL = 1e-3


def setting(name: str, width: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if name == "g1d":  # state 2 × 4: a 1-D input plus 3 augmented zeros, no t
        x = torch.rand(2, 1, generator=g) * 2 - 1
        y0 = torch.cat([x, torch.zeros(2, 3)], -1)
        target = -x
        func = MLPField(4, width, with_t=False)
    else:  # spheres-like: state 200 × 5 (2-D point + 3 zeros), f reads t
        x = torch.rand(200, 2, generator=g) * 2 - 1
        y0 = torch.cat([x, torch.zeros(200, 3)], -1)
        target = (x.norm(dim=-1, keepdim=True) < 0.55).float()
        func = MLPField(5, width, with_t=True)
    torch.manual_seed(seed)
    for p in func.parameters():
        nn.init.normal_(p, std=1.0 / max(p.shape[-1], 1) ** 0.5)
    return func, y0, target


def step(method: str, func: nn.Module, y0: torch.Tensor, target: torch.Tensor):
    """One training step's forward + loss + backward; returns (seconds, grads, stats)."""
    t = torch.tensor([0.0, 1.0])
    func.zero_grad()
    stats = {}
    t0 = time.perf_counter()
    if method == "direct":
        y = odeint(func, y0, t, rtol=TOL, atol=TOL, method="dopri5")
    elif method in ("adjoint", "seminorm"):
        opts = {"norm": "seminorm"} if method == "seminorm" else None
        y = odeint_adjoint(func, y0, t, rtol=TOL, atol=TOL, method="dopri5", adjoint_options=opts)
    else:
        y, stats = odeint_adjoint_gq(func, y0, t, rtol=TOL, atol=TOL, method="dopri5", gtol=0.1, return_stats=True)
    loss = ((y[-1][:, : target.shape[1]] - target) ** 2).mean()
    loss.backward()
    dt = time.perf_counter() - t0
    return dt, [p.grad.detach().clone() for p in func.parameters()], dict(stats)


def rel_err(a, b) -> float:
    num = sum(float((x - y).pow(2).sum()) for x, y in zip(a, b)) ** 0.5
    den = sum(float(y.pow(2).sum()) for y in b) ** 0.5
    return num / max(den, 1e-30)


def memory_child(name: str, width: int, method: str) -> None:
    func, y0, target = setting(name, width)
    step(method, func, y0, target)  # warm-up (allocator, lazy init)
    func.zero_grad()
    base = reset_peak_rss()
    step(method, func, y0, target)
    extra = peak_rss() - base
    print(json.dumps({"extra_mb": extra}))


def memory(name: str, width: int, method: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--memory-child", name, str(width), method], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["extra_mb"]


def run(name: str, width: int, repeats: int) -> None:
    func, y0, target = setting(name, width)
    P = sum(p.numel() for p in func.parameters())
    times = {m: [] for m in METHODS}
    grads, stats = {}, {}
    for r in range(repeats + 1):
        for m in METHODS:
            dt, g, st = step(m, func, y0, target)
            if r == 0:  # first round: warm-up, gradients and stats
                grads[m], stats[m] = g, st
            else:
                times[m].append(dt)
    med = {m: statistics.median(v) for m, v in times.items()}
    mem = {m: memory(name, width, m) for m in METHODS}
    st = stats["gq"]
    print(f"{name}-like, width {width} ({P:,} parameters, state {tuple(y0.shape)}): NFE fwd {st.get('nfe_forward')}, "
          f"bwd {st.get('nfe_backward')}, GQ nodes {st.get('nodes_per_interval')}")
    for m in METHODS:
        err = rel_err(grads[m], grads["direct"]) if m != "direct" else 0.0
        print(f"    {m:9s} {med[m]:8.3f} s/step   extra peak memory {mem[m]:8.1f} MB   grad rel. error vs direct {err:.1e}")
    print(f"    ratios: adjoint/GQ = {med['adjoint'] / med['gq']:.2f}, seminorm/GQ = {med['seminorm'] / med['gq']:.2f}, direct/GQ = {med['direct'] / med['gq']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--memory-child", nargs=3, metavar=("SETTING", "WIDTH", "METHOD"))
    a = ap.parse_args()
    if a.memory_child:
        memory_child(a.memory_child[0], int(a.memory_child[1]), a.memory_child[2])
        return
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, dopri5 rtol=atol={TOL}, gtol 0.1, float32")
    grid = [("g1d", 200), ("spheres", 100)] if a.quick else [("g1d", 2000), ("spheres", 1000)]
    for name, width in grid:
        run(name, width, 2 if a.quick else a.repeats)


if __name__ == "__main__":
    main()
