"""Spectra of any model of the contract: its recurrent weight, or its Jacobian at a state.

* :class:`MatrixFreeOperator`: ``V (..., n) -> A V`` batched, with ``to_dense`` (identity batches)
  and a float64 scipy ``LinearOperator`` (ARPACK); the same duck type as CordsNet's
  ``ConvOperator`` (``N``, ``dtype``, ``device``, ``matvec``, ``n_matvec``).
* :func:`jacobian_operator`: ``A = d step / dx`` at ``(x, u)`` for a discrete model (the model's
  analytic tangent, else forward-mode autograd), ``A = dF / dx`` for a continuous one
  (``tau dx/dt = F(x, u)``; eigenvalues in units of ``1/tau``, stable iff ``max Re < 0``), by
  ``torch.func.jvp`` vmapped over the vectors: no ``n x n`` Jacobian unless asked for.
* :func:`weight_operator`: the adapter's ``recurrent_weight()`` (``W``).
* :func:`leading_eigs`: top-``k`` eigenvalues by ``LM`` (largest ``|lambda|``) and/or ``LR``
  (largest real part): ``dense`` (LAPACK on the unrolled float64 matrix, all values),
  ``arpack`` (scipy's implicitly restarted Arnoldi on the float64 ``LinearOperator``, residuals
  recomputed with the operator) or ``power`` (batched power iteration, dominant value only).
  Results are :class:`EigResult` (values complex128, residuals, converged flags).

The restarted Krylov-Schur solver of ``cordsnet-eigs`` (``--method arnoldi``) is still in
``rnntk/cordsnet/eigs.py``; it is to move here next to these (so that both commands share it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, cast

import numpy as np
import torch

from rnntk.core.models import ContinuousModel, RecurrentModel, tangent

WHICH = ("LM", "LR")
METHODS = ("dense", "arpack", "power")


class MatrixFreeOperator:
    """``A`` given by a batched product ``matvec(V (m, n)) -> (m, n)`` (rows are vectors).

    n: size. dtype, device: of the vectors it takes. ``n_matvec`` counts vectors applied."""

    def __init__(self, matvec: Callable[[torch.Tensor], torch.Tensor], n: int, dtype: torch.dtype, device: Any) -> None:
        self._mv, self.N, self.dtype, self.device = matvec, int(n), dtype, torch.device(device)
        self.n_matvec = 0

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` for ``x (..., N)``: one batched call."""
        lead = x.shape[:-1]
        V = x.to(device=self.device, dtype=self.dtype).reshape(-1, self.N)
        self.n_matvec += V.shape[0]
        with torch.no_grad():  # forward-mode products only: no graph
            return self._mv(V).reshape(*lead, self.N)

    def to_dense(self, chunk: int = 1024) -> torch.Tensor:
        """The ``(N, N)`` matrix (column i = ``A e_i``), from identity batches of ``chunk`` rows."""
        A = torch.empty(self.N, self.N, dtype=self.dtype, device=self.device)
        for s in range(0, self.N, chunk):  # a loop over memory chunks, each one batched product
            e = torch.eye(self.N, dtype=self.dtype, device=self.device)[s : s + chunk]
            A[:, s : s + e.shape[0]] = self.matvec(e).T
        return A

    def as_linear_operator(self, check: Optional[Callable[[], None]] = None) -> Any:
        """A float64 ``scipy.sparse.linalg.LinearOperator`` (``matvec`` and ``matmat``)."""
        from scipy.sparse.linalg import LinearOperator

        def mm(X: np.ndarray) -> np.ndarray:
            if check is not None:
                check()
            X = np.asarray(X)
            vec = X.ndim == 1
            V = torch.from_numpy(np.ascontiguousarray(X.reshape(self.N, -1).T))
            Y = self.matvec(V).to(torch.float64).cpu().numpy()
            return Y[0] if vec else Y.T

        return LinearOperator((self.N, self.N), matvec=mm, matmat=mm, dtype=np.float64)  # pyright: ignore[reportCallIssue]


@dataclass
class EigResult:
    """Leading eigenvalues of one operator: values complex128 ``(k,)`` ordered by ``which``;
    residuals ``||A v - lambda v||`` for unit ``v`` (NaN for dense: no vectors); converged flags;
    n_matvec; seconds; info (method details, notes)."""

    values: np.ndarray
    residuals: np.ndarray
    converged: np.ndarray
    method: str
    which: str
    N: int
    n_matvec: int = 0
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def select(values: np.ndarray, k: int, which: str) -> np.ndarray:
    """Indices of the ``k`` values with largest modulus (``LM``) or real part (``LR``)."""
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    key = np.abs(values) if which == "LM" else np.real(values)
    return np.argsort(-key, kind="stable")[:k]


def _jvp_rows(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``V (m, n) -> (J V^T)^T`` for ``J = df/dx`` at ``x (1, n)``: jvp vmapped over the rows."""

    def mv(V: torch.Tensor) -> torch.Tensor:
        return torch.func.vmap(lambda v: torch.func.jvp(f, (x,), (v[None],))[1][0])(V)

    return mv


def jacobian_operator(model: RecurrentModel, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> MatrixFreeOperator:
    """The linearisation at ``x (n,)`` with input ``u (n_in,)`` or None: ``d step/dx`` (discrete;
    the analytic tangent when the model has one) or ``dF/dx`` with ``tau dx/dt = F`` (continuous)."""
    x1 = x.reshape(1, -1)
    u1 = None if u is None else u.reshape(1, -1).to(x1)
    if model.time == "continuous":
        rhs = cast(ContinuousModel, model).rhs
        return MatrixFreeOperator(_jvp_rows(lambda s: rhs(s, u1), x1), model.n, x1.dtype, x1.device)

    def mv(V: torch.Tensor) -> torch.Tensor:
        return tangent(model, x1, V.T[None], u1)[0].T

    return MatrixFreeOperator(mv, model.n, x1.dtype, x1.device)


def weight_operator(model: RecurrentModel) -> MatrixFreeOperator:
    """``W`` of the adapter's ``recurrent_weight()`` as an operator (ValueError if it has none)."""
    fn = getattr(model, "recurrent_weight", None)
    if fn is None:
        raise ValueError(f"{type(model).__name__} has no state-independent recurrent weight (its recurrence is gated): use the Jacobian")
    W = fn().detach()
    return MatrixFreeOperator(lambda V: V @ W.T, W.shape[0], W.dtype, W.device)


def _residuals(op: MatrixFreeOperator, w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``||A v_i - w_i v_i||`` for unit columns of ``v`` (complex), in one batched product."""
    V = torch.from_numpy(np.ascontiguousarray(v.T)).to(op.device)
    AV = op.matvec(V.real.to(op.dtype)).to(torch.complex128) + 1j * op.matvec(V.imag.to(op.dtype)).to(torch.complex128)
    R = AV - torch.from_numpy(w).to(op.device)[:, None] * V.to(torch.complex128)
    return torch.linalg.vector_norm(R, dim=1).cpu().numpy()


def dense_eigs(op: MatrixFreeOperator, max_n: int = 4096) -> EigResult:
    """All eigenvalues of the unrolled float64 matrix (LAPACK). Raises ValueError above ``max_n``."""
    if op.N > max_n:
        raise ValueError(f"the operator has N = {op.N} > {max_n}; dense eig is O(N^3): use --method arpack (or raise --max-dense-n)")
    t0 = time.perf_counter()
    w = torch.linalg.eigvals(op.to_dense().to(torch.float64)).cpu().numpy().astype(np.complex128)
    idx = select(w, op.N, "LM")
    return EigResult(w[idx], np.full(op.N, np.nan), np.ones(op.N, bool), "dense", "LM", op.N, op.N, time.perf_counter() - t0)


def eigs_arpack(
    op: MatrixFreeOperator, k: int, which: str, tol: float = 1e-8, ncv: Optional[int] = None, seed: int = 0, check: Optional[Callable[[], None]] = None
) -> EigResult:
    """scipy ARPACK (``eigs``) on the float64 operator; residuals recomputed; unconverged flagged."""
    from scipy.sparse.linalg import ArpackNoConvergence
    from scipy.sparse.linalg import eigs as _eigs

    eigs: Any = _eigs  # (scipy's stubs type tol as int)

    N = op.N
    if k >= N - 1:
        raise ValueError(f"ARPACK needs k < N - 1 (k = {k}, N = {N}); use --method dense for such a small operator")
    t0, before = time.perf_counter(), op.n_matvec
    ncv = min(N - 1, max(ncv or max(4 * k, 40), k + 2))
    note = ""
    try:
        w, v = eigs(op.as_linear_operator(check), k=k, which=which, ncv=ncv, tol=tol, v0=np.random.default_rng(seed).random(N))
    except ArpackNoConvergence as e:
        w, v = e.eigenvalues, e.eigenvectors
        note = f"ARPACK did not converge: {len(w)} of {k} values"
    v = v / np.linalg.norm(v, axis=0, keepdims=True)
    res = _residuals(op, w.astype(np.complex128), v)
    idx = select(w, k, which)
    w, res = w[idx].astype(np.complex128), res[idx]
    conv = res <= max(tol, 1e-12) * 10 * np.maximum(1.0, np.abs(w))
    return EigResult(w, res, conv, "arpack", which, N, op.n_matvec - before, time.perf_counter() - t0, dict(ncv=ncv, tol=tol, note=note))


def power_iteration(
    op: MatrixFreeOperator, iters: int = 10000, trials: int = 10, tol: float = 1e-8, generator: Optional[torch.Generator] = None, check_every: int = 50
) -> EigResult:
    """``trials`` power iterations at once (one batched product a step), sign-aligned; the
    Rayleigh quotient of their mean. A complex dominant pair does not converge (flagged)."""
    t0, before = time.perf_counter(), op.n_matvec
    V = torch.rand(trials, op.N, generator=generator, dtype=torch.float64).to(device=op.device, dtype=op.dtype)
    V = V / torch.linalg.vector_norm(V, dim=1, keepdim=True)
    it = 0
    for it in range(1, iters + 1):  # the iteration is sequential; each step is one batched product
        AV = op.matvec(V)
        V = AV / torch.linalg.vector_norm(AV, dim=1, keepdim=True)
        if it % check_every == 0:
            AV = op.matvec(V)
            lam = (V * AV).sum(1)
            if bool((torch.linalg.vector_norm(AV - lam[:, None] * V, dim=1) <= tol * lam.abs().clamp_min(1.0)).all()):
                break
    s = torch.sign(V @ V[0])
    s[s == 0] = 1
    v = (V * s[:, None]).mean(0)
    v = v / torch.linalg.vector_norm(v)
    Av = op.matvec(v[None])[0]
    lam = float(v @ Av)
    res = float(torch.linalg.vector_norm(Av - lam * v))
    ok = res <= tol * max(1.0, abs(lam))
    note = "" if ok else "no convergence: the dominant eigenvalue is probably a complex pair (or the gap is small); use --method arpack or dense"
    return EigResult(
        np.array([lam], np.complex128),
        np.array([res]),
        np.array([ok]),
        "power",
        "LM",
        op.N,
        op.n_matvec - before,
        time.perf_counter() - t0,
        dict(iterations=it, note=note),
    )


def leading_eigs(
    op: MatrixFreeOperator,
    method: str = "dense",
    k: int = 20,
    which: Sequence[str] = ("LM", "LR"),
    *,
    tol: float = 1e-8,
    max_dense_n: int = 4096,
    ncv: Optional[int] = None,
    power_iters: int = 10000,
    generator: Optional[torch.Generator] = None,
    seed: int = 0,
    check: Optional[Callable[[], None]] = None,
) -> dict[str, EigResult]:
    """Top-``k`` eigenvalues for each ordering in ``which`` with one method (see the module doc).
    Dense computes once and selects each ordering; ARPACK runs once per ordering; power gives
    the dominant value only (``LM``)."""
    k = max(1, min(int(k), op.N))
    out: dict[str, EigResult] = {}
    if method == "dense":
        full = dense_eigs(op, max_dense_n)
        for w in which:
            idx = select(full.values, k, w)
            out[w] = EigResult(full.values[idx], full.residuals[idx], full.converged[idx], "dense", w, op.N, full.n_matvec, full.seconds, dict(n_all=op.N))
    elif method == "arpack":
        for w in which:
            out[w] = eigs_arpack(op, min(k, op.N - 2), w, tol, ncv, seed, check)
    elif method == "power":
        if list(which) != ["LM"]:
            raise ValueError("power iteration finds the largest-|lambda| eigenvalue only: use --which LM")
        out["LM"] = power_iteration(op, power_iters, tol=tol, generator=generator)
    else:
        raise ValueError(f"method must be one of {METHODS}")
    return out
