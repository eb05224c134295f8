"""Memory of one gradient computation vs sequence length: BPTT vs streaming online_full (and,
for reference, sequence-mode online_full), measured side by side in one run.

    python benchmarks/online_lru_memory.py                      # T = 64, 256, 1024, 4096
    python benchmarks/online_lru_memory.py --seq-lens 64 256 --layers 2

Memory = bytes of tensors autograd saves for backward (saved_tensors_hooks) + bytes of trace
tensors and state carried between steps, at the worst chunk (rnntk.online.rule_memory).
On CUDA, torch.cuda.max_memory_allocated is printed too. Targets (issue #5): streaming
online_full at T = 4096 within 1.1x of T = 64; BPTT grows >= 30x. Sequence-mode online_full
grows like BPTT (∝ T) but stays below it: its credit never forms the (batch, T, N, H) B-trace
(issue #12; peak allocated memory side by side: benchmarks/online_lru_speed.py --part sequence).
"""

from __future__ import annotations

import argparse

import torch

from rnntk.online import rule_memory
from rnntk.online.models.seq_model import build_seq_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq-lens", type=int, nargs="+", default=[64, 256, 1024, 4096])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--d-hidden", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    combos = [("bptt", "sequence"), ("online_full", "streaming"), ("online_full", "sequence")]
    table: dict[tuple[str, str], list[float]] = {c: [] for c in combos}
    cuda_peak: dict[tuple[str, str], list[float]] = {c: [] for c in combos}
    for T in args.seq_lens:
        g = torch.Generator().manual_seed(T)
        x = torch.randn(args.batch, T, 8, generator=g).to(dev)
        y = torch.randint(0, 2, (args.batch, T, 7), generator=g).to(dev)
        mask = torch.ones(args.batch, T, device=dev)
        for rule, mode in combos:
            model = build_seq_model(d_in=8, n_classes=2, n_out=7, layers=args.layers, d_model=args.d_model, d_hidden=args.d_hidden,
                                    dropout=0.0, generator=torch.Generator().manual_seed(0)).to(dev)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            mem = rule_memory(model, x, y, mask, rule, mode)
            table[(rule, mode)].append(mem["total"] / 2**20)
            if dev.type == "cuda":
                cuda_peak[(rule, mode)].append(torch.cuda.max_memory_allocated(dev) / 2**20)
    print(f"memory of one gradient computation (MiB): batch {args.batch}, {args.layers} layers, H {args.d_model}, N {args.d_hidden}")
    print(f"{'rule / exec':<28}" + "".join(f"{'T=' + str(t):>12}" for t in args.seq_lens) + f"{'growth':>10}")
    for (rule, mode), vals in table.items():
        growth = vals[-1] / vals[0] if vals[-1] == vals[-1] else float("nan")
        print(f"{rule + ' / ' + mode:<28}" + "".join(f"{v:>12.3f}" for v in vals) + f"{growth:>9.2f}x")
        if cuda_peak[(rule, mode)]:
            print(f"{'  cuda max allocated':<28}" + "".join(f"{v:>12.3f}" for v in cuda_peak[(rule, mode)]))
    s, b = table[("online_full", "streaming")], table[("bptt", "sequence")]
    print(f"streaming online_full T={args.seq_lens[-1]} / T={args.seq_lens[0]}: {s[-1] / s[0]:.3f}x (target <= 1.1x)")
    print(f"bptt T={args.seq_lens[-1]} / T={args.seq_lens[0]}: {b[-1] / b[0]:.1f}x (target >= 30x)")
    print(f"bptt / streaming online_full at T={args.seq_lens[-1]}: {b[-1] / s[-1]:.1f}x")
    q = table[("online_full", "sequence")]
    print("sequence online_full / bptt: " + ", ".join(f"T={t} {v / w:.2f}x" for t, v, w in zip(args.seq_lens, q, b)) + " (target <= 1x)")


if __name__ == "__main__":
    main()
