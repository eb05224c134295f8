"""Figure-2-style gradient alignment: cosine and norm ratio of each rule's gradient to BPTT's,
per parameter group (encoder, layer_k, decoder) on one batch, and over all groups with each
group weighted equally (``all``, see :func:`compare`)."""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import torch

from rnntk.online.learner import online_gradients
from rnntk.online.models.seq_model import SeqModel


def param_groups(model: SeqModel) -> dict[str, list[str]]:
    """Parameter names per group: ``encoder``, ``layer_0`` … ``layer_{L-1}``, ``decoder``
    (decoder and readout)."""
    groups: dict[str, list[str]] = {"encoder": []}
    groups.update({f"layer_{k}": [] for k in range(len(model.layers))})
    groups["decoder"] = []
    for name, _ in model.named_parameters():
        if name.startswith("encoder."):
            groups["encoder"].append(name)
        elif name.startswith("layers."):
            groups[f"layer_{name.split('.')[1]}"].append(name)
        else:
            groups["decoder"].append(name)
    return groups


def gradient_of(
    model: SeqModel, batch: Sequence[torch.Tensor], rule: str, exec: str = "sequence", masks: Optional[list] = None, check: Optional[Callable[[], None]] = None
) -> dict[str, torch.Tensor]:
    """{name: gradient} of ``rule`` on batch (x, y, mask), leaving ``.grad`` as it was.
    ``check`` is called before every streamed step (it may raise to stop)."""
    saved = {n: (None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    x, y, mask = batch[:3]
    try:
        online_gradients(model, x, y, mask, rule, exec, masks=masks, check=check)
        out = {n: (torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()) for n, p in model.named_parameters()}
    finally:
        for n, p in model.named_parameters():
            p.grad = saved[n]
    return out


def compare(g: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], groups: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """{group: {cos, relnorm (‖g‖/‖ref‖), norm (‖g‖), rel_err (‖g − ref‖/‖ref‖)}} per group, and
    ``all``: the same measures with every group rescaled by its own reference norm, so that each
    group's reference gradient has unit norm and no group dominates (on the copy task at init
    the encoder's BPTT gradient is ~100× the others'). So ``all``'s cos is the cosine of the
    per-group-normalised gradients, Σ_k cos_k·r_k / (√G·√(Σ_k r_k²)) with r_k the group's
    relnorm; its relnorm is √(mean_k r_k²), its rel_err √(mean_k rel_err_k²); its norm is the
    plain ‖g‖ of the whole gradient. Groups whose reference gradient is 0 are left out of ``all``."""
    out: dict[str, dict[str, float]] = {}
    dots, na2, ne2, G = 0.0, 0.0, 0.0, 0
    total = 0.0
    for grp, names in groups.items():
        if not names:
            continue
        a = torch.cat([g[n].reshape(-1) for n in names]).double()
        b = torch.cat([ref[n].reshape(-1) for n in names]).double()
        na, nb, ne = float(a.norm()), float(b.norm()), float((a - b).norm())
        dot = float(a @ b)
        total += na * na
        out[grp] = {
            "cos": dot / (na * nb) if na > 0 and nb > 0 else 0.0,
            "relnorm": na / nb if nb > 0 else float("inf") if na > 0 else 1.0,
            "norm": na,
            "rel_err": ne / nb if nb > 0 else 0.0,
        }
        if nb > 0:  # the group rescaled by 1/‖ref_k‖
            dots += dot / nb**2
            na2 += (na / nb) ** 2
            ne2 += (ne / nb) ** 2
            G += 1
    if out:
        out["all"] = {
            "cos": dots / (math.sqrt(na2) * math.sqrt(G)) if na2 > 0 else 0.0,
            "relnorm": math.sqrt(na2 / G) if G else 1.0,
            "norm": math.sqrt(total),
            "rel_err": math.sqrt(ne2 / G) if G else 0.0,
        }
    return out


def gradient_alignment(
    model: SeqModel, batch: Sequence[torch.Tensor], rules: Sequence[str], exec: str = "sequence", check: Optional[Callable[[], None]] = None
) -> dict[str, Any]:
    """{rule: {group: {cos, relnorm, norm, rel_err}}} against BPTT on one batch
    (x, y, mask); dropout off. ``.grad`` is left untouched. ``check`` is called before each
    rule and every streamed step (a run's interrupt check; it may raise to stop)."""
    was = model.training
    model.eval()
    try:
        if check is not None:
            check()
        ref = gradient_of(model, batch, "bptt")
        groups = param_groups(model)
        out = {}
        for r in rules:
            if check is not None:
                check()
            out[r] = compare(gradient_of(model, batch, r, exec, check=check), ref, groups)
        return out
    finally:
        model.train(was)
