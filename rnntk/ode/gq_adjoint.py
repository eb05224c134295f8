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
used alone with ``gq_nodes=None``; an integer ``gq_nodes`` fixes it. NFE_fwd is counted here, by
a private wrapper around ``func``; the user's module never needs (nor gets) an ``nfe`` attribute.
With ``gq_nodes="auto"`` (the default; adaptive Runge–Kutta backward solvers) the rule is only the
start: each backward solve keeps its accepted steps' interpolants (``_dense_solve``, the values
odeint would return at the nodes), and after the sweep the n-point sums of all intervals are
checked against the (n−1)-point sums (issue 12); while the difference exceeds the adjoint
rtol/atol, the counts grow (by one node, checked against the previous sum, when that is
predicted to suffice; else to the predicted count, at most doubling), with no new solve.

Time gradients (when ``t.requires_grad``) use the closed forms dL/dt_k = g_kᵀ f(t_k, y_k) for
k ≥ 1 and dL/dt_0 = −a(t_0⁺)ᵀ f(t_0, y_0).

``trajectory="store"`` (spec 1.4; dopri5, tensor state): the forward keeps torchdiffeq's dense
dopri5 interpolant (``odeint_dense``), and the backward solves only the S-dim adjoint with x(t)
read off that interpolant, so contracting dynamics are never integrated backwards. Internally it
works in s = ±t (increasing); the backward solves get ``step_t=[s_0]`` so no stage leaves the
interpolant's range.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, TypeGuard, Union, cast

import numpy as np
import torch
from torch import nn
from torchdiffeq import odeint, odeint_dense

from rnntk.engine.compat import TD_SOLVERS as _TD_SOLVERS
from rnntk.engine.compat import RKAdaptiveStepsizeODESolver
from rnntk.engine.compat import td_adjoint_callback_names as _all_adjoint_callback_names
from rnntk.engine.compat import td_callback_names as _all_callback_names
from rnntk.engine.compat import td_check_inputs as _td_check_inputs
from rnntk.engine.compat import td_flat_to_shape as _flat_to_shape
from rnntk.engine.compat import td_interp_evaluate as _interp_evaluate
from rnntk.engine.compat import td_mixed_norm as _mixed_norm
from rnntk.engine.compat import td_rms_norm as _rms_norm

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
    nodes_per_interval: n_k for intervals k = 1..K (with ``gq_nodes="auto"``: the accepted rule's).
    cap_hits: intervals whose node count was clipped by ``gq_nmax`` (with "auto": intervals whose
      error estimate was still above tolerance at ``gq_nmax`` nodes).
    restarts: backward solves (one per output interval).
    refinements: rounds after the first, each after a failed error estimate ("auto"; the counts
      grow, no interval is solved again: the new nodes are read off the same solve's interpolants).
    quad_error_ratio: the largest accepted estimate / tolerance ("auto"; ≤ 1 unless capped).
    """

    nfe_forward: int = 0
    nfe_backward: Optional[int] = None
    nfe_param_vjp: int = 0
    param_vjp_calls: int = 0
    nodes_per_interval: list[int] = field(default_factory=list)
    cap_hits: int = 0
    restarts: int = 0
    refinements: int = 0
    quad_error_ratio: float = 0.0


# ----------------------------------------------------------------------------------------------
# quadrature
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _leggauss(n: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy's n-point rule on [−1, 1], cached (0.2 ms a call; "auto" asks for it per interval
    and round). Read-only arrays."""
    z, w = np.polynomial.legendre.leggauss(n)
    z.setflags(write=False)
    w.setflags(write=False)
    return z, w


def gauss_legendre(n: int, a: float = -1.0, b: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """n-point Gauss–Legendre rule on [a, b] (float64 numpy arrays).

    Nodes are ordered from a towards b (so descending when b < a, and then the weights, which
    carry the factor (b − a)/2, are negative: Σ w_j F(τ_j) is the *oriented* integral ∫_a^b F).
    Exact for polynomials of degree ≤ 2n − 1.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    z, w = _leggauss(int(n))
    m = 0.5 * (float(a) + float(b))
    h = 0.5 * (float(b) - float(a))
    return m + h * z, h * w


def gq_node_counts(nfe_forward: int, t: Sequence[float], *, gtol: float, nmin: int, nmax: int, nodes: Optional[int] = None) -> tuple[list[int], int]:
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
    attribute is ever set on the user's module). torchdiffeq's step callbacks of ``func``
    (``callback_step``, ``callback_accept_step``, ``callback_reject_step`` and their ``_adjoint``
    versions) are exposed on the wrapper, so solvers call them as they would on ``func``."""

    def __init__(self, func: Callable):
        self.func = func
        self.n = 0
        for name in (*_all_callback_names, *_all_adjoint_callback_names):
            cb = getattr(func, name, None)
            if cb is not None:
                setattr(self, name, cb)

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
        xs, adj = state[: self.n], state[self.n :]
        with torch.enable_grad():
            xs_ = tuple(x.detach().requires_grad_(True) for x in xs)
            fx = self.f(t, xs_)
            pairs = [(o, g) for o, g in zip(fx, adj) if o.requires_grad]
            if pairs:
                vjp = torch.autograd.grad([o for o, _ in pairs], xs_, [g for _, g in pairs], allow_unused=True)
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


def _param_vjp(
    f: Callable, taus: np.ndarray, weights: np.ndarray, xs: tuple, adj: tuple, params: tuple, cfg: dict, sinks: Optional[Sequence[Optional[Callable]]] = None
) -> tuple:
    """Σ_j w_j a_jᵀ ∂f/∂θ(τ_j, x_j) over the quadrature nodes ``taus`` (n,), for ``weights`` (n,)
    or for each row of ``weights`` (R, n); returns (the gradient tuple, or a list of R of them
    for 2-D weights, None where f does not depend on θ; the calls of f made). ``sinks[r]``, if
    given, maps row r's gradient tuple to what is returned in its place, as soon as it exists
    (e.g. its norms, so that its parameter-sized buffers are freed before the next row's).

    f maps (t, tuple of states) to a tuple; xs and adj are tuples of (n, *shape) tensors. The
    nodes go through one ``torch.func.vmap``-ed evaluation of f and one VJP per weight row
    (cotangents w_rj a_j, the graph kept for the next row); a field that cannot be vmapped
    (``.item()``, data-dependent control flow, in-place updates of captured tensors, random ops)
    is evaluated node by node instead, remembered in ``cfg``.
    """
    single = np.ndim(weights) == 1
    wmat = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    R = wmat.shape[0]
    dev, dt_ = xs[0].device, xs[0].dtype
    n = len(taus)
    tj = torch.as_tensor(np.asarray(taus), dtype=dt_, device=dev)
    wj = torch.as_tensor(wmat, dtype=dt_, device=dev)
    xs = tuple(x.detach() for x in xs)
    if cfg.get("vmap_ok", True):
        try:
            out: list = [None] * R
            with torch.enable_grad():
                fx = torch.func.vmap(lambda t_, *x_: tuple(f(t_, tuple(x_))))(tj, *xs)
                outs = [(o, a) for o, a in zip(fx, adj) if o.requires_grad]
                for r in range(R if outs else 0):
                    cots = [wj[r].view(n, *([1] * (a.dim() - 1))) * a for _, a in outs]
                    out[r] = torch.autograd.grad([o for o, _ in outs], params, cots, retain_graph=r < R - 1, allow_unused=True)
                    sink = sinks[r] if sinks is not None else None
                    if sink is not None:
                        out[r] = sink(out[r])
            return (out[0] if single else out), 1
        except Exception:  # not vmappable: fall back to one node at a time (real errors re-raise there)
            cfg["vmap_ok"] = False
    totals: list = [None] * R
    for j in range(n):
        with torch.enable_grad():
            fx = f(tj[j], tuple(x[j] for x in xs))
            outs = [(o, a[j]) for o, a in zip(fx, adj) if o.requires_grad]
            if not outs:
                continue
            gr = torch.autograd.grad([o for o, _ in outs], params, [c for _, c in outs], allow_unused=True)
        for r in range(R):
            wr = float(wmat[r, j])
            if wr == 0.0:
                continue
            if totals[r] is None:
                totals[r] = [None] * len(params)
            acc = totals[r]
            for i, g in enumerate(gr):
                if g is not None:
                    acc[i] = wr * g if acc[i] is None else acc[i].add_(g, alpha=wr)
    res = [None if t is None else tuple(t) for t in totals]
    if sinks is not None:
        res = [v if v is None or sk is None else sk(v) for v, sk in zip(res, sinks)]
    return (res[0] if single else res), n


def _dense_solve(func: Callable, state: tuple, t_from: float, t_to: float, rtol, atol, method: Optional[str], options: dict):
    """Solve a tuple state from ``t_from`` to ``t_to`` (either direction) with one of torchdiffeq's
    adaptive Runge–Kutta solvers, keeping every accepted step's interpolant (what ``odeint``
    evaluates at requested output times). Returns (end state, ``at(taus)``), where ``at`` gives the
    states at times in [t_to, t_from] as a tuple of (len(taus), *shape) tensors. The steps are the
    ones ``odeint`` takes (output times never force steps), so the values equal odeint's."""
    dev = state.device if torch.is_tensor(state) else state[0].device
    t = torch.tensor([t_from, t_to], dtype=torch.float64, device=dev)
    shapes, f_, y0, t_, rtol_, atol_, method_, options_, _, rev = _td_check_inputs(func, state, t, rtol, atol, method, options, None, _TD_SOLVERS)
    solver = _TD_SOLVERS[method_](func=f_, y0=y0, rtol=rtol_, atol=atol_, **options_)
    t_ = t_.to(solver.dtype)
    solver._before_integrate(t_)
    t0s, t1s, coeffs = [], [], []
    n_steps = 0
    while t_[1] > solver.rk_state.t1:
        if n_steps >= solver.max_num_steps:
            raise AssertionError(f"max_num_steps exceeded ({n_steps}>={solver.max_num_steps})")
        prev = solver.rk_state.t1
        solver.rk_state = solver._adaptive_step(solver.rk_state)
        n_steps += 1
        if solver.rk_state.t1 != prev:  # accepted
            t0s.append(solver.rk_state.t0)
            t1s.append(solver.rk_state.t1)
            coeffs.append(solver.rk_state.interp_coeff)
    st = solver.rk_state
    end = _interp_evaluate(st.interp_coeff, st.t0, st.t1, t_[1])
    end = (end,) if shapes is None else _flat_to_shape(end, (), shapes)
    t1_list = [float(v) for v in t1s]

    def at(taus) -> tuple:
        vals = []
        for tau in taus:
            s = -float(tau) if rev else float(tau)
            i = min(bisect.bisect_left(t1_list, s), len(t1_list) - 1)
            s_t = torch.tensor(s, dtype=solver.dtype, device=dev)
            vals.append(_interp_evaluate(coeffs[i], t0s[i], t1s[i], s_t))
        vals = torch.stack(vals)
        return (vals,) if shapes is None else _flat_to_shape(vals, (len(vals),), shapes)

    return end, at


def _scalar_tol(tol) -> float:
    """The tightest entry of a float / tensor / per-component tuple tolerance."""
    if isinstance(tol, (tuple, list)):
        return min(_scalar_tol(v) for v in tol)
    return float(torch.as_tensor(tol).min())


def _norms(ts) -> list:
    """Euclidean norm of each tensor (None stays None)."""
    return [None if t is None else torch.linalg.vector_norm(t) for t in ts]


def _quad_error_ratio(acc: list, e_norms: list, rtol: float, atol: float) -> float:
    """max over parameter tensors of RMS(e) / (atol + rtol·RMS(acc)), from the error estimate's
    norms ``e_norms`` (:func:`_norms`; None: no estimate for that tensor) and the gradient
    ``acc``: the norm-wise tolerance of vector-valued quadrature (as scipy's ``quad_vec``), per
    tensor as torchdiffeq's mixed norm over its parameter-adjoint states. One pass over the
    parameters, one sync."""
    rs = [en / (atol * math.sqrt(a.numel()) + rtol * torch.linalg.vector_norm(a)) for a, en in zip(acc, e_norms) if en is not None]
    return float(torch.stack(rs).max()) if rs else 0.0


def _auto_mode(cfg: dict) -> bool:
    """gq_nodes="auto" with an adaptive Runge–Kutta backward solver (its interpolants give the
    states at any node); fixed-grid solvers use the gtol rule."""
    return cfg["nodes"] == "auto" and issubclass(_TD_SOLVERS[cfg["adjoint_method"] or "dopri5"], RKAdaptiveStepsizeODESolver)


def _quadrature_interval(n: int, t_from: float, t_to: float, solve: Callable, f: Callable, params: tuple, p_grad: list, cfg: dict, tally: dict):
    """The n-point Gauss–Legendre quadrature of the adjoint integral over one output interval
    (fixed count or the gtol rule), solved from ``t_from`` back to ``t_to``; adds it to
    ``p_grad`` and returns the solve's end state. ``solve(taus)`` integrates the backward system
    from t_from through the node times ``taus`` (ordered from t_from towards t_to) to t_to and
    returns (end state, x at taus, a at taus)."""
    tau, w = gauss_legendre(n, t_from, t_to)
    end, x_nodes, a_nodes = solve(tau)
    if params:
        # odeint runs t_from -> t_to (backwards): flip w to the orientation of ∫_{t_to}^{t_from}
        grads, calls = _param_vjp(f, tau, -w, x_nodes, a_nodes, params, cfg)
        tally["calls"] += calls
        tally["evals"] += n
        for acc, g in zip(p_grad, grads or ()):
            if g is not None:
                acc.add_(g)
    return end


_CHUNK_NUMBERS = 1 << 22  # state numbers (nodes × state size) per vmapped VJP call


def _chunks(items: list) -> list:
    """Consecutive groups of per-interval node sets ``(taus, weights, (xs, adj))`` whose nodes
    hold at most _CHUNK_NUMBERS state numbers (one group unless the batch, the intervals and the
    nodes are all large)."""
    groups, cur, size = [], [], 0
    for it in items:
        numel = len(it[0]) * sum(x[0].numel() for x in it[2][0])
        if cur and size + numel > _CHUNK_NUMBERS:
            groups.append(cur)
            cur, size = [], 0
        cur.append(it)
        size += numel
    return groups + [cur] if cur else groups


# A pair round whose nodes hold at most this many state numbers evaluates f once over both node
# sets: with so few rows per evaluation its cost is the passes over the parameters (the field's
# weights read, parameter-sized gradients written), and one shared evaluation saves a read of
# the weights, the second gradient and the subtraction. Above it the node rows dominate, and the
# two rules are evaluated separately (a shared evaluation would backpropagate every row twice).
_SHARED_PAIR_NUMBERS = 128


def _weighted_sums(items: list, f: Callable, params: tuple, cfg: dict, tally: dict, sinks: Optional[list] = None) -> list:
    """Σ over ``items`` (per interval: nodes τ (m,), weight rows (R, m), (x, a) at τ) of each
    weight row's Σ_j w_rj a_jᵀ ∂f/∂θ(τ_j, x_j), chunked (:func:`_chunks`); a list of R lists,
    None where f does not depend on that parameter. ``sinks`` (one chunk only) as in
    :func:`_param_vjp`."""
    R = len(items[0][1])
    totals: list = [None] * R
    for sel in _chunks(items):
        taus = np.concatenate([it[0] for it in sel])
        wts = np.concatenate([it[1] for it in sel], axis=1)
        xs = tuple(torch.cat(parts) for parts in zip(*[it[2][0] for it in sel]))
        adj = tuple(torch.cat(parts) for parts in zip(*[it[2][1] for it in sel]))
        gs, calls = _param_vjp(f, taus, wts, xs, adj, params, cfg, sinks)
        tally["calls"] += calls
        tally["evals"] += len(taus)
        for r, g in enumerate(gs):
            if g is None:
                continue
            if totals[r] is None:
                totals[r] = list(g)
            else:
                totals[r] = [b if a is None else (a if b is None else a.add_(b)) for a, b in zip(totals[r], g)]
    return [t if t is not None else [None] * len(params) for t in totals]


def _rule_sums(intervals: list, hi: list, lo: Optional[list], f: Callable, params: tuple, cfg: dict, tally: dict) -> tuple[list, Optional[list]]:
    """The adjoint integral Σ_k by the hi[k]-point rule on every interval, G_hi (a list, None
    where f does not depend on that parameter), and with ``lo`` the norms (:func:`_norms`) of
    the error estimate G_lo − G_hi, the lo[k]-point rules' sum minus G_hi (a 0-point rule is 0);
    else None. When the nodes of both rules hold at most _SHARED_PAIR_NUMBERS state numbers, both
    come from one vmapped evaluation of f over both rules' nodes and one VJP each: the
    difference is the VJP with the cotangents w_lo a on the lo nodes and −w_hi a on the hi
    nodes, taken first and reduced to its norms at once, so that one parameter-sized gradient is
    alive at a time. Otherwise each rule's nodes get their own evaluation and VJP, and the
    difference is taken in place."""

    def rule(t_from: float, t_to: float, n: int) -> tuple[np.ndarray, np.ndarray]:
        if n == 0:
            return np.zeros(0), np.zeros(0)
        tau, w = gauss_legendre(n, t_from, t_to)
        return tau, -w  # ∫_{t_to}^{t_from} (odeint ran backwards)

    if lo is None:
        items = []
        for (t_from, t_to, at), n in zip(intervals, hi):
            if n > 0:
                tau, w = rule(t_from, t_to, n)
                items.append((tau, w[None], at(tau)))
        return (_weighted_sums(items, f, params, cfg, tally)[0] if items else [None] * len(params)), None
    per_node = sum(v[0].numel() for v in intervals[0][2](np.array([intervals[0][0]]))[0])
    if (sum(hi) + sum(lo)) * per_node <= _SHARED_PAIR_NUMBERS:
        items = []
        for (t_from, t_to, at), n, m in zip(intervals, hi, lo):
            (tau, w), (tau_lo, w_lo) = rule(t_from, t_to, n), rule(t_from, t_to, m)
            wts = np.stack([np.concatenate([-w, w_lo]), np.concatenate([w, np.zeros(m)])])  # [G_lo − G_hi, G_hi]
            tau = np.concatenate([tau, tau_lo])
            items.append((tau, wts, at(tau)))
        one_chunk = len(_chunks(items)) == 1
        e, g = _weighted_sums(items, f, params, cfg, tally, [_norms, None] if one_chunk else None)
        return g, (e if one_chunk else _norms(e))
    g_lo, _ = _rule_sums(intervals, lo, None, f, params, cfg, tally)
    g_hi, _ = _rule_sums(intervals, hi, None, f, params, cfg, tally)
    # G_lo − G_hi in place (no new parameter-sized buffer)
    e = [None if g is None else (-g if d is None else d.sub_(g)) for d, g in zip(g_lo, g_hi)]
    return g_hi, _norms(e)


# gq_nodes="auto" picks its next node counts from the error estimates by assuming the quadrature
# error shrinks geometrically, by a factor q per added node: q from the last two estimates,
# _Q_GUESS before there are two, clamped to [_Q_MIN, _Q_MAX]. The guess only steers the choice of
# counts; a sum is accepted only on an estimate within tolerance.
_Q_GUESS, _Q_MIN, _Q_MAX = 0.1, 1e-4, 0.7
_SAFE = 0.5  # a count is predicted fine when its predicted estimate is ≤ _SAFE × tolerance


def _auto_quadrature(intervals: list, counts: list, f: Callable, params: tuple, cfg: dict, tally: dict) -> tuple[list, list]:
    """gq_nodes="auto": the adjoint integral over all output intervals with error control, after
    the backward sweep. ``intervals[i] = (t_from, t_to, at)``, ``at(taus)`` giving (x, a) at any
    times of that interval from the backward solve's own interpolants (the values odeint returns
    at output times); ``counts[i]`` is the starting n. The counts move together by a level s:
    n_i(s) = min(counts[i] + s, gq_nmax). Every round computes one sum G(s) (the answer: all
    intervals' nodes in one vmapped VJP) and an error estimate of the whole gradient, checked
    norm-wise against the adjoint rtol/atol (:func:`_quad_error_ratio`; rtol at least 10 machine
    epsilons); the first passing round's G(s) is returned. Two kinds of round:

    - pair: G(s) and the (n_i − 1)-point sums at the same time, one evaluation of f over both
      node sets (the first round, and after an estimate far above tolerance);
    - step: G(s + 1) alone, compared with the previous round's G(s) (no new (n−1)-point
      nodes), when the last estimates predict that G(s) is already within tolerance.

    Either way the estimate is the difference between a rule and a lower one, which bounds the
    error of the returned (higher) rule from above for a converging quadrature. After a failed
    estimate the next level is the lowest that the geometric model predicts within tolerance
    (at most doubling the counts), with no new solve. Returns (the counts, the parameter
    gradients)."""
    rtol = max(cfg["quad_rtol"], 10 * torch.finfo(cfg["dtype"]).eps)
    atol, nmax = cfg["quad_atol"], cfg["nmax"]
    level, pair = 0, True
    G: Optional[list] = None
    history: list = []  # (level whose sum the estimate measures, estimate / tolerance)
    while True:
        ns = [min(n + level, nmax) for n in counts]
        if pair:
            G, e_norms = _rule_sums(intervals, ns, [n - 1 for n in ns], f, params, cfg, tally)
            assert e_norms is not None  # lower counts given: the pair's difference norms
        else:
            assert G is not None  # a step round follows a round that set G
            prev, (G, _) = G, _rule_sums(intervals, ns, None, f, params, cfg, tally)
            # G(s) − G(s + 1) in place (no new parameter-sized buffers: their page faults dominate)
            e_norms = _norms([None if g is None else (g if p is None else p.sub_(g)) for p, g in zip(prev, G)])
            del prev
        measured = level - 1  # the level whose sum the estimate measures
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, G)]
        if all(g is None for g in G):
            return ns, grads
        ratio = _quad_error_ratio(grads, e_norms, rtol, atol)
        if ratio <= 1.0 or (pair and all(n >= nmax for n in ns)):
            if ratio > 1.0:
                tally["caps"] += len(ns)
            tally["ratio"] = ratio
            return ns, grads
        history.append((measured, ratio))
        q = _Q_GUESS
        if len(history) >= 2:
            (s_a, r_a), (s_b, r_b) = history[-2:]
            q = (r_b / r_a) ** (1.0 / (s_b - s_a)) if r_a > 0 and r_b > 0 else _Q_GUESS
        q = min(max(q, _Q_MIN), _Q_MAX)
        if ratio * q ** (level - measured) <= _SAFE and all(n < nmax for n in ns):
            level, pair = level + 1, False  # G(level) predicted fine: check it against G(level + 1)
        else:  # the lowest level predicted fine, checked by a pair round one level above it
            need = measured + math.ceil(math.log(_SAFE / ratio) / math.log(q) - 1e-9)
            level, pair = level + min(max(need + 1 - level, 1), max(min(ns), 1)), True
        tally["refinements"] += 1


def _install_callbacks(target, user: Callable, *, adjoint: bool, record: Optional[Callable] = None, to_user: Optional[Callable] = None) -> None:
    """Set torchdiffeq's step callbacks of the user's ``func`` on ``target``, a vector field that
    rnntk hands to ``odeint``: the forward ones (``adjoint=False``) or the ``*_adjoint`` ones for a
    backward solve (as torchdiffeq's ``odeint_adjoint`` does), optionally with the arguments mapped
    by ``to_user(t0, y0, dt)``; ``record`` (our step log) is chained into callback_accept_step."""
    names = _all_adjoint_callback_names if adjoint else _all_callback_names

    def wrap(c):
        mapper = to_user
        return c if mapper is None else (lambda t0, y0, dt: c(*mapper(t0, y0, dt)))

    def chain(c, record: Callable):
        return lambda t0, y0, dt: (record(t0, y0, dt), c(t0, y0, dt))

    for name, src in zip(_all_callback_names, names):
        cb = getattr(user, src, None)
        if cb is not None:
            cb = wrap(cb)
        if name == "callback_accept_step" and record is not None:
            cb = record if cb is None else chain(cb, record)
        if cb is not None:
            setattr(target, name, cb)


def _adjoint_norm(norm_opt, state_norm: Optional[Callable], n: int, is_tuple: bool) -> Callable:
    """The norm of the backward state (*xs, *as) from ``adjoint_options["norm"]`` (torchdiffeq's
    conventions). None or ``"seminorm"``: max of the forward state norm (``options["norm"]``, else
    RMS for a tensor and the mixed RMS norm for a tuple) of x and of a, which is torchdiffeq's
    seminorm, since GQ carries no θ-adjoint state. A callable gets torchdiffeq's layout
    (t-adjoint, *y, *adj_y, *θ-adjoint) with a zero t-adjoint and no θ-adjoint entries."""

    def snorm(parts):
        if state_norm is None:
            return _mixed_norm(parts) if is_tuple else _rms_norm(parts[0])
        return state_norm(tuple(parts)) if is_tuple else state_norm(parts[0])

    if norm_opt is None or isinstance(norm_opt, str):
        return lambda aug: max(snorm(aug[:n]), snorm(aug[n:]))
    return lambda aug: norm_opt((torch.zeros((), dtype=aug[0].dtype, device=aug[0].device), *aug))


# ----------------------------------------------------------------------------------------------
# autograd function
# ----------------------------------------------------------------------------------------------
def _start_counts(cfg: dict, stats: GQStats, t_list: list) -> tuple[list, int]:
    """Nodes per interval to start from: the fixed count, or the gtol rule (≥ 2 for "auto")."""
    fixed = int(cfg["nodes"]) if _is_int(cfg["nodes"]) else None
    counts, caps = gq_node_counts(stats.nfe_forward, t_list, gtol=cfg["gtol"], nmin=cfg["nmin"], nmax=cfg["nmax"], nodes=fixed)
    if cfg["nodes"] == "auto":
        return [min(max(c, 2), cfg["nmax"]) for c in counts], 0
    return counts, caps


def _finish_stats(stats: GQStats, counts: list, caps: int, tally: dict, nfe_backward: int, K: int) -> None:
    stats.nfe_backward, stats.nfe_param_vjp, stats.param_vjp_calls = nfe_backward, tally["evals"], tally["calls"]
    stats.nodes_per_interval, stats.cap_hits, stats.restarts = counts, caps + tally["caps"], K
    stats.refinements, stats.quad_error_ratio = tally["refinements"], tally["ratio"]


class _GQAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cfg: dict, n_y: int, t: torch.Tensor, *tensors: torch.Tensor):
        y0 = tensors[:n_y]
        params = tensors[n_y:]
        counter = CountedField(cfg["func"])
        event_fn = cfg["event_fn"]
        with torch.no_grad():
            y0_arg = tuple(y0) if cfg["is_tuple"] else y0[0]
            sol = odeint(counter, y0_arg, t, rtol=cfg["rtol"], atol=cfg["atol"], method=cfg["method"], options=cfg["options"], event_fn=event_fn)
        if event_fn is not None:
            event_t, sol = sol
            grid = torch.cat([t[:1].detach(), event_t.detach().reshape(1).to(t)])
        else:
            event_t, grid = None, t.detach()
        # odeint returns a tuple of tensors for a tuple y0, else a tensor
        sol = tuple(s.clone() for s in cast(tuple[torch.Tensor, ...], sol)) if cfg["is_tuple"] else (cast(torch.Tensor, sol),)
        cfg["stats"].nfe_forward = counter.n
        ctx.cfg = cfg
        ctx.n_y = n_y
        ctx.save_for_backward(grid, *sol, *params)
        return sol if event_fn is None else (event_t, *sol)

    @staticmethod
    def backward(ctx, *grad_y):
        cfg, n = ctx.cfg, ctx.n_y
        event_mode = cfg["event_fn"] is not None
        if event_mode:  # as torchdiffeq: backprop up to the event time, not through it
            grad_y = grad_y[1:]
        saved = ctx.saved_tensors
        t, sol, params = saved[0], saved[1 : 1 + n], saved[1 + n :]
        stats = cfg["stats"]
        f = _as_tuple_fn(cfg["func"], cfg["is_tuple"])
        K = len(t) - 1
        t64 = t.detach().to(torch.float64).cpu().tolist()
        counts, caps = _start_counts(cfg, stats, t64)
        aug = _AugmentedDynamics(f, n)
        adaptive = (cfg["adjoint_method"] or "dopri5") in _ADAPTIVE
        _install_callbacks(aug, cfg["func"], adjoint=True, record=aug.steps.record if adaptive else None)
        need_t = ctx.needs_input_grad[2]
        dev = sol[0].device

        adj = tuple(g[K].clone() for g in grad_y)
        tally = dict(calls=0, evals=0, caps=0, refinements=0, ratio=0.0)
        auto, pending, slots = _auto_mode(cfg), [], []
        # auto: the gradients come from _auto_quadrature (no zero buffers to add into)
        p_grad = [torch.zeros_like(p) for p in params] if not auto else None
        for k in range(K, 0, -1):
            xs = tuple(s[k] for s in sol)
            if t64[k] != t64[k - 1]:  # (an event at t0 gives an empty interval)
                opts = _interval_options(cfg["adjoint_options"], cfg["adjoint_method"], aug.steps.hint(), t64[k] - t64[k - 1])

                def solve(taus, xs=xs, adj=adj, opts=opts, k=k):
                    grid = torch.tensor([t64[k], *taus.tolist(), t64[k - 1]], dtype=torch.float64, device=dev)
                    out = odeint(aug, xs + adj, grid, rtol=cfg["adjoint_rtol"], atol=cfg["adjoint_atol"], method=cfg["adjoint_method"], options=opts)
                    m = len(taus)
                    return (tuple(o[-1] for o in out[n:]), tuple(o[1 : 1 + m] for o in out[:n]), tuple(o[1 : 1 + m] for o in out[n:]))

                if auto:
                    end, at = _dense_solve(aug, xs + adj, t64[k], t64[k - 1], cfg["adjoint_rtol"], cfg["adjoint_atol"], cfg["adjoint_method"], opts)
                    pending.append((t64[k], t64[k - 1], lambda taus, at=at: (lambda v: (v[:n], v[n:]))(at(taus))))
                    slots.append(k - 1)
                    adj = end[n:]
                else:
                    assert p_grad is not None  # allocated when not auto
                    adj = _quadrature_interval(counts[k - 1], t64[k], t64[k - 1], solve, f, params, p_grad, cfg, tally)
            if k > 1:
                adj = tuple(a + g[k - 1] for a, g in zip(adj, grad_y))
        if p_grad is None and pending and params:
            ns, p_grad = _auto_quadrature(pending, [counts[i] for i in slots], f, params, cfg, tally)
            for i, n_i in zip(slots, ns):
                counts[i] = n_i
        if p_grad is None:
            p_grad = [torch.zeros_like(p) for p in params]

        t_grad = None
        if need_t:
            t_grad = torch.zeros(len(t), dtype=torch.float64, device=t.device)
            with torch.no_grad():
                if not event_mode:
                    for k in range(1, K + 1):
                        fk = f(t[k].to(sol[0].dtype), tuple(s[k] for s in sol))
                        t_grad[k] = sum((g[k] * o).sum().to(torch.float64) for g, o in zip(grad_y, fk))
                f0 = f(t[0].to(sol[0].dtype), tuple(s[0] for s in sol))
                if K >= 1:
                    t_grad[0] = -sum((a * o).sum().to(torch.float64) for a, o in zip(adj, f0))
            t_grad = t_grad.to(t.dtype)
        y0_grad = tuple(a + g[0] for a, g in zip(adj, grad_y)) if K >= 1 else tuple(g[0] for g in grad_y)
        _finish_stats(stats, counts, caps, tally, aug.nfe, K)
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

        _install_callbacks(F, func, adjoint=False, to_user=lambda s0, y, ds: (sign * s0, y, ds))
        with torch.no_grad():
            sol = torch.empty(len(t64), *y0.shape, dtype=y0.dtype, device=y0.device)
            sol[0] = y0
            dense = None
            if len(t64) > 1:
                dense = odeint_dense(F, y0, s64[0], s64[-1], rtol=cfg["rtol"], atol=cfg["atol"], method="dopri5", options=cfg["options"])
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
        counts, caps = _start_counts(cfg, stats, s_list)

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
            step_t += [float(v) for v in torch.as_tensor(opts["step_t"]).reshape(-1).tolist() if float(v) != float(s_lo)]
        adaptive = (cfg["adjoint_method"] or "dopri5") in _ADAPTIVE
        if adaptive:
            opts["step_t"] = torch.tensor(sorted(set(step_t)), dtype=torch.float64)

        steps = _StepLog()
        # the user's *_adjoint callbacks get (t0, (x, a), dt) as in the recompute mode
        _install_callbacks(
            adj_dyn, func, adjoint=True, record=steps.record if adaptive else None, to_user=lambda s0, a, ds: (sign * s0, (x_at(s0).to(dt_), a), ds)
        )

        def f_tuple(s_, xs):
            return (F(s_, xs[0]),)

        a = grad_y[K].clone()
        tally = dict(calls=0, evals=0, caps=0, refinements=0, ratio=0.0)
        auto, pending = _auto_mode(cfg), []
        p_grad = [torch.zeros_like(p) for p in params] if not auto else None
        for k in range(K, 0, -1):
            o = _interval_options(opts, cfg["adjoint_method"], steps.hint(), s_list[k] - s_list[k - 1])

            def solve(taus, a=a, o=o, k=k):
                grid = torch.tensor([s_list[k], *taus.tolist(), s_list[k - 1]], dtype=torch.float64, device=dev)
                out = odeint(adj_dyn, a, grid, rtol=cfg["adjoint_rtol"], atol=cfg["adjoint_atol"], method=cfg["adjoint_method"], options=o)
                m = len(taus)
                x_nodes = torch.stack([x_at(tj) for tj in taus]).to(dt_)
                return out[-1], (x_nodes,), (out[1 : 1 + m],)

            if auto:
                end, at = _dense_solve(adj_dyn, a, s_list[k], s_list[k - 1], cfg["adjoint_rtol"], cfg["adjoint_atol"], cfg["adjoint_method"], o)
                pending.append((s_list[k], s_list[k - 1], lambda taus, at=at: ((torch.stack([x_at(tj) for tj in taus]).to(dt_),), at(taus))))
                a = end[0]
            else:
                assert p_grad is not None  # allocated when not auto
                a = _quadrature_interval(counts[k - 1], s_list[k], s_list[k - 1], solve, f_tuple, params, p_grad, cfg, tally)
            if k > 1:
                a = a + grad_y[k - 1]
        if p_grad is None and pending and params:
            ns, p_grad = _auto_quadrature(pending, counts[::-1], f_tuple, params, cfg, tally)
            counts = ns[::-1]
        if p_grad is None:
            p_grad = [torch.zeros_like(p) for p in params]

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
        _finish_stats(stats, counts, caps, tally, nfe[0], K)
        return (None, t_grad, y0_grad, *p_grad)


# ----------------------------------------------------------------------------------------------
# public entry point
# ----------------------------------------------------------------------------------------------
def _is_int(v: object) -> TypeGuard[Union[int, np.integer]]:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def odeint_adjoint_gq(
    func: Callable,
    y0,
    t: torch.Tensor,
    *,
    rtol=1e-7,
    atol=1e-9,
    method: Optional[str] = None,
    options: Optional[dict] = None,
    event_fn: Optional[Callable] = None,
    adjoint_rtol=None,
    adjoint_atol=None,
    adjoint_method: Optional[str] = None,
    adjoint_options: Optional[dict] = None,
    adjoint_params=None,
    gtol: float = 0.1,
    gq_nodes: Union[int, str, None] = "auto",
    gq_nmin: int = 2,
    gq_nmax: int = 64,
    trajectory: str = "recompute",
    return_stats: bool = False,
):
    """Solve dy/dt = func(t, y) like ``torchdiffeq.odeint``; gradients by the GQ adjoint.

    Arguments mirror ``torchdiffeq.odeint_adjoint`` 0.2.5, all of them accepted: rtol, atol,
    method, options (including ``norm``), ``event_fn`` (returns ``(event_t, solution)``; as in
    torchdiffeq, gradients flow to y0, θ and t[0] as if the solve ended at the event time, not
    through the event time: use ``torchdiffeq.odeint_event(..., odeint_interface=odeint_adjoint_gq)``
    for that), adjoint_rtol / adjoint_atol / adjoint_method (default to the forward ones),
    adjoint_options (default ``options`` without ``norm``; ``norm`` may be ``"seminorm"`` or a
    callable), adjoint_params. The backward state is [x, a] (never θ), so the default backward
    norm equals torchdiffeq's seminorm: the max of the forward norm of x and of a; a callable
    adjoint norm gets torchdiffeq's layout (t-adjoint, y, adj_y, *θ-adjoint) with a zero
    t-adjoint and no θ entries. torchdiffeq's step callbacks on ``func`` (``callback_step``,
    ``callback_accept_step``, ``callback_reject_step``) are called by the forward solve, their
    ``*_adjoint`` versions by the backward solves with the state ``(x, a)`` (tuple y0:
    ``(*xs, *as)``) and the time in the caller's direction.

    GQ options: ``gq_nodes`` = ``"auto"`` (default: per interval, the n-point rule with its error
    estimated against the (n−1)-point rule on the same backward solve; while the estimate
    exceeds the adjoint rtol/atol the counts grow, up to ``gq_nmax``), an int (that many nodes on
    every interval) or None (upstream's rule alone, no error control). ``gtol`` (> 0; larger means
    MORE nodes) sets the rule's count n_k = ceil(gtol·NFE_fwd·Δt_k/T), which "auto" starts from.
    ``gq_nmin`` / ``gq_nmax`` clamp it. ``trajectory`` ("recompute" | "store": the forward dopri5
    dense output, so method must be None or "dopri5" and y0 a tensor).

    ``y0`` is a tensor or a tuple of tensors (then ``func`` maps tuples to tuples). Returns the
    solution (len(t), *y0.shape) (a tuple for tuple y0), or ``(event_t, solution)`` with
    ``event_fn``; with ``return_stats=True`` returns ``(that, stats)``, a :class:`GQStats` with
    ``nfe_forward`` at once and the backward counts (NFE, nodes per interval, cap hits, restarts,
    refinements) once ``backward`` has run.
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
    if not (gq_nodes is None or (isinstance(gq_nodes, str) and gq_nodes == "auto") or (_is_int(gq_nodes) and gq_nodes >= 1)):
        raise ValueError(f"gq_nodes must be 'auto', None or an integer ≥ 1, got {gq_nodes!r}")
    if not _is_int(gq_nmin) or gq_nmin < 1:
        raise ValueError(f"gq_nmin must be an integer ≥ 1, got {gq_nmin!r}")
    if not _is_int(gq_nmax) or gq_nmax < gq_nmin:
        raise ValueError(f"gq_nmax must be an integer ≥ gq_nmin ({gq_nmin}), got {gq_nmax!r}")
    if trajectory not in _TRAJECTORIES:
        raise ValueError(f"trajectory must be one of {_TRAJECTORIES}, got {trajectory!r}")
    if trajectory == "store" and is_tuple:
        raise ValueError("trajectory='store' needs a tensor y0 (torchdiffeq odeint_dense)")
    if trajectory == "store" and method not in (None, "dopri5"):
        raise ValueError(
            f"trajectory='store' needs method='dopri5' (the only torchdiffeq solver with a dense output), got method={method!r}; use trajectory='recompute'"
        )
    for name, m in (("method", method), ("adjoint_method", adjoint_method)):
        if m is not None and m not in _TD_SOLVERS:
            raise ValueError(f"{name} must be one of {sorted(_TD_SOLVERS)}, got {m!r}")
    if options is not None and not isinstance(options, dict):
        raise ValueError("options must be a dict or None")
    if adjoint_options is not None and not isinstance(adjoint_options, dict):
        raise ValueError("adjoint_options must be a dict or None")
    if not isinstance(return_stats, bool):
        raise ValueError("return_stats must be a bool")
    if event_fn is not None and not callable(event_fn):
        raise ValueError("event_fn must be None or a callable event_fn(t, y)")
    if event_fn is not None and trajectory == "store":
        raise ValueError("event_fn needs trajectory='recompute' (the dense forward of 'store' has no event handling)")
    state_norm = (options or {}).get("norm")
    adj_norm = (adjoint_options or {}).get("norm")
    if adj_norm is not None and not callable(adj_norm) and not (isinstance(adj_norm, str) and adj_norm == "seminorm"):
        raise ValueError(f"adjoint_options['norm'] must be 'seminorm' or a callable, got {adj_norm!r}")
    if trajectory == "store" and callable(adj_norm):
        raise ValueError(
            "a callable adjoint_options['norm'] needs trajectory='recompute' (the 'store' "
            "backward state is the adjoint alone); use 'seminorm' or trajectory='recompute'"
        )

    # ---- defaults (torchdiffeq's odeint_adjoint conventions) --------------------------------
    if adjoint_rtol is None:
        adjoint_rtol = rtol
    if adjoint_atol is None:
        adjoint_atol = atol
    if adjoint_method is None:
        adjoint_method = method
    if adjoint_method != method and options is not None and adjoint_options is None:
        raise ValueError("adjoint_options must be given when adjoint_method differs from method and options is given")
    if adjoint_options is None:
        adjoint_options = {k: v for k, v in options.items() if k != "norm"} if options else {}
    else:
        adjoint_options = dict(adjoint_options)
    if adjoint_params is None:
        adjoint_params = tuple(func.parameters())
    else:
        adjoint_params = tuple(adjoint_params)
    adjoint_params = tuple(p for p in adjoint_params if torch.is_tensor(p) and p.requires_grad)

    if trajectory == "store":
        adjoint_options["norm"] = _rms_norm if state_norm is None else state_norm  # the state is a alone
    else:
        adjoint_options["norm"] = _adjoint_norm(adj_norm, state_norm, len(ys), is_tuple)

    stats = GQStats()
    cfg = dict(
        func=func,
        is_tuple=is_tuple,
        rtol=rtol,
        atol=atol,
        method=method,
        options=None if options is None else dict(options),
        event_fn=event_fn,
        adjoint_rtol=_dup_tol(adjoint_rtol, len(ys)),
        adjoint_atol=_dup_tol(adjoint_atol, len(ys)),
        adjoint_method=adjoint_method,
        adjoint_options=adjoint_options,
        quad_rtol=_scalar_tol(adjoint_rtol),
        quad_atol=_scalar_tol(adjoint_atol),
        dtype=ys[0].dtype,
        gtol=float(gtol),
        nodes=gq_nodes,
        nmin=int(gq_nmin),
        nmax=int(gq_nmax),
        stats=stats,
    )
    if trajectory == "store":
        sol = _GQAdjointStore.apply(cfg, t, ys[0], *adjoint_params)
        return (sol, stats) if return_stats else sol
    out = _GQAdjoint.apply(cfg, len(ys), t, *ys, *adjoint_params)
    if event_fn is not None:
        event_t, out = out[0], out[1:]
    sol = tuple(out) if is_tuple else out[0]
    if event_fn is not None:
        sol = (event_t, sol)
    return (sol, stats) if return_stats else sol
