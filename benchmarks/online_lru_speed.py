"""Speed of the online rules, side by side in one run, interleaved so that load from other
jobs hits both alike (median of --repeats).

1. Streaming: time per time step of streaming online_full (forward + spatial backward + trace
   updates) vs inference only (one forward step, no graph). Target (issue #5): <= 3x inference
   per step (paper: about 2x). Also printed: streaming online_truncated / online_spat, and
   sequence-mode BPTT per step.
2. Sequence mode (issue #12): one sequence-mode online_full gradient vs rnntk's own BPTT
   gradient on the same batch, T = --seq-len, for each of --seq-layers. Target: <= 1.5x BPTT's
   time, and peak memory no more than BPTT's. With --seq-archs rnn gru: SnAp-1 (online_snap)
   of the baselines vs their BPTT (no target; printed for information). Peak memory = the largest total of tensor bytes
   allocated during the call (CUDA: torch.cuda.max_memory_allocated; CPU: torch's MemTracker,
   which follows every tensor storage), measured once per rule outside the timed runs.

    python benchmarks/online_lru_speed.py                 # both parts: 2 layers, H = N = 128
    python benchmarks/online_lru_speed.py --part sequence --seq-len 256 --seq-layers 1 2
    python benchmarks/online_lru_speed.py --part sequence --seq-archs rnn gru --d-model 64 --d-hidden 64
    python benchmarks/online_lru_speed.py --d-model 256 --d-hidden 128 --batch 16
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from rnntk.online import ChunkLearner, loss_weights, online_gradients
from rnntk.online.models.seq_model import build_seq_model


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
    ap.add_argument("--part", choices=("all", "streaming", "sequence"), default="all")
    ap.add_argument("--seq-len", type=int, default=256, help="sequence mode: T")
    ap.add_argument("--seq-batch", type=int, default=8, help="sequence mode: batch")
    ap.add_argument("--seq-layers", type=int, nargs="+", default=[1, 2], help="sequence mode: stack depths")
    ap.add_argument("--seq-archs", nargs="+", default=["lru"], choices=("lru", "rnn", "gru"),
                    help="sequence mode: architectures (lru: online_full; rnn, gru: online_snap, SnAp-1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if args.part in ("all", "streaming"):
        streaming_part(args, dev)
    if args.part in ("all", "sequence"):
        sequence_part(args, dev)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def peak_bytes(fn: Callable[[], object], dev: torch.device) -> int:
    """Peak bytes of tensors allocated while ``fn()`` runs (above what was allocated before)."""
    if dev.type == "cuda":
        _sync(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        fn()
        _sync(dev)
        return torch.cuda.max_memory_allocated(dev) - base
    from rnntk.engine.compat import MemTracker

    mt = MemTracker()
    with mt:
        fn()
    return int(mt.get_tracker_snapshot("peak")[dev]["Total"])


def sequence_part(args: argparse.Namespace, dev: torch.device) -> None:
    """Sequence-mode online_full vs BPTT: time per gradient and peak memory (see module doc)."""
    T, b = args.seq_len, args.seq_batch
    g = torch.Generator().manual_seed(2)
    x = torch.randn(b, T, 8, generator=g).to(dev)
    y = torch.randint(0, 2, (b, T, 7), generator=g).to(dev)
    ones = torch.ones(b, T, device=dev)
    print(f"sequence mode ({dev}): T {T}, batch {b}, H {args.d_model}, N {args.d_hidden}, {args.threads} thread(s), median of {args.repeats}")
    for arch, L in [(a, n) for a in args.seq_archs for n in args.seq_layers]:
        rule = "online_full" if arch == "lru" else "online_snap"
        model = build_seq_model(d_in=8, n_classes=2, n_out=7, layers=L, d_model=args.d_model, d_hidden=args.d_hidden, arch=arch,
                                dropout=0.0, generator=torch.Generator().manual_seed(0)).to(dev)

        def grad(rule: str, model: torch.nn.Module = model) -> Callable[[], None]:
            def run() -> None:
                model.zero_grad(set_to_none=True)
                online_gradients(model, x, y, ones, rule, "sequence")
            return run

        jobs = {"bptt": grad("bptt"), rule: grad(rule)}
        times: dict[str, list[float]] = {k: [] for k in jobs}
        for fn in jobs.values():
            fn()  # warm-up
        for _ in range(args.repeats):
            for k, fn in jobs.items():
                _sync(dev)
                t0 = time.perf_counter()
                fn()
                _sync(dev)
                times[k].append(time.perf_counter() - t0)
        peak = {}
        for k, fn in jobs.items():
            model.zero_grad(set_to_none=True)
            peak[k] = peak_bytes(fn, dev)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k in jobs:
            print(f"  {arch} {L} layer(s)  {k:<14}{med[k] * 1e3:>10.1f} ms{peak[k] / 2**20:>10.1f} MiB peak")
        tgt = (" (target <= 1.5x)", " (target <= 1x)") if arch == "lru" else ("", "")  # issue #12's targets are the LRU's
        print(f"  {arch} {L} layer(s)  sequence {rule} / bptt: time {med[rule] / med['bptt']:.2f}x{tgt[0]}, "
              f"peak memory {peak[rule] / peak['bptt']:.2f}x{tgt[1]}")


def streaming_part(args: argparse.Namespace, dev: torch.device) -> None:
    """Streaming online rules per time step vs inference (see module doc)."""
    model = build_seq_model(d_in=8, n_classes=2, n_out=7, layers=args.layers, d_model=args.d_model, d_hidden=args.d_hidden,
                            dropout=0.0, generator=torch.Generator().manual_seed(0)).to(dev)
    g = torch.Generator().manual_seed(1)
    T, b = args.steps, args.batch
    x = torch.randn(b, T, 8, generator=g).to(dev)
    y = torch.randint(0, 2, (b, T, 7), generator=g).to(dev)
    ones = torch.ones(b, T, device=dev)
    w = loss_weights(ones)

    def sync() -> None:
        _sync(dev)

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
