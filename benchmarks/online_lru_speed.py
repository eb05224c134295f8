"""Time per time step of streaming online_full (forward + spatial backward + trace updates)
vs inference only (one forward step, no graph), side by side in one run, interleaved so that
load from other jobs hits both alike.

    python benchmarks/online_lru_speed.py                 # 2 layers, H = N = 128, batch 32
    python benchmarks/online_lru_speed.py --d-model 256 --d-hidden 128 --batch 16

Target (issue #5): streaming online_full costs <= 3x inference per step (paper: about 2x).
Also printed: streaming online_truncated / online_spat, and sequence-mode BPTT per step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rnntk.methods.online import ChunkLearner, loss_weights, online_gradients
from rnntk.nets.seq_model import build_seq_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=64, help="time steps per measurement")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--d-hidden", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    model = build_seq_model(d_in=8, n_classes=2, n_out=7, layers=args.layers, d_model=args.d_model, d_hidden=args.d_hidden,
                            dropout=0.0, generator=torch.Generator().manual_seed(0)).to(dev)
    g = torch.Generator().manual_seed(1)
    T, b = args.steps, args.batch
    x = torch.randn(b, T, 8, generator=g).to(dev)
    y = torch.randint(0, 2, (b, T, 7), generator=g).to(dev)
    ones = torch.ones(b, T, device=dev)
    w = loss_weights(ones)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def inference() -> None:
        lrn = ChunkLearner(model, "online_spat")
        lrn.start(b)
        with torch.no_grad():
            for t in range(T):
                lrn.chunk(x[:, t : t + 1], y[:, t : t + 1], w[:, t : t + 1], backward=False)

    def streaming(rule: str):
        def run() -> None:
            model.zero_grad(set_to_none=True)
            online_gradients(model, x, y, ones, rule, "streaming")
        return run

    def bptt() -> None:
        model.zero_grad(set_to_none=True)
        online_gradients(model, x, y, ones, "bptt", "sequence")

    jobs = {"inference": inference, "online_full streaming": streaming("online_full"),
            "online_truncated streaming": streaming("online_truncated"), "online_spat streaming": streaming("online_spat"),
            "bptt (sequence)": bptt}
    times: dict[str, list[float]] = {k: [] for k in jobs}
    for fn in jobs.values():
        fn()  # warm-up
    for _ in range(args.repeats):
        for k, fn in jobs.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[k].append((time.perf_counter() - t0) / T)
    base = statistics.median(times["inference"])
    print(f"per time step ({dev}): batch {b}, {args.layers} layers, H {args.d_model}, N {args.d_hidden}, {args.threads} thread(s), median of {args.repeats}")
    for k, v in times.items():
        m = statistics.median(v)
        print(f"{k:<28}{m * 1e3:>9.3f} ms{m / base:>8.2f}x inference")
    print(f"streaming online_full / inference: {statistics.median(times['online_full streaming']) / base:.2f}x (target <= 3x, paper ~2x)")


if __name__ == "__main__":
    main()
