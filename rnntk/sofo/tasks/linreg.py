"""Ill-conditioned linear regression (SOFO spec §2/§4; upstream ``examples/linear_regression.ml``).

Inputs x ∈ R^{n_in} ~ N(0, diag(s)) with s_i = 1 / (1 + i^2), i = 0..n_in-1, **axis-aligned** (the
covariance eigenbasis is the standard basis; no random rotation). Teacher W* ∈ R^{n_in × n_out} with
N(0, 1) entries; targets y = x W* exactly (no noise). The condition number of the input covariance is
1 + (n_in - 1)^2 (9802 for n_in = 100).

Loss convention: MSE = mean over samples and outputs of (x W - y)^2. Its population value for a weight
matrix W is  (1/n_out) Σ_j Σ_i s_i (W - W*)_{ij}^2  (:func:`population_mse`). For the zero-initialised
model that is (1/n_out) Σ_ij s_i W*_ij^2, whose expectation over teachers is Σ_i s_i ≈ 2.067 for
n_in = 100 (→ (1 + π coth π)/2 ≈ 2.077 as n_in → ∞); one teacher draw varies around it (the spec's
prototype quotes 1.93 for its sample).
"""

from __future__ import annotations

import torch

from rnntk.core.trials import TrialBatch


def linreg_spectrum(n_in: int = 100, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Input-covariance eigenvalues s_i = 1 / (1 + i^2), i = 0..n_in-1. Returns (n_in,)."""
    i = torch.arange(n_in, dtype=torch.float64)
    return (1.0 / (1.0 + i**2)).to(dtype)


def draw_teacher(n_in: int = 100, n_out: int = 3, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Teacher weights W* with i.i.d. N(0, 1) entries. Returns (n_in, n_out)."""
    return torch.randn(n_in, n_out, generator=generator, dtype=dtype)


def ill_conditioned_regression(
    n_samples: int,
    n_in: int = 100,
    n_out: int = 3,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    teacher: torch.Tensor | None = None,
) -> TrialBatch:
    """Sample ``n_samples`` regression pairs as single-step trials.

    If ``teacher`` is None one is drawn from ``generator`` first (via :func:`draw_teacher`), then the
    inputs; pass a fixed teacher to draw training and validation batches of the same problem.

    Returns a TrialBatch with
      inputs  (N, 1, n_in)   x ~ N(0, diag(s))
      targets (N, 1, n_out)  y = x W*
      mask    (N, 1)         ones
      dt      None
      extra   {"teacher": (n_in, n_out), "spectrum": (n_in,)}
    """
    if n_samples < 1 or n_in < 1 or n_out < 1:
        raise ValueError(f"need n_samples, n_in, n_out >= 1, got {n_samples}, {n_in}, {n_out}")
    if teacher is None:
        teacher = draw_teacher(n_in, n_out, generator=generator, dtype=dtype)
    elif teacher.shape != (n_in, n_out):
        raise ValueError(f"teacher must be ({n_in}, {n_out}), got {tuple(teacher.shape)}")
    teacher = teacher.to(dtype)
    s = linreg_spectrum(n_in, dtype=dtype)
    x = torch.randn(n_samples, n_in, generator=generator, dtype=dtype) * s.sqrt()
    y = x @ teacher
    return TrialBatch(
        x.unsqueeze(1),
        y.unsqueeze(1),
        torch.ones(n_samples, 1, dtype=dtype),
        dt=None,
        extra={"teacher": teacher, "spectrum": s},
    )


def population_mse(W: torch.Tensor, teacher: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
    """Exact expected MSE (mean over outputs) of the linear model y_hat = x W under x ~ N(0, diag(s)).

    W, teacher: (n_in, n_out); spectrum: (n_in,). Returns a 0-d tensor equal to the mean over j of
    [(W - W*)^T diag(s) (W - W*)]_{jj} = (1/n_out) Σ_ij s_i (W - W*)_ij^2.
    """
    D = W - teacher
    return (spectrum.to(D).unsqueeze(-1) * D**2).sum(0).mean()
