"""SOFO step time at an MNIST-size MLP: rnntk vs upstream's PyTorch SOFO, side by side in one run.

    python benchmarks/sofo_mlp.py                      # about a minute on 1 CPU thread
    python benchmarks/sofo_mlp.py --upstream DIR       # DIR holds upstream's pytorch/api.py
    python benchmarks/sofo_mlp.py --old                # also time the old float64 CPU QR sampler

Setting (upstream ``pytorch/mnist.py``): MLP 784-128-10 with ReLU, P = 101,770 parameters, batch
256, cross-entropy, K = 340 tangents, damping 1e-3 (relative), lr 0.01. Data are synthetic
(Gaussian images, random labels): the step's cost does not depend on them.

Upstream is hennequin-lab/SOFO's ``pytorch/api.py`` (``value_and_sofo_grad`` plus the SGD update
of its ``mnist.py``). It is not part of rnntk and is never copied into it: get it yourself
(``git clone https://github.com/hennequin-lab/SOFO``) and pass ``--upstream SOFO/pytorch``, or set
``RNNTK_SOFO_UPSTREAM``; default ``/tmp/up-sofo/pytorch``. If it is absent the benchmark says so
and prints rnntk's times only.

Each repeat times one step of every contender in turn (interleaved), so background load hits
all alike; the figures are medians over repeats. Prints:
  - seconds per step: upstream, rnntk (orthonormal tangents, the default), rnntk (normalized
    tangents, upstream's kind), and the share of rnntk's step spent drawing tangents;
  - ratio rnntk orthonormal / upstream. Target (issue 12): <= 1.0;
  - the same step: upstream's tangents fed to rnntk in float64, max |Δ_rnntk − Δ_upstream| / max |Δ|.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from rnntk.sofo.optimizer import SOFO, CrossEntropy, direction, sketch_feedforward, solve

K, B, HIDDEN, LR, DAMPING = 340, 256, 128, 0.01, 1e-3


def load_upstream(path: Optional[str]) -> Optional[ModuleType]:
    """Upstream's pytorch/api.py imported by path, or None when it is not there."""
    d = Path(path or os.environ.get("RNNTK_SOFO_UPSTREAM") or "/tmp/up-sofo/pytorch")
    f = d / "api.py" if d.is_dir() else d
    if not f.is_file():
        return None
    spec = importlib.util.spec_from_file_location("sofo_upstream_api", f)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def mlp(dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(784, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 10)).to(device, dtype)


def data(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(B, 784, generator=g, dtype=dtype).to(device), torch.randint(10, (B,), generator=g).to(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def upstream_stepper(api: ModuleType, device: torch.device) -> Callable[[], None]:
    """One step exactly as upstream's mnist.py ``train`` does it (minus its accuracy print)."""
    model = mlp(torch.float32, device)
    x, y = data(torch.float32, device)
    state = {"params": {n: p.clone().detach().requires_grad_(True) for n, p in model.named_parameters() if p.requires_grad}}
    rng = torch.Generator(device=device).manual_seed(42)
    out = lambda p: torch.func.functional_call(model, p, (x,))
    loss = lambda logits: F.cross_entropy(logits, y).mean()
    sofo = api.value_and_sofo_grad(out, loss, tangent_size=K, damping=DAMPING, classification=True, device=device)

    def step() -> None:
        params = state["params"]
        _, grads, _ = sofo(rng, params)
        with torch.no_grad():
            state["params"] = {k: params[k] - LR * grads[k] for k in params}

    return step


def rnntk_stepper(kind: str, device: torch.device) -> Callable[[], None]:
    model = mlp(torch.float32, device)
    x, y = data(torch.float32, device)
    opt = SOFO(model, n_tangents=K, damping=DAMPING, lr=LR, tangents=kind, generator=torch.Generator(device=device).manual_seed(0))
    return lambda: opt.step_module(model, x, y, CrossEntropy())


def old_sampler_stepper(device: torch.device) -> Callable[[], None]:
    """The sampler before issue 12: a float64 P×K Gaussian QR'd on the CPU every iteration."""
    P = sum(p.numel() for p in mlp(torch.float32, device).parameters())
    g = torch.Generator().manual_seed(0)

    def step() -> None:
        Q, _ = torch.linalg.qr(torch.randn(P, K, generator=g, dtype=torch.float64))
        Q.T.float().to(device)

    return step


def same_step(api: ModuleType, device: torch.device) -> float:
    """Upstream's and rnntk's step on identical float64 weights, batch and tangents."""
    model = mlp(torch.float64, device)
    x, y = data(torch.float64, device)
    params = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    out = lambda p: torch.func.functional_call(model, p, (x,))
    loss = lambda logits: F.cross_entropy(logits, y).mean()
    _, h, _ = api.value_and_sofo_grad(out, loss, tangent_size=K, damping=DAMPING, classification=True, device=device)(
        torch.Generator(device=device).manual_seed(3), params)
    V = api.sample_v(K, params, device, torch.Generator(device=device).manual_seed(3))
    plain = {k: v.detach() for k, v in params.items()}
    delta = direction(V, solve(sketch_feedforward(out, plain, {k: v.detach() for k, v in V.items()}, CrossEntropy(), y), DAMPING).alpha)
    h = {k: v.detach() for k, v in h.items()}
    scale = max(float(h[k].abs().max()) for k in h)
    return max(float((delta[k] - h[k]).abs().max()) for k in h) / scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", help="folder with upstream's pytorch/api.py (or the file)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--old", action="store_true", help="also time the old float64 CPU QR sampler (slow)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device))
    api = load_upstream(args.upstream)
    P = sum(p.numel() for p in mlp(torch.float32, device).parameters())
    print(f"sofo_mlp: MLP 784-{HIDDEN}-10, P={P}, K={K}, B={B}, device={device}, threads={args.threads}, "
          f"repeats={args.repeats} (medians of interleaved repeats; a shared machine adds noise)")
    contenders: dict[str, Callable[[], None]] = {}
    if api is None:
        print("upstream: absent (pass --upstream DIR holding hennequin-lab/SOFO's pytorch/api.py); rnntk's times only")
    else:
        contenders["upstream pytorch/api.py"] = upstream_stepper(api, device)
    contenders["rnntk orthonormal (default)"] = rnntk_stepper("orthonormal", device)
    contenders["rnntk normalized"] = rnntk_stepper("normalized", device)
    draw = SOFO(mlp(torch.float32, device), n_tangents=K, generator=torch.Generator(device=device).manual_seed(0))
    contenders["rnntk tangents only (orthonormal)"] = draw._tangents  # what a step draws: Gaussian + Gram factor
    if args.old:
        contenders["old sampler only (float64 CPU QR)"] = old_sampler_stepper(device)
    for fn in contenders.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.repeats):
        for name, fn in contenders.items():
            times[name].append(timed(fn, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, t in med.items():
        print(f"  {name:<36s} {t:8.3f} s per step")
    print(f"  tangent share of rnntk's step: {med['rnntk tangents only (orthonormal)'] / med['rnntk orthonormal (default)']:.2f}")
    if api is not None:
        r = med["rnntk orthonormal (default)"] / med["upstream pytorch/api.py"]
        print(f"ratio rnntk orthonormal / upstream: {r:.3f}  (target <= 1.0: {'PASS' if r <= 1.0 else 'FAIL'})")
        print(f"ratio rnntk normalized / upstream:  {med['rnntk normalized'] / med['upstream pytorch/api.py']:.3f}")
        print(f"same step as upstream (float64, same tangents): max rel diff {same_step(api, device):.1e}")


if __name__ == "__main__":
    main()
