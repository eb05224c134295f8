"""Shared test helpers: run the real CLI in a subprocess and check its conventions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        """The last stdout line, parsed (every engine command ends with one JSON line)."""
        lines = [ln for ln in self.stdout.splitlines() if ln.strip()]
        assert lines, f"no stdout; stderr was:\n{self.stderr}"
        return json.loads(lines[-1])

    @property
    def stderr_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k not in ("RNNTK_SEED", "RNNTK_DEVICE", "RNNTK_DEBUG")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", NO_COLOR="1")
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
    """Run ``python -m rnntk ARGS`` and capture its exit code, stdout and stderr."""
    p = subprocess.run(
        [sys.executable, "-m", "rnntk", *map(str, args)],
        cwd=cwd, env=env or cli_env(), capture_output=True, text=True, timeout=timeout,
    )
    return CliResult(p.returncode, p.stdout, p.stderr)


def assert_user_error(res: CliResult, *needles: str, code: int = 2, engine: bool = True) -> None:
    """Exit ``code``, exactly one stderr line containing every needle, no traceback, and
    (for engine commands) a JSON line on stdout that says so."""
    assert res.code == code, f"exit {res.code} != {code}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    assert "Traceback" not in res.stderr
    assert len(res.stderr_lines) == 1, f"expected one stderr line, got:\n{res.stderr}"
    line = res.stderr_lines[0]
    assert line.startswith("rnntk: error: "), line
    for n in needles:
        assert n in line, f"{n!r} not in {line!r}"
    if engine:
        out = res.json
        assert out["status"] in ("error", "failed", "nonfinite", "interrupted")
        assert "error" in out


@pytest.fixture
def cli():
    return run_cli


def main_in_process(capsys, *args) -> CliResult:
    """The real ``rnntk`` entry point in this process (no interpreter start-up). ``main`` sets
    signal dispositions (and ignores SIGINT/SIGTERM/SIGUSR2 once the outcome is decided) and the
    thread count: both are restored, so later tests and their child processes (a shell cannot
    trap a signal ignored at its start) see this process's own."""
    import signal

    import torch

    from rnntk.cli import main

    sigs = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)}
    threads = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in args])
    finally:
        for s, h in sigs.items():
            signal.signal(s, h)
        torch.set_num_threads(threads)
    cap = capsys.readouterr()
    return CliResult(e.value.code, cap.out, cap.err)


@pytest.fixture
def cli_in_process(capsys):
    """``cli_in_process(*args) -> CliResult``: :func:`main_in_process` bound to this test."""
    return lambda *args: main_in_process(capsys, *args)


def assert_sketch_matches_autograd(prob, model, V, batch, impls=("manual", "generic")) -> None:
    """Oracle O2 for a SOFO problem: the sketch's loss equals the autograd loss and
    ĝ = V·∇L with ∇L from autograd through the whole rollout, for each tangent implementation."""
    import torch

    from rnntk.sofo.optimizer import flatten_tangents

    L = prob.loss(model, batch)
    g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(L, list(model.parameters()))])
    for impl in impls:
        sk = prob.sketch(model, V, batch, impl)
        torch.testing.assert_close(sk.loss, L.detach(), rtol=1e-12, atol=0)
        torch.testing.assert_close(sk.g_hat, flatten_tangents(V) @ g, rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny operators: one thread is faster, and immune to OpenMP stalls on a busy machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
