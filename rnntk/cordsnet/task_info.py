"""``rnntk task show`` for cordsnet-eval's stimulus protocol (registered in
:mod:`rnntk.core.task_registry` as ``cordsnet-eval:digits``): the image timing the evaluator
uses at its default options, on its offline demo images (scikit-learn's 8x8 digits).

A trial is ``--spont-steps`` zero-image steps, ``--stim-steps`` steps with the image, then
``--post-steps`` zero-image steps, Euler steps of ``alpha`` = dt/tau (dt = alpha x tau, tau
10 ms). The inputs shown are the image's pixels (normalised with the digits preset, at the
images' own 8x8 size; a model resizes them to its ``--image-size``); the target is the image's
class; the mask marks the steps whose logits are scored (``--readout every``: every stimulus and
post step; ``final``: the last stimulus step).
"""

from __future__ import annotations

import torch

from rnntk.cordsnet.config import EvalConfig
from rnntk.cordsnet.model import TAU
from rnntk.core.task_registry import TaskSpec, register_task
from rnntk.core.trials import TrialBatch

COMMAND = "cordsnet-eval"


def protocol_trials(cfg: EvalConfig, n: int, g: torch.Generator) -> TrialBatch:
    """``n`` random digits under the protocol of ``cfg``: inputs ``(n, T, 64)`` (the image during
    the stimulus, 0 otherwise), targets the label ``(n, T)``, mask the scored readout steps;
    table: ``label``, ``trial_len`` and the periods ``spontaneous``, ``stimulus``, ``post``."""
    from rnntk.cordsnet.images import PRESETS, load_digits_source

    src = load_digits_source()
    idx = torch.randperm(len(src), generator=g)[:n]
    img = src.load(idx.tolist(), 8, PRESETS["digits"]).flatten(1)  # (n, 64)
    assert src.labels is not None
    lab = src.labels[idx]
    s0, s1 = cfg.spont_steps, cfg.spont_steps + cfg.stim_steps
    T = s1 + cfg.post_steps
    m = len(idx)
    x = torch.zeros(m, T, img.shape[1])
    x[:, s0:s1] = img[:, None]
    mask = torch.zeros(m, T)
    if cfg.readout == "every":
        mask[:, s0:] = 1.0
    else:
        mask[:, s1 - 1] = 1.0
    col = lambda v: torch.full((m,), v, dtype=torch.long)  # noqa: E731
    table = {"label": lab, "trial_len": col(T), "period_spontaneous_start": col(0), "period_spontaneous_end": col(s0)}
    table.update(
        period_stimulus_start=col(s0),
        period_stimulus_end=col(s1),
        period_post_start=col(s1 if cfg.post_steps else -1),
        period_post_end=col(T if cfg.post_steps else -1),
    )
    return TrialBatch(x, lab[:, None].expand(m, T).clone(), mask, table, dt=cfg.alpha * TAU)


def _spec() -> TaskSpec:
    cfg = EvalConfig()
    dt = cfg.alpha * TAU
    return TaskSpec(
        "digits",
        lambda n, g: protocol_trials(cfg, n, g),
        dt,
        [f"pixel ({r}, {c})" for r in range(8) for c in range(8)],
        [str(c) for c in range(10)],
        description=f"cordsnet-eval --data digits: {cfg.spont_steps} spontaneous, {cfg.stim_steps} stimulus, {cfg.post_steps} post steps (--spont-steps, --stim-steps, --post-steps)",
        labels=True,
        notes=[
            f"Euler steps of alpha = dt/tau = {cfg.alpha:g} with tau = {TAU * 1000:g} ms: dt = {dt * 1000:g} ms (--alpha)",
            f"--readout {cfg.readout}: logits scored at {'every stimulus and post step' if cfg.readout == 'every' else 'the last stimulus step'}; the spontaneous phase is computed once per batch",
            "the same timing applies to any --data (folder:, npz:, images:); inputs shown at the digits' own 8x8 size",
        ],
    )


register_task("digits", _spec, command=COMMAND)
