"""What the analysis commands read: a trained model from a run folder, its ``run.h5`` or a
checkpoint, rebuilt through the registry (:func:`rnntk.core.models.build_model`), and the drive
(inputs) its trajectories are run with; for ``rnntk fixed-points`` the constant input condition
and the stored or generated trajectories its candidates are sampled from. Errors are one line
(:class:`UserError`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import torch

from rnntk.engine.errors import UserError

POSITIVE = ("n", "n_hidden", "n_in", "n_out", "batch", "dt", "tau", "alpha", "d_model", "d_hidden", "layers", "n_units", "width")
DRIVES = ("none", "bits", "noise")


def model_file(path: Path) -> Path:
    """``RUN_DIR`` or ``RUN_DIR/run.h5`` -> its ``model.pt`` (a ``run.h5`` without one: the file
    itself, read from its ``/model`` group); a checkpoint as given."""
    path = Path(path)
    if path.is_dir():
        return path / "model.pt"
    if path.suffix in (".h5", ".hdf5"):
        pt = path.parent / "model.pt"
        return pt if pt.exists() or not path.exists() else path
    return path


def load_trained(path: Path) -> tuple[Any, str, Path]:
    """The model of a run folder, ``run.h5`` or rnntk checkpoint, rebuilt by its ``model_class``.
    Returns ``(model, model_class, file read)``; hyper-parameters that are not finite positive
    sizes/times, unknown classes and weights that do not fit are one-line errors."""
    from rnntk.core.models import build_model, load_model, model_classes
    from rnntk.engine.checkpoint import load_checkpoint
    from rnntk.engine.limits import oom_as_error

    path = model_file(path)
    if path.suffix in (".h5", ".hdf5"):
        with oom_as_error(f"building the model of {path}"):
            model = load_model(path)
        return model, type(model).__name__, path
    ck = load_checkpoint(path)
    name = ck["model"] or "unnamed"
    classes = model_classes()
    if name not in classes:
        known = ", ".join(sorted(classes))
        raise UserError(f"{path} holds a {name} model, not a recurrent rate network rnntk can analyse (known: {known})")
    hp = ck["hparams"]
    bad = [k for k, v in hp.items() if k in POSITIVE and isinstance(v, (int, float)) and not isinstance(v, bool) and (not math.isfinite(v) or v <= 0)]
    if bad:
        raise UserError(f"{path}: bad hyper-parameter {bad[0]} = {hp[bad[0]]} (must be a finite number > 0)")
    try:
        with oom_as_error(f"building the {name} of {path}"):
            model = build_model(name, hp, ck["state_dict"])
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        raise UserError(f"{path}: hyper-parameters do not fit {name} ({' '.join(str(e).split())[:160]})") from None
    return model, name, path


def make_drive(
    kind: str, n_traj: int, steps: int, n_in: int, *, generator: torch.Generator, device: Any, dtype: torch.dtype, zeros_for_none: bool = False
) -> Optional[torch.Tensor]:
    """Inputs ``(n_traj, steps, n_in)``: ``none`` (None, or zeros with ``zeros_for_none``),
    ``bits`` (Bernoulli 0/1) or ``noise`` (N(0, 1)), drawn on ``generator``."""
    if kind == "none" or n_in == 0:
        return torch.zeros(n_traj, steps, n_in, device=device, dtype=dtype) if zeros_for_none or n_in == 0 and kind != "none" else None
    if kind == "bits":
        return torch.randint(0, 2, (n_traj, steps, n_in), generator=generator).to(device, dtype)
    if kind == "noise":
        return torch.randn(n_traj, steps, n_in, generator=generator).to(device, dtype)
    raise UserError(f"bad drive {kind!r} (one of {', '.join(DRIVES)})")


def parse_input(text: str, n_in: int) -> list[float]:
    """``zero`` or comma-separated floats, one per model input -> the constant input."""
    t = text.strip().lower()
    if t in ("zero", "0", ""):
        return [0.0] * n_in
    try:
        vals = [float(v) for v in t.split(",")]
    except ValueError:
        raise UserError(f"bad --input '{text}': use zero or {n_in} comma-separated numbers") from None
    if len(vals) != n_in:
        raise UserError(f"bad --input '{text}': the model has {n_in} input(s), got {len(vals)} number(s)")
    if not all(math.isfinite(v) for v in vals):
        raise UserError(f"bad --input '{text}': every value must be finite")
    return vals


def read_state_traces(run_file: Path, name: str, n: int) -> Any:
    """``/traces/<name>`` of ``run_file`` as a float64 tensor ``(trial, time, n)``."""
    import h5py

    if not run_file.is_file():
        raise UserError(f"--traces {name}: no run.h5 next to the model ({run_file})")
    try:
        with h5py.File(run_file, "r") as f:
            g: Any = f.get("traces")
            if g is None or name not in g:
                have = ", ".join(sorted(g)) if g is not None else "none"
                raise UserError(f"--traces {name}: {run_file} has no /traces/{name} (traces: {have})")
            arr = g[name][()]
    except OSError as e:
        raise UserError(f"--traces {name}: cannot read {run_file} ({e})") from None
    if arr.ndim != 3 or arr.shape[-1] != n or arr.shape[0] * arr.shape[1] == 0:
        raise UserError(f"--traces {name}: shape {tuple(arr.shape)} is not (trial, time, n = {n})")
    t = torch.as_tensor(arr, dtype=torch.float64)
    if not torch.isfinite(t).all():
        raise UserError(f"--traces {name}: holds non-finite values")
    return t


def trajectories(m: Any, u: Any, init_scale: float, gen: Any, check: Any) -> Any:
    """States ``(n_traj, steps, n)`` of ``m`` under inputs ``u (n_traj, steps, n_in)`` from
    N(0, init_scale^2) initial states (the first trajectory from zero)."""
    n_traj, steps = u.shape[0], u.shape[1]
    x = torch.randn(n_traj, m.n, generator=gen).to(u.device, u.dtype) * init_scale
    x[0] = 0
    xs = []
    with torch.no_grad():
        for t in range(steps):
            x = m.step(x, u[:, t])
            xs.append(x)
            if t % 100 == 0:
                check()
    return torch.stack(xs, 1)
