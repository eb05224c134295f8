"""Fixed and slow points of any recurrent model of the contract (:mod:`rnntk.core.models`),
batched over candidates and polished by Newton's method to machine precision.

The search follows FixedPointFinder (Golub & Sussillo 2018) and improves on it:

1. **Residual.** Discrete models: ``G(x) = step(x, u) - x``; continuous models
   (``tau dx/dt = F(x, u)``): ``G(x) = rhs(x, u)``. Both vanish at the same points (an Euler
   step is ``x + dt/tau F``); ``time=`` picks the convention. ``q = ½‖G(x)‖²``.
2. **Adam on q**, all K candidates as one batch, with FixedPointFinder's defaults (lr 1.0,
   plateau rule: factor 0.95, patience 2), the plateau rule applied to each candidate's own q
   (FixedPointFinder applies it to the mean q, which makes a candidate's path depend on its
   batch; here the batched search equals a loop over candidates), for ``max_iters`` steps
   (default 25) or until every ``q < q_newton``. It pulls noisy candidates towards the
   dynamics' slow regions; precision comes from step 3, not from thousands of Adam steps.
3. **Newton polish, batched.** Exact Jacobians of every live candidate at once (one
   ``torch.func.vjp`` of the batch pulled back along the n unit vectors with
   ``torch.func.vmap``, or the model's analytic tangent), the Newton step ``J^{-1} G`` by one
   batched solve; rows it does not improve take Levenberg-Marquardt steps
   ``(J^T J + mu I)^{-1} J^T G`` with rising ``mu`` (one batched ``eigh`` of ``J^T J`` per row, so
   each damping level is a matrix-vector product), so q never increases and the iteration also
   settles in local minima of q (slow points). Candidates that reach ``q <= q_merge`` within
   ``tol_unique`` of each other are merged as they converge, so the later iterations run on the
   distinct points only. Points reach the rounding floor (q ~ 1e-30 in float64 for states of
   order one).
4. **q tolerance**: ``q <= tol_q`` is a fixed point, ``tol_q < q <= tol_slow`` a slow point
   (kept, ``is_slow``), larger q is dropped.
5. **Uniqueness** (``tol_unique``, Euclidean on ``[x, u]`` like FixedPointFinder) by batched
   rounds of leaders (:func:`unique_leaders`): leaders are ``tol_unique`` apart, members within
   ``tol_unique`` of their leader (no chaining), the least q leads, as in FixedPointFinder's
   q-ordered greedy pass but without a loop over candidates.
6. **Outliers**: points farther from the centroid of the candidates than
   ``outlier_distance_scale`` times the candidates' mean distance to it are dropped
   (FixedPointFinder's rule).
7. **Linearisation**: eigenvalues of every point's Jacobian in one batched ``eigvals``;
   discrete: of ``d step / dx`` (per step), sorted by modulus, unstable when ``|λ| > 1``;
   continuous: of ``dF/dx`` (units 1/tau, as ``rnntk eigs``), sorted by real part, unstable when
   ``Re λ > 0``. Labels: ``stable``, ``saddle-k`` (k unstable directions), ``unstable`` (all);
   ``rotational`` when the leading eigenvalue is complex.

No Python loop runs over candidates: loops run over optimisation steps, damping levels,
uniqueness rounds and memory chunks.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from rnntk.core.models import RecurrentModel, as_recurrent_model

Residual = Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


@dataclass
class FixedPoints:
    """Fixed and slow points of one model at constant inputs (M points, state size n).

    xstar (M, n): the points. q (M,): ``½‖G(x*)‖²`` (``G = step - x`` discrete, ``rhs``
    continuous). eigvals (M, n) complex: Jacobian eigenvalues, leading first (see module doc
    for units). n_unstable (M,): eigenvalues with ``|λ| > 1`` (discrete) or ``Re λ > 0``
    (continuous). kind: ``stable`` / ``saddle-k`` / ``unstable`` per point. rotational (M,):
    the leading eigenvalue is complex. is_slow (M,): ``q > tol_q`` (a slow point). input
    (M, n_in): the constant input of each point. n_iters (M,): Adam plus Newton iterations
    of the candidate that gave the point. jacobians (M, n, n) when asked for. time:
    ``"discrete"`` or ``"continuous"``. stats: counts along the pipeline."""

    xstar: torch.Tensor
    q: torch.Tensor
    eigvals: torch.Tensor
    n_unstable: torch.Tensor
    kind: list[str]
    rotational: torch.Tensor
    is_slow: torch.Tensor
    input: torch.Tensor
    n_iters: torch.Tensor
    time: str
    jacobians: Optional[torch.Tensor] = None
    stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.xstar.shape[0])

    @property
    def is_stable(self) -> torch.Tensor:
        """(M,) bool: no unstable direction."""
        return self.n_unstable == 0

    def select(self, mask: torch.Tensor) -> "FixedPoints":
        """The points where ``mask (M,)`` is true (or at the given indices)."""
        idx = mask.nonzero().flatten() if mask.dtype == torch.bool else mask
        il = idx.tolist()
        return FixedPoints(
            xstar=self.xstar[idx],
            q=self.q[idx],
            eigvals=self.eigvals[idx],
            n_unstable=self.n_unstable[idx],
            kind=[self.kind[i] for i in il],
            rotational=self.rotational[idx],
            is_slow=self.is_slow[idx],
            input=self.input[idx],
            n_iters=self.n_iters[idx],
            time=self.time,
            jacobians=None if self.jacobians is None else self.jacobians[idx],
            stats=dict(self.stats),
        )


# ----------------------------------------------------------------------------- residuals
def residual_fn(model: RecurrentModel, time: str) -> Residual:
    """``G(x, u)``: ``step(x, u) - x`` (discrete) or ``rhs(x, u)`` (continuous), batched."""
    if time == "discrete":
        return lambda x, u: model.step(x, u) - x
    if time == "continuous":
        rhs = getattr(model, "rhs", None)
        if rhs is None:
            raise ValueError(f"{type(model).__name__} is discrete: it has no rhs(x, u) for time='continuous'")
        return lambda x, u: rhs(x, u)
    raise ValueError(f"time must be 'discrete' or 'continuous', not {time!r}")


def residual_jacobians(model: RecurrentModel, time: str, x: torch.Tensor, u: Optional[torch.Tensor], *, chunk: Optional[int] = None) -> torch.Tensor:
    """Exact ``dG/dx (K, n, n)`` at ``x (K, n)``, ``chunk`` rows at a time: the model's analytic
    tangent applied to the identity (discrete models that have one), else reverse mode, one
    ``torch.func.vjp`` of the whole batch pulled back along the n unit vectors at once
    (``torch.func.vmap``): row i of every Jacobian is ``e_i^T dG/dx``, exact because the rows
    of a batch are independent trials (the contract). A Python loop runs over chunks only."""
    K, n = x.shape
    chunk = chunk or _jac_chunk(n, x.element_size())
    G = residual_fn(model, time)
    out = []
    tangent = getattr(model, "tangent", None) if time == "discrete" else None
    eye = torch.eye(n, dtype=x.dtype, device=x.device)
    for s in range(0, K, chunk):
        xs = x[s : s + chunk].detach()
        us = None if u is None else u[s : s + chunk]
        b = xs.shape[0]
        if tangent is not None:
            J = tangent(xs, eye.expand(b, n, n), us) - eye
        else:
            with torch.enable_grad():
                pull = torch.func.vjp(lambda s_, us=us: G(s_, us), xs)[1]
                J = torch.func.vmap(lambda e, b=b, pull=pull: pull(e.expand(b, n))[0], out_dims=1)(eye)  # (b, i, j) = dG_i/dx_j
        out.append(J.detach())
    return torch.cat(out) if out else x.new_zeros(0, n, n)


def _jac_chunk(n: int, itemsize: int, budget: int = 1 << 28) -> int:
    """Rows per Jacobian chunk: about ``budget`` bytes (256 MiB) of (rows, n, n) at a time."""
    return max(1, budget // max(1, 4 * n * n * itemsize))


# ----------------------------------------------------------------------------- stages
def _adam(
    G: Residual,
    x0: torch.Tensor,
    u: Optional[torch.Tensor],
    *,
    lr: float,
    lr_factor: float,
    lr_patience: int,
    q_newton: float,
    max_iters: int,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    check: Optional[Callable[[], None]] = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Adam on ``q_i = ½‖G(x_i)‖²`` for every row at once (the gradient of the sum is every
    row's own gradient), with FixedPointFinder's plateau rule applied to each row's own q
    (ReduceLROnPlateau: the row's learning rate times ``lr_factor`` after ``lr_patience`` steps
    without a relative improvement of 1e-4), so that a row's path does not depend on the other
    rows of its batch. A row stops once ``q < q_newton``; the loop after ``max_iters`` steps or
    when every row has stopped. Returns (x, q, iterations run)."""
    K = x0.shape[0]
    x = x0.detach().clone()
    m = torch.zeros_like(x)
    v = torch.zeros_like(x)
    b1, b2 = betas
    rate = torch.full((K, 1), lr, dtype=x.dtype, device=x.device)
    best = torch.full((K,), math.inf, dtype=x.dtype, device=x.device)
    bad = torch.zeros(K, dtype=torch.long, device=x.device)
    active = torch.ones(K, dtype=torch.bool, device=x.device)
    it = 0
    for it in range(1, max_iters + 1):
        with torch.enable_grad():
            xg = x.requires_grad_(True)
            r = G(xg, u)
            qv = 0.5 * (r * r).sum(-1)
            (grad,) = torch.autograd.grad(qv.sum(), xg)
        x = x.detach()
        q = qv.detach()
        active &= q >= q_newton  # NaN compares False: a row that blew up stops too
        if not bool(active.any()):
            it -= 1
            break
        if check is not None and it % 50 == 0:
            check()
        grad = grad.masked_fill(~active[:, None], 0.0)
        m.mul_(b1).add_(grad, alpha=1 - b1)
        v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (v / (1 - b2**it)).sqrt_().add_(eps)
        x.addcdiv_(m.masked_fill(~active[:, None], 0.0), denom / rate, value=-1 / (1 - b1**it))
        improved = q < best * (1 - 1e-4)
        best = torch.where(improved, q, best)
        bad = torch.where(improved, 0, bad + 1)
        decay = bad > lr_patience
        rate = torch.where(decay[:, None], rate * lr_factor, rate)
        bad = torch.where(decay, 0, bad)
    with torch.no_grad():
        r = G(x, u)
        q = 0.5 * (r * r).sum(-1)
    return x, q, it


def _newton(
    model: RecurrentModel,
    time: str,
    x: torch.Tensor,
    u: Optional[torch.Tensor],
    *,
    steps: int,
    tol_q: float,
    merge_tol: float = 0.0,
    merge_q: float = 1e-10,
    check: Optional[Callable[[], None]] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched damped Newton on ``G(x) = 0``: ``d = J_G^{-1} G`` (least squares where
    singular), the largest of ``1, ½, ¼, ... 2^-30`` that lowers q is taken per row (rows with
    no such step keep their point). A row stops when no step lowers q, at the rounding floor,
    or within ``tol_q`` without halving q. After each iteration, rows with ``q <= merge_q``
    closer than ``merge_tol`` on ``[x, u]`` are merged into the one of least q (they converge
    to one point), so that later iterations run on the distinct points only.
    Returns (x, q, iterations, alive): ``alive`` marks the rows not merged away."""
    G = residual_fn(model, time)
    K = x.shape[0]
    iters = torch.zeros(K, dtype=torch.long, device=x.device)
    alive = torch.ones(K, dtype=torch.bool, device=x.device)
    if K == 0:
        return x, x.new_zeros(0), iters, alive
    with torch.no_grad():
        r = G(x, u)
        q = 0.5 * (r * r).sum(-1)
    floor = _rounding_floor(x)
    live = torch.isfinite(q) & (q > floor)

    def merge() -> None:
        conv = (alive & (q <= merge_q)).nonzero().flatten()
        if conv.numel() > 1:
            key = x[conv] if u is None else torch.cat([x[conv], u[conv]], -1)
            lead = torch.zeros(conv.numel(), dtype=torch.bool, device=x.device)
            lead[unique_leaders(key, q[conv], merge_tol)] = True
            alive[conv[~lead]] = False
            live.logical_and_(alive)

    if merge_tol > 0:
        merge()
    for _ in range(steps):
        if check is not None:
            check()
        if not bool(live.any()):
            break
        idx = live.nonzero().flatten()
        xi, ri, qi = x[idx], r[idx], q[idx]
        ui = None if u is None else u[idx]
        J = residual_jacobians(model, time, xi, ui)
        d = _solve(J, ri)
        with torch.no_grad():  # the Newton step first; damping only for the rows it does not improve
            x_new = xi - d
            r_new = G(x_new, ui)
            q_new = 0.5 * (r_new * r_new).sum(-1)
        moved = torch.isfinite(q_new) & (q_new < qi)
        back = (~moved).nonzero().flatten()
        if back.numel():
            Jb = J[back]
            lam, V = torch.linalg.eigh(Jb.transpose(1, 2) @ Jb)  # J^T J = V diag(lam) V^T, once per row
            gv = (V.transpose(1, 2) @ (Jb.transpose(1, 2) @ ri[back, :, None]))[..., 0]  # the gradient of q, in that basis
            mu = 1e-3 * lam[:, -1].clamp_min(torch.finfo(x.dtype).tiny)
            for _ in range(20):  # Levenberg-Marquardt: raise the damping of the rows not improved yet (a loop over damping levels, not rows)
                if back.numel() == 0:
                    break
                db = (V @ (gv / (lam.clamp_min(0) + mu[:, None]))[..., None])[..., 0]
                xb = xi[back] - db
                with torch.no_grad():
                    rb = G(xb, None if ui is None else ui[back])
                    qb = 0.5 * (rb * rb).sum(-1)
                ok = torch.isfinite(qb) & (qb < qi[back])
                hit = back[ok]
                x_new[hit], r_new[hit], q_new[hit] = xb[ok], rb[ok], qb[ok]
                moved[hit] = True
                keep = ~ok
                back, lam, V, gv, mu = back[keep], lam[keep], V[keep], gv[keep], mu[keep] * 10
            x_new[back], r_new[back], q_new[back] = xi[back], ri[back], qi[back]
        x, r, q = x.index_copy(0, idx, x_new), r.index_copy(0, idx, r_new), q.index_copy(0, idx, q_new)
        iters = iters.index_add(0, idx, moved.to(torch.long))
        # a row is done when no step lowers q, at the rounding floor, within tol_q without a 2x
        # gain, or (a slow point: a local minimum of q) when q fell by less than 1e-6 relative
        done = ~moved | (q_new <= floor[idx]) | ((q_new > 0.5 * qi) & (q_new <= tol_q)) | (q_new > qi * (1 - 1e-6))
        live[idx] = ~done
        if merge_tol > 0:
            merge()
    return x, q, iters, alive


def _rounding_floor(x: torch.Tensor) -> torch.Tensor:
    """q below which rounding dominates: ``½ n (eps (1 + |x|_max))^2`` per row."""
    eps = torch.finfo(x.dtype).eps
    scale = 1 + x.abs().amax(-1) if x.numel() else x.new_zeros(x.shape[0])
    return 0.5 * x.shape[-1] * (eps * scale) ** 2


def _solve(J: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``J^{-1} r`` per row (batched LU), least squares for singular or ill-conditioned rows."""
    d, info = torch.linalg.solve_ex(J, r)
    bad = (info != 0) | ~torch.isfinite(d).all(-1)
    if bool(bad.any()):
        idx = bad.nonzero().flatten()
        d[idx] = (torch.linalg.pinv(J[idx]) @ r[idx, :, None])[..., 0]
    return d


def unique_leaders(x: torch.Tensor, q: torch.Tensor, tol: float, *, chunk: int = 4096) -> torch.Tensor:
    """Indices of unique points (see module doc, step 2): batched rounds; each round, every
    unassigned point with the smallest ``(q, index)`` among the unassigned points within
    ``tol`` (Euclidean) becomes a leader, and unassigned points within ``tol`` of a leader
    are assigned. Returns the leaders' indices sorted by q."""
    K = x.shape[0]
    if K == 0:
        return torch.zeros(0, dtype=torch.long, device=x.device)
    order = torch.argsort(q, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(K, device=x.device)  # rank by (q, index)
    near = torch.cat([torch.cdist(x[s : s + chunk], x) <= tol for s in range(0, K, chunk)])  # (K, K) bool
    unassigned = torch.ones(K, dtype=torch.bool, device=x.device)
    leaders = torch.zeros(K, dtype=torch.bool, device=x.device)
    rank32 = rank.to(torch.int32)
    while bool(unassigned.any()):
        best = torch.cat(
            [torch.where(near[s : s + chunk] & unassigned[None, :], rank32[None, :], K).amin(1) for s in range(0, K, chunk)]
        )  # per row: the smallest rank among its unassigned neighbours (itself included)
        new = unassigned & (best == rank32)
        leaders |= new
        unassigned &= ~(near[new].any(0))
    idx = leaders.nonzero().flatten()
    return idx[torch.argsort(q[idx], stable=True)]


def _distance_inliers(x: torch.Tensor, x0: torch.Tensor, scale: float) -> torch.Tensor:
    """FixedPointFinder's rule: distance to the centroid of the initial states ``x0`` over
    their mean distance to it, below ``scale``. Candidates that all coincide (one candidate,
    or one state repeated) give no scale: every point is kept."""
    c = x0.mean(0)
    d0 = (x0 - c).norm(dim=-1).mean()
    if not bool(d0 > 0):
        return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    return (x - c).norm(dim=-1) / d0 < scale


def classify(eigvals: torch.Tensor, time: str, *, tol: float = 1e-9) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """``(n_unstable (M,), kind, rotational (M,))`` from sorted eigenvalues ``(M, n)``:
    unstable directions have ``|λ| > 1 + tol`` (discrete) or ``Re λ > tol`` (continuous)."""
    n = eigvals.shape[-1]
    if time == "discrete":
        unstable = eigvals.abs() > 1 + tol
    else:
        unstable = eigvals.real > tol
    k = unstable.sum(-1)
    lead = eigvals[:, 0] if n else eigvals.new_zeros(eigvals.shape[0])
    rot = lead.imag.abs() > 1e-9 * lead.abs().clamp_min(1e-300)
    kinds = ["stable" if int(j) == 0 else ("unstable" if int(j) == n else f"saddle-{int(j)}") for j in k.tolist()]
    return k, kinds, rot


def sorted_eigvals(J: torch.Tensor, time: str) -> torch.Tensor:
    """Eigenvalues of ``J (M, n, n)`` (one batched call), leading first: by modulus
    (discrete) or by real part (continuous), ties by imaginary part."""
    lam = torch.linalg.eigvals(J) if J.shape[0] else J.new_zeros(J.shape[:2], dtype=torch.complex128)
    key = lam.abs() if time == "discrete" else lam.real
    order = torch.argsort(key, dim=-1, descending=True, stable=True)
    return torch.gather(lam, -1, order)


def _in_dtype(model: Any, dtype: torch.dtype) -> Any:
    """``model`` itself when its floating parameters are already ``dtype``, else a copy cast
    to it (the caller's model is never changed); parameters of the copy need no gradient."""
    if not isinstance(model, torch.nn.Module):
        return model
    params = [p for p in list(model.parameters()) + list(model.buffers()) if p.is_floating_point()]
    if all(p.dtype == dtype for p in params):
        return model
    clone = copy.deepcopy(model).to(dtype)
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def _device_of(model: Any, states: torch.Tensor) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return states.device


# ----------------------------------------------------------------------------- main entry
def fixed_points(
    model: Any,
    states: torch.Tensor,
    inputs: Optional[torch.Tensor] = None,
    *,
    time: Optional[str] = None,
    noise: float = 0.0,
    tol_q: float = 1e-12,
    tol_slow: float = 1e-6,
    tol_unique: float = 1e-3,
    outlier_distance_scale: float = 10.0,
    max_iters: int = 25,
    lr: float = 1.0,
    lr_factor: float = 0.95,
    lr_patience: int = 2,
    q_newton: float = 1e-10,
    newton_steps: int = 50,
    q_merge: float = 1e-10,
    keep_slow: bool = True,
    keep_jacobians: bool = False,
    dtype: Optional[torch.dtype] = torch.float64,
    generator: Optional[torch.Generator] = None,
    check: Optional[Callable[[], None]] = None,
) -> FixedPoints:
    """Fixed (and slow) points of ``model`` at constant inputs, from candidate ``states``.

    model: any model of the contract (adapted by :func:`as_recurrent_model`).
    states (K, n): initial candidates, typically sampled from the model's trajectories.
    inputs: ``None`` (the model's no-input step), ``(n_in,)`` one constant input, or
    ``(K, n_in)`` one per candidate. time: ``"discrete"`` (x = step(x, u)) or
    ``"continuous"`` (rhs(x, u) = 0); default: the model's own. noise: std of Gaussian noise
    added to the candidates (``generator`` draws it). Tolerances and schedule: see the module
    doc. dtype: computation dtype (float64 by default, so that the Newton polish reaches
    q ~ 1e-30; ``None`` keeps the states' dtype); a module in another dtype is evaluated
    through a cast copy. check: called now and then (e.g. to honour a signal).
    Returns :class:`FixedPoints` (leading eigenvalue first, points sorted by q)."""
    dt_ = dtype or states.dtype
    model = _in_dtype(model, dt_)
    cm = as_recurrent_model(model)
    time = time or str(cm.time)
    G = residual_fn(cm, time)
    if states.dim() != 2 or states.shape[1] != cm.n:
        raise ValueError(f"states must be (K, n = {cm.n}), got {tuple(states.shape)}")
    x0 = states.detach().to(device=_device_of(model, states), dtype=dt_)
    K = x0.shape[0]
    if noise:
        x0 = x0 + noise * torch.randn(x0.shape, generator=generator, dtype=dt_, device=generator.device if generator is not None else x0.device).to(x0.device)
    u = None
    if inputs is not None:
        u = torch.as_tensor(inputs).to(device=x0.device, dtype=dt_)
        if u.dim() == 1:
            u = u[None].expand(K, -1)
        if u.shape != (K, cm.n_in):
            raise ValueError(f"inputs must be (n_in = {cm.n_in},) or (K = {K}, n_in), got {tuple(torch.as_tensor(inputs).shape)}")
    stats: dict[str, Any] = {"n_candidates": K}
    x, q, n_adam = _adam(G, x0, u, lr=lr, lr_factor=lr_factor, lr_patience=lr_patience, q_newton=q_newton, max_iters=max_iters, check=check)
    stats["adam_iters"] = n_adam
    idx = (torch.isfinite(q) & torch.isfinite(x).all(-1)).nonzero().flatten()
    xs, us = x[idx], (None if u is None else u[idx])
    xs, qs, it_newton, alive = _newton(cm, time, xs, us, steps=newton_steps, tol_q=tol_q, merge_tol=tol_unique, merge_q=q_merge, check=check)
    stats["newton_iters"] = int(it_newton.max()) if it_newton.numel() else 0
    n_iters = n_adam + it_newton
    good = alive & torch.isfinite(qs) & (qs <= (tol_slow if keep_slow else tol_q))
    sel = good.nonzero().flatten()
    key = xs[sel] if us is None else torch.cat([xs[sel], us[sel]], -1)
    sel = sel[unique_leaders(key, qs[sel], tol_unique)]  # polished points may coincide
    if outlier_distance_scale and outlier_distance_scale > 0:
        inl = _distance_inliers(xs[sel], x0, outlier_distance_scale)
        stats["n_distance_outliers"] = int((~inl).sum())
        sel = sel[inl]
    xs, qs, n_iters = xs[sel], qs[sel], n_iters[sel]
    us = None if us is None else us[sel]
    J = residual_jacobians(cm, time, xs, us)
    if time == "discrete":
        J = J + torch.eye(cm.n, dtype=J.dtype, device=J.device)  # d step / dx; continuous: dF/dx (1/tau)
    lam = sorted_eigvals(J, time)
    k, kinds, rot = classify(lam, time)
    stats["n_points"] = int(xs.shape[0])
    return FixedPoints(
        xstar=xs,
        q=qs,
        eigvals=lam,
        n_unstable=k,
        kind=kinds,
        rotational=rot,
        is_slow=qs > tol_q,
        input=us if us is not None else xs.new_zeros(xs.shape[0], cm.n_in),
        n_iters=n_iters,
        time=time,
        jacobians=J if keep_jacobians else None,
        stats=stats,
    )
