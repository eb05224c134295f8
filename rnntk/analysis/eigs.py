"""Eigenvalues of linear operators given matrix-free, and the spectra of any model of the contract.

Solvers (model-agnostic; ``cordsnet-eigs`` and ``rnntk eigs`` share them), on any
:class:`Operator` (``N``, ``dtype``, ``device``, batched ``matvec``, ``to(dtype)``, ``to_dense``,
``as_linear_operator``; CordsNet's ``ConvOperator`` and :class:`MatrixFreeOperator` are two):

* :func:`krylov_schur` — restarted Krylov-Schur (Stewart 2002) to a relative residual, s-step
  Arnoldi (a block of products per Gram-Schmidt pass), optional float32 run finished in float64; :func:`arnoldi` — one unrestarted Krylov run (CGS2), Ritz
  values with residuals and converged flags;
* :func:`eigs_arpack` — scipy's ARPACK on the float64 ``LinearOperator``, residuals recomputed;
* :func:`dense_eigs` — LAPACK on the unrolled float64 matrix; refuses above ``max_n``;
* :func:`power_iteration` — batched trials, sign-aligned, Rayleigh quotient, converged flag;
* :func:`leading_eigs` — top-``k`` by ``LM`` (largest ``|lambda|``) and/or ``LR`` (largest real
  part) with one of them; results are :class:`EigResult`.

Operators of a model (:mod:`rnntk.core.models`):

* :func:`jacobian_operator`: ``A = d step / dx`` at ``(x, u)`` for a discrete model (the model's
  analytic tangent, else forward-mode autograd), ``A = dF / dx`` for a continuous one
  (``tau dx/dt = F(x, u)``; eigenvalues in units of ``1/tau``, stable iff ``max Re < 0``), by
  ``torch.func.jvp`` vmapped over the vectors: no ``n x n`` Jacobian unless asked for;
* :func:`weight_operator`: the adapter's ``recurrent_weight()`` (``W``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence, cast, runtime_checkable

import numpy as np
import torch

from rnntk.core.models import ContinuousModel, RecurrentModel, tangent

WHICH = ("LM", "LR")
METHODS = ("arnoldi", "arpack", "dense", "power")


@runtime_checkable
class Operator(Protocol):
    """A linear operator on vectors of size ``N`` applied in batches (rows are vectors)."""

    N: int
    n_matvec: int

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` for ``x (..., N)``."""
        ...

    def to(self, dtype: torch.dtype) -> "Operator":
        """The same operator on vectors of ``dtype``."""
        ...

    def to_dense(self) -> torch.Tensor:
        """The ``(N, N)`` matrix."""
        ...

    def as_linear_operator(self, check: Optional[Callable[[], None]] = None) -> Any:
        """A float64 scipy ``LinearOperator``."""
        ...


class MatrixFreeOperator:
    """``A`` given by a batched product ``matvec(V (m, n)) -> (m, n)`` (rows are vectors).

    n: size. dtype, device: of the vectors it takes. ``n_matvec`` counts vectors applied."""

    def __init__(self, matvec: Callable[[torch.Tensor], torch.Tensor], n: int, dtype: torch.dtype, device: Any) -> None:
        self._mv, self.N, self.dtype, self.device = matvec, int(n), dtype, torch.device(device)
        self.n_matvec = 0

    def to(self, dtype: torch.dtype) -> "MatrixFreeOperator":
        """The same operator taking and returning ``dtype`` vectors (computed in its own dtype)."""
        if dtype == self.dtype:
            return self
        mv, own = self._mv, self.dtype
        return MatrixFreeOperator(lambda V: mv(V.to(own)).to(dtype), self.N, dtype, self.device)

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
    """Leading eigenvalues of one operator.

    values: complex128 ``(k,)``, ordered by ``which``; residuals: ``||A v - lambda v||`` for unit
    ``v`` (``(k,)``, float64); converged: bool ``(k,)``; n_matvec: operator applications;
    seconds: wall time; info: method details (Krylov size, breakdown, notes).
    """

    values: np.ndarray
    residuals: np.ndarray
    converged: np.ndarray
    method: str
    which: str
    N: int
    n_matvec: int = 0
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def spectral_radius(self) -> float:
        return float(np.abs(self.values).max()) if self.values.size else float("nan")

    @property
    def max_real(self) -> float:
        return float(np.real(self.values).max()) if self.values.size else float("nan")

    @property
    def certifies_leading(self) -> bool:
        """True when the first value by this result's ordering is a converged eigenvalue of a
        complete run (so no unconverged Ritz value ranks above it): then it is the leading one."""
        return bool(self.values.size and self.converged[0] and not self.info.get("incomplete"))


def select(values: np.ndarray, k: int, which: str) -> np.ndarray:
    """Indices of the ``k`` eigenvalues with largest modulus (``LM``) or real part (``LR``)."""
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    key = np.abs(values) if which == "LM" else np.real(values)
    return np.argsort(-key, kind="stable")[:k]


def _converged(values: np.ndarray, res: np.ndarray, tol: float) -> np.ndarray:
    return res <= tol * np.maximum(1.0, np.abs(values))


@dataclass
class Krylov:
    """An Arnoldi factorisation ``A V_m = V_{m+1} H``: ``H`` float64 ``(m+1, m)``, ``m``
    steps done, ``breakdown`` (an invariant subspace was found), ``reorth`` second passes done."""

    H: torch.Tensor
    m: int
    breakdown: bool
    reorth: int
    seconds: float


def krylov(
    op: Operator | Callable[[torch.Tensor], torch.Tensor],
    n: Optional[int] = None,
    m: int = 300,
    dtype: torch.dtype = torch.float64,
    v0: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    reorth: str = "always",
    device: Optional[torch.device] = None,
    check: Optional[Callable[[], None]] = None,
) -> Krylov:
    """``m`` Arnoldi steps with classical Gram-Schmidt as matrix products (``h = V w``,
    ``w -= V^T h``). ``reorth``: ``always`` (CGS2, default: a second pass every step) or
    ``selective`` (the second pass only when the first pass shrank ``w`` below ``1/sqrt(2)`` of
    its norm, the Daniel-Gragg-Kaufman-Stewart test: fewer passes, weaker orthogonality). Stops early on
    breakdown. op: an :class:`Operator` or a batched matvec ``(..., n) -> (..., n)``.
    ``check`` is called before every step (a run's interrupt check; it may raise to stop)."""
    t0 = time.perf_counter()
    if isinstance(op, Operator):
        n, dev = op.N, op.device
        mv = (op.to(dtype) if op.dtype != dtype else op).matvec
    else:
        if n is None:
            raise ValueError("give n for a plain matvec function")
        mv, dev = op, device or torch.device("cpu")
    if reorth not in ("always", "selective"):
        raise ValueError("reorth must be 'always' or 'selective'")
    m = max(1, min(int(m), n))
    if v0 is None:
        v0 = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device if generator is not None else dev)
    v = v0.to(device=dev, dtype=dtype)
    V = torch.zeros(m + 1, n, dtype=dtype, device=dev)
    H = torch.zeros(m + 1, m, dtype=torch.float64)
    V[0] = v / torch.linalg.vector_norm(v)
    m_eff, breakdown, passes = m, False, 0
    eta = 2**-0.5
    for j in range(m):  # the Krylov recurrence is sequential; each step is batched linear algebra
        if check is not None:
            check()
        w = mv(V[j])
        B = V[: j + 1]
        n0 = float(torch.linalg.vector_norm(w))
        h = B @ w
        w = w - h @ B
        beta = float(torch.linalg.vector_norm(w))
        if reorth == "always" or beta < eta * n0:
            h2 = B @ w  # second classical Gram-Schmidt pass (re-orthogonalisation)
            w = w - h2 @ B
            h = h + h2
            beta = float(torch.linalg.vector_norm(w))
            passes += 1
        h = h.double().cpu()
        H[: j + 1, j] = h
        H[j + 1, j] = beta
        if beta <= max(n0, 1e-300) * (1e-12 if dtype == torch.float64 else 1e-5):
            m_eff, breakdown = j + 1, True  # invariant subspace found: the Ritz values are exact
            H[j + 1, j] = 0.0
            break
        V[j + 1] = w / beta
    return Krylov(H[: m_eff + 1, :m_eff], m_eff, breakdown, passes, time.perf_counter() - t0)


def ritz(kr: Krylov, k: int, which: str, tol: float = 1e-8, qr_steps: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` Ritz values of a :class:`Krylov` factorisation by ``which`` with residuals
    ``|h_{m+1,m}| |e_m^T y|`` (unit ``y``, from two inverse-iteration solves with ``H_m``) and
    converged flags (``residual <= tol * max(1, |theta|)``). ``qr_steps``: upstream's unshifted
    QR iterations ``H <- RQ`` before ``eigvals`` (similarity transforms: fidelity only)."""
    m = kr.m
    Hm = kr.H[:m, :m].numpy()
    A = Hm
    for _ in range(int(qr_steps)):
        Q, R = np.linalg.qr(A)
        A = R @ Q
    vals = np.linalg.eigvals(A)  # LAPACK Hessenberg QR, no eigenvectors: cheap
    idx = select(vals, k, which)
    th = vals[idx]
    # eigenvectors of H_m for the selected values only: inverse iteration, all at once
    shift = th + (np.abs(th) + 1.0) * 1e-13
    M = Hm[None].astype(np.complex128) - shift[:, None, None] * np.eye(m)[None]
    y = np.linalg.solve(M, np.ones((len(th), m, 1), np.complex128))
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    y = np.linalg.solve(M, y)[..., 0]
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    res = abs(float(kr.H[m, m - 1])) * np.abs(y[:, m - 1])
    return th.astype(np.complex128), res.astype(np.float64), _converged(th, res, tol)


def arnoldi(
    op: Operator | Callable[[torch.Tensor], torch.Tensor],
    n: Optional[int] = None,
    m: int = 300,
    k: int = 10,
    which: str = "LM",
    dtype: torch.dtype = torch.float64,
    v0: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    qr_steps: int = 0,
    tol: float = 1e-8,
    device: Optional[torch.device] = None,
    reorth: str = "always",
) -> EigResult:
    """Top-``k`` Ritz values (by ``which``: ``LM``/``LR``) of one unrestarted ``m``-step Arnoldi
    run (:func:`krylov` + :func:`ritz`). dtype: of the basis and the matvec (the Hessenberg
    matrix is float64). v0: start ``(n,)`` (default: uniform[0,1), normalised, as upstream)."""
    kr = krylov(op, n, m, dtype, v0, generator, reorth, device)
    t0 = time.perf_counter()
    vals, res, conv = ritz(kr, k, which, tol, qr_steps)
    N = op.N if isinstance(op, Operator) else int(n or 0)
    return EigResult(
        vals,
        res,
        conv,
        "arnoldi",
        which,
        N,
        n_matvec=kr.m,
        seconds=kr.seconds + time.perf_counter() - t0,
        info=dict(krylov=kr.m, breakdown=kr.breakdown, reorth_passes=kr.reorth, dtype=str(dtype).replace("torch.", ""), qr_steps=int(qr_steps)),
    )


# ---------------------------------------------------------------------- restarted Arnoldi
def _block_eigs(T: np.ndarray) -> np.ndarray:
    """Eigenvalues of a real quasi-triangular Schur form ``T`` in diagonal order (a 2x2 block
    gives a conjugate pair, both at its two positions)."""
    m = T.shape[0]
    ev = np.empty(m, np.complex128)
    i = 0
    while i < m:  # a walk along the small m x m diagonal (not over vectors)
        if i + 1 < m and T[i + 1, i] != 0:
            a, b, c, d = T[i, i], T[i, i + 1], T[i + 1, i], T[i + 1, i + 1]
            tr, det = (a + d) / 2, a * d - b * c
            im = math.sqrt(max(det - tr * tr, 0.0))
            ev[i], ev[i + 1] = tr + 1j * im, tr - 1j * im
            i += 2
        else:
            ev[i] = T[i, i]
            i += 1
    return ev


def _priority(values: np.ndarray, which: Sequence[str]) -> np.ndarray:
    """Best rank of each value over the orderings in ``which`` (0 = first by some ordering)."""
    n = len(values)
    r = np.full(n, n)
    for w in which:
        rr = np.empty(n, np.int64)
        rr[select(values, n, w)] = np.arange(n)
        r = np.minimum(r, rr)
    return r


def _wanted(values: np.ndarray, k: int, which: Sequence[str]) -> np.ndarray:
    """Indices of the union of the top ``k`` by each ordering."""
    return np.unique(np.concatenate([select(values, k, w) for w in which]))


def _rel_ok(values: np.ndarray, res: np.ndarray, tol: float) -> np.ndarray:
    """``res <= tol * |theta|`` (ARPACK's relative test; ``|theta|`` floored at eps^(2/3))."""
    return res <= tol * np.maximum(np.abs(values), np.finfo(np.float64).eps ** (2 / 3))


@dataclass
class _KSRun:
    V: torch.Tensor  # (m + 1, n) orthonormal rows: A V[:m]^T = V^T B
    B: np.ndarray  # (m + 1, m) float64
    m: int
    n_matvec: int
    restarts: int
    breakdown: bool
    converged: bool


# s-step Arnoldi's default products per Gram-Schmidt block (float32's recursion amplifies rounding more)
S_STEP = {torch.float32: 16, torch.float64: 32}


def _block_qr(K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``K^T = Q R`` for a block of ``s`` rows ``K (s, n)``: ``Q (n, s)`` orthonormal columns,
    ``R (s, s)`` upper triangular with a non-negative diagonal. In float64, Cholesky QR (one
    ``s x s`` Gram matrix and one triangular solve) when every pivot of ``R`` is >= 0.1 of the
    rows' unit scale, else Householder QR. The pivot test is a cheap guard, not a bound on the
    loss of orthogonality (a triangular ``R`` with large pivots can still be ill conditioned);
    what holds is pinned by tests: the basis stays orthonormal and the Krylov relation exact to
    ~1e-13 against dense matrices (tests/cordsnet/test_cordsnet_eigs.py)."""
    if K.dtype == torch.float64:
        L, info = torch.linalg.cholesky_ex(K @ K.T)
        if int(info) == 0 and float(torch.diagonal(L).min()) >= 0.1:
            return torch.linalg.solve_triangular(L, K, upper=False).T, L.T
    Q, R = torch.linalg.qr(K.T)
    sg = torch.where(torch.diagonal(R) < 0, -1.0, 1.0).to(R.dtype)
    return Q * sg, R * sg[:, None]


def _mid_cycle_check_from(hist: Sequence[tuple[int, float]], cycle: int) -> Optional[float]:
    """Products into the next Krylov-Schur cycle (of ``cycle`` products) after which to test for
    convergence at every block end, or None: from the last two restarts' worst wanted residual
    (log of residual / tolerance, ``hist``), extrapolated linearly in the product count; tests
    start at 3/4 of the predicted point when that falls inside the cycle."""
    if len(hist) < 2 or hist[-1][1] <= 0:
        return None
    (n0, r0), (n1, r1) = hist[-2], hist[-1]
    if n1 <= n0 or r1 >= r0:
        return None
    need = r1 * (n1 - n0) / (r0 - r1)
    return 0.75 * need if need < cycle else None


def _ks_run(
    mv: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    dev: torch.device,
    dtype: torch.dtype,
    k: int,
    which: Sequence[str],
    m: int,
    tol: float,
    v0: torch.Tensor,
    max_restarts: int,
    keep_frac: float,
    check: Optional[Callable[[], None]],
    s: Optional[int] = None,
) -> _KSRun:
    """Krylov-Schur (Stewart 2002): Arnoldi steps up to ``m`` vectors, then a reordered real
    Schur form of ``B_m`` keeps the wanted Ritz values' invariant subspace (``p`` vectors,
    conjugate pairs together) and the factorisation is extended again, until the union of the
    top ``k`` by each ordering has Ritz residual ``<= tol |theta|``.

    The Arnoldi steps go ``s`` at a time (default :data:`S_STEP` of ``dtype``; s-step Arnoldi, monomial basis): from the last basis
    vector ``u``, the ``s`` products ``A u, A^2 u, ...`` (each normalised), then one block
    classical Gram-Schmidt against the basis (two matrix products that read the basis once per
    block instead of once per vector; a second pass when a column lost more than
    ``1 - 1/sqrt(2)`` of its norm) and a QR of the ``s`` new columns; the Hessenberg columns
    follow from the QR factors (``A q_t = (c_{t+1} K_{t+1} - A V C_t - sum_l R_lt A q_l) / R_tt``).
    The Krylov space is the same as ``s`` single steps. Where that recursion would amplify
    rounding (growth factor ``> 100`` in float64, ``> 10`` in float32: a start near an invariant
    subspace, as in the float64 polish), the block is cut there (its last products are discarded)
    and the next block is shorter; blocks start at one product and double up to ``s`` while the
    growth stays below 1/8 of that limit."""
    import scipy.linalg as sla
    from scipy.linalg import lapack

    dtrsen = cast(Any, lapack).dtrsen  # (not in scipy's stubs)

    V = torch.zeros(m + 1, n, dtype=dtype, device=dev)
    B = np.zeros((m + 1, m))
    V[0] = (v0 / torch.linalg.vector_norm(v0)).to(device=dev, dtype=dtype)
    small = 1e-12 if dtype == torch.float64 else 1e-5
    growth = 100.0 if dtype == torch.float64 else 10.0
    eta = 2**-0.5
    s = max(1, int(s)) if s else S_STEP[dtype]
    p, nmv, restarts, s_cur = 0, 0, 0, 1  # blocks grow 1, 2, 4, ... to s (a start near an invariant subspace cuts early blocks)
    hist: list[tuple[int, float]] = []  # (products, log of the worst wanted residual / tolerance) at each restart
    while True:
        j = p  # V[:j+1] orthonormal rows, A V[:j]^T = V[:j+1]^T B[:j+1, :j]; the image of V[j] comes next
        check_from = _mid_cycle_check_from(hist, m - p)
        while j < m:  # the Krylov recurrence is sequential; each block is batched linear algebra
            if check is not None:
                check()
            ts = min(s_cur, m - j)
            K = torch.empty(ts, n, dtype=dtype, device=dev)
            c = np.empty(ts)
            x = V[j]
            for t in range(ts):  # powers of A: sequential products, one conv each
                y = mv(x)
                c[t] = float(torch.linalg.vector_norm(y))
                if c[t] == 0:
                    c[t] = 1.0  # A u = 0: an invariant subspace, caught below by the zero pivot
                K[t] = y if y.dtype == dtype else y.to(dtype)
                x = K[t].mul_(1.0 / c[t])
            nmv += ts
            Bj = V[: j + 1]
            C = Bj @ K.T  # (j+1, ts): one read of the basis for the whole block
            K.addmm_(C.T, Bj, alpha=-1.0)
            if bool((torch.linalg.vector_norm(K, dim=1) < eta).any()):  # second pass only when needed (DGKS test, as ARPACK)
                C2 = Bj @ K.T
                K.addmm_(C2.T, Bj, alpha=-1.0)
                C = C + C2
            Qt, R = _block_qr(K)
            Cn, Rn = C.double().cpu().numpy(), R.double().cpu().numpy()
            d = np.diag(Rn)
            zero = np.nonzero(d <= small)[0]
            tb = int(zero[0]) if len(zero) else ts  # K[tb] in the span so far: invariant subspace
            tlim = min(ts - 1, tb)
            tacc, g = tlim, np.zeros(ts)
            for t in range(tlim):  # rounding growth of the recursion below; cut the block where it is large
                g[t] = (1.0 + float(np.abs(Rn[:t, t]) @ g[:t])) / d[t]
                if g[t] > growth:
                    tacc = t
                    break
            rows = j + 1 + ts
            kap = np.concatenate([Cn, Rn])  # coordinates of K[t] in (V[:j+1], q_0..q_{ts-1})
            AV = np.zeros((rows, j + 1))  # A V[:j+1] in those coordinates
            AV[: j + 1, :j] = B[: j + 1, :j]
            AV[:, j] = c[0] * kap[:, 0]
            Hc = np.zeros((rows, tacc + 1))  # columns: A v_j, A q_0, ..., A q_{tacc-1}
            Hc[:, 0] = AV[:, j]
            for t in range(tacc):  # A q_t = (c_{t+1} K[t+1] - A V C[:, t] - sum_{l<t} R[l, t] A q_l) / R[t, t]
                Hc[:, 1 + t] = (c[t + 1] * kap[:, t + 1] - AV @ Cn[:, t] - Hc[:, 1 : 1 + t] @ Rn[:t, t]) / d[t]
            if tacc < tlim:  # cut: keep q_0..q_tacc (the image of q_tacc comes next), drop the rest
                B[: j + tacc + 2, j : j + tacc + 1] = Hc[: j + tacc + 2]
                V[j + 1 : j + tacc + 2] = Qt.T[: tacc + 1]
                j += tacc + 1
                s_cur = max(1, tacc + 1)
                continue
            if tb < ts:  # invariant subspace: the Ritz values of B[:mm, :mm] are exact
                mm = j + 1 + tb
                B[:mm, j : j + tb + 1] = Hc[:mm, : tb + 1]
                V[j + 1 : mm] = Qt.T[:tb]
                B[mm, :] = 0.0
                return _KSRun(V[: mm + 1], B[: mm + 1, :mm], mm, nmv, restarts, True, True)
            B[:rows, j : j + ts] = Hc
            V[j + 1 : j + 1 + ts] = Qt.T
            j += ts
            if ts == s_cur and float(g.max()) <= growth / 8:  # well conditioned with room to spare: a longer block next
                s_cur = min(s, 2 * s_cur)
            if check_from is not None and nmv >= hist[-1][0] + check_from and j < m:
                # the residual trend says this cycle converges before it ends: test at block ends
                # (the factorisation holds at any j), and stop as soon as every wanted value passes
                vj, Yj = np.linalg.eig(B[:j, :j])
                Wj = _wanted(vj, k, which)
                if _rel_ok(vj[Wj], np.abs(B[j, :j] @ Yj[:, Wj]), tol).all():
                    return _KSRun(V[: j + 1], B[: j + 1, :j], j, nmv, restarts, False, True)
        T, Z = cast(Any, sla.schur(B[:m, :m], output="real"))  # one Schur form serves the test and the restart
        ev = _block_eigs(T)
        W = _wanted(ev, k, which)
        resW = _schur_ritz_residuals(T, Z, B[m], W)
        ok = _rel_ok(ev[W], resW, tol)
        hist.append((nmv, float(np.log(max(float(np.max(resW / (tol * np.maximum(np.abs(ev[W]), np.finfo(np.float64).eps ** (2 / 3))))), 1e-300)))))
        if ok.all() or restarts >= max_restarts:
            return _KSRun(V, B, m, nmv, restarts, False, bool(ok.all()))
        pr = _priority(ev, which)
        nconv = int(ok.sum())
        keep = min(m - 3, max(len(W) + 2, nconv + int((m - nconv) * keep_frac)))
        sel = np.zeros(m, np.int32)
        sel[np.argsort(pr, kind="stable")[:keep]] = 1
        Ts, Zs, _, _, p, *_, info = dtrsen(sel, T, Z, job="N")
        if info != 0:  # a swap failed (ill-conditioned): keep the Schur form as it is ordered
            Ts, Zs, p = T, Z, keep if T[keep, keep - 1] == 0 else keep + 1
        p = int(p)
        Zp = torch.from_numpy(np.ascontiguousarray(Zs[:, :p].T)).to(device=dev, dtype=dtype)
        V[:p] = Zp @ V[:m]
        V[p] = V[m].clone()
        brow = B[m] @ Zs[:, :p]
        B[:] = 0.0
        B[:p, :p] = Ts[:p, :p]
        B[p, :p] = brow
        restarts += 1


def _schur_ritz_residuals(T: np.ndarray, Z: np.ndarray, brow: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Ritz residual estimates ``|b^T y|`` (unit ``y``) of the eigenvalues at diagonal positions
    ``idx`` of a real Schur form ``B = Z T Z^T`` (``brow``: the factorisation's last row ``b``):
    the eigenvectors come from the complex Schur form by back substitution (no second
    eigendecomposition of ``B``; tiny pivots are floored at ``eps ||T||``, as LAPACK's trevc)."""
    import scipy.linalg as sla

    Tc, Zc = cast(Any, sla.rsf2csf(T, Z))
    m = T.shape[0]
    floor = np.finfo(np.float64).eps * max(float(np.abs(T).max()), 1e-300)
    res = np.empty(len(idx))
    d = np.diag(Tc)
    for r, i in enumerate(idx):  # one small triangular solve per wanted value (not over Krylov vectors)
        y = np.zeros(m, np.complex128)
        y[i] = 1.0
        if i > 0:
            M = Tc[:i, :i] - d[i] * np.eye(i)
            piv = np.diag(M).copy()
            small = np.abs(piv) < floor
            M[np.arange(i)[small], np.arange(i)[small]] = floor
            y[:i] = sla.solve_triangular(M, -Tc[:i, i])
        x = Zc[:, : i + 1] @ y[: i + 1]
        res[r] = abs(brow @ x) / np.linalg.norm(x)
    return res


def _ks_ritz(run: _KSRun, k: int, which: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wanted Ritz values, their vectors in the basis (``(m, w)`` complex) and Ritz residuals."""
    m = run.m
    vals, Y = np.linalg.eig(run.B[:m, :m])
    vals, Y = vals.astype(np.complex128), Y.astype(np.complex128)
    W = _wanted(vals, k, which)
    res = np.abs(run.B[m] @ Y[:, W]) if run.B.shape[0] > m else np.zeros(len(W))
    return vals[W], Y[:, W], res


def _ks_basis(n: int, nw: int, m: Optional[int]) -> int:
    """:func:`krylov_schur`'s basis size for ``nw`` wanted values on ``n`` units: ``m`` as asked,
    or by default 8 vectors per wanted value (at least 60, at most ~1 GB of float64 basis); never
    more than ``n`` nor fewer than ``nw + 3``."""
    m = int(m) if m is not None else min(max(60, 8 * nw), max(nw + 20, int(2**30 / (8 * n))))
    return max(min(m, n), min(n, nw + 3))


def solver_bytes(
    method: str, n: int, k: int, n_which: int, *, krylov_m: Optional[int] = None, ncv: Optional[int] = None, max_restarts: int = 1000, dtype: str = "float64"
) -> float:
    """Bytes of the main arrays :func:`leading_eigs` allocates for ``method`` on an operator of
    ``n`` units, ``k`` values for each of ``n_which`` orderings (a fit check before the solve).
    dense: the float64 matrix and LAPACK's copy, the complex eigenvectors (twice); arnoldi: the
    Krylov basis ``(m + 1, n)`` twice (the basis and its update) in ``dtype`` (``mixed``: a float32
    run's and the float64 polish's, both held) and the ``m x m`` Schur matrices, with ``m`` the
    restarted run's (:func:`krylov_schur`) or, with ``max_restarts`` 0, the one ``krylov_m``-step
    run's (default 300); arpack: its ``(ncv + 2, n)`` basis (ncv as :func:`eigs_arpack`); power: a
    few vectors."""
    if method == "dense":
        return 2.0 * 8 * n * n + 2.0 * 16 * n * n
    if method == "arnoldi":
        if max_restarts == 0:
            m, item = min(n, krylov_m or 300), (4 if dtype == "float32" else 8)  # krylov(): one dtype (mixed runs it in float64)
        else:
            m, item = _ks_basis(n, min(n, max(1, min(k, n)) * n_which), krylov_m), {"float32": 4, "mixed": 12}.get(dtype, 8)
        return 2.0 * item * n * (m + 1) + 4.0 * 16 * m * m
    if method == "arpack":
        nc = min(n - 1, ncv or max(4 * k, 40))
        return 2.0 * 8 * n * (nc + 2) + 4.0 * 16 * nc * nc
    return 8.0 * 16 * n


def krylov_schur(
    op: Operator | Callable[[torch.Tensor], torch.Tensor],
    n: Optional[int] = None,
    k: int = 10,
    which: Sequence[str] = ("LM", "LR"),
    m: Optional[int] = None,
    tol: float = 1e-10,
    dtype: torch.dtype = torch.float32,
    polish: bool = True,
    v0: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device: Optional[torch.device] = None,
    max_restarts: int = 1000,
    keep_frac: float = 0.5,
    check: Optional[Callable[[], None]] = None,
    s_step: Optional[int] = None,
) -> dict[str, EigResult]:
    """Top-``k`` eigenvalues by each ordering in ``which`` (``LM``/``LR``) from one restarted
    Krylov-Schur run that stops when all of them have relative residual
    ``||A x - theta x|| <= tol |theta|`` (or after ``max_restarts`` restarts: then flagged).

    dtype ``float32`` with ``polish`` (default): the Krylov run in float32 down to ``1e-6``
    (or ``tol`` if larger), then a float64 Krylov-Schur run started in the float32 wanted
    invariant subspace finishes to ``tol``; ``float64``: one float64 run. ``m``: basis size
    (default ``max(60, 8 w)`` for ``w`` wanted values, at most ``n`` and ~1 GB). For a
    an :class:`Operator` the reported residuals are recomputed in float64 with the Ritz vectors
    (``(2w)`` matvecs in one batched call), else they are the Ritz estimates. v0: ``(n,)`` start
    (default uniform[0,1), as upstream). ``s_step``: Arnoldi products per Gram-Schmidt block
    (s-step Arnoldi, same Krylov space; 1 = one vector at a time; see :func:`_ks_run`; default
    32 for a float64 run, 16 for a float32 one, whose recursion amplifies rounding more).
    Returns ``{which: EigResult}``."""
    t0 = time.perf_counter()
    which = [which] if isinstance(which, str) else list(which)
    for w in which:
        if w not in WHICH:
            raise ValueError(f"which must be in {WHICH}, got {w!r}")
    if s_step is not None and int(s_step) < 1:
        raise ValueError(f"s_step must be >= 1 (None: the default), got {s_step}")
    if isinstance(op, Operator):
        n, dev = op.N, op.device
        ops = {dt: (op.to(dt) if op.dtype != dt else op) for dt in (torch.float32, torch.float64)}
        mvs = {dt: o.matvec for dt, o in ops.items()}
    else:
        if n is None:
            raise ValueError("give n for a plain matvec function")
        dev = device or torch.device("cpu")
        mvs = {torch.float32: op, torch.float64: op}
    k = max(1, min(int(k), n))
    nw = min(n, k * len(which))
    # default basis: 8 vectors per wanted value (measured on the realistic R8 area 7, 20 wanted:
    # m = 60 / 80 / 120 / 160 took 7,049 / 4,835 / 1,737 / 1,456 matvecs), at most ~1 GB of basis
    m = _ks_basis(n, nw, m)
    if v0 is None:
        v0 = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device if generator is not None else dev)
    v0 = v0.to(dev)
    mixed = dtype == torch.float32 and polish and tol < 1e-6
    first_dtype = torch.float32 if dtype == torch.float32 else torch.float64
    runs = [
        _ks_run(
            mvs[first_dtype],
            n,
            dev,
            first_dtype,
            k,
            which,
            m,
            max(tol, 1e-6) if first_dtype == torch.float32 else tol,
            v0,
            max_restarts,
            keep_frac,
            check,
            s_step,
        )
    ]
    if mixed and runs[0].breakdown:  # a small invariant subspace: redo it in float64 from the same start (cheap)
        runs.append(_ks_run(mvs[torch.float64], n, dev, torch.float64, k, which, m, tol, v0, max_restarts, keep_frac, check, s_step))
    elif mixed:
        # float64 polish: start in the float32 wanted invariant subspace (a random combination
        # of its Schur vectors), so only the last digits remain to be won in float64
        r = runs[0]
        vals, Y, _ = _ks_ritz(r, k, which)
        X = torch.from_numpy(np.ascontiguousarray(Y.T)).to(dev)  # (w, m) complex
        Vm = r.V[: r.m].double()
        c = torch.rand(X.shape[0], generator=torch.Generator().manual_seed(12345), dtype=torch.float64).to(dev) + 0.5
        start = (c.to(torch.complex128) @ X) @ Vm.to(torch.complex128)
        start = start.real + start.imag
        runs.append(_ks_run(mvs[torch.float64], n, dev, torch.float64, k, which, m, tol, start, max_restarts, keep_frac, check, s_step))
    last = runs[-1]
    vals, Y, est = _ks_ritz(last, k, which)
    res = est
    if isinstance(op, Operator):  # true residuals in float64 from the Ritz vectors, one batched call
        # a conjugate pair's Ritz vectors are conjugate (same residual): one of each pair is
        # computed, and a real Ritz vector needs no imaginary part
        partner = np.arange(len(vals))
        upper = np.nonzero(vals.imag > 0)[0]
        for i in np.nonzero(vals.imag < 0)[0]:  # a loop over the few wanted values
            if len(upper):
                j = upper[np.argmin(np.abs(vals[upper] - np.conj(vals[i])))]
                if abs(vals[j] - np.conj(vals[i])) <= 1e-12 * max(1.0, abs(vals[i])):
                    partner[i] = j
        reps = np.nonzero(partner == np.arange(len(vals)))[0]
        cplx = reps[vals.imag[reps] != 0]
        Vm = last.V[: last.m].double()
        Yt = torch.from_numpy(np.ascontiguousarray(Y[:, reps].T)).to(dev)
        Xr = Yt.real @ Vm
        Xi = torch.zeros_like(Xr)
        pos = torch.from_numpy(np.searchsorted(reps, cplx)).to(dev)
        Xi[pos] = torch.from_numpy(np.ascontiguousarray(Y[:, cplx].T.imag)).to(dev) @ Vm
        AX = ops[torch.float64].matvec(torch.cat([Xr, Xi[pos]]))  # one batched call
        AXi = torch.zeros_like(Xr)
        AXi[pos] = AX[len(reps) :]
        th = torch.from_numpy(vals[reps]).to(dev)[:, None]
        R = torch.complex(AX[: len(reps)], AXi) - th * torch.complex(Xr, Xi)
        rr = (torch.linalg.vector_norm(R, dim=1) / torch.linalg.vector_norm(torch.complex(Xr, Xi), dim=1)).cpu().numpy()
        res = np.empty(len(vals))
        res[reps] = rr
        res = res[partner]
    conv = _rel_ok(vals, res, tol)
    seconds = time.perf_counter() - t0
    info = dict(
        krylov=m,
        restarts=sum(r.restarts for r in runs),
        breakdown=last.breakdown,
        dtype="float32+float64" if mixed else str(first_dtype).replace("torch.", ""),
        n_matvec_float32=runs[0].n_matvec if first_dtype == torch.float32 else 0,
        n_matvec_float64=sum(r.n_matvec for r in runs if r is not runs[0] or first_dtype == torch.float64),
        tol=tol,
        s_step=int(s_step) if s_step else (f"{S_STEP[torch.float32]} (float32), {S_STEP[torch.float64]} (float64)" if mixed else S_STEP[first_dtype]),
    )
    out: dict[str, EigResult] = {}
    for i, w in enumerate(which):
        idx = select(vals, k, w)
        out[w] = EigResult(
            vals[idx].astype(np.complex128),
            res[idx].astype(np.float64),
            conv[idx],
            "arnoldi",
            w,
            n,
            n_matvec=sum(r.n_matvec for r in runs),
            seconds=seconds if i == 0 else 0.0,
            info=dict(info),
        )
    return out


def eigs_arpack(
    op: Operator,
    k: int = 10,
    which: str = "LR",
    ncv: Optional[int] = None,
    tol: float = 1e-8,
    maxiter: Optional[int] = None,
    seed: int = 0,
    check: Optional[Callable[[], None]] = None,
) -> EigResult:
    """``scipy.sparse.linalg.eigs`` on the float64 :class:`LinearOperator` of the operator (ARPACK,
    implicitly restarted Arnoldi). ``ncv`` default ``min(N - 1, max(4k, 40))``. Residuals are
    recomputed with the operator; unconverged values (ARPACK gave up) are flagged. ``check``
    is called before every operator product (it may raise to stop ARPACK)."""
    from scipy.sparse.linalg import ArpackNoConvergence
    from scipy.sparse.linalg import eigs as _eigs

    eigs: Any = _eigs  # (scipy's stubs type tol as int)

    t0 = time.perf_counter()
    N = op.N
    if k >= N - 1:
        raise ValueError(f"ARPACK needs k < N - 1 (k = {k}, N = {N}); use the dense method for such a small operator")
    ncv = min(N - 1, ncv or max(4 * k, 40))
    if ncv <= k + 1:
        ncv = min(N - 1, k + 2)
    lin = op.as_linear_operator(check)
    before = op.n_matvec
    v0 = np.random.default_rng(seed).random(N)
    note = ""
    try:
        w, v = eigs(lin, k=k, which=which, ncv=ncv, tol=tol, maxiter=maxiter, v0=v0)
    except ArpackNoConvergence as e:
        w, v = e.eigenvalues, e.eigenvectors
        note = f"ARPACK did not converge: {len(w)} of {k} values"
    v = v / np.linalg.norm(v, axis=0, keepdims=True)
    res = _residuals(op, w, v)
    idx = select(w, k, which)
    w, res = w[idx], res[idx]
    conv = _converged(w, res, max(tol, 1e-12) * 10)
    return EigResult(
        w.astype(np.complex128),
        res,
        conv,
        "arpack",
        which,
        N,
        n_matvec=op.n_matvec - before,
        seconds=time.perf_counter() - t0,
        info=dict(ncv=ncv, tol=tol, note=note, incomplete=bool(note)),
    )


def _residuals(op: Operator, w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``||A v_i - w_i v_i||`` for the columns of ``v`` (complex), batched."""
    o = op.to(torch.float64)
    V = torch.from_numpy(np.ascontiguousarray(v.T)).to(o.device)
    AV = o.matvec(V.real.contiguous()) + 1j * o.matvec(V.imag.contiguous())
    R = AV - torch.from_numpy(w).to(o.device)[:, None] * V
    return torch.linalg.vector_norm(R, dim=1).cpu().numpy()


def dense_eigs(op: Operator, k: int = 10, which: str = "LM", max_n: int = 4096) -> EigResult:
    """All eigenvalues of the unrolled float64 matrix (LAPACK ``eigvals``: no eigenvectors),
    top ``k`` returned. Residuals are NaN (no vectors are computed; LAPACK's eigenvalues are
    backward stable), every value counts as converged; ``info['all_values']`` holds all ``N``.
    Raises ``ValueError`` above ``max_n`` (dense eig costs O(N^3) time, O(N^2) memory)."""
    if op.N > max_n:
        raise ValueError(f"the operator has N = {op.N} > {max_n} units; dense eig is O(N^3) — use arnoldi or arpack (or raise the size limit)")
    t0 = time.perf_counter()
    A = op.to(torch.float64).to_dense()
    w = torch.linalg.eigvals(A).cpu().numpy()
    idx = select(w, k, which)
    return EigResult(
        w[idx].astype(np.complex128),
        np.full(len(idx), np.nan),
        np.ones(len(idx), bool),
        "dense",
        which,
        op.N,
        n_matvec=op.N,
        seconds=time.perf_counter() - t0,
        info=dict(all_values=w),
    )


@dataclass
class PowerResult:
    """Dominant eigenpair by power iteration: ``value`` (Rayleigh quotient), unit ``vector``
    ``(N,)``, ``residual`` ``||A v - value v||``, ``converged``, ``iterations``, ``note``."""

    value: float
    vector: torch.Tensor
    residual: float
    converged: bool
    iterations: int
    note: str = ""


def power_iteration(
    op: Operator,
    iters: int = 10000,
    trials: int = 10,
    tol: float = 1e-8,
    generator: Optional[torch.Generator] = None,
    check_every: int = 50,
    dtype: torch.dtype = torch.float64,
    check: Optional[Callable[[], None]] = None,
) -> PowerResult:
    """``trials`` parallel power iterations ``v <- A v / ||A v||`` from uniform[0,1) starts
    (upstream), stopped when every trial's Rayleigh residual is ``<= tol * max(1, |lambda|)``.
    Trials are sign-aligned before averaging (a negative dominant eigenvalue flips signs), the
    value is the Rayleigh quotient. A complex dominant pair never converges: then
    ``converged=False`` and ``note`` points to Arnoldi."""
    o = op.to(dtype) if op.dtype != dtype else op
    V = torch.rand(trials, o.N, generator=generator, dtype=torch.float64, device=generator.device if generator is not None else o.device).to(
        device=o.device, dtype=dtype
    )
    V = V / torch.linalg.vector_norm(V, dim=1, keepdim=True)
    it = 0
    for it in range(1, iters + 1):
        if check is not None:
            check()
        AV = o.matvec(V)
        V = AV / torch.linalg.vector_norm(AV, dim=1, keepdim=True)
        if it % check_every == 0 or it == iters:
            AV = o.matvec(V)
            lam = (V * AV).sum(1)
            r = torch.linalg.vector_norm(AV - lam[:, None] * V, dim=1)
            if bool((r <= tol * lam.abs().clamp_min(1.0)).all()):
                break
    s = torch.sign(V @ V[0])
    s[s == 0] = 1
    v = (V * s[:, None]).mean(0)
    v = v / torch.linalg.vector_norm(v)
    Av = o.matvec(v)
    lam = float(v @ Av)
    res = float(torch.linalg.vector_norm(Av - lam * v))
    ok = res <= tol * max(1.0, abs(lam))
    note = "" if ok else ("no convergence: the dominant eigenvalue is probably a complex pair (or the spectral gap is small); use --method arnoldi or arpack")
    return PowerResult(lam, v, res, ok, it, note)


def leading_eigs(
    op: Operator,
    method: str = "arnoldi",
    k: int = 20,
    which: Sequence[str] = ("LM", "LR"),
    krylov_m: Optional[int] = None,
    qr_steps: int = 0,
    tol: float = 1e-8,
    max_dense_n: int = 4096,
    ncv: Optional[int] = None,
    power_iters: int = 10000,
    generator: Optional[torch.Generator] = None,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    check: Optional[Callable[[], None]] = None,
    max_restarts: int = 1000,
    polish: bool = False,
) -> dict[str, EigResult]:
    """Top-``k`` eigenvalues of ``op`` for each ordering in ``which`` (``LM``/``LR``) with one
    method. ``arnoldi``: restarted Krylov-Schur (:func:`krylov_schur`, basis ``krylov_m``, until
    every wanted value has relative residual ``<= tol``; ``max_restarts=0``: one unrestarted
    ``krylov_m``-step run as upstream, default m = 300; ``polish``: a float32 Krylov-Schur run
    finished in float64, see :func:`krylov_schur`). Arnoldi and dense compute once and select both orderings from the same values;
    ARPACK runs once per ordering; power iteration gives the dominant value only (LM).
    ``check`` is called inside every iterative loop (a run's interrupt check; it may raise)."""
    out: dict[str, EigResult] = {}
    k = max(1, min(k, op.N))
    if method == "arnoldi" and max_restarts > 0:
        out = krylov_schur(
            op,
            k=k,
            which=which,
            m=krylov_m,
            tol=tol,
            dtype=torch.float32 if polish else dtype,
            polish=polish,
            generator=generator,
            max_restarts=max_restarts,
            check=check,
        )
    elif method == "arnoldi":
        kr = krylov(op, m=krylov_m or 300, dtype=dtype, generator=generator, check=check)
        for i, w in enumerate(which):  # one Krylov run, both orderings (its time counted once)
            t0 = time.perf_counter()
            vals, res, conv = ritz(kr, k, w, tol, qr_steps)
            out[w] = EigResult(
                vals,
                res,
                conv,
                "arnoldi",
                w,
                op.N,
                kr.m,
                (kr.seconds if i == 0 else 0.0) + time.perf_counter() - t0,
                dict(krylov=kr.m, breakdown=kr.breakdown, reorth_passes=kr.reorth, qr_steps=int(qr_steps)),
            )
    elif method == "arpack":
        for w in which:
            out[w] = eigs_arpack(op, k=min(k, op.N - 2), which=w, ncv=ncv, tol=tol, seed=seed, check=check)
    elif method == "dense":
        full = dense_eigs(op, k=op.N, which="LM", max_n=max_dense_n)
        for w in which:
            idx = select(full.values, k, w)
            out[w] = EigResult(full.values[idx], full.residuals[idx], full.converged[idx], "dense", w, op.N, full.n_matvec, full.seconds)
    elif method == "power":
        if list(which) != ["LM"]:
            raise ValueError("power iteration finds the largest-modulus eigenvalue only; use --which LM (or --method arnoldi for LR)")
        t0 = time.perf_counter()
        p = power_iteration(op, iters=power_iters, tol=tol, generator=generator, dtype=dtype, check=check)
        out["LM"] = EigResult(
            np.array([p.value], np.complex128),
            np.array([p.residual]),
            np.array([p.converged]),
            "power",
            "LM",
            op.N,
            p.iterations * 10,
            time.perf_counter() - t0,
            dict(iterations=p.iterations, note=p.note),
        )
    else:
        raise ValueError(f"method must be one of {METHODS}")
    return out


# ---------------------------------------------------------------------- operators of a model
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
