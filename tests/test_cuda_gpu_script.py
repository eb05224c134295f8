"""benchmarks/gpu.sh, the one-call GPU check, in its CPU mode (syntax and flow: CI has no GPU),
and the Markdown table of benchmarks/gpu_bench.py."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.sh"


def _bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "benchmarks" / "gpu_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RNNTK_", "SLURM_"))}
    env.update(PYTHON=sys.executable, **extra)
    return env


@pytest.mark.slow
def test_gpu_sh_cpu_mode_writes_every_row(tmp_path):
    """``bash benchmarks/gpu.sh --cpu OUT`` at toy sizes: exit 0, the table on stdout and in
    OUT/gpu-table.md, one line per benchmark, the test row and one per command, all measured
    (the smoke limited to selftest by GPU_SH_SMOKE to keep CI short)."""
    bench = _bench()
    p = subprocess.run(["bash", str(SCRIPT), "--cpu", str(tmp_path / "out")], check=False, capture_output=True, text=True,
                       env=_env(GPU_SH_SMOKE="selftest"), timeout=400, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    table = (tmp_path / "out" / "gpu-table.md").read_text()
    assert p.stdout == table
    lines = [ln for ln in table.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| benchmark | setting | ours | baseline | ratio | target | verdict |")
    body = lines[1:]
    for _, what, *_ in bench.ROWS:
        row = [ln for ln in body if ln.startswith(f"| {what} |")]
        assert len(row) == 1, what
        assert "not measured" not in row[0] and ("(ours/baseline)" in row[0] or "(baseline/ours)" in row[0]), row[0]
    assert any(ln.startswith("| pytest -m cuda") and "| MET |" in ln for ln in body)
    for name in bench.COMMANDS:
        row = [ln for ln in body if ln.startswith(f"| `rnntk {name}` end to end (smoke)")]
        assert len(row) == 1, name
        assert ("| MET |" in row[0]) if name == "selftest" else ("skipped (GPU_SH_SMOKE)" in row[0]), row[0]
    assert len(body) == len(bench.ROWS) + 1 + len(bench.COMMANDS)
    rows = [json.loads(ln) for ln in (tmp_path / "out" / "gpu-rows.jsonl").read_text().splitlines()]
    assert {r["section"] for r in rows if "exit" in r} == {"tests", "sofo", "online", "lyapunov", "arnoldi", "gq", "smoke"}
    assert all(r["exit"] == 0 for r in rows if "exit" in r)
    assert all((tmp_path / "out" / "logs" / f"{s}.log").exists() for s in ("tests", "sofo", "gq", "smoke"))


def test_gpu_sh_usage_and_no_cuda(tmp_path):
    """No output folder: usage, exit 2. GPU mode on a machine without CUDA: a one-line reason,
    exit 2, nothing measured."""
    p = subprocess.run(["bash", str(SCRIPT)], check=False, capture_output=True, text=True, env=_env(), timeout=60)
    assert p.returncode == 2 and "usage: bash benchmarks/gpu.sh [--cpu] OUTDIR" in p.stderr
    import torch

    if not torch.cuda.is_available():
        p = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "g")], check=False, capture_output=True, text=True, env=_env(), timeout=120)
        assert p.returncode == 2 and "sees no CUDA device" in p.stderr, p.stderr
        assert not (tmp_path / "g" / "gpu-table.md").exists()


def test_table_marks_what_a_timeout_cut_off(tmp_path):
    """A section killed by gpu.sh's timeout keeps the rows it wrote; the rows it did not reach
    say 'not measured: timed out'; ratios and verdicts come from the values."""
    bench = _bench()
    rows = tmp_path / "rows.jsonl"
    lines = [
        {"section": "sofo", "key": "adam_s", "value": 0.5, "setting": "n=64"},
        {"section": "sofo", "key": "sofo_k32_s", "value": 0.75, "setting": "n=64, K=32"},
        {"section": "sofo", "exit": 124},
        {"section": "arnoldi", "key": "arnoldi_s", "value": 4.0, "setting": "area 7"},
        {"section": "arnoldi", "key": "arpack_s", "value": 40.0, "setting": "LR", "diff_vs_arnoldi": 1e-7},
        {"section": "arnoldi", "exit": 0},
        {"section": "lyapunov", "exit": 1},
        {"section": "gq", "key": "gq_s", "value": 2.0, "setting": "g1d"},
        {"section": "gq", "exit": 124},
    ]
    rows.write_text("".join(json.dumps(r) + "\n" for r in lines))
    table = bench.table(rows, "Test GPU")
    assert table.startswith("Measured on Test GPU, ")
    get = {what: next(ln for ln in table.splitlines() if ln.startswith(f"| {what} |")) for _, what, *_ in bench.ROWS}
    assert "1.50 (ours/baseline)" in get["SOFO iteration vs Adam+BPTT iteration, K = 32"] and "| MET |" in get["SOFO iteration vs Adam+BPTT iteration, K = 32"]
    assert "not measured: timed out" in get["SOFO iteration vs Adam+BPTT iteration, K = 128"]
    assert "10.00 (baseline/ours)" in get["Arnoldi f32→f64 on R8 area 7 vs ARPACK (max Re, 10 values)"]
    assert "| MET |" in get["Arnoldi f32→f64 on R8 area 7 vs ARPACK (max Re, 10 values)"]
    assert "not measured: failed (exit 1)" in get["Lyapunov spectrum k = 75, batch 16 (fwd+bwd): batched vs per-trial loop"]
    assert "not measured: timed out" in get["GQ vs adjoint, g1d width 2000, s/step"] and "| 2 s |" in get["GQ vs adjoint, g1d width 2000, s/step"]
    assert "not measured: not run" in get["online_full streaming step vs inference step"]
    lines[3:6] = [{"section": "arnoldi", "key": "arnoldi_s", "value": 12.0, "setting": "area 7"}, {"section": "arnoldi", "exit": 124}]
    rows.write_text("".join(json.dumps(r) + "\n" for r in lines))
    arn = next(ln for ln in bench.table(rows).splitlines() if ln.startswith("| Arnoldi"))
    assert "| 12 s |" in arn and "MISSED (ARPACK not measured: timed out)" in arn
