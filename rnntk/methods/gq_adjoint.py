"""Neural-ODE gradients by the Gauss–Legendre quadrature adjoint (Norcliffe & Deisenroth, TMLR 2023).

The forward pass runs the real ``torchdiffeq.odeint`` under ``no_grad`` and keeps only the K+1
outputs y_k. The backward pass sweeps the output intervals k = K..1. On each it solves the
2S-dimensional system [x, a] backwards from t_k to t_{k-1},

    dx/dt = f(t, x),        da/dt = -(∂f/∂x)ᵀ a,

asking the solver for the states at the n_k Gauss–Legendre nodes of the interval (an adaptive
solver reads them off its dense output; the nodes do not force steps). The parameter gradient is
the quadrature of the adjoint integral,

    dL/dθ = Σ_k ∫_{t_{k-1}}^{t_k} a(t)ᵀ ∂f/∂θ(t, x(t)) dt ≈ Σ_k Σ_j h_k w_j a(τ_j)ᵀ ∂f/∂θ(τ_j, x(τ_j)),

one VJP with respect to θ per node, instead of carrying P parameter-adjoint states through every
stage of the backward solve (torchdiffeq's ``odeint_adjoint``). At t_{k-1} the state is reset to
the stored forward output (limits drift) and g_{k-1} = ∂L/∂y_{k-1} is added to a.

Node count per interval (upstream's rule, with our floor ``gq_nmin``):
    n_k = clamp(ceil(gtol · NFE_fwd · |t_k − t_{k−1}| / |t_K − t_0|), gq_nmin, gq_nmax),
unless ``gq_nodes`` fixes it. NFE_fwd is counted here, by a private wrapper around ``func``; the
user's module never needs (nor gets) an ``nfe`` attribute.

Time gradients (when ``t.requires_grad``) use the closed forms dL/dt_k = g_kᵀ f(t_k, y_k) for
k ≥ 1 and dL/dt_0 = −a(t_0⁺)ᵀ f(t_0, y_0).

``trajectory="store"`` (spec 1.4; dopri5, tensor state): the forward keeps torchdiffeq's dense
dopri5 interpolant (``odeint_dense``), and the backward solves only the S-dim adjoint with x(t)
read off that interpolant, so contracting dynamics are never integrated backwards. Internally it
works in s = ±t (increasing); the backward solves get ``step_t=[s_0]`` so no stage leaves the
interpolant's range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from torchdiffeq import odeint, odeint_dense
from torchdiffeq._impl.odeint import SOLVERS as _TD_SOLVERS

__all__ = ["odeint_adjoint_gq", "GQStats", "gauss_legendre", "gq_node_counts", "CountedField"]

_TRAJECTORIES = ("recompute", "store")
_ADAPTIVE = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun", "tsit5")


@dataclass
class GQStats:
    """Counts of one GQ-adjoint solve (``return_stats=True``).

    ``nfe_forward`` is set by the forward solve; the rest are filled in by ``backward``
    (``nfe_backward`` stays None until then).

    nfe_forward: calls of ``func`` in the forward solve.
    nfe_backward: calls of the backward (augmented or adjoint-only) dynamics.
    nfe_param_vjp: Gauss–Legendre nodes at which the θ-VJP was evaluated (all intervals).
    param_vjp_calls: calls of ``func`` made for those VJPs (one per interval when the nodes are
      batched with ``torch.func.vmap``, one per node when ``func`` cannot be vmapped).
    nodes_per_interval: n_k for intervals k = 1..K.
    cap_hits: intervals whose node count was clipped by ``gq_nmax``.
    restarts: backward solves (one per output interval).
    """

    nfe_forward: int = 0
    nfe_backward: Optional[int] = None
    nfe_param_vjp: int = 0
    param_vjp_calls: int = 0
    nodes_per_interval: list[int] = field(default_factory=list)
    cap_hits: int = 0
    restarts: int = 0


# ----------------------------------------------------------------------------------------------
# quadrature
# ----------------------------------------------------------------------------------------------
def gauss_legendre(n: int, a: float = -1.0, b: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """n-point Gauss–Legendre rule on [a, b] (float64 numpy arrays).

    Nodes are ordered from a towards b (so descending when b < a, and then the weights, which
    carry the factor (b − a)/2, are negative: Σ w_j F(τ_j) is the *oriented* integral ∫_a^b F).
    Exact for polynomials of degree ≤ 2n − 1.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    z, w = np.polynomial.legendre.leggauss(int(n))
    m = 0.5 * (float(a) + float(b))
    h = 0.5 * (float(b) - float(a))
    return m + h * z, h * w


def gq_node_counts(nfe_forward: int, t: Sequence[float], *, gtol: float, nmin: int, nmax: int,
                   nodes: Optional[int] = None) -> tuple[list[int], int]:
    """Nodes per interval (spec 1.3) and the number of intervals where the cap ``nmax`` bound."""
    t = [float(v) for v in t]
    K = len(t) - 1
    if nodes is not None:
        return [int(nodes)] * K, 0
    total = abs(t[-1] - t[0])
    counts, caps = [], 0
    for k in range(1, K + 1):
        raw = math.ceil(gtol * nfe_forward * abs(t[k] - t[k - 1]) / total - 1e-12)
        if raw > nmax:
            caps += 1
        counts.append(int(min(max(raw, nmin), nmax)))
    return counts, caps


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
class CountedField:
    """Callable wrapper that counts calls of a vector field ``func(t, y)`` in ``.n`` (no
    attribute is ever set on the user's module)."""

    def __init__(self, func: Callable):
        self.func = func
        self.n = 0

    def __call__(self, t, y):
        self.n += 1
        return self.func(t, y)


def _as_tuple_fn(func: Callable, is_tuple: bool) -> Callable:
    """Vector field on a tuple of tensors, whatever the user's state type."""
    if is_tuple:
        return lambda t, xs: tuple(func(t, tuple(xs)))
    return lambda t, xs: (func(t, xs[0]),)


def _dup_tol(tol, n: int):
    """Duplicate a per-component tolerance tuple for the [x, a] augmented state."""
    if isinstance(tol, (tuple, list)):
        if len(tol) != n:
            raise ValueError(f"tolerance tuple has {len(tol)} entries, state has {n} components")
        return tuple(tol) + tuple(tol)
    return tol


class _AugmentedDynamics:
    """[x, a] ↦ [f(t, x), −(∂f/∂x)ᵀ a] on a flat tuple (*xs, *as); counts its own calls."""

    def __init__(self, f_tuple: Callable, n: int):
        self.f = f_tuple
        self.n = n
        self.nfe = 0
        self.steps = _StepLog()

    def __call__(self, t, state):
        self.nfe += 1
        xs, adj = state[: self.n], state[self.n:]
        with torch.enable_grad():
            xs_ = tuple(x.detach().requires_grad_(True) for x in xs)
            fx = self.f(t, xs_)
            pairs = [(o, g) for o, g in zip(fx, adj) if o.requires_grad]
            if pairs:
                vjp = torch.autograd.grad([o for o, _ in pairs], xs_, [g for _, g in pairs],
                                          allow_unused=True)
            else:
                vjp = (None,) * self.n
        da = tuple(torch.zeros_like(x) if v is None else -v for x, v in zip(xs, vjp))
        return tuple(o.detach() for o in fx) + da


class _StepLog:
    """Accepted steps of the backward solves (torchdiffeq's ``callback_accept_step``; installed
    for adaptive solvers only, fixed-grid ones warn about callbacks)."""

    def __init__(self) -> None:
        self.last: Optional[float] = None
        self.count = 0

    def record(self, t0, y0, dt) -> None:
        self.last = abs(float(dt))
        self.count += 1

    def hint(self) -> Optional[float]:
        """The last accepted step if the previous interval needed at least two steps (then the
        initial-step heuristic would restart from a step far too small), else None; resets the
        count for the next interval."""
        h = self.last if self.count >= 2 else None
        self.count = 0
        return h


def _interval_options(base: dict, method: Optional[str], last_dt: Optional[float], length: float) -> dict:
    """Options of one interval's backward solve (spec 1.5). When the previous interval took
    several steps, an adaptive solver starts from its last accepted step (capped at the interval
    length) instead of re-running the initial-step heuristic; intervals shorter than a step keep
    the heuristic, which is cheaper there. A user's ``first_step`` always wins."""
    if (method or "dopri5") not in _ADAPTIVE or "first_step" in base or last_dt is None or last_dt <= 0:
        return base
    return {**base, "first_step": min(last_dt, abs(length))}


def _add_param_vjp(p_grad: list, f: Callable, taus: np.ndarray, w: np.ndarray, xs: tuple, adj: tuple,
                   params: tuple, cfg: dict) -> int:
    """Add Σ_j w_j a_jᵀ ∂f/∂θ(τ_j, x_j) over the n nodes of one interval to ``p_grad`` (in
    place); return the calls of f made.

    f maps (t, tuple of states) to a tuple; xs and adj are tuples of (n, *shape) tensors. The
    nodes go through one ``torch.func.vmap``-ed evaluation of f and one VJP (cotangents w_j a_j);
    a field that cannot be vmapped (``.item()``, data-dependent control flow, in-place updates of
    captured tensors, random ops) is evaluated node by node instead, remembered in ``cfg``.
    """
    gr, calls = _param_vjp(f, taus, w, xs, adj, params, cfg)
    for acc, g in zip(p_grad, gr or ()):
        if g is not None:
            acc.add_(g)
    return calls


def _param_vjp(f: Callable, taus: np.ndarray, w: np.ndarray, xs: tuple, adj: tuple,
               params: tuple, cfg: dict) -> tuple[Optional[tuple], int]:
    """The sum of :func:`_add_param_vjp` per parameter (None where f does not depend on θ)."""
    dev, dt_ = xs[0].device, xs[0].dtype
    n = len(taus)
    tj = torch.as_tensor(np.asarray(taus), dtype=dt_, device=dev)
    wj = torch.as_tensor(np.asarray(w), dtype=dt_, device=dev)
    xs = tuple(x.detach() for x in xs)
    if cfg.get("vmap_ok", True):
        try:
            with torch.enable_grad():
                fx = torch.func.vmap(lambda t_, *x_: tuple(f(t_, tuple(x_))))(tj, *xs)
                pairs = [(o, wj.view(n, *([1] * (a.dim() - 1))) * a) for o, a in zip(fx, adj) if o.requires_grad]
                if not pairs:
                    return None, 1
                gr = torch.autograd.grad([o for o, _ in pairs], params, [c for _, c in pairs], allow_unused=True)
            return gr, 1
        except Exception:  # not vmappable: fall back to one node at a time (real errors re-raise there)
            cfg["vmap_ok"] = False
    total: Optional[list] = None
    for j in range(n):
        with torch.enable_grad():
            fx = f(tj[j], tuple(x[j] for x in xs))
            pairs = [(o, float(w[j]) * a[j]) for o, a in zip(fx, adj) if o.requires_grad]
            if not pairs:
                continue
            gr = torch.autograd.grad([o for o, _ in pairs], params, [c for _, c in pairs], allow_unused=True)
        total = list(gr) if total is None else [g if t is None else (t if g is None else t + g) for t, g in zip(total, gr)]
    return (None if total is None else tuple(total)), n


# ----------------------------------------------------------------------------------------------
# autograd function
# ----------------------------------------------------------------------------------------------
class _GQAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cfg: dict, n_y: int, t: torch.Tensor, *tensors: torch.Tensor):
        y0 = tensors[:n_y]
        params = tensors[n_y:]
        counter = CountedField(cfg["func"])
        with torch.no_grad():
            y0_arg = tuple(y0) if cfg["is_tuple"] else y0[0]
            sol = odeint(counter, y0_arg, t, rtol=cfg["rtol"], atol=cfg["atol"],
                         method=cfg["method"], options=cfg["options"])
        sol = tuple(s.clone() for s in sol) if cfg["is_tuple"] else (sol,)
        cfg["stats"].nfe_forward = counter.n
        ctx.cfg = cfg
        ctx.n_y = n_y
        ctx.save_for_backward(t, *sol, *params)
        return sol

    @staticmethod
    def backward(ctx, *grad_y):
        cfg, n = ctx.cfg, ctx.n_y
        saved = ctx.saved_tensors
        t, sol, params = saved[0], saved[1:1 + n], saved[1 + n:]
        stats = cfg["stats"]
        f = _as_tuple_fn(cfg["func"], cfg["is_tuple"])
        K = len(t) - 1
        t64 = t.detach().to(torch.float64).cpu().tolist()
        counts, caps = gq_node_counts(stats.nfe_forward, t64, gtol=cfg["gtol"],
                                      nmin=cfg["nmin"], nmax=cfg["nmax"], nodes=cfg["nodes"])
        aug = _AugmentedDynamics(f, n)
        if (cfg["adjoint_method"] or "dopri5") in _ADAPTIVE:
            aug.callback_accept_step = aug.steps.record
        need_t = ctx.needs_input_grad[2]
        dev = sol[0].device

        adj = tuple(g[K].clone() for g in grad_y)
        p_grad = [torch.zeros_like(p) for p in params]
        n_vjp = calls = 0
        for k in range(K, 0, -1):
            xs = tuple(s[k] for s in sol)
            nk = counts[k - 1]
            tau, w = gauss_legendre(nk, t64[k], t64[k - 1])  # from t_k towards t_{k-1}
            # odeint integrates t_k -> t_{k-1}: the weights (b-a)/2·w are negated, so flip them
            # back to the orientation of ∫_{t_{k-1}}^{t_k}.
            w = -w
            grid = torch.tensor([t64[k], *tau.tolist(), t64[k - 1]], dtype=torch.float64, device=dev)
            opts = _interval_options(cfg["adjoint_options"], cfg["adjoint_method"], aug.steps.hint(), t64[k] - t64[k - 1])
            out = odeint(aug, xs + adj, grid, rtol=cfg["adjoint_rtol"], atol=cfg["adjoint_atol"],
                         method=cfg["adjoint_method"], options=opts)
            if params:
                calls += _add_param_vjp(p_grad, f, tau, w, tuple(o[1:1 + nk] for o in out[:n]),
                                        tuple(o[1:1 + nk] for o in out[n:]), params, cfg)
                n_vjp += nk
            adj = tuple(o[-1] for o in out[n:])
            if k > 1:
                adj = tuple(a + g[k - 1] for a, g in zip(adj, grad_y))

        t_grad = None
        if need_t:
            t_grad = torch.zeros(len(t), dtype=torch.float64, device=t.device)
            with torch.no_grad():
                for k in range(1, K + 1):
                    fk = f(t[k].to(sol[0].dtype), tuple(s[k] for s in sol))
                    t_grad[k] = sum((g[k] * o).sum().to(torch.float64) for g, o in zip(grad_y, fk))
                f0 = f(t[0].to(sol[0].dtype), tuple(s[0] for s in sol))
                if K >= 1:
                    t_grad[0] = -sum((a * o).sum().to(torch.float64) for a, o in zip(adj, f0))
            t_grad = t_grad.to(t.dtype)
        y0_grad = tuple(a + g[0] for a, g in zip(adj, grad_y)) if K >= 1 else tuple(g[0] for g in grad_y)

        stats.nfe_backward, stats.nfe_param_vjp, stats.param_vjp_calls = aug.nfe, n_vjp, calls
        stats.nodes_per_interval, stats.cap_hits, stats.restarts = counts, caps, K
        return (None, None, t_grad, *y0_grad, *p_grad)


class _GQAdjointStore(torch.autograd.Function):
    """trajectory="store": tensor state, dopri5 forward with the dense interpolant."""

    @staticmethod
    def forward(ctx, cfg: dict, t: torch.Tensor, y0: torch.Tensor, *params: torch.Tensor):
        func = cfg["func"]
        counter = CountedField(func)
        t64 = t.detach().to(torch.float64).cpu()
        sign = 1.0 if len(t64) < 2 or bool(t64[1] > t64[0]) else -1.0
        s64 = sign * t64

        def F(s_, y):  # dx/ds = sign · f(sign · s, x)
            return sign * counter(sign * s_, y)

        with torch.no_grad():
            sol = torch.empty(len(t64), *y0.shape, dtype=y0.dtype, device=y0.device)
            sol[0] = y0
            dense = None
            if len(t64) > 1:
                dense = odeint_dense(F, y0, s64[0], s64[-1], rtol=cfg["rtol"], atol=cfg["atol"],
                                     method="dopri5", options=cfg["options"])
                s_hi = torch.nextafter(s64[-1], torch.tensor(-math.inf, dtype=torch.float64))
                for k in range(1, len(t64)):
                    sol[k] = dense(torch.minimum(s64[k], s_hi))
        cfg["stats"].nfe_forward = counter.n
        ctx.cfg, ctx.sign, ctx.s64, ctx.dense = cfg, sign, s64, dense
        ctx.save_for_backward(t, sol, *params)
        return sol

    @staticmethod
    def backward(ctx, grad_y):
        cfg, sign, s64, dense = ctx.cfg, ctx.sign, ctx.s64, ctx.dense
        t, sol, *params = ctx.saved_tensors
        params = tuple(params)
        func, stats = cfg["func"], cfg["stats"]
        K = len(s64) - 1
        dev, dt_ = sol.device, sol.dtype
        s_lo = s64[0]
        s_hi = torch.nextafter(s64[-1], torch.tensor(-math.inf, dtype=torch.float64))
        s_list = s64.tolist()
        counts, caps = gq_node_counts(stats.nfe_forward, s_list, gtol=cfg["gtol"],
                                      nmin=cfg["nmin"], nmax=cfg["nmax"], nodes=cfg["nodes"])

        def x_at(s_):
            s_ = torch.as_tensor(s_, dtype=torch.float64).detach().cpu().reshape(())
            return dense(torch.clamp(s_, s_lo, s_hi))

        def F(s_, y):
            return sign * func(sign * s_, y)

        nfe = [0]

        def adj_dyn(s_, a):
            nfe[0] += 1
            with torch.enable_grad():
                x = x_at(s_).detach().requires_grad_(True)
                fx = F(s_, x)
                if not fx.requires_grad:
                    return torch.zeros_like(a)
                (v,) = torch.autograd.grad(fx, x, a, allow_unused=True)
            return torch.zeros_like(a) if v is None else -v

        opts = dict(cfg["adjoint_options"])
        step_t = [float(s_lo)]
        if "step_t" in opts:
            step_t += [float(v) for v in torch.as_tensor(opts["step_t"]).reshape(-1).tolist()
                       if float(v) != float(s_lo)]
        if (cfg["adjoint_method"] or "dopri5") in _ADAPTIVE:
            opts["step_t"] = torch.tensor(sorted(set(step_t)), dtype=torch.float64)

        steps = _StepLog()
        if (cfg["adjoint_method"] or "dopri5") in _ADAPTIVE:
            adj_dyn.callback_accept_step = steps.record

        def f_tuple(s_, xs):
            return (F(s_, xs[0]),)

        a = grad_y[K].clone()
        p_grad = [torch.zeros_like(p) for p in params]
        n_vjp = calls = 0
        for k in range(K, 0, -1):
            nk = counts[k - 1]
            tau, w = gauss_legendre(nk, s_list[k], s_list[k - 1])
            w = -w
            grid = torch.tensor([s_list[k], *tau.tolist(), s_list[k - 1]], dtype=torch.float64, device=dev)
            out = odeint(adj_dyn, a, grid, rtol=cfg["adjoint_rtol"], atol=cfg["adjoint_atol"],
                         method=cfg["adjoint_method"],
                         options=_interval_options(opts, cfg["adjoint_method"], steps.hint(), s_list[k] - s_list[k - 1]))
            if params:
                x_nodes = torch.stack([x_at(tj) for tj in tau]).to(dt_)
                calls += _add_param_vjp(p_grad, f_tuple, tau, w, (x_nodes,), (out[1:1 + nk],), params, cfg)
                n_vjp += nk
            a = out[-1]
            if k > 1:
                a = a + grad_y[k - 1]

        t_grad = None
        if ctx.needs_input_grad[1]:
            t_grad = torch.zeros(len(s64), dtype=torch.float64, device=t.device)
            with torch.no_grad():
                for k in range(1, K + 1):
                    t_grad[k] = (grad_y[k] * func(t[k].to(dt_), sol[k])).sum().to(torch.float64)
                if K >= 1:
                    t_grad[0] = -(a * func(t[0].to(dt_), sol[0])).sum().to(torch.float64)
            t_grad = t_grad.to(t.dtype)
        y0_grad = a + grad_y[0] if K >= 1 else grad_y[0]
        stats.nfe_backward, stats.nfe_param_vjp, stats.param_vjp_calls = nfe[0], n_vjp, calls
        stats.nodes_per_interval, stats.cap_hits, stats.restarts = counts, caps, K
        return (None, t_grad, y0_grad, *p_grad)


# ----------------------------------------------------------------------------------------------
# public entry point
# ----------------------------------------------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def odeint_adjoint_gq(func: Callable, y0, t: torch.Tensor, *, rtol=1e-7, atol=1e-9,
                      method: Optional[str] = None, options: Optional[dict] = None,
                      adjoint_rtol=None, adjoint_atol=None, adjoint_method: Optional[str] = None,
                      adjoint_options: Optional[dict] = None, adjoint_params=None,
                      gtol: float = 0.1, gq_nodes: Optional[int] = None, gq_nmin: int = 2,
                      gq_nmax: int = 64, trajectory: str = "recompute", return_stats: bool = False):
    """Solve dy/dt = func(t, y) like ``torchdiffeq.odeint``; gradients by the GQ adjoint.

    Arguments mirror ``torchdiffeq.odeint_adjoint`` (adjoint_* default to the forward ones;
    ``adjoint_options`` defaults to ``options`` without ``norm``; the backward norm defaults to
    torchdiffeq's mixed norm over the tuple [x, a], i.e. max of RMS(x), RMS(a): θ never enters).
    GQ options: ``gtol`` (> 0; larger means MORE nodes), ``gq_nodes`` (fixed count per interval,
    overrides the rule), ``gq_nmin`` / ``gq_nmax`` (clamp), ``trajectory`` ("recompute" | "store": the forward
    dopri5 dense output, so method must be None or "dopri5" and y0 a tensor).

    ``y0`` is a tensor or a tuple of tensors (then ``func`` maps tuples to tuples). Returns the
    solution (len(t), *y0.shape) (a tuple for tuple y0); with ``return_stats=True`` returns
    ``(solution, stats)``, a :class:`GQStats` with ``nfe_forward`` at once and the backward
    counts (NFE, nodes per interval, cap hits, restarts) once ``backward`` has run.
    """
    # ---- argument contract -------------------------------------------------------------------
    if not callable(func):
        raise ValueError(f"func must be callable, got {type(func).__name__}")
    if adjoint_params is None and not isinstance(func, nn.Module):
        raise ValueError("adjoint_params must be given when func is not an nn.Module (use () for none)")
    is_tuple = isinstance(y0, tuple)
    ys = tuple(y0) if is_tuple else (y0,)
    if not ys or not all(torch.is_tensor(v) for v in ys):
        raise ValueError("y0 must be a tensor or a non-empty tuple of tensors")
    if not all(v.is_floating_point() for v in ys):
        raise ValueError("y0 must be floating point")
    if not torch.is_tensor(t) or t.dim() != 1 or not t.is_floating_point() or len(t) < 1:
        raise ValueError("t must be a non-empty 1-D floating-point tensor")
    if len(t) > 1:
        d = t[1:] - t[:-1]
        if not (bool((d > 0).all()) or bool((d < 0).all())):
            raise ValueError("t must be strictly monotone (increasing or decreasing)")
    if isinstance(gtol, bool) or not isinstance(gtol, (int, float)) or not math.isfinite(gtol) or gtol <= 0:
        raise ValueError(f"gtol must be a finite number > 0, got {gtol!r}")
    if gq_nodes is not None and (not _is_int(gq_nodes) or gq_nodes < 1):
        raise ValueError(f"gq_nodes must be None or an integer ≥ 1, got {gq_nodes!r}")
    if not _is_int(gq_nmin) or gq_nmin < 1:
        raise ValueError(f"gq_nmin must be an integer ≥ 1, got {gq_nmin!r}")
    if not _is_int(gq_nmax) or gq_nmax < gq_nmin:
        raise ValueError(f"gq_nmax must be an integer ≥ gq_nmin ({gq_nmin}), got {gq_nmax!r}")
    if trajectory not in _TRAJECTORIES:
        raise ValueError(f"trajectory must be one of {_TRAJECTORIES}, got {trajectory!r}")
    if trajectory == "store" and is_tuple:
        raise ValueError("trajectory='store' needs a tensor y0 (torchdiffeq odeint_dense)")
    if trajectory == "store" and method not in (None, "dopri5"):
        raise ValueError(f"trajectory='store' needs method='dopri5' (the only torchdiffeq solver with a "
                         f"dense output), got method={method!r}; use trajectory='recompute'")
    for name, m in (("method", method), ("adjoint_method", adjoint_method)):
        if m is not None and m not in _TD_SOLVERS:
            raise ValueError(f"{name} must be one of {sorted(_TD_SOLVERS)}, got {m!r}")
    if options is not None and not isinstance(options, dict):
        raise ValueError("options must be a dict or None")
    if adjoint_options is not None and not isinstance(adjoint_options, dict):
        raise ValueError("adjoint_options must be a dict or None")
    if not isinstance(return_stats, bool):
        raise ValueError("return_stats must be a bool")

    # ---- defaults (torchdiffeq's odeint_adjoint conventions) --------------------------------
    if adjoint_rtol is None:
        adjoint_rtol = rtol
    if adjoint_atol is None:
        adjoint_atol = atol
    if adjoint_method is None:
        adjoint_method = method
    if adjoint_method != method and options is not None and adjoint_options is None:
        raise ValueError("adjoint_options must be given when adjoint_method differs from method "
                         "and options is given")
    if adjoint_options is None:
        adjoint_options = {k: v for k, v in options.items() if k != "norm"} if options else {}
    else:
        adjoint_options = dict(adjoint_options)
    if adjoint_params is None:
        adjoint_params = tuple(func.parameters())
    else:
        adjoint_params = tuple(adjoint_params)
    adjoint_params = tuple(p for p in adjoint_params if torch.is_tensor(p) and p.requires_grad)

    stats = GQStats()
    cfg = dict(func=func, is_tuple=is_tuple, rtol=rtol, atol=atol, method=method,
               options=None if options is None else dict(options),
               adjoint_rtol=_dup_tol(adjoint_rtol, len(ys)), adjoint_atol=_dup_tol(adjoint_atol, len(ys)),
               adjoint_method=adjoint_method, adjoint_options=adjoint_options,
               gtol=float(gtol), nodes=gq_nodes, nmin=int(gq_nmin), nmax=int(gq_nmax), stats=stats)
    if trajectory == "store":
        sol = _GQAdjointStore.apply(cfg, t, ys[0], *adjoint_params)
        return (sol, stats) if return_stats else sol
    out = _GQAdjoint.apply(cfg, len(ys), t, *ys, *adjoint_params)
    sol = tuple(out) if is_tuple else out[0]
    return (sol, stats) if return_stats else sol
