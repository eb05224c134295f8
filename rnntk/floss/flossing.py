"""Gradient flossing (Engelken, NeurIPS 2023): push the first k Lyapunov exponents of a
recurrent network towards a target (0 by default) by gradient descent through the QR-based
spectrum, before and/or during task training.

    L_floss = mean_{i ≤ k} (λ_i − λ*)²         (upstream takes the mean; ``reduce="sum"`` too)

Only the input weights, recurrent weights and biases are flossed (upstream), with their own
Adam optimiser (lr 1e-3, no clipping) whose state persists across flossing episodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

import torch

from rnntk.analysis.lyapunov import LyapunovResult, lyapunov_spectrum


def flossing_loss(exponents: torch.Tensor, target: float = 0.0, reduce: str = "mean") -> torch.Tensor:
    """(…, k) exponents → scalar loss: mean (or sum over i, mean over trajectories) of (λ_i − λ*)²."""
    sq = (exponents - target) ** 2
    if reduce == "mean":
        return sq.mean()
    if reduce == "sum":
        return sq.sum(-1).mean()
    raise ValueError("reduce must be mean or sum")


@dataclass
class FlossSchedule:
    """Upstream's schedule: ``before`` flossing steps before training; then at every epoch
    e > 0 with e % ``every`` == 0, while fewer than ``times`` episodes have run, ``steps``
    flossing steps before that epoch's task step."""

    before: int = 500
    every: int = 100
    steps: int = 500
    times: int = 2

    def steps_at(self, epoch: int, episodes_done: int) -> int:
        """Flossing steps to run before task epoch ``epoch`` (0-based)."""
        if epoch == 0:
            return self.before
        if self.every > 0 and epoch % self.every == 0 and episodes_done < self.times:
            return self.steps
        return 0


@dataclass
class FlossStepInfo:
    loss: float
    exponents: torch.Tensor  # (k,) mean over trajectories, detached
    finite: bool


def floss_step(
    model: Any,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    k: int,
    *,
    x0: torch.Tensor,
    warmup: int = 16,
    t_ons: int = 1,
    target: float = 0.0,
    reduce: str = "mean",
    q0: Optional[torch.Tensor] = None,
    check: Optional[Callable[[], None]] = None,
) -> FlossStepInfo:
    """One flossing step: the k-exponent spectrum along ``inputs`` (B, T, S) from ``x0`` (B, N),
    the flossing loss, backward through states, Jacobian products and QRs, one optimiser step.
    A step whose gradient is not finite is skipped (``finite=False``). ``check`` is called at
    every time step of the spectrum (a run's interrupt check; it may raise to stop)."""
    res: LyapunovResult = lyapunov_spectrum(model, inputs, k, x0=x0, warmup=warmup, t_ons=t_ons, q0=q0, check=check)
    loss = flossing_loss(res.exponents, target, reduce)
    optimizer.zero_grad()
    loss.backward()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    finite = bool(torch.isfinite(loss)) and all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in params)
    if finite:
        optimizer.step()
    optimizer.zero_grad()
    return FlossStepInfo(float(loss.detach()), res.exponents.detach().mean(0), finite)


def flossed_parameters(model: Any, which: Iterable[str] = ("W_in", "J", "b")) -> list[torch.nn.Parameter]:
    """The parameters flossing changes (upstream: input weights, recurrent weights, biases)."""
    return [getattr(model, n) for n in which]


def clip_per_tensor(params: Iterable[torch.nn.Parameter], max_norm: float) -> float:
    """Clip each parameter's gradient to norm ``max_norm`` separately (Flux ClipNorm, as
    upstream); returns the total gradient norm before clipping."""
    total = 0.0
    for p in params:
        if p.grad is None:
            continue
        n = float(p.grad.norm())
        total += n * n
        if max_norm > 0 and n > max_norm:
            p.grad.mul_(max_norm / n)
    return total**0.5


def floss(
    model: Any,
    inputs: torch.Tensor | Callable[[int], torch.Tensor],
    k: int,
    steps: int,
    *,
    optimizer: Optional[torch.optim.Optimizer] = None,
    lr: float = 1e-3,
    x0: Optional[torch.Tensor] = None,
    warmup: int = 16,
    t_ons: int = 1,
    target: float = 0.0,
    reduce: str = "mean",
    q0: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> list[FlossStepInfo]:
    """Floss ``model`` for ``steps`` steps (e.g. before training) and return each step's info.

    inputs: a fixed (B, T, S) tensor, or ``inputs(i)`` returning a fresh one for step i (as
    upstream: a new task sequence every step). optimizer: default Adam(lr) over the flossed
    parameters (input weights, recurrent weights, biases); pass your own to keep its state
    across episodes. x0: (B, N) initial states (default: the model's). q0: the fixed initial
    basis (default: drawn once from ``generator``).
    """
    from rnntk.analysis.lyapunov import initial_basis

    if optimizer is None:
        optimizer = torch.optim.Adam(flossed_parameters(model), lr=lr)
    first = inputs(0) if callable(inputs) else inputs
    if x0 is None:
        x0 = model.initial_state(first.shape[0]).detach()
    assert x0 is not None  # narrowing for the type checker
    if q0 is None:
        q0 = initial_basis(x0.shape[-1], k, generator=generator, dtype=x0.dtype, device=x0.device)
    out = []
    for i in range(steps):
        u = first if i == 0 else (inputs(i) if callable(inputs) else inputs)
        out.append(floss_step(model, optimizer, u, k, x0=x0, warmup=warmup, t_ons=t_ons, target=target, reduce=reduce, q0=q0))
    return out
