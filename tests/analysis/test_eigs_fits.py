"""The fit check of ``rnntk eigs`` and ``rnntk cordsnet-eigs`` (and their ``--dry-run`` peak
estimate) covers the arrays the solvers really allocate: the largest Krylov / ARPACK basis and
dense matrices recorded while :func:`leading_eigs` runs on a small operator are the oracle.
Before the shared :func:`rnntk.analysis.eigs.solver_bytes`, ``rnntk eigs --max-restarts 0``
sized the basis as a restarted run's (m = 60) while the one unrestarted run takes m = 300."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnntk.analysis import eigs as E
from rnntk.analysis.config import AnalysisEigsConfig
from rnntk.cordsnet.config import EigsConfig

N = 400


def _allocated(monkeypatch, method: str, **kw) -> float:
    """Bytes of the two largest 2-D tensors with a side of N made with torch.zeros/empty while the
    solve runs (the basis and its float32 twin in a mixed run; the dense matrix); for ARPACK,
    whose basis scipy allocates, its ``(n, ncv)`` float64 basis from the ncv it used."""
    seen: list[float] = []
    for name in ("zeros", "empty"):
        real = getattr(torch, name)

        def rec(*a, _real=real, **k):
            t = _real(*a, **k)
            if t.dim() == 2 and N in t.shape:
                seen.append(float(t.nbytes))
            return t

        monkeypatch.setattr(torch, name, rec)
    A = torch.from_numpy(np.random.default_rng(0).standard_normal((N, N)) / np.sqrt(N))
    op = E.MatrixFreeOperator(lambda V: V @ A.T.to(V.dtype), N, torch.float64, "cpu")
    res = E.leading_eigs(op, method, k=5, which=("LM", "LR"), generator=torch.Generator().manual_seed(0), tol=1e-6, **kw)
    monkeypatch.undo()
    if method == "arpack":
        return 8.0 * N * max(r.info["ncv"] for r in res.values())
    return sum(sorted(seen)[-2:])


def _need(monkeypatch, check, *args) -> float:
    import rnntk.engine.limits as limits

    got: list[float] = []
    monkeypatch.setattr(limits, "check_fits", lambda nbytes, *a, **k: got.append(float(nbytes)))
    check(*args)
    monkeypatch.undo()
    return got[-1]


@pytest.mark.parametrize(
    "method,restarts,krylov",
    [("arnoldi", 0, None), ("arnoldi", 0, 120), ("arnoldi", 1000, None), ("arnoldi", 1000, 90), ("arpack", 1000, None), ("dense", 1000, None)],
)
def test_eigs_fit_check_covers_the_solvers_arrays(monkeypatch, method, restarts, krylov):
    from rnntk.analysis.eigs_run import _check_eigs_fits

    cfg = AnalysisEigsConfig(method=method, k=5, max_restarts=restarts, krylov=krylov)
    need = _need(monkeypatch, _check_eigs_fits, cfg, N, "cpu")
    real = _allocated(monkeypatch, method, krylov_m=krylov, max_restarts=restarts)
    assert real > 0 and need >= real, (need, real)
    assert need <= 8 * real + 8 * 16 * 300**2, (need, real)  # an estimate, not a blanket refusal


@pytest.mark.parametrize("method,restarts", [("arnoldi", 0), ("arnoldi", 1000), ("arpack", 1000)])
def test_cordsnet_eigs_fit_check_covers_the_solvers_arrays(monkeypatch, method, restarts):
    from rnntk.cordsnet.cli import _check_eigs_fits

    cfg = EigsConfig(method=method, k=5, max_restarts=restarts)
    need = _need(monkeypatch, _check_eigs_fits, cfg, N, N, "cpu")
    mixed = method == "arnoldi" and restarts != 0  # cordsnet's default --dtype mixed: float32 run, float64 polish
    kw = dict(max_restarts=restarts, polish=mixed, dtype=torch.float32 if mixed else torch.float64)
    real = _allocated(monkeypatch, method, **kw)
    assert need >= real, (need, real)
