"""The run bodies of ``rnntk online-lru-gradcheck`` (gradient alignment of each rule with BPTT
on one batch) and ``rnntk online-lru-memory`` (memory of each rule vs sequence length): tables
on stderr, a CSV, ``/results`` arrays and the summary."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rnntk.engine.files import write_text_atomic
from rnntk.online.config import GradcheckConfig, MemoryConfig

if TYPE_CHECKING:
    from rnntk.engine.run import Run


def gradcheck_report(cfg: GradcheckConfig, data: Any, dtype: torch.dtype, run: Run) -> None:
    """Cosine, norm ratio and relative error of each rule's gradient to BPTT's per parameter
    group on the first ``cfg.batch_size`` training sequences of ``data``, at initialisation."""
    from rnntk.online.alignment import gradient_alignment, param_groups
    from rnntk.online.data import build_model

    rl = cfg.rule_names
    model = build_model(data[0], run.generator, dtype, **cfg.model_options).to(run.device)
    n_groups = len(param_groups(model)) + 1  # cos, norm ratio and relative error per rule and group (float64)
    run.before_compute(f"the gradients of {len(rl)} rule(s) and BPTT on {cfg.batch_size} sequences", model, results_bytes=3 * 8 * len(rl) * n_groups)
    n = min(cfg.batch_size, len(data[0]))
    x, y, mask, _ = data[0].batch(torch.arange(n), run.device, dtype)
    al = gradient_alignment(model, (x, y, mask), rl, cfg.exec, check=lambda: run.check_interrupt(checkpoint=False))
    groups = [*param_groups(model), "all"]
    lines = ["rule,group,cos,relnorm,rel_err"]
    print(f"{'rule':<18}{'group':<10}{'cos':>10}{'|g|/|bptt|':>12}{'rel err':>10}", file=sys.stderr)
    for r_ in rl:
        for g in groups:
            v = al[r_][g]
            lines.append(f"{r_},{g},{v['cos']:.8g},{v['relnorm']:.8g},{v['rel_err']:.8g}")
            print(f"{r_:<18}{g:<10}{v['cos']:>10.4f}{v['relnorm']:>12.4f}{v['rel_err']:>10.2e}", file=sys.stderr)
    write_text_atomic(run.path("gradcheck.csv"), "\n".join(lines) + "\n")
    for k in ("cos", "relnorm", "rel_err"):
        run.result(
            f"grad_{k}",
            np.array([[al[r_][g][k] for g in groups] for r_ in rl]),
            rules=rl,
            groups=groups,
            description=f"{k} of each rule's gradient vs BPTT, (rule, group)",
        )
    run.finish(**{f"cos_{g}_{r_}": al[r_][g]["cos"] for r_ in rl for g in groups})


def memory_report(cfg: MemoryConfig, dtype: torch.dtype, run: Run) -> None:
    """Bytes saved for backward plus trace and carried-state bytes of one gradient computation,
    per (rule, execution mode) and sequence length (copy-like random inputs, 8 channels)."""
    from rnntk.online.memory import rule_memory
    from rnntk.online.models.seq_model import SeqModel, build_seq_model

    Ts, combos, mo, B = cfg.lengths, cfg.combos, cfg.model_options, cfg.batch_size
    res = {k: np.zeros((len(combos), len(Ts))) for k in ("saved", "traces", "total")}
    print(f"{'rule':<18}{'exec':<10}" + "".join(f"{'T=' + str(t):>14}" for t in Ts) + "   (total bytes)", file=sys.stderr)
    lines = ["rule,exec,T,saved_bytes,trace_bytes,total_bytes"]

    def make_model() -> SeqModel:  # the same model for every (rule, mode, T); a dry run builds it once to count it
        return build_seq_model(d_in=8, n_classes=2, n_out=7, generator=run.rng("online-lru-memory/model"), **mo)

    what = f"one gradient per rule and mode ({len(combos)}) at each of --seq-lens {','.join(map(str, Ts))}"
    run.before_compute(what, make_model, results_bytes=3 * 8 * len(combos) * len(Ts))  # saved, traces, total (float64)
    for i, (r, m) in enumerate(combos):
        for j, T in enumerate(Ts):
            model = make_model().to(run.device, dtype)
            g = run.rng(f"online-lru-memory/data/T{T}")  # bytes do not depend on the draws
            x = torch.randn(B, T, 8, generator=g).to(run.device, dtype)
            y = torch.randint(0, 2, (B, T, 7), generator=g).to(run.device)
            mem = rule_memory(model, x, y, torch.ones(B, T, device=run.device, dtype=dtype), r, m)
            for k in res:
                res[k][i, j] = mem[k]
            lines.append(f"{r},{m},{T},{mem['saved']},{mem['traces']},{mem['total']}")
            run.check_interrupt()
        print(f"{r:<18}{m:<10}" + "".join(f"{int(res['total'][i, j]):>14d}" for j in range(len(Ts))), file=sys.stderr)
    write_text_atomic(run.path("memory.csv"), "\n".join(lines) + "\n")
    labels = [f"{r}/{m}" for r, m in combos]
    for k, v in res.items():
        run.result(f"memory_{k}", v, rows=labels, seq_lens=Ts, units="bytes")
    run.finish(**{f"growth_{r}_{m}": float(res["total"][i, -1] / res["total"][i, 0]) for i, (r, m) in enumerate(combos)})
