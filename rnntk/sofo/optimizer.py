"""SOFO: second-order forward-mode optimisation (Yu et al., NeurIPS 2024).

Each iteration draws K random tangent directions V (K × P), pushes them through the model in
one batched forward pass (forward-mode AD, no graph kept), and accumulates

    ĝ = V g              (K,)    the gradient sketch
    Ĝ = V G Vᵀ           (K, K)  the sketch of the generalised Gauss–Newton matrix G = Σ Jᵀ H J

online over time. It then takes a damped Gauss–Newton step inside span(V):

    α = (Ĝ + λ I)⁻¹ ĝ,   λ = γ · λ_max(Ĝ)  (relative damping),   Δ = Vᵀ α,   θ ← θ − η Δ.

rnntk computes the *exact* Ĝ of the loss it reports, so ``lr = 1`` is a full Gauss–Newton step
in the subspace (upstream's scalings differ between its versions; see the method note).

Shapes: parameters are a dict ``name → tensor``; tangents a dict ``name → (K, *shape)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, cast

import torch
from torch import nn
from torch.func import jvp, vmap

from rnntk.engine.compat import tree_map
from rnntk.engine.device import generator_device

Params = dict[str, torch.Tensor]
TANGENT_KINDS = ("orthonormal", "normalized", "rank1", "block")
DAMPING_MODES = ("relative", "relative_min", "absolute")


# --------------------------------------------------------------------------- tangents
def n_params(params: Mapping[str, torch.Tensor]) -> int:
    """Total number of scalars P in ``params``."""
    return sum(p.numel() for p in params.values())


def flatten_tangents(V: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """dict of (K, *shape) blocks → (K, P)."""
    return torch.cat([v.reshape(v.shape[0], -1) for v in V.values()], dim=1)


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype tangents are orthonormalised in: the working dtype, float32 for half types."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _draw(shape: tuple[int, ...], generator: Optional[torch.Generator], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """N(0, 1) draws made on the generator's device (the params' device without one), moved to ``device``."""
    return torch.randn(shape, generator=generator, dtype=dtype, device=generator_device(generator, device)).to(device)


def _unit_rows(blocks: list[torch.Tensor]) -> list[torch.Tensor]:
    """K tangents stored as blocks (K, n_i), each tangent scaled to unit norm over all blocks."""
    norm = torch.sqrt(cast(torch.Tensor, sum(b.pow(2).sum(1) for b in blocks)))[:, None]
    return [b / norm for b in blocks]


def _householder_rows(flat: torch.Tensor) -> torch.Tensor:
    """(K, P) → (K, P) with orthonormal rows spanning the same space (Householder QR of the
    transpose, signs fixed so that the result is Haar-distributed for Gaussian input)."""
    Q, R = torch.linalg.qr(flat.T)
    d = torch.diagonal(R)
    return (Q * torch.where(d < 0, -1.0, 1.0).to(Q.dtype)[None, :]).T


def _gram_factor(blocks: list[torch.Tensor]) -> torch.Tensor:
    """Cholesky factor L (K×K, float64, lower) of the Gram matrix Σ_i V_i V_iᵀ of K tangents
    stored as blocks (K, n_i); one GEMM per block in the working dtype. Raises
    ``torch.linalg.LinAlgError`` when the Gram matrix is not positive definite."""
    gram = cast(torch.Tensor, sum(torch.mm(b, b.T) for b in blocks))
    return torch.linalg.cholesky(gram.to(torch.float64))


def _orthonormal_blocks(blocks: list[torch.Tensor], L: torch.Tensor) -> list[torch.Tensor]:
    """Cholesky QR, second half: V_i ← L⁻¹ V_i (one GEMM per block, working dtype).

    For a Gaussian (K, P) with K ≤ P/8 the Gram matrix is well conditioned (condition number
    ≈ ((1+√(K/P))/(1−√(K/P)))² ≤ 4.4), so one pass is orthonormal to the working precision;
    the result equals the Q factor of a QR with positive diagonal (Haar-distributed)."""
    K = blocks[0].shape[0]
    Linv = torch.linalg.solve_triangular(L, torch.eye(K, dtype=torch.float64, device=L.device), upper=False).to(blocks[0].dtype)
    return [torch.mm(Linv, b) for b in blocks]


def sample_tangents(
    params: Mapping[str, torch.Tensor],
    K: int,
    *,
    kind: str = "orthonormal",
    generator: Optional[torch.Generator] = None,
    dtype: Optional[torch.dtype] = None,
) -> Params:
    """Draw K tangent directions over all parameter blocks jointly.

    kind:
      ``orthonormal`` (default): Gaussian tangents orthonormalised jointly across blocks, so
        V Vᵀ = I_K (needs K ≤ P). For K ≤ P/8, Cholesky QR block by block in the working dtype
        (two GEMMs per block, float64 only for the K×K Cholesky factor); otherwise (small P, e.g.
        K = P in the oracles) a Householder QR of the (K, P) matrix in the working dtype;
      ``normalized``: i.i.d. N(0, 1) rows scaled to unit norm (upstream Python API);
      ``rank1``: each matrix block of each tangent an outer product of Gaussian vectors, then
        every tangent scaled to unit norm;
      ``block``: localised tangents, each non-zero in one block only, K split across blocks in
        proportion to their size (at least one each), orthonormal within a block.
    Everything is drawn and computed on the parameters' device in ``dtype`` (default: the
    parameters' dtype); random numbers come from ``generator`` (on its own device; the result
    is moved to the parameters' device). Returns ``name → (K, *shape)`` (contiguous blocks).
    """
    return _sample(params, K, kind, generator, dtype, defer=False)[0]


def _sample(
    params: Mapping[str, torch.Tensor], K: int, kind: str, generator: Optional[torch.Generator], dtype: Optional[torch.dtype], *, defer: bool
) -> tuple[Params, Optional[torch.Tensor]]:
    """:func:`sample_tangents`; with ``defer`` and the Cholesky QR path, the raw Gaussian
    tangents G and the factor L instead (the orthonormal tangents are L⁻¹G; :class:`SOFO`
    applies L⁻¹ to the K×K sketch instead of to the K×P tangents, which saves one GEMM)."""
    if kind not in TANGENT_KINDS:
        raise ValueError(f"tangent kind must be one of {TANGENT_KINDS}, got {kind!r}")
    P = n_params(params)
    if K < 1 or K > P:
        raise ValueError(f"need 1 <= K <= P = {P}, got K = {K}")
    first = next(iter(params.values()))
    out_dtype = dtype or first.dtype
    wd = _work_dtype(out_dtype)
    dev = first.device
    sizes = [p.numel() for p in params.values()]
    if kind == "orthonormal":
        blocks = [_draw((K, n), generator, wd, dev) for n in sizes]
        L = None
        if 8 * K <= P:
            try:
                L = _gram_factor(blocks)
            except torch.linalg.LinAlgError:  # pyright: ignore[reportPrivateImportUsage]  (public, documented)
                L = None
        if L is not None and defer:
            return {name: b.reshape(K, *p.shape).to(out_dtype) for (name, p), b in zip(params.items(), blocks)}, L
        if L is not None:
            blocks = _orthonormal_blocks(blocks, L)
        else:
            flat = _householder_rows(torch.cat(blocks, dim=1))
            blocks = list(flat.split(sizes, dim=1))
    elif kind == "normalized":
        blocks = [_draw((K, n), generator, wd, dev) for n in sizes]
        blocks = _unit_rows(blocks)
    elif kind == "rank1":
        blocks = []
        for p in params.values():
            if p.dim() >= 2:
                a = _draw((K, p.shape[0]), generator, wd, dev)
                b = _draw((K, int(p[0].numel())), generator, wd, dev)
                blocks.append(torch.einsum("ki,kj->kij", a, b).reshape(K, -1))
            else:
                blocks.append(_draw((K, p.numel()), generator, wd, dev))
        blocks = _unit_rows(blocks)
    else:  # block
        budget = _block_budget(sizes, K)
        blocks, row = [], 0
        for n, k in zip(sizes, budget):
            b = torch.zeros(K, n, dtype=wd, device=dev)
            if k:
                b[row : row + k] = _householder_rows(_draw((k, n), generator, wd, dev))
            blocks.append(b)
            row += k
    return {name: b.reshape(K, *p.shape).to(out_dtype).contiguous() for (name, p), b in zip(params.items(), blocks)}, None


def _block_budget(sizes: Sequence[int], K: int) -> list[int]:
    """Split K tangents over blocks ∝ size, at least one per block when K allows, ≤ size."""
    nb = len(sizes)
    P = sum(sizes)
    base = [min(s, 1) for s in sizes] if K >= nb else [0] * nb
    rest = K - sum(base)
    share = [rest * s / P for s in sizes]
    budget = [b + int(math.floor(x)) for b, x in zip(base, share)]
    order = sorted(range(nb), key=lambda i: share[i] - math.floor(share[i]), reverse=True)
    i = 0
    while sum(budget) < K:
        j = order[i % nb]
        if budget[j] < sizes[j]:
            budget[j] += 1
        i += 1
    return [min(b, s) for b, s in zip(budget, sizes)]


# --------------------------------------------------------------------------- losses
class MSE:
    """Weighted squared error ``ℓ = (c/B) Σ_b w_b ‖y_b − y*_b‖²`` (÷D with ``mean_dims``).

    y, target: (B, D); weight: (B,) or (B, D) or None (= 1). Gradient (2c/B) w (y − y*);
    output Hessian (2c/B) w I, so Ĝ_kl = (2c/B) Σ_b w_b ⟨dY_kb, dY_lb⟩.
    """

    def __init__(self, scale: float = 1.0, mean_dims: bool = False) -> None:
        self.scale, self.mean_dims = float(scale), bool(mean_dims)

    def _c(self, y: torch.Tensor) -> float:
        return self.scale / y.shape[0] / (y.shape[-1] if self.mean_dims else 1)

    @staticmethod
    def _w(weight: Optional[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        if weight is None:
            return torch.ones_like(y)
        return weight[..., None].expand_as(y) if weight.dim() == y.dim() - 1 else weight

    def value(self, y: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self._c(y) * (self._w(weight, y) * (y - target) ** 2).sum()

    def grad(self, y: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        return 2 * self._c(y) * self._w(weight, y) * (y - target)

    def ggn(self, dY: torch.Tensor, y: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """dY: (K, B, D) → Ĝ contribution (K, K), float64."""
        w = self._w(weight, y).to(torch.float64)
        d = dY.to(torch.float64)
        return 2 * self._c(y) * torch.einsum("kbd,bd,lbd->kl", d, w, d)


class CrossEntropy:
    """Softmax cross-entropy ``ℓ = −(c/B) Σ_b w_b log softmax(z_b)[label_b]``.

    y: logits (B, C); target: labels (B,) int64; weight: (B,) or None. Output Hessian
    (c/B) w (diag p − p pᵀ), applied without forming C×C matrices.
    """

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = float(scale)

    def _w(self, weight: Optional[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        w = torch.ones(y.shape[0], dtype=y.dtype, device=y.device) if weight is None else weight
        return w * self.scale / y.shape[0]

    def value(self, y: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        logp = torch.log_softmax(y, dim=-1)
        return -(self._w(weight, y) * logp.gather(-1, target[:, None].long())[:, 0]).sum()

    def grad(self, y: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        p = torch.softmax(y, dim=-1)
        onehot = torch.nn.functional.one_hot(target.long(), y.shape[-1]).to(y.dtype)
        return self._w(weight, y)[:, None] * (p - onehot)

    def ggn(self, dY: torch.Tensor, y: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        p = torch.softmax(y.to(torch.float64), dim=-1)
        w = self._w(weight, y).to(torch.float64)
        d = dY.to(torch.float64)
        pd = torch.einsum("bc,kbc->kb", p, d)
        return torch.einsum("b,kbc,bc,lbc->kl", w, d, p, d) - torch.einsum("b,kb,lb->kl", w, pd, pd)


class FunctionLoss:
    """Any differentiable loss of the outputs, ``fn(y, target) -> scalar`` (or
    ``fn(y, target, weight)`` when a weight is given), summed over time steps by the sketches.

    y: (B, D) outputs of one step; target: whatever ``fn`` takes. The gradient and the
    output-space Hessian H = ∇²_y ℓ come from ``torch.func`` (``grad`` and batched
    Hessian-vector products, reverse over reverse) in float64, so nothing larger than the outputs is differentiated:

    - ``per_trial=True`` (default; ℓ a sum or mean of per-trial terms, like every torch loss with
      ``reduction='mean'/'sum'``): D Hessian-vector products give every trial's D×D block H_b at
      once; with ``psd=True`` (default) negative eigenvalues of each H_b are clipped to 0, so Ĝ is
      a Gauss–Newton matrix even for a non-convex ℓ; Ĝ_kl = Σ_b dY_kbᵀ H_b dY_lb. The first call
      checks that ℓ really does not couple trials (one extra Hessian-vector product) and raises
      ``ValueError`` otherwise.
    - ``per_trial=False``: any ℓ of the whole (B, D) output; K Hessian-vector products,
      Ĝ_kl = dY_k · H dY_l (negative curvature is then left to :func:`solve`, which clips the
      eigenvalues of Ĝ at 0).

    For the built-in cases, :class:`MSE` and :class:`CrossEntropy` give the same numbers in closed
    form (tested equal). Example: ``FunctionLoss(lambda y, t: F.huber_loss(y, t))``; a plain
    callable passed where a loss is expected is wrapped in this class.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], *, per_trial: bool = True, psd: bool = True) -> None:
        if not callable(fn):
            raise TypeError(f"FunctionLoss needs a callable loss, got {type(fn).__name__}")
        self.fn, self.per_trial, self.psd = fn, bool(per_trial), bool(psd)
        self._checked = False

    def _f(self, target: Any, weight: Optional[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        def f(y: torch.Tensor) -> torch.Tensor:
            out = self.fn(y, target) if weight is None else self.fn(y, target, weight)
            if not isinstance(out, torch.Tensor) or out.numel() != 1:
                raise ValueError("a SOFO loss must return a scalar tensor (reduce over trials inside the loss)")
            return out.reshape(())

        return f

    @staticmethod
    def _plain(*xs: Any) -> list[Any]:
        """Copies usable outside inference mode; floating tensors in float64."""
        out = []
        for x in xs:
            if isinstance(x, torch.Tensor):
                x = x.detach().clone()
                x = x.to(torch.float64) if x.is_floating_point() else x
            out.append(x)
        return out

    def value(self, y: torch.Tensor, target: Any, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """ℓ(y), a float64 scalar."""
        with torch.inference_mode(False), torch.no_grad():
            y, target, weight = self._plain(y, target, weight)
            return self._f(target, weight)(y).detach()

    def grad(self, y: torch.Tensor, target: Any, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """∇_y ℓ, (B, D) in float64."""
        with torch.inference_mode(False):
            y, target, weight = self._plain(y, target, weight)
            return torch.func.grad(self._f(target, weight))(y)

    def hvp(self, U: torch.Tensor, y: torch.Tensor, target: Any, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """H u for a batch of directions U: (M, B, D) → (M, B, D), float64 (exact Hessian)."""
        with torch.inference_mode(False):
            y, target, weight, U = self._plain(y, target, weight, U)
            _, hv = torch.func.vjp(torch.func.grad(self._f(target, weight)), y)[:2]  # u ↦ uᵀH = Hu (reverse over reverse)
            return vmap(lambda u: hv(u)[0])(U)

    def hessian_blocks(self, y: torch.Tensor, target: Any, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-trial Hessian blocks H_b (B, D, D), float64, from D Hessian-vector products
        (assumes ℓ does not couple trials); PSD-projected when ``psd``."""
        B, D = y.shape
        E = torch.eye(D, dtype=torch.float64, device=y.device)[:, None, :].expand(D, B, D)
        cols = self.hvp(E, y, target, weight)  # cols[d, b] = H_b e_d
        H = cols.permute(1, 2, 0)
        H = 0.5 * (H + H.transpose(1, 2))
        if not self._checked:
            u = torch.randn(1, B, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(y.device)
            full = self.hvp(u, y, target, weight)[0]
            blk = torch.einsum("bde,be->bd", H, u[0])
            if not torch.allclose(full, blk, rtol=1e-6, atol=1e-9 * float(full.abs().max().clamp_min(1e-300))):
                raise ValueError("this loss couples trials (its Hessian is not block-diagonal over the batch); use FunctionLoss(fn, per_trial=False)")
            self._checked = True
        if self.psd:
            s, Q = torch.linalg.eigh(H)
            H = (Q * s.clamp_min(0.0)[:, None, :]) @ Q.transpose(1, 2)
        return H

    def ggn(self, dY: torch.Tensor, y: torch.Tensor, target: Any, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """dY: (K, B, D) → Ĝ contribution (K, K), float64."""
        d = dY.to(torch.float64)
        if self.per_trial:
            HdY = torch.einsum("bde,kbe->kbd", self.hessian_blocks(y, target, weight), d)
        else:
            HdY = self.hvp(d, y, target, weight)
        G = torch.einsum("kbd,lbd->kl", d, HdY)
        return 0.5 * (G + G.T)


def as_loss(loss: Any) -> Any:
    """A loss object with ``value/grad/ggn`` (:class:`MSE`, :class:`CrossEntropy`,
    :class:`FunctionLoss`, or your own) as is; a plain callable ``fn(y, target)`` wrapped in
    :class:`FunctionLoss`."""
    if all(hasattr(loss, a) for a in ("value", "grad", "ggn")):
        return loss
    if callable(loss):
        return FunctionLoss(cast(Callable[..., torch.Tensor], loss))
    raise TypeError(f"a SOFO loss must be a callable fn(y, target) or have value/grad/ggn, got {type(loss).__name__}")


# --------------------------------------------------------------------------- sketches
@dataclass
class Sketch:
    """What one batched forward pass gives: loss (scalar), ĝ (K,), Ĝ (K, K) in float64."""

    loss: torch.Tensor
    g_hat: torch.Tensor
    G_hat: torch.Tensor
    outputs: Optional[torch.Tensor] = None


def sketch_feedforward(
    f: Callable[[Params], torch.Tensor],
    params: Params,
    V: Params,
    loss: Any,
    target: torch.Tensor,
    weight: Optional[torch.Tensor] = None,
) -> Sketch:
    """Sketch for a feed-forward map ``y = f(params)`` (inputs closed over), y: (B, D).

    The K tangents go through one ``vmap(jvp)`` pass; the primal is computed once. ``V`` may
    cover only some of ``params`` (frozen ones have no tangent and are held fixed). ``loss``: an
    object with ``value/grad/ggn`` or any callable ``fn(y, target)`` (see :class:`FunctionLoss`).
    """
    loss = as_loss(loss)
    f, primal = _restrict(f, params, V)
    with torch.inference_mode():
        y, dY = vmap(lambda v: jvp(f, (primal,), (v,)), out_dims=(None, 0))(V)  # pyright: ignore[reportAssignmentType, reportArgumentType]  (torch.func's stubs)
        g = loss.grad(y, target, weight).to(torch.float64)
        g_hat = torch.einsum("kbd,bd->k", dY.to(torch.float64), g)
        G_hat = loss.ggn(dY, y, target, weight)
        return Sketch(loss.value(y, target, weight).detach(), g_hat, G_hat, y)


def _restrict(f: Callable[..., Any], params: Params, V: Params) -> tuple[Callable[..., Any], Params]:
    """``f`` as a function of the blocks that have tangents only (the others held fixed), and
    those blocks in ``V``'s order (the primal and tangent pytrees must match)."""
    extra = [k for k in V if k not in params]
    if extra:
        raise ValueError(f"tangents for unknown parameters {extra}")
    primal = {k: params[k] for k in V}
    if len(primal) == len(params):
        return f, primal
    fixed = {k: v for k, v in params.items() if k not in V}

    def g(q: Params, *rest: Any) -> Any:
        return f({**fixed, **q}, *rest)

    return g, primal


StepFn = Callable[[Params, Any, torch.Tensor, Any], tuple[Any, torch.Tensor]]
TangentStepFn = Callable[[Params, Any, Any, Params, torch.Tensor, Any], tuple[Any, torch.Tensor, Any, torch.Tensor]]


def generic_tangent_step(step: StepFn) -> TangentStepFn:
    """The K-batched tangent recursion of ``step`` by ``vmap(jvp)``:
    dstate' = ∂F/∂state · dstate + ∂F/∂θ · v, for every tangent at once (parameters without a
    tangent in ``V`` are held fixed)."""

    def tstep(params: Params, state: Any, dstate: Any, V: Params, x_t: torch.Tensor, noise_t: Any) -> tuple[Any, torch.Tensor, Any, torch.Tensor]:
        fstep, primal = _restrict(step, params, V)

        def one(v: Params, ds: Any) -> Any:
            return jvp(lambda p, s: fstep(p, s, x_t, noise_t), (primal, state), (v, ds))

        (state1, y), (dstate1, dy) = vmap(one, out_dims=((None, None), (0, 0)))(V, dstate)  # pyright: ignore[reportArgumentType]  (torch.func's stubs)
        return state1, y, dstate1, dy

    return tstep


def sketch_recurrent(
    step: StepFn,
    params: Params,
    V: Params,
    state0: Any,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weights: Optional[torch.Tensor],
    loss: Any,
    *,
    dstate0: Any = None,
    noise: Any = None,
    tangent_step: Optional[TangentStepFn] = None,
    record: bool = False,
) -> Sketch:
    """Sketch for a recurrent model, accumulated online over time (memory constant in T).

    step(params, state, x_t, noise_t) → (state', y_t): one time step; state may be a tuple.
    inputs: (B, T, n_in); targets: (B, T, D); weights: (B, T) or (B, T, D) or None; the loss
    at step t is ``loss.value(y_t, targets[:, t], weights[:, t])``, summed over t.
    noise: None, or a tensor (or tuple) whose axis 1 is time, sampled *outside* so every
    tangent sees the primal's noise. dstate0: tangents of the initial state (K, ...) when it
    depends on θ (e.g. a learned x0); zeros otherwise. tangent_step: a hand-written K-batched
    tangent recursion (see :func:`generic_tangent_step` for its contract); default vmap(jvp).
    ``V`` may cover only some of ``params`` (frozen blocks; a hand-written tangent step then sees
    zero tangents for them). ``loss``: an object with ``value/grad/ggn`` or any callable
    ``fn(y_t, target_t[, weight_t])`` (see :class:`FunctionLoss`).
    """
    T = inputs.shape[1]
    K = next(iter(V.values())).shape[0]
    loss = as_loss(loss)
    tstep = tangent_step or generic_tangent_step(step)
    if tangent_step is not None and any(k not in V for k in params):
        V = {k: V[k] if k in V else torch.zeros((K, *p.shape), dtype=p.dtype, device=p.device) for k, p in params.items()}
    with torch.inference_mode():
        state = state0
        dstate = dstate0 if dstate0 is not None else tree_map(lambda s: torch.zeros((K, *s.shape), dtype=s.dtype, device=s.device), state0)
        g_hat = torch.zeros(K, dtype=torch.float64, device=inputs.device)
        G_hat = torch.zeros(K, K, dtype=torch.float64, device=inputs.device)
        total = torch.zeros((), dtype=torch.float64, device=inputs.device)
        outs = []
        for t in range(T):
            nt = None if noise is None else tree_map(lambda n: n[:, t], noise)  # noqa: B023 - called at once, inside the loop
            state, y, dstate, dY = tstep(params, state, dstate, V, inputs[:, t], nt)
            w = None if weights is None else weights[:, t]
            if record:
                outs.append(y)
            if w is not None and not bool(torch.any(w != 0)):
                continue
            tgt = targets[:, t]
            total += loss.value(y, tgt, w).to(torch.float64)
            g_hat += torch.einsum("kbd,bd->k", dY.to(torch.float64), loss.grad(y, tgt, w).to(torch.float64))
            G_hat += loss.ggn(dY, y, tgt, w)
        return Sketch(total, g_hat, G_hat, torch.stack(outs, 1) if record else None)


# --------------------------------------------------------------------------- the step
@dataclass
class Solution:
    """α (K,), the clipped eigenvalues of Ĝ (K,), the damping λ, the predicted decrease."""

    alpha: torch.Tensor
    eigvals: torch.Tensor
    lam: float
    pred_decrease: float


def solve(sketch: Sketch, damping: float = 1e-3, mode: str = "relative") -> Solution:
    """α = (Ĝ + λI)⁻¹ ĝ in float64 via an eigendecomposition of the symmetrised Ĝ.

    mode ``relative``: λ = γ·s_max; ``relative_min``: λ = γ·s_min; ``absolute``: λ = γ.
    Negative round-off eigenvalues are clipped to 0; directions with s + λ = 0 get no step
    (the pseudo-inverse), so γ = 0 on a singular Ĝ never gives NaN.
    """
    if mode not in DAMPING_MODES:
        raise ValueError(f"damping mode must be one of {DAMPING_MODES}")
    if damping < 0:
        raise ValueError("damping must be >= 0")
    G = sketch.G_hat.to(torch.float64)
    G = 0.5 * (G + G.T)
    g = sketch.g_hat.to(torch.float64)
    s, U = torch.linalg.eigh(G)
    s = s.clamp_min(0.0)
    smax = float(s.max())
    lam = damping * (smax if mode == "relative" else float(s.min()) if mode == "relative_min" else 1.0)
    denom = s + lam
    tol = max(smax, 1e-300) * s.shape[0] * torch.finfo(torch.float64).eps
    inv = torch.where(denom > tol, 1.0 / denom.clamp_min(tol), torch.zeros_like(denom))
    alpha = U @ (inv * (U.T @ g))
    pred = float(g @ alpha - 0.5 * alpha @ (G @ alpha))
    return Solution(alpha, s, lam, pred)


def whiten(sketch: Sketch, L: torch.Tensor) -> Sketch:
    """The sketch in the tangents L⁻¹V, from the sketch in V (L: (K, K) lower triangular):
    ĝ' = L⁻¹ĝ, Ĝ' = L⁻¹ĜL⁻ᵀ, float64. With L the Cholesky factor of V Vᵀ, L⁻¹V is orthonormal;
    a solution α' in those coordinates is α = L⁻ᵀα' in V's (Δ = Vᵀα)."""
    L = L.to(torch.float64)
    g = torch.linalg.solve_triangular(L, sketch.g_hat.to(torch.float64)[:, None], upper=False)[:, 0]
    X = torch.linalg.solve_triangular(L, sketch.G_hat.to(torch.float64), upper=False)
    G = torch.linalg.solve_triangular(L, X.T.contiguous(), upper=False)
    return Sketch(sketch.loss, g, 0.5 * (G + G.T), sketch.outputs)


def direction(V: Params, alpha: torch.Tensor) -> Params:
    """Δ = Vᵀα, per block: Δ_name = Σ_k α_k V_name[k]."""
    return {k: torch.tensordot(alpha.to(v.dtype), v, dims=1) for k, v in V.items()}


@dataclass
class SOFOInfo:
    """Per-iteration diagnostics (all Python floats)."""

    loss: float
    eig_max: float
    eig_min: float
    lam: float
    step_norm: float
    g_hat_norm: float
    pred_decrease: float
    clipped: bool


class SOFO:
    """A torch.optim-like SOFO optimiser.

    Each :meth:`step` draws fresh tangents, asks ``sketch_fn(V)`` for the sketch of the loss
    in those directions, solves the damped subspace problem and updates the parameters in
    place: θ ← θ − lr·Δ. ``max_step_norm`` (> 0) caps ‖Σ lr·Δ‖ at that fraction of ‖θ‖.
    A non-finite sketch (the model blew up) leaves θ unchanged and returns NaN diagnostics.

    ``params`` is what a torch optimizer takes, or a dict:
      - an ``nn.Module`` (its named parameters), a dict ``name → tensor``, an iterable of
        tensors (named ``"0"``, ``"1"``, ... in order) or of ``(name, tensor)`` pairs;
      - or parameter groups: an iterable of dicts ``{"params": <any of the above>, "lr": η_g}``
        (``lr`` optional, default ``lr``). One subspace spans every group; group g's block of
        the step is scaled by its own η_g.
    **Frozen parameters** (``nn.Parameter`` with ``requires_grad=False``) are left out, as torch
    optimizers leave them alone: they get no tangents and are never changed. Plain tensors that
    are not ``nn.Parameter`` are always trained (the functional API). ``self.params`` is the
    dict of trained tensors, the keys the tangents ``V`` use.

    Tangents are drawn with ``generator`` on its device (default: a generator on the
    parameters' device, seed 0); pass one on the parameters' device to avoid copies.

    Example (feed-forward, any ``nn.Module``)::

        opt = SOFO(model, n_tangents=64)
        info = opt.step_module(model, x, target, CrossEntropy())
    """

    def __init__(
        self,
        params: Any,
        n_tangents: int = 128,
        damping: float = 1e-3,
        lr: float = 1.0,
        *,
        tangents: str = "orthonormal",
        damping_mode: str = "relative",
        max_step_norm: float = 0.0,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        if n_tangents < 1:
            raise ValueError(f"n_tangents must be >= 1, got {n_tangents}")
        if damping < 0:
            raise ValueError(f"damping must be >= 0, got {damping}")
        if tangents not in TANGENT_KINDS:
            raise ValueError(f"tangents must be one of {TANGENT_KINDS}")
        if damping_mode not in DAMPING_MODES:
            raise ValueError(f"damping_mode must be one of {DAMPING_MODES}")
        self.param_groups: list[dict[str, Any]] = _param_groups(params, float(lr))
        self.params: Params = {k: v for g in self.param_groups for k, v in g["params"].items()}
        if not self.params:
            raise ValueError("SOFO got no trainable parameters (all are frozen: requires_grad=False)")
        P = n_params(self.params)
        self.n_tangents = min(int(n_tangents), P)
        self.damping, self.lr, self.tangents, self.damping_mode = float(damping), float(lr), tangents, damping_mode
        self.max_step_norm = float(max_step_norm)
        dev = next(iter(self.params.values())).device
        self.generator = generator if generator is not None else torch.Generator(device=dev).manual_seed(0)
        self.iterations = 0

    def sample(self) -> Params:
        """Fresh tangents for this iteration (never reused: a fixed V freezes optimisation)."""
        return sample_tangents(self.params, self.n_tangents, kind=self.tangents, generator=self.generator)

    def _tangents(self) -> tuple[Params, Optional[torch.Tensor]]:
        """This step's tangents and, for orthonormal tangents on the Cholesky QR path, the factor
        L of their Gram matrix: the tangents are then the raw Gaussian G and the step works with
        the orthonormal L⁻¹G through the K×K sketch (:func:`whiten`), saving the K×P GEMM.
        A ``sample`` replaced on the instance or in a subclass is used as it is."""
        if "sample" in self.__dict__ or type(self).sample is not SOFO.sample:
            return self.sample(), None
        return _sample(self.params, self.n_tangents, self.tangents, self.generator, None, defer=True)

    def step(self, sketch_fn: Callable[[Params], Sketch]) -> SOFOInfo:
        """One SOFO iteration. ``sketch_fn(V)`` returns the :class:`Sketch` at the current θ
        (V: ``name → (K, *shape)`` over :attr:`params`). With orthonormal tangents V may be the
        raw Gaussian draw G, orthonormalised afterwards in the K×K sketch (the step is that of
        the orthonormal L⁻¹G), so compute ĝ and Ĝ from V as given and never assume V Vᵀ = I
        (e.g. an analytic weight-decay term is 2κ·V Vᵀ in Ĝ, not 2κ·I)."""
        V, L = self._tangents()
        sk = sketch_fn(V)
        if not (torch.isfinite(sk.loss).all() and torch.isfinite(sk.g_hat).all() and torch.isfinite(sk.G_hat).all()):
            # leave θ untouched and report NaN: the caller's non-finite guard stops the run
            self.iterations += 1
            nan = float("nan")
            return SOFOInfo(float(sk.loss) if torch.isfinite(sk.loss).all() else nan, nan, nan, nan, nan, nan, nan, False)
        if L is not None:
            sk = whiten(sk, L)
        sol = solve(sk, self.damping, self.damping_mode)
        alpha = sol.alpha if L is None else torch.linalg.solve_triangular(L.T, sol.alpha[:, None], upper=True)[:, 0]
        delta = direction(V, alpha)
        lrs = {k: float(g["lr"]) for g in self.param_groups for k in g["params"]}
        step_norm = math.sqrt(float(sum((lrs[k] * d).double().pow(2).sum() for k, d in delta.items())))
        scale, clipped = 1.0, False
        if self.max_step_norm > 0:
            theta = math.sqrt(float(sum(p.detach().double().pow(2).sum() for p in self.params.values())))
            cap = self.max_step_norm * max(theta, 1e-12)
            if step_norm > cap:
                scale, clipped = cap / step_norm, True
                step_norm = cap
        with torch.no_grad():
            for k, p in self.params.items():
                p.sub_((scale * lrs[k]) * delta[k].to(p.dtype))
        self.iterations += 1
        s = sol.eigvals
        return SOFOInfo(float(sk.loss), float(s.max()), float(s.min()), sol.lam, step_norm, float(sk.g_hat.norm()), sol.pred_decrease, clipped)

    def step_module(self, model: nn.Module, x: torch.Tensor, target: Any, loss: Any, weight: Optional[torch.Tensor] = None) -> SOFOInfo:
        """One iteration for a feed-forward ``model(x)`` (outputs (B, D)). ``loss``: a loss
        object or any callable ``fn(y, target)`` (:class:`FunctionLoss`). The model's parameters
        that this optimiser does not train (frozen ones) are used as they are."""
        key = {id(t): k for k, t in self.params.items()}
        names = {name: key[id(p)] for name, p in model.named_parameters(remove_duplicate=False) if id(p) in key}
        missing = sorted(set(self.params) - set(names.values()))
        if missing:
            raise ValueError(f"step_module: parameters {missing} of this optimiser are not parameters of the model")

        def f(p: Params) -> torch.Tensor:
            return torch.func.functional_call(model, {name: p[k] for name, k in names.items()}, (x,))

        return self.step(lambda V: sketch_feedforward(f, {k: v.detach() for k, v in self.params.items()}, V, loss, target, weight))

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters, per-group learning rates, iteration count and the tangent
        generator's state."""
        return {
            "iterations": self.iterations,
            "generator": self.generator.get_state(),
            "lr": self.lr,
            "damping": self.damping,
            "group_lrs": [float(g["lr"]) for g in self.param_groups],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.iterations = int(state["iterations"])
        self.generator.set_state(state["generator"])
        for g, lr in zip(self.param_groups, state.get("group_lrs", [])):
            g["lr"] = float(lr)


def _is_frozen(t: torch.Tensor) -> bool:
    """A parameter a torch optimizer would leave alone: an ``nn.Parameter`` without grad."""
    return isinstance(t, nn.Parameter) and not t.requires_grad


def _named(params: Any, counter: list[int]) -> dict[str, torch.Tensor]:
    """One group's tensors by name (unnamed ones numbered by ``counter``), frozen ones dropped."""
    if isinstance(params, nn.Module):
        items = list(params.named_parameters())
    elif isinstance(params, Mapping):
        items = list(params.items())
    elif isinstance(params, torch.Tensor):
        raise TypeError("SOFO params: pass an iterable of tensors, not a single tensor (as torch optimizers)")
    else:
        items = []
        for x in params:
            if isinstance(x, torch.Tensor):
                items.append((str(counter[0]), x))
                counter[0] += 1
            elif isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], torch.Tensor):
                items.append((str(x[0]), x[1]))
            else:
                raise TypeError(f"SOFO params: expected tensors or (name, tensor) pairs, got {type(x).__name__}")
    return {str(k): v for k, v in items if not _is_frozen(v)}


def _param_groups(params: Any, lr: float) -> list[dict[str, Any]]:
    """Normalise what a torch optimizer accepts (or a dict / module) to groups
    ``[{"params": {name: tensor}, "lr": float}]`` with frozen parameters left out."""
    if isinstance(params, (nn.Module, Mapping, torch.Tensor)):
        raw: list[Any] = [{"params": params}]
    else:
        raw = list(params)
        if not raw:
            raise ValueError("SOFO got an empty parameter list")
        if not isinstance(raw[0], Mapping):
            raw = [{"params": raw}]
    counter, groups, seen, names = [0], [], set(), set()
    for g in raw:
        if not isinstance(g, Mapping) or "params" not in g:
            raise TypeError("SOFO parameter groups must all be dicts with a 'params' entry")
        unknown = sorted(set(g) - {"params", "lr"})
        if unknown:
            raise ValueError(f"unknown parameter-group option(s) {unknown}: SOFO groups take 'params' and 'lr'")
        glr = float(g.get("lr", lr))
        if not math.isfinite(glr) or glr < 0:
            raise ValueError(f"group lr must be finite and >= 0, got {glr}")
        named = _named(g["params"], counter)
        for k, v in named.items():
            if id(v) in seen:
                raise ValueError(f"parameter {k!r} appears in more than one group")
            if k in names:
                raise ValueError(f"two parameters are named {k!r}; give unique names")
            seen.add(id(v))
            names.add(k)
        groups.append({"params": named, "lr": glr})
    return groups
