"""Fixed points of a trained 3-bit flip-flop network: rnntk vs a FixedPointFinder-style search,
measured side by side in one run (median of interleaved repeats).

    python benchmarks/fixed_points.py                       # ~1-2 min on one core
    python benchmarks/fixed_points.py --repeats 7 --candidates 1024
    python benchmarks/fixed_points.py --fpf-dir /tmp/up-fpf # also run FixedPointFinder itself

The network is the FixedPointFinder example's (``h' = tanh(W h + U u + b)``, 16 units, 3 bits),
trained here with Adam for a few hundred steps (seconds). Candidates: 1,024 states sampled from
its trajectories on held-out flip-flop trials plus N(0, 0.5²) noise (the example's settings),
the same for both searches, input zero.

``fpf_style`` below is a re-implementation of FixedPointFinder's default algorithm (Golub &
Sussillo 2018; torch backend, commit 1a30417 of github.com/mattgolub/fixed-point-finder) written
for this benchmark from its documentation and behaviour: one joint Adam optimisation of
q = ½‖x − F(x)‖² averaged over candidates (lr 1.0, ReduceLROnPlateau factor 0.95, patience 2,
stepped on the mean q), stopped when every candidate has q < tol_q = 1e-12 or
|Δq| < tol_dq · lr (tol_dq = 1e-20), or at max_iters (5,000); the q-ordered greedy
de-duplication (tol_unique = 1e-3 on [x, u]), the distance-outlier rule (scale 10), one
Jacobian per point (``torch.autograd.functional.jacobian`` of the batch sum) and
``numpy.linalg.eig``, stability from the leading modulus. No Newton polish. (FixedPointFinder's
own torch code additionally recomputes every Jacobian in a Python loop and discards it; the
re-implementation leaves that out, which only helps the baseline.) ``--fpf-dir`` runs the real
FixedPointFinderTorch from a checkout outside the repository on the same network and
candidates and prints how its points and iteration count compare with the re-implementation.

Printed: the time to the full result of each search and the ratio rnntk / FPF-style, the number
of stable points found and the largest q among them, for float64 (both searches) and for
FixedPointFinder's default float32.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from rnntk.analysis.fixed_points import fixed_points


# ------------------------------------------------------------------------------- the network
class FlipFlopRNN(nn.Module):
    """``h' = tanh(W h + U u + b)``, readout ``C h + d``: torch's ``nn.RNN`` cell, speaking the
    rnntk contract (discrete)."""

    time = "discrete"

    def __init__(self, n_in: int = 3, n: int = 16, n_out: int = 3, seed: int = 0) -> None:
        super().__init__()
        self.n, self.n_in, self.n_out = n, n_in, n_out
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(torch.randn(n, n, generator=g) * 0.9 / math.sqrt(n))
        self.U = nn.Parameter(torch.randn(n, n_in, generator=g) / math.sqrt(n_in))
        self.b = nn.Parameter(torch.zeros(n))
        self.C = nn.Parameter(torch.randn(n_out, n, generator=g) / math.sqrt(n))
        self.d = nn.Parameter(torch.zeros(n_out))

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        z = x @ self.W.T + self.b
        return torch.tanh(z if u is None else z + u @ self.U.T)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.C.T + self.d

    def hparams(self) -> dict[str, Any]:
        return {"n_in": self.n_in, "n": self.n, "n_out": self.n_out}

    def run(self, u: torch.Tensor) -> torch.Tensor:
        """States (B, T, n) from h = 0 under inputs u (B, T, n_in)."""
        x = torch.zeros(u.shape[0], self.n, dtype=u.dtype)
        xs = []
        for t in range(u.shape[1]):
            x = self.step(x, u[:, t])
            xs.append(x)
        return torch.stack(xs, 1)


class AsTorchRNN(nn.Module):
    """The same map behind ``nn.RNN``'s call signature, ``out, h_n = rnn(u (B, 1, d), h (1, B, n))``,
    which is what FixedPointFinderTorch drives."""

    batch_first = True

    def __init__(self, net: FlipFlopRNN) -> None:
        super().__init__()
        self.net = net

    def forward(self, u: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hn = self.net.step(h[0], u[:, 0])
        return hn[:, None], hn[None]


def flip_flop_trials(batch: int, steps: int, bits: int, g: torch.Generator, p: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """FixedPointFinder's flip-flop task: ±1 pulses with probability p per step and bit (one at
    t = 0); the target holds the sign of the last pulse. Returns inputs, targets (B, T, bits)."""
    pulse = (torch.rand(batch, steps, bits, generator=g) < p).double()
    pulse[:, 0] = 1
    u = pulse * (torch.randint(0, 2, (batch, steps, bits), generator=g).double() * 2 - 1)
    t = torch.arange(steps)[None, :, None].expand_as(u)
    last = torch.cummax(torch.where(u != 0, t, torch.zeros_like(t)), dim=1).values
    return u, torch.gather(u, 1, last)


def train_flip_flop(n: int = 16, iters: int = 400, seed: int = 0) -> tuple[FlipFlopRNN, torch.Tensor]:
    """Adam (lr 1e-2, batch 64, 32 steps) on the 3-bit flip-flop; returns the float64 network
    and its held-out state trajectories (128 trials x 64 steps)."""
    torch.manual_seed(seed)
    net = FlipFlopRNN(n=n, seed=seed).double()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(iters):
        u, y = flip_flop_trials(64, 32, 3, g)
        loss = ((net.readout(net.run(u)) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in net.parameters():
        p.requires_grad_(False)
    u, y = flip_flop_trials(128, 64, 3, g)
    with torch.no_grad():
        traj = net.run(u)
        err = float(((net.readout(traj) - y) ** 2).mean())
    print(f"flip-flop network: {n} units, {iters} Adam steps, held-out MSE {err:.2e}")
    return net, traj


# ------------------------------------------------------------------- FixedPointFinder-style
def fpf_style(
    step: Any,
    x0: np.ndarray,
    inputs: np.ndarray,
    *,
    dtype: torch.dtype = torch.float32,
    lr_init: float = 1.0,
    tol_q: float = 1e-12,
    tol_dq: float = 1e-20,
    max_iters: int = 5000,
    tol_unique: float = 1e-3,
    outlier_distance_scale: float = 10.0,
) -> dict[str, Any]:
    """FixedPointFinder's default search (see module doc). ``step(x (K, n), u (K, d))``.
    Returns xstar, q, eigvals (sorted by modulus), is_stable, n_iters."""
    K = x0.shape[0]
    u = torch.as_tensor(np.broadcast_to(inputs, (K, inputs.shape[-1])).copy(), dtype=dtype)
    x = torch.tensor(x0, dtype=dtype, requires_grad=True)
    opt = torch.optim.Adam([x], lr=lr_init)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.95, patience=2, cooldown=0)
    q_prev = torch.full((K,), float("nan"), dtype=dtype)
    it = 1
    while True:
        Fx = step(x, u)
        q = 0.5 * ((x - Fx) ** 2).sum(1)
        dq = (q - q_prev).abs()
        opt.zero_grad()
        q.mean().backward()
        opt.step()
        sched.step(q.mean().item())
        lr = sched.get_last_lr()[0]
        qn, dqn = q.detach().numpy(), dq.detach().numpy()
        if it > 1 and np.all((dqn < tol_dq * lr) | (qn < tol_q)):
            break
        if it + 1 > max_iters:
            break
        q_prev = q.detach()
        it += 1
    xstar = x.detach().numpy().astype(np.float64)
    qstar = qn.astype(np.float64)
    uu = u.numpy().astype(np.float64)
    # q-ordered greedy de-duplication on [x, u] (Euclidean), keeping the smallest q of each group
    data = np.concatenate([xstar, uu], 1)
    checked = np.zeros(K, bool)
    keep = []
    for i in range(K):
        if checked[i]:
            continue
        rest = np.where(~checked)[0]
        match = rest[np.linalg.norm(data[rest] - data[i], axis=1) <= tol_unique]
        keep.append(match[np.argmin(qstar[match])])
        checked[match] = True
    keep = np.array(keep)
    c = x0.mean(0)
    d0 = np.linalg.norm(x0 - c, axis=1).mean()
    keep = keep[np.linalg.norm(xstar[keep] - c, axis=1) / d0 < outlier_distance_scale]
    xs = torch.as_tensor(xstar[keep], dtype=dtype)
    us = u[keep]
    J = torch.autograd.functional.jacobian(lambda s: step(s, us).sum(0), xs).permute(1, 0, 2).numpy()
    lam = np.linalg.eigvals(J)
    lam = np.take_along_axis(lam, np.argsort(-np.abs(lam), axis=1, kind="stable"), 1)
    return {"xstar": xstar[keep], "q": qstar[keep], "eigvals": lam, "is_stable": np.abs(lam[:, 0]) < 1.0, "n_iters": it}


def rnntk_search(net: FlipFlopRNN, x0: torch.Tensor, **kw: Any) -> dict[str, Any]:
    fp = fixed_points(net, x0, torch.zeros(net.n_in, dtype=torch.float64), **kw)
    st = (fp.is_stable & ~fp.is_slow).numpy()
    return {"xstar": fp.xstar.numpy(), "q": fp.q.numpy(), "is_stable": st, "n_iters": fp.stats["adam_iters"], "fp": fp}


def stable_summary(res: dict[str, Any]) -> tuple[int, float]:
    st = res["is_stable"]
    return int(st.sum()), float(res["q"][st].max()) if st.any() else math.nan


def same_points(a: np.ndarray, b: np.ndarray, tol: float) -> tuple[int, float]:
    """How many of the points a have a point of b within tol, and the largest such distance."""
    if len(a) == 0 or len(b) == 0:
        return 0, math.nan
    d = np.linalg.norm(a[:, None] - b[None], axis=-1).min(1)
    return int((d <= tol).sum()), float(d[d <= tol].max()) if (d <= tol).any() else math.nan


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candidates", type=int, default=1024)
    ap.add_argument("--noise", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-iters", type=int, default=400)
    ap.add_argument("--fpf-dir", default=None, help="a checkout of mattgolub/fixed-point-finder (outside the repo) to validate against")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    net, traj = train_flip_flop(iters=args.train_iters)
    g = torch.Generator().manual_seed(1)
    flat = traj.reshape(-1, net.n)
    x0 = flat[torch.randint(0, flat.shape[0], (args.candidates,), generator=g)]
    x0 = x0 + args.noise * torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    x0n = x0.numpy()
    zero = np.zeros((1, net.n_in))
    net32 = FlipFlopRNN(n=net.n).float()
    net32.load_state_dict({k: v.float() for k, v in net.state_dict().items()})

    runs = {
        "rnntk (float64, Newton polish)": lambda: rnntk_search(net, x0),
        "FPF-style float64": lambda: fpf_style(net.step, x0n, zero, dtype=torch.float64),
        "FPF-style float32 (its default)": lambda: fpf_style(net32.step, x0n, zero, dtype=torch.float32),
    }
    for fn in runs.values():  # warm up (first-call imports of torch.func, LAPACK init)
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    last: dict[str, dict[str, Any]] = {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            t = time.perf_counter()
            last[name] = fn()
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.candidates} candidates, median of {args.repeats} interleaved repeats, 1 thread:")
    for name in runs:
        n_st, qmax = stable_summary(last[name])
        print(f"  {name:34s} {med[name]:7.3f} s  stable points {n_st}  largest q among them {qmax:.1e}  Adam iterations {last[name]['n_iters']}")
    ours = "rnntk (float64, Newton polish)"
    for base in ("FPF-style float64", "FPF-style float32 (its default)"):
        n_b, q_b = stable_summary(last[base])
        n_o, q_o = stable_summary(last[ours])
        print(f"  ratio time rnntk / {base}: {med[ours] / med[base]:.3f}   largest stable q: {q_o:.1e} vs {q_b:.1e} (ratio {q_o / q_b:.1e})")
    fp = last[ours]["fp"]
    print(f"  rnntk points: {len(fp)} ({', '.join(f'{k} x{fp.kind.count(k)}' for k in sorted(set(fp.kind)))}), stats {fp.stats}")
    ref = last["FPF-style float64"]
    n_match, dmax = same_points(ref["xstar"][ref["is_stable"]], last[ours]["xstar"][last[ours]["is_stable"]], 1e-3)
    print(f"  stable points of FPF-style float64 matched by rnntk within 1e-3: {n_match}/{int(ref['is_stable'].sum())} (largest distance {dmax:.1e})")
    if args.fpf_dir:
        validate_against_fpf(args.fpf_dir, net, net32, x0n, zero, last)


def validate_against_fpf(fpf_dir: str, net: FlipFlopRNN, net32: FlipFlopRNN, x0n: np.ndarray, zero: np.ndarray, last: dict[str, dict[str, Any]]) -> None:
    """Run FixedPointFinderTorch itself (default hyper-parameters) on the same network and
    candidates, float32 and float64, and compare with the re-implementation."""
    import contextlib
    import io

    sys.path.insert(0, fpf_dir)
    from FixedPointFinderTorch import FixedPointFinderTorch  # type: ignore[import-not-found]

    for dtype, mod, key in (("float32", net32, "FPF-style float32 (its default)"), ("float64", net, "FPF-style float64")):
        fpf = FixedPointFinderTorch(AsTorchRNN(mod), dtype=dtype, verbose=False)
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            unique, _ = fpf.find_fixed_points(x0n.astype(dtype), zero.astype(dtype))
        dt = time.perf_counter() - t
        mine = last[key]
        n_st = int(unique.is_stable.sum())
        n_match, dmax = same_points(unique.xstar.astype(np.float64), mine["xstar"], 1e-3)
        print(
            f"  FixedPointFinder itself ({dtype}): {dt:.2f} s, {unique.n} points ({n_st} stable), {int(unique.n_iters[0])} iterations; "
            f"re-implementation: {len(mine['xstar'])} points ({int(mine['is_stable'].sum())} stable), {mine['n_iters']} iterations; "
            f"points matched within 1e-3: {n_match}/{unique.n} (largest distance {dmax:.1e})"
        )


if __name__ == "__main__":
    main()
