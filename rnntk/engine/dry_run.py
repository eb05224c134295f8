"""``--dry-run`` on every engine command: resolve and check every option, build the model,
then stop before the run writes anything, and report what the run would be.

The shared wrapper (:func:`rnntk.engine.options.engine_command`) hands the command a
:class:`rnntk.engine.run_dry.DryRun` instead of a :class:`~rnntk.engine.run.Run`: it makes no
folder and no file, records what the command registers (``run.track``: the models and
optimizers) and raises :class:`DryRunDone` at the first step or the first write. The wrapper
catches it and prints :func:`report`. This module stays torch-free (fast ``--help``).
"""

from __future__ import annotations

import math
from typing import Any, Optional

from .files import human_bytes

# every figure below is an estimate; what it counts is said next to it
H5_OVERHEAD_BYTES = 64 * 1024  # an empty run.h5 with provenance attributes and /config (measured: 40-60 KiB)


class DryRunDone(BaseException):
    """Raised by a dry run where a real run would start writing (private to the engine; a
    BaseException so that a command's ``except Exception`` cannot swallow it)."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


# (bytes, what) of every check_fits call in this process since the last reset: the commands'
# own estimates of their main tensors, made before they allocate them
ESTIMATES: list[tuple[float, str]] = []


def _optimizer_states(opt: Any) -> tuple[int, str]:
    """Tensors of optimizer state per parameter (Adam: 2, SGD with momentum: 1)."""
    name = type(opt).__name__
    if name in ("Adam", "AdamW", "Adamax", "NAdam", "RAdam"):
        return 2, name
    if name == "SGD":
        mom = any(g.get("momentum", 0) for g in getattr(opt, "param_groups", []))
        return (1 if mom else 0), name
    if name in ("RMSprop", "Adagrad", "Adadelta"):
        return 1, name
    return 0, name


def model_facts(tracked: dict[str, Any]) -> dict[str, Any]:
    """Parameter counts of the modules the command registered with ``run.track`` (each
    distinct tensor counted once) and the optimizers' state tensors per parameter."""
    from torch import nn

    seen: set[int] = set()
    models: dict[str, int] = {}
    param_bytes = 0
    for key, obj in tracked.items():
        if not isinstance(obj, nn.Module):
            continue
        n = 0
        for p in obj.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            n += p.numel()
            param_bytes += p.numel() * p.element_size()
        models[key] = n
    state_bytes = 0.0
    opts: list[str] = []
    for key, obj in tracked.items():
        if key == "optimizer" or (hasattr(obj, "param_groups") and hasattr(obj, "state_dict")):
            k, name = _optimizer_states(obj)
            opts.append(name)
            for g in getattr(obj, "param_groups", []):
                params = g.get("params", []) if isinstance(g, dict) else []
                for p in params.values() if isinstance(params, dict) else params:
                    if hasattr(p, "numel") and hasattr(p, "element_size"):
                        state_bytes += k * p.numel() * p.element_size()
    return {"models": models, "n_params": sum(models.values()), "param_bytes": param_bytes, "optimizer_state_bytes": state_bytes, "optimizers": opts}


def checkpoint_params(path: Any) -> Optional[int]:
    """Numbers in the weights of the checkpoint ``path`` (an rnntk checkpoint or a plain state
    dict; a run folder means its model.pt), read with ``weights_only=True``; None if unreadable."""
    from pathlib import Path

    import torch

    p = Path(str(path))
    if p.is_dir():
        p = p / "model.pt"
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an estimate: unreadable means unknown
        return None
    for key in ("state_dict", "model_state", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        return None
    n = sum(v.numel() for v in obj.values() if isinstance(v, torch.Tensor) and v.is_floating_point())
    return n or None


def report(command: str, run: Any, where: Optional[str], options: dict[str, Any]) -> dict[str, Any]:
    """Print what the dry run found (stdout, human-readable) and return the JSON outcome.

    ``run``: the :class:`~rnntk.engine.run_dry.DryRun` the command opened (None if it stopped
    before opening one); ``where``: what the run would have done first."""
    from .config import to_toml

    config = dict(run.config) if run is not None else dict(options)
    facts = model_facts(run._tracked) if run is not None else {"models": {}, "n_params": None, "param_bytes": 0, "optimizer_state_bytes": 0.0, "optimizers": []}
    steps = run.planned_steps if run is not None else None
    log_every = run.log_every if run is not None else 50

    # peak memory: the command's own estimate of its main tensors (check_fits), or the weights,
    # their gradients and the optimizer state; never measured
    fits = max(ESTIMATES, default=None)
    trains = bool(facts["optimizers"])
    weights = float(facts["param_bytes"]) * (2 if trains else 1) + float(facts["optimizer_state_bytes"])
    held = "weights, gradients and optimizer state" if trains else "weights"
    if fits is not None:
        peak, peak_how = fits[0] + weights, f"the command's estimate of {fits[1]} ({human_bytes(fits[0])}) + {held} ({human_bytes(weights)})"
    elif facts["n_params"]:
        peak, peak_how = weights, f"{held} only (this command gives no estimate of its activations)"
    else:
        peak, peak_how = None, "unknown (no model registered and no estimate from the command)"

    # run.h5: provenance + config, metric rows (one per step at most), the model's arrays, or
    # for an analysis (before_compute) the results it estimates and no model
    results = getattr(run, "results_bytes", None)
    model_bytes = 4.0 * (facts["n_params"] or 0) if results is None else 0.0
    rows = steps if steps is not None else None
    metric_col = 8.0 * rows if rows is not None else None
    h5 = H5_OVERHEAD_BYTES + model_bytes + (2 * metric_col if metric_col else 0) + (results or 0.0)

    print(f"rnntk {command} --dry-run: every option checked; nothing was written.")
    resume_step = int(run.start_step) if run is not None and run.resumed else None
    if run is not None and run.resumed:
        held = "of its checkpoint ckpt-last.pt" if run._resume_ck is not None else "(it has no checkpoint yet)"
        left = f" (steps {resume_step} to {steps - 1} left of {steps})" if steps is not None and steps > resume_step else ""
        print(f"would continue: {run.dir} from step {resume_step} {held}{left}")
    elif run is not None:
        print(f"would {'replace' if run.dry_force else 'write'}: {run.dir}")
    if run is not None:
        print(f"seed {run.seed}, device {run.device} (resolved)")
    print(f"stopped before: {where or 'the command ended without writing'}")
    print("resolved config:")
    for line in to_toml(config, "").splitlines():
        if line.strip():
            print(f"  {line}")
    n_params = facts["n_params"] if facts["models"] else None
    ck = config.get("model_path") or config.get("checkpoint")
    if n_params is None and ck:
        n_params = checkpoint_params(ck)
    if n_params is not None and not facts["models"]:
        print(f"parameters: {n_params:,} (floating-point numbers in the weights of {ck})")
    elif n_params is None:
        print("parameters: unknown (the command registered no model with the run before its first write)")
    else:
        parts = ", ".join(f"{k} {v:,}" for k, v in facts["models"].items())
        print(f"parameters: {facts['n_params']:,} (counted on the built model: {parts})")
    print(f"peak memory (estimate, not measured): {human_bytes(peak) if peak is not None else '?'} = {peak_how}")
    rows_txt = f"<= {rows} metric rows (one per step at most), {human_bytes(metric_col or 0)} per metric column" if rows is not None else "metric rows unknown"
    if results is not None:
        print(
            f"run.h5 size (estimate): ~{human_bytes(h5)} = ~{human_bytes(H5_OVERHEAD_BYTES)} attributes and config + {human_bytes(results)} results"
            f" (the command's estimate of its /results and /traces, from the options and the model's sizes; an analysis saves no model)"
        )
    else:
        print(
            f"run.h5 size (estimate): >= {human_bytes(h5)} = ~{human_bytes(H5_OVERHEAD_BYTES)} attributes and config + {human_bytes(model_bytes)} model arrays"
            f" (float32, /model, when the command saves its model) + step and wall_time columns; plus {rows_txt}; traces and results the command writes are not counted"
        )
    out: dict[str, Any] = {
        "status": "dry-run",
        "run_dir": None,
        "command": command,
        "would_write": str(run.dir) if run is not None else None,
        "resume_step": resume_step,
        "device": str(run.device) if run is not None else None,
        "stopped_before": where,
        "config": config,
        "n_params": n_params,
        "peak_bytes_estimate": None if peak is None or not math.isfinite(peak) else int(peak),
        "run_h5_bytes_estimate": int(h5),
        "results_bytes_estimate": None if results is None else int(results),
        "metric_rows_max": rows,
        "log_every": log_every,
    }
    return out
