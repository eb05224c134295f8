"""One driver for benchmarks/gpu.sh: each method's GPU-size timing, side by side in one process,
and one Markdown table of everything measured.

    python benchmarks/gpu_bench.py SECTION --device cuda --out rows.jsonl     # sofo online lyapunov arnoldi gq smoke
    python benchmarks/gpu_bench.py table rows.jsonl                           # the Markdown table

Each section appends one JSON line per measurement to ``--out`` as soon as it is measured, so a
section killed by gpu.sh's ``timeout`` keeps what it had; ``table`` marks what is missing.
``--size tiny`` (gpu.sh --cpu) runs the same code at toy sizes, to check syntax and flow in CI.
Ours and the baseline are interleaved repeat by repeat and the median is reported, so load from
other jobs hits both alike. Sizes (``gpu``):

    sofo      double reach at the paper preset (tasks/sofo-double-reach-paper.toml): n = 64,
              B = 256, dt = 2 ms, T = 1000; one SOFO iteration at K = 32 and K = 128 (hand-written
              tangents) vs one Adam + BPTT iteration, same batch and noise
    online    Table 1 LRU size (4 layers, H 128, N 64, batch 50, 48 steps): streaming online_full
              vs inference, per time step
    lyapunov  N = 80, k = 75, 16 trajectories, 55 steps, forward + backward of the flossing loss:
              batched vs a Python loop over the trajectories
    arnoldi   full-size R8 area 7 (512 × 7 × 7, N = 25,088, default init): Arnoldi float32 then
              float64 (m = 300, 10 values by max Re) vs ARPACK (LR, k = 10, ncv = 300, tol 1e-8)
    gq        ode-train g1d, width 2000 (as benchmarks/gq_ratio.py): one training step with the
              GQ adjoint vs torchdiffeq's adjoint vs direct backprop
    smoke     every command once with ``--device DEV`` at tiny sizes: exit status and seconds
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------------- the table
# (row id, what, ours key, baseline key, ratio "base/ours" or "ours/base", target text, test on the ratio)
ROWS: list[tuple[str, str, str, str, str, str, Callable[[float], bool] | None]] = [
    ("sofo32", "SOFO iteration vs Adam+BPTT iteration, K = 32", "sofo_k32_s", "adam_s", "ours/base", "SOFO ≤ 2× Adam", lambda r: r <= 2.0),
    ("sofo128", "SOFO iteration vs Adam+BPTT iteration, K = 128", "sofo_k128_s", "adam_s", "ours/base", "-", None),
    ("online", "online_full streaming step vs inference step", "online_full_step_s", "inference_step_s", "ours/base",
     "≤ 3× (paper: ~2×)", lambda r: r <= 3.0),
    ("lyap", "Lyapunov spectrum k = 75, batch 16 (fwd+bwd): batched vs per-trial loop", "lyap_batched_s", "lyap_loop_s", "base/ours",
     "loop ≥ 5× batched", lambda r: r >= 5.0),
    ("arnoldi", "Arnoldi f32→f64 on R8 area 7 vs ARPACK (max Re, 10 values)", "arnoldi_s", "arpack_s", "base/ours",
     "Arnoldi ≤ 10 s", None),
    ("gq_adj", "GQ vs adjoint, g1d width 2000, s/step", "gq_s", "adjoint_s", "base/ours", "adjoint/GQ ≥ 5 (CPU target)", lambda r: r >= 5.0),
    ("gq_direct", "GQ vs direct backprop, g1d width 2000, s/step", "gq_s", "direct_s", "base/ours", "direct/GQ ≥ 1 (CPU target)",
     lambda r: r >= 1.0),
]
SECTIONS = ("sofo", "online", "lyapunov", "arnoldi", "gq", "smoke")
ROW_SECTION = {"sofo32": "sofo", "sofo128": "sofo", "online": "online", "lyap": "lyapunov", "arnoldi": "arnoldi", "gq_adj": "gq", "gq_direct": "gq"}
COMMANDS = ("selftest", "sofo-train", "online-lru", "floss", "lyapunov", "cordsnet-eval", "cordsnet-eigs", "ode-train")


class Recorder:
    """Appends ``{"key", "value", "setting", ...}`` lines to the rows file, one per measurement."""

    def __init__(self, path: Path, section: str, device: torch.device) -> None:
        self.path, self.section, self.device = path, section, device

    def put(self, key: str, value: Any, setting: str = "", **extra: Any) -> None:
        row = {"section": self.section, "key": key, "value": value, "setting": setting, **extra}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"  {key} = {value} {setting}", file=sys.stderr, flush=True)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def interleaved(jobs: dict[str, Callable[[], Any]], dev: torch.device, budget: float, max_repeats: int = 7) -> dict[str, float]:
    """Median seconds of each job, run in turn (one warm-up each), until ``budget`` seconds have
    passed or ``max_repeats`` rounds are done (at least one timed round)."""
    for fn in jobs.values():
        fn()
    sync(dev)
    times: dict[str, list[float]] = {k: [] for k in jobs}
    t_start = time.perf_counter()
    for _ in range(max_repeats):
        for k, fn in jobs.items():
            sync(dev)
            t0 = time.perf_counter()
            fn()
            sync(dev)
            times[k].append(time.perf_counter() - t0)
        if time.perf_counter() - t_start > budget:
            break
    return {k: statistics.median(v) for k, v in times.items()}


# ------------------------------------------------------------------------------------ sections
def bench_sofo(rec: Recorder, dev: torch.device, tiny: bool, budget: float) -> None:
    from rnntk.sofo.optimizer import SOFO
    from rnntk.sofo.problems import ReachProblem

    n, B, dt, dur, Ks = (8, 4, 0.02, 0.4, (8, 16)) if tiny else (64, 256, 0.002, 2.0, (32, 128))
    prob = ReachProblem("double-reach", hidden=n, dt=dt, duration=dur)
    base = prob.make_model(torch.Generator().manual_seed(0)).to(dev)
    b = prob.sample(B, torch.Generator().manual_seed(1)).to(dev)
    setting = f"n={n}, B={B}, T={prob.steps}"
    models = {k: copy.deepcopy(base) for k in ("adam", *Ks)}
    adam = torch.optim.Adam(models["adam"].parameters(), lr=5e-4)
    sofos = {K: SOFO(dict(models[K].named_parameters()), n_tangents=K, damping=1e-5, lr=0.1, generator=torch.Generator(device=dev).manual_seed(2))
             for K in Ks}  # the paper preset's settings; tangents drawn on the device

    def adam_iter() -> None:
        loss = prob.loss(models["adam"], b)
        adam.zero_grad()
        loss.backward()
        adam.step()

    jobs: dict[str, Callable[[], Any]] = {"adam_s": adam_iter}
    for K in Ks:
        jobs[f"sofo_k{K}_s"] = lambda K=K: sofos[K].step(lambda V, m=models[K]: prob.sketch(m, V, b, "manual"))
    med = interleaved(jobs, dev, budget)
    rec.put("adam_s", med["adam_s"], setting)
    for K, label in zip(Ks, (32, 128)):
        rec.put(f"sofo_k{label}_s", med[f"sofo_k{K}_s"], f"{setting}, K={K}")


def bench_online(rec: Recorder, dev: torch.device, tiny: bool, budget: float) -> None:
    from rnntk.online import ChunkLearner, online_gradients
    from rnntk.online.models.seq_model import build_seq_model

    L, H, N, b, T = (2, 8, 8, 4, 12) if tiny else (4, 128, 64, 50, 48)
    model = build_seq_model(d_in=8, n_classes=2, n_out=7, layers=L, d_model=H, d_hidden=N, dropout=0.0,
                            generator=torch.Generator().manual_seed(0)).to(dev)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, T, 8, generator=g).to(dev)
    y = torch.randint(0, 2, (b, T, 7), generator=g).to(dev)
    ones = torch.ones(b, T, device=dev)

    def inference() -> None:
        lrn = ChunkLearner(model, "online_spat")
        lrn.start(b)
        with torch.no_grad():
            for t in range(T):
                lrn.chunk(x[:, t : t + 1], y[:, t : t + 1], ones[:, t : t + 1], backward=False)

    def streaming() -> None:
        model.zero_grad(set_to_none=True)
        online_gradients(model, x, y, ones, "online_full", "streaming")

    med = interleaved({"inference_step_s": inference, "online_full_step_s": streaming}, dev, budget)
    setting = f"{L} layers, H={H}, N={N}, batch {b}, per step of {T}"
    for k, v in med.items():
        rec.put(k, v / T, setting)


def bench_lyapunov(rec: Recorder, dev: torch.device, tiny: bool, budget: float) -> None:
    from rnntk.floss.flossing import flossing_loss
    from rnntk.analysis.lyapunov import initial_basis, lyapunov_spectrum
    from rnntk.core.vanilla_rnn import VanillaRNN
    from rnntk.floss.delayed_xor import delayed_parity_trials

    N, k, B, T = (12, 10, 4, 20) if tiny else (80, 75, 16, 55)
    m = VanillaRNN(N, batch=B, generator=torch.Generator().manual_seed(0)).to(dev)
    u = delayed_parity_trials(B, T, 4 if tiny else 20, generator=torch.Generator().manual_seed(1)).inputs.to(dev)
    x0 = m.x0.detach()
    q0 = initial_basis(N, k, generator=torch.Generator(device=dev).manual_seed(2), dtype=torch.float32, device=dev)

    def run(batched: bool) -> None:
        if batched:
            lam = lyapunov_spectrum(m, u, k, x0=x0, q0=q0, warmup=min(16, T // 3)).exponents
        else:
            lam = torch.stack([lyapunov_spectrum(m, u[i : i + 1], k, x0=x0[i : i + 1], q0=q0, warmup=min(16, T // 3)).exponents[0] for i in range(B)])
        flossing_loss(lam).backward()
        m.zero_grad()

    med = interleaved({"lyap_batched_s": lambda: run(True), "lyap_loop_s": lambda: run(False)}, dev, budget)
    for key, v in med.items():
        rec.put(key, v, f"N={N}, k={k}, batch {B}, {T} steps")


def bench_arnoldi(rec: Recorder, dev: torch.device, tiny: bool, budget: float) -> None:
    from rnntk.cordsnet.eigs import arnoldi, cordsnet_operators, eigs_arpack
    from rnntk.cordsnet.model import CordsNet

    torch.manual_seed(0)
    model = CordsNet(8, 10, 3, image_size=32, width=0.125) if tiny else CordsNet(8, 1000, 3)
    op = cordsnet_operators(model.to(dev, torch.float64), "recurrent", [7])[7]
    m = 40 if tiny else 300
    C, H, W = model.shapes[7]
    setting = f"area 7 {C}x{H}x{W}, N={op.N}, m={m}"
    gen = lambda: torch.Generator(device=dev).manual_seed(0)
    arnoldi(op, m=min(m, 20), k=2, which="LR", dtype=torch.float32, generator=gen())  # warm-up (kernels, cuBLAS)
    sync(dev)
    t0 = time.perf_counter()
    a32 = arnoldi(op, m=m, k=10, which="LR", dtype=torch.float32, generator=gen())
    sync(dev)
    t32 = time.perf_counter() - t0
    t0 = time.perf_counter()
    a64 = arnoldi(op, m=m, k=10, which="LR", dtype=torch.float64, generator=gen())
    sync(dev)
    t64 = time.perf_counter() - t0
    rec.put("arnoldi_f32_s", t32, setting, max_real=float(a32.values.real.max()))
    rec.put("arnoldi_s", t32 + t64, setting + " (f32 then f64)", max_real=float(a64.values.real.max()),
            converged=int(a64.converged.sum()))
    t0 = time.perf_counter()
    p = eigs_arpack(op, k=min(10, op.N - 2), which="LR", ncv=min(300, op.N - 1), tol=1e-8)
    rec.put("arpack_s", time.perf_counter() - t0, "LR, k=10, ncv=300, tol 1e-8, float64", max_real=float(p.max_real),
            diff_vs_arnoldi=abs(float(p.max_real) - float(a64.values.real.max())))


def bench_gq(rec: Recorder, dev: torch.device, tiny: bool, budget: float) -> None:
    from rnntk.ode.gradients import make_gradient
    from rnntk.ode.train import ODEConfig, ODEProblem

    width = 50 if tiny else 2000
    cfg = ODEConfig(rtol=1e-3, atol=1e-3, method="dopri5", gtol=0.1, task="g1d", width=width, n_train=2, batch=2)
    torch.manual_seed(0)
    prob = ODEProblem(cfg, torch.Generator().manual_seed(0))
    batch = prob.batches(torch.Generator().manual_seed(0))[0]
    mods = prob.modules().to(dev)

    def step(method: str) -> Callable[[], None]:
        def run() -> None:
            prob.gradient = make_gradient(method)
            mods.zero_grad()
            loss, _, _ = prob.loss(batch, dev)
            loss.backward()
        return run

    med = interleaved({f"{m}_s": step(m) for m in ("gq", "adjoint", "direct")}, dev, budget)
    for k, v in med.items():
        rec.put(k, v, f"g1d width {width}, dopri5 1e-3, float32")


def smoke_commands(dev: str, tmp: Path) -> dict[str, list[str]]:
    """Each command once, tiny sizes (as tests/test_cuda_methods.py)."""
    ck = str(ROOT / "checkpoints" / "cordsnet-mini-digits.pth")
    return {
        "selftest": ["selftest", "--iters", "6", "--steps", "10", "--batch", "8", "--hidden", "4"],
        "sofo-train": ["sofo-train", "--optimizer", "both", "--iters", "3", "--hidden", "8", "--batch", "4", "--eval-batch", "4", "-K", "8",
                       "--dt", "0.02", "--duration", "0.8", "--eval-every", "2", "--save-traces", "3"],
        "online-lru": ["online-lru", "--task", "copy", "--pattern-len", "2", "--pad-len", "1", "--layers", "2", "--d-model", "6",
                       "--d-hidden", "6", "--train-samples", "8", "--val-samples", "4", "--test-samples", "4", "--batch-size", "4",
                       "--epochs", "1", "--exec", "streaming", "--dropout", "0.1"],
        "floss": ["floss", "--n-units", "16", "--floss-k", "6", "--delay", "6", "--trial-len", "40", "--batch", "4", "--epochs", "6",
                  "--floss-before", "3", "--floss-every", "3", "--floss-epochs", "3", "--floss-times", "1", "--le-every", "3",
                  "--le-len", "60", "--eval-every", "3", "--eval-batch", "8", "--floss-len", "30"],
        "lyapunov": ["lyapunov", str(tmp / "floss" / "model.pt"), "--steps", "200", "--warmup", "50", "--n-traj", "3"],
        "cordsnet-eval": ["cordsnet-eval", "--checkpoint", ck, "--data", "digits", "--limit", "16", "--batch-size", "8",
                          "--spont-steps", "5", "--stim-steps", "6"],
        "cordsnet-eigs": ["cordsnet-eigs", ck, "--method", "arnoldi", "--k", "4"],
        "ode-train": ["ode-train", "--task", "g1d", "--epochs", "2", "--width", "16", "--adjoint", "gq"],
    }


def bench_smoke(rec: Recorder, dev: torch.device, tiny: bool, budget: float, only: list[str] | None = None) -> None:
    """``rnntk CMD --device DEV`` for every command (or those in ``only``), 4 at a time on CUDA (2 on CPU);
    lyapunov reads floss's model. ``budget``: seconds allowed per command."""
    chosen = set(COMMANDS if not only or "all" in only else only)
    if "lyapunov" in chosen:
        chosen.add("floss")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        cmds = smoke_commands(str(dev), tmp)

        def one(name: str) -> tuple[str, int, float, str]:
            args = [sys.executable, "-m", "rnntk", *cmds[name], "--device", str(dev), "--out", str(tmp / name), "-q", "--seed", "0"]
            t0 = time.perf_counter()
            try:
                p = subprocess.run(args, check=False, capture_output=True, text=True, env=env, timeout=budget, cwd=ROOT)
            except subprocess.TimeoutExpired:
                return name, 124, time.perf_counter() - t0, f"timed out after {budget:.0f} s"
            status = ""
            with contextlib.suppress(Exception):
                status = json.loads(p.stdout.strip().splitlines()[-1])["status"]
            err = p.stderr.strip().splitlines()[-1][:200] if p.returncode and p.stderr.strip() else ""
            return name, p.returncode, time.perf_counter() - t0, status or err

        for name in COMMANDS:
            if name not in chosen:
                rec.put(f"smoke_{name}", None, "skipped", note="not in GPU_SH_SMOKE")
        first = [c for c in COMMANDS if c != "lyapunov" and c in chosen]
        with ThreadPoolExecutor(max_workers=4 if dev.type == "cuda" else 2) as ex:  # a GPU machine has the cores
            for name, rc, s, note in ex.map(one, first):
                rec.put(f"smoke_{name}", rc, f"{s:.1f} s", note=note)
        if "lyapunov" in chosen:
            name, rc, s, note = one("lyapunov")
            rec.put("smoke_lyapunov", rc, f"{s:.1f} s", note=note)


BENCH = {"sofo": bench_sofo, "online": bench_online, "lyapunov": bench_lyapunov, "arnoldi": bench_arnoldi, "gq": bench_gq, "smoke": bench_smoke}


# ------------------------------------------------------------------------------------- table
def _fmt(v: float | None, unit: str = "s") -> str:
    if v is None:
        return "—"
    if unit == "s":
        return f"{v * 1e3:.3g} ms" if v < 1 else f"{v:.3g} s"
    return f"{v:.3g}"


def table(rows_file: Path, device: str = "") -> str:
    """The Markdown table of a rows file: one line per benchmark row, missing values marked."""
    vals: dict[str, dict] = {}
    status: dict[str, str] = {}
    lines = rows_file.read_text().splitlines() if rows_file.exists() else []
    for ln in lines:
        r = json.loads(ln)
        if "key" in r:
            vals[r["key"]] = r
        elif "exit" in r:  # gpu.sh's record of how a section ended
            status[r["section"]] = {0: "ok", 124: "timed out", 137: "killed (timeout)"}.get(r["exit"], f"failed (exit {r['exit']})")
    head = f"Measured on {device or 'unknown device'}, {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC (benchmarks/gpu.sh)"
    out = [head, "", "| benchmark | setting | ours | baseline | ratio | target | verdict |", "|---|---|---|---|---|---|---|"]
    for rid, what, ok_key, base_key, kind, target, test in ROWS:
        a, b = vals.get(ok_key), vals.get(base_key)
        setting = (a or b or {}).get("setting", "")
        if a is None or b is None:
            why = status.get(ROW_SECTION[rid], "not run")
            verdict = f"not measured: {why}"
            if rid == "arnoldi" and a is not None:  # the target is on Arnoldi's time alone
                verdict = ("MET" if a["value"] <= 10.0 else "MISSED") + f" (ARPACK not measured: {why})"
            out.append(f"| {what} | {setting} | {_fmt(a and a['value'])} | {_fmt(b and b['value'])} | — | {target} | {verdict} |")
            continue
        ratio = a["value"] / b["value"] if kind == "ours/base" else b["value"] / a["value"]
        verdict = "-" if test is None else ("MET" if test(ratio) else "MISSED")
        if rid == "arnoldi":
            verdict = "MET" if a["value"] <= 10.0 else "MISSED"
            d = b.get("diff_vs_arnoldi")
            setting += f"; max Re diff vs ARPACK {d:.1e}" if d is not None else ""
        label = "ours/baseline" if kind == "ours/base" else "baseline/ours"
        out.append(f"| {what} | {setting} | {_fmt(a['value'])} | {_fmt(b['value'])} | {ratio:.2f} ({label}) | {target} | {verdict} |")
    tests = vals.get("cuda_tests")
    out.append(f"| pytest -m cuda (tests/test_cuda_methods.py) | {tests['setting'] if tests else ''} | — | — | — | all pass | "
               f"{'not run: ' + status.get('tests', 'not run') if tests is None else ('MET' if tests['value'] == 0 else 'MISSED (exit ' + str(tests['value']) + ')')} |")
    for name in COMMANDS:
        r = vals.get(f"smoke_{name}")
        if r is None:
            out.append(f"| `rnntk {name}` end to end (smoke) | tiny | — | — | — | exit 0 | not run: {status.get('smoke', 'not run')} |")
        else:
            verdict = ("skipped (GPU_SH_SMOKE)" if r["value"] is None else "MET" if r["value"] == 0
                       else f"MISSED (exit {r['value']}: {r.get('note', '')})")
            out.append(f"| `rnntk {name}` end to end (smoke) | tiny, {r['setting']} | — | — | — | exit 0 | {verdict} |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("section", choices=(*SECTIONS, "table"))
    ap.add_argument("file", nargs="?", help="table: the rows file")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", choices=("gpu", "tiny"), default="gpu")
    ap.add_argument("--out", type=Path, help="rows file (JSON lines) to append to")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds of timed repeats per section (smoke: per command)")
    ap.add_argument("--device-name", default="")
    ap.add_argument("--only", nargs="+", help="smoke: the commands to run (default all)")
    a = ap.parse_args()
    if a.section == "table":
        print(table(Path(a.file), a.device_name), end="")
        return
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_bench: --device cuda but torch sees no CUDA device")
    print(f"[{a.section}] torch {torch.__version__} on {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU'}), "
          f"{torch.get_num_threads()} threads", file=sys.stderr, flush=True)
    extra = {"only": a.only} if a.section == "smoke" else {}
    BENCH[a.section](Recorder(a.out, a.section, dev), dev, a.size == "tiny", a.budget, **extra)


if __name__ == "__main__":
    main()
