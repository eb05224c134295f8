"""Leading eigenvalues of a convolution seen as an ``N x N`` matrix (N = C*H*W), matrix-free.

A stride-1, same-padded ``C -> C`` convolution acts on ``x`` flattened C-order
(``i = c*H*W + y*W + x``); :class:`ConvOperator` applies it (optionally gated,
``x -> D * conv(x)``, the ReLU Jacobian at a state) through ``conv2d`` on a batch of vectors.

Methods (all return :class:`EigResult`):

* :func:`arnoldi` — one unrestarted Krylov run, classical Gram-Schmidt with one
  re-orthogonalisation pass done as matrix products (CGS2), Hessenberg in float64, Ritz values
  with residuals ``|h_{m+1,m}| |e_m^T y|`` and converged flags; stops early on breakdown.
* :func:`eigs_arpack` — scipy's ARPACK (``eigs`` on a ``LinearOperator``), certified.
* :func:`dense_eigs` — unrolls the matrix and calls LAPACK; refuses above ``max_n``.
* :func:`power_iteration` — batched trials, sign-aligned, Rayleigh quotient, converged flag.
* :func:`circular_spectrum` / :func:`symbol_hermitian_bound` — FFT block symbols: the exact
  spectrum for circular padding, and a rigorous upper bound on ``max Re`` for zero padding.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rnntk.analysis.eigs import (  # noqa: F401  (the generic solvers, re-exported for this slice's users)
    WHICH,
    EigResult,
    Krylov,
    PowerResult,
    arnoldi,
    dense_eigs,
    eigs_arpack,
    krylov,
    krylov_schur,
    power_iteration,
    ritz,
    select,
)
from rnntk.analysis.eigs import leading_eigs as _leading_eigs


class ConvOperator:
    """``x -> gate * conv2d(x, weight)`` on flattened ``(C, H, W)`` vectors.

    weight: ``(C, C, k, k)``, k odd (padding ``(k-1)/2``, stride 1). gate: ``(C, H, W)`` or
    None. padding: ``zeros`` (CordsNet) or ``circular``. The dtype and device are the weight's.
    """

    def __init__(self, weight: torch.Tensor, H: int, W: int, gate: Optional[torch.Tensor] = None, padding: str = "zeros") -> None:
        if weight.ndim != 4 or weight.shape[0] != weight.shape[1] or weight.shape[2] != weight.shape[3] or weight.shape[2] % 2 == 0:
            raise ValueError(f"need a square C->C kernel of odd size, got weight shape {tuple(weight.shape)}")
        if padding not in ("zeros", "circular"):
            raise ValueError("padding must be 'zeros' or 'circular'")
        self.weight = weight.detach()
        self.C, self.k = int(weight.shape[0]), int(weight.shape[2])
        self.H, self.W = int(H), int(W)
        self.N = self.C * self.H * self.W
        self.padding = padding
        self.gate = None if gate is None else gate.detach().to(weight.dtype).reshape(self.C, self.H, self.W)
        self.n_matvec = 0

    @property
    def dtype(self) -> torch.dtype:
        return self.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.weight.device

    def to(self, dtype: torch.dtype) -> "ConvOperator":
        """The same operator with weights in ``dtype``."""
        return ConvOperator(self.weight.to(dtype), self.H, self.W, None if self.gate is None else self.gate.to(dtype), self.padding)

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        p = (self.k - 1) // 2
        if self.padding == "circular":
            x, p = F.pad(x, (p, p, p, p), mode="circular"), 0
        if x.device.type == "cpu" and x.shape[0] == 1 and x.dtype == torch.float32:
            # one float32 vector: ATen's native conv is ~1.5-2x faster than oneDNN's on CPU
            # (oneDNN re-lays out the weights at every call; measured at the R8 layer sizes)
            old = torch.backends.mkldnn.set_flags(False, None, None, None)  # pyright: ignore[reportArgumentType]  (None: leave unchanged)
            try:
                return F.conv2d(x, self.weight, padding=p)
            finally:
                torch.backends.mkldnn.set_flags(*old)
        return F.conv2d(x, self.weight, padding=p)

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` for ``x`` of shape ``(..., N)`` (a batch of vectors is one conv call)."""
        lead = x.shape[:-1]
        y = self._conv(x.to(self.dtype).reshape(-1, self.C, self.H, self.W))
        if self.gate is not None:
            y = y * self.gate
        self.n_matvec += int(math.prod(lead)) if lead else 1
        return y.reshape(*lead, self.N)

    def rmatvec(self, x: torch.Tensor) -> torch.Tensor:
        """``A^T x``: the transposed conv of ``gate * x`` (zero padding: ``conv_transpose2d``;
        circular: a circular conv with the kernel flipped in space and its channels swapped)."""
        lead = x.shape[:-1]
        y = x.to(self.dtype).reshape(-1, self.C, self.H, self.W)
        if self.gate is not None:
            y = y * self.gate
        p = (self.k - 1) // 2
        if self.padding == "circular":
            y = F.conv2d(F.pad(y, (p, p, p, p), mode="circular"), self.weight.transpose(0, 1).flip(-2, -1))
        else:
            y = F.conv_transpose2d(y, self.weight, padding=p)
        return y.reshape(*lead, self.N)

    def to_dense(self, chunk: int = 2048) -> torch.Tensor:
        """The ``(N, N)`` matrix (column i = A e_i), built from identity batches."""
        A = torch.empty(self.N, self.N, dtype=self.dtype, device=self.device)
        for s in range(0, self.N, chunk):  # a loop over memory chunks, each one batched conv
            e = torch.zeros(min(chunk, self.N - s), self.N, dtype=self.dtype, device=self.device)
            e[torch.arange(e.shape[0]), torch.arange(s, s + e.shape[0])] = 1
            A[:, s : s + e.shape[0]] = self.matvec(e).T
        return A

    def to_sparse(self) -> Any:
        """The matrix as a ``scipy.sparse.csr_matrix`` built directly from the kernel
        (about ``k*k*C`` non-zeros per row). Zero padding drops the taps that fall outside the
        image; circular padding wraps them (taps that land on the same pixel are summed)."""
        import scipy.sparse as sp

        C, H, W, k = self.C, self.H, self.W, self.k
        p = (k - 1) // 2
        co, ci, dy, dx, y, x = np.meshgrid(np.arange(C), np.arange(C), np.arange(k), np.arange(k), np.arange(H), np.arange(W), indexing="ij")
        ys, xs = y + dy - p, x + dx - p
        if self.padding == "circular":
            ys, xs = ys % H, xs % W
        ok = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)
        w = self.weight.detach().cpu().double().numpy()[co, ci, dy, dx]
        if self.gate is not None:
            w = w * self.gate.detach().cpu().double().numpy()[co, y, x]
        rows = (co * H + y) * W + x
        cols = (ci * H + ys) * W + xs
        return sp.csr_matrix((w[ok], (rows[ok], cols[ok])), shape=(self.N, self.N))

    def as_linear_operator(self, check: Optional[Callable[[], None]] = None) -> Any:
        """A float64 ``scipy.sparse.linalg.LinearOperator`` (matvec and matmat via conv2d);
        ``check`` is called before every product (it may raise)."""
        from scipy.sparse.linalg import LinearOperator

        op = self.to(torch.float64)

        def mm(X: np.ndarray) -> np.ndarray:
            if check is not None:
                check()
            X = np.asarray(X)
            vec = X.ndim == 1
            Xt = torch.from_numpy(np.ascontiguousarray(X.T if not vec else X[None]))
            if Xt.is_complex():
                Y = op.matvec(Xt.real.to(op.device)) + 1j * op.matvec(Xt.imag.to(op.device))
            else:
                Y = op.matvec(Xt.to(op.device))
            self.n_matvec += Xt.shape[0]
            Y = Y.cpu().numpy()
            return Y[0] if vec else Y.T

        return LinearOperator((self.N, self.N), matvec=mm, matmat=mm, dtype=np.float64)  # pyright: ignore[reportCallIssue]  (scipy's stubs)


def symbols(weight: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Block symbols ``S(w) = sum_d W[:, :, dy, dx] exp(i (w_y (dy-p) + w_x (dx-p)))`` on the
    ``H x W`` DFT frequency grid: ``(H, W, C, C)`` complex128."""
    w = weight.detach().double().cpu()
    k = w.shape[-1]
    p = (k - 1) // 2
    oy = 2 * math.pi * torch.arange(H, dtype=torch.float64) / H
    ox = 2 * math.pi * torch.arange(W, dtype=torch.float64) / W
    d = torch.arange(k, dtype=torch.float64) - p
    ey = torch.exp(1j * oy[:, None] * d[None, :])  # (H, k)
    ex = torch.exp(1j * ox[:, None] * d[None, :])  # (W, k)
    return torch.einsum("ya,xb,ijab->yxij", ey, ex, w.to(torch.complex128))


def circular_spectrum(weight: torch.Tensor, H: int, W: int) -> np.ndarray:
    """All ``C*H*W`` eigenvalues of the **circularly** padded conv, from its block symbols
    (exact for circular padding; a preview only for CordsNet's zero padding)."""
    return torch.linalg.eigvals(symbols(weight, H, W)).reshape(-1).numpy()


def symbol_hermitian_bound(weight: torch.Tensor, grid: int = 64) -> float:
    """``sup_w lambda_max((S(w) + S(w)^H)/2)`` on a ``grid x grid`` frequency grid: an upper
    bound on ``max Re lambda`` of the zero-padded conv at any image size (up to grid error)."""
    S = symbols(weight, grid, grid)
    return float(torch.linalg.eigvalsh((S + S.conj().transpose(-1, -2)) / 2).max())


def symmetric_part_max(op: ConvOperator) -> float:
    """``lambda_max((A + A^T)/2)`` via ARPACK ``eigsh`` with the adjoint ``conv_transpose2d``:
    a certified upper bound on ``max Re lambda(A)`` (zero padding)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    o = op.to(torch.float64)

    def mv(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(x).reshape(-1))).to(o.device)
        return (0.5 * (o.matvec(t) + o.rmatvec(t))).cpu().numpy()

    lin = LinearOperator((o.N, o.N), matvec=mv, dtype=np.float64)  # pyright: ignore[reportCallIssue]  (scipy's stubs)
    return float(eigsh(lin, k=1, which="LA", tol=1e-10, return_eigenvectors=False)[0])  # pyright: ignore[reportArgumentType]  (tol is a float)


def stability(values: np.ndarray, alpha: float = 0.2) -> dict[str, Any]:
    """Verdicts from a **complete** spectrum ``values`` (e.g. all of a dense eig) of an area's
    recurrent operator W: continuous ``tau dr/dt = -r + W r`` stable iff ``max Re < 1``; Euler
    map ``(1-alpha) I + alpha W`` stable iff every ``|lambda - (1 - 1/alpha)| < 1/alpha``. For
    leading values only use :func:`certified_stability`."""
    vals: Any = np.asarray(values)  # real or complex
    c = 1 - 1 / alpha
    return dict(
        spectral_radius=float(np.abs(vals).max()),
        max_real=float(vals.real.max()),
        continuous_stable=bool(vals.real.max() < 1),
        euler_stable=bool((np.abs(vals - c) < 1 / alpha).all()),
    )


def certified_stability(results: dict[str, EigResult], alpha: float = 0.2) -> dict[str, Any]:
    """Verdicts that the computed sets certify, never a guess. ``results``: ``{which: EigResult}``.

    * spectral radius: the first ``LM`` value when it converged (:attr:`EigResult.certifies_leading`);
    * max Re lambda: the first ``LR`` value when it converged;
    * continuous (``max Re < 1``): from max Re; else stable if the radius is ``< 1``
      (``Re <= |lambda|``); unstable if any converged value has ``Re >= 1``;
    * Euler (every ``|lambda - c| < 1/alpha``, ``c = 1 - 1/alpha <= 0``): unstable if a converged
      value lies outside the disc; stable if ``rho^2 - 2 c min(mu, rho) + c^2 < 1/alpha^2`` with
      radius ``rho`` and max Re ``mu`` (``mu = rho`` when only the radius is known): every
      eigenvalue with ``|lambda| <= rho`` and ``Re <= mu`` then lies inside the disc.

    Anything not decided is ``"unknown"`` and ``reasons[name]`` says why. Returns
    ``spectral_radius``/``max_real`` (float or None), ``continuous_stable``/``euler_stable``
    (True, False or ``"unknown"``) and ``reasons``."""
    c, R = 1 - 1 / alpha, 1 / alpha
    reasons: dict[str, str] = {}

    def leading(w: str, what: str) -> Optional[float]:
        r = results.get(w)
        if r is None:
            reasons[what] = f"no {w} set was computed (use --which {w} or both)"
            return None
        if not r.certifies_leading:
            why = r.info.get("note") or f"the leading {w} value did not converge (residual {float(r.residuals[0]) if r.residuals.size else float('nan'):.2g})"
            reasons[what] = f"{r.method}: {why}"
            return None
        return float(abs(r.values[0])) if w == "LM" else float(r.values[0].real)

    rho, mu = leading("LM", "spectral_radius"), leading("LR", "max_real")
    conv: Any = np.concatenate(
        [np.zeros(0, np.complex128)] + [r.values[np.asarray(r.converged, bool)] for r in results.values() if not r.info.get("incomplete")]
    )
    conv = conv[np.isfinite(conv)]
    if mu is not None:
        cont: Any = mu < 1
    elif rho is not None and rho < 1:
        cont = True
    elif conv.size and conv.real.max() >= 1:
        cont = False
    else:
        cont = "unknown"
        reasons["continuous_stable"] = (
            "max Re lambda is not certified"
            + (f" ({reasons['max_real']})" if "max_real" in reasons else "")
            + (f" and the radius {rho:.6g} >= 1 does not bound it below 1" if rho is not None else "")
        )
    if conv.size and (np.abs(conv - c) >= R).any():
        eul: Any = False
    elif rho is not None and rho * rho - 2 * c * min(rho, mu if mu is not None else rho) + c * c < R * R:
        eul = True
    else:
        eul = "unknown"
        reasons["euler_stable"] = (
            "the spectral radius is not certified" + (f" ({reasons['spectral_radius']})" if "spectral_radius" in reasons else "")
            if rho is None
            else f"radius {rho:.6g} and max Re {'unknown' if mu is None else f'{mu:.6g}'} do not confine the spectrum "
            f"to the Euler disc |lambda - {c:g}| < {R:g}, and no converged value lies outside it"
        )
    return dict(spectral_radius=rho, max_real=mu, continuous_stable=cont, euler_stable=eul, reasons=reasons)


# ---------------------------------------------------------------------- CordsNet layers
METHODS = ("arnoldi", "arpack", "dense", "power", "fft-circular")
OPERATORS = ("recurrent", "jacobian-spont", "jacobian-image")


def cordsnet_operators(
    model: Any,
    operator: str = "recurrent",
    layers: Optional[list[int]] = None,
    image: Optional[torch.Tensor] = None,
    alpha: float = 0.2,
    spont_steps: int = 100,
    stim_steps: int = 100,
    dtype: torch.dtype = torch.float64,
    check: Optional[Callable[[], None]] = None,
) -> dict[int, ConvOperator]:
    """Per-area operators of a :class:`~rnntk.cordsnet.model.CordsNet`: ``recurrent`` = the
    effective recurrent conv ``W_j``; ``jacobian-spont`` / ``jacobian-image`` = ``D_j W_j`` with
    ``D_j = 1[z_j > 0]`` at the end of the spontaneous phase / of the stimulus phase for
    ``image`` ``(1, C, S, S)``. With no feedback the network Jacobian is block lower-triangular,
    so per-area spectra are exact: ``J_j = (-I + D_j W_j)/tau`` is stable iff
    ``max Re lambda(D_j W_j) < 1``. ``check`` is called before every simulated step."""
    from torch.nn.utils import parametrize

    if operator not in OPERATORS:
        raise ValueError(f"operator must be one of {OPERATORS}")
    layers = list(range(model.depth)) if layers is None else layers
    gates: dict[int, Optional[torch.Tensor]] = {j: None for j in layers}
    with torch.no_grad(), parametrize.cached():
        if operator != "recurrent":
            rs, _ = model.spontaneous(spont_steps, alpha, check=check)
            drive: tuple = (None, None)
            if operator == "jacobian-image":
                if image is None:
                    raise ValueError("jacobian-image needs an image")
                drive = model.drives(model.stem(image))
                rs, _, _ = model.run_phase(rs, drive, stim_steps, alpha, check=check)
            zs = model.preactivations(rs, drive)
            gates = {j: (zs[j][0] > 0) for j in layers}
        ops = {}
        for j in layers:
            _, H, W = model.shapes[j]
            ops[j] = ConvOperator(model.recurrent_weight(j).detach().to(dtype), H, W, gate=gates[j])
    return ops


def leading_eigs(op: ConvOperator, method: str = "arnoldi", k: int = 20, which: Sequence[str] = ("LM", "LR"), **options: Any) -> dict[str, EigResult]:
    """:func:`rnntk.analysis.eigs.leading_eigs` (``arnoldi``, ``arpack``, ``dense``, ``power``;
    ``options`` as there: krylov_m, tol, polish, ...) on a conv operator, plus ``fft-circular``:
    the circular-padding spectrum (a preview, residuals NaN)."""
    if method != "fft-circular":
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}")
        return _leading_eigs(op, method, k, which, **options)
    if op.gate is not None:
        raise ValueError("fft-circular applies to the recurrent conv only (no Jacobian gate)")
    k = max(1, min(k, op.N))
    out: dict[str, EigResult] = {}
    t0 = time.perf_counter()
    vals = circular_spectrum(op.weight, op.H, op.W)
    for w in which:
        idx = select(vals, k, w)
        out[w] = EigResult(
            vals[idx],
            np.full(len(idx), np.nan),
            np.zeros(len(idx), bool),
            "fft-circular",
            w,
            op.N,
            0,
            time.perf_counter() - t0,
            dict(note="spectrum of the circularly padded conv: a preview, not CordsNet's zero-padded operator"),
        )
    return out
