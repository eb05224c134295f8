"""Checkpoints: state dicts + metadata, saved atomically, loaded with ``weights_only=True``.

A checkpoint is a plain dict (no pickled classes)::

    {"format": "rnntk-checkpoint", "format_version": 1,
     "model": "RateRNN",                 # the class name, checked on load
     "hparams": {...},                   # constructor arguments (plain values only)
     "state_dict": {...},                # model weights
     "optimizer": {...} | None,          # optimizer.state_dict()
     "rng": {...} | None,                # engine.seeding.get_rng_state()
     "step": int,                        # completed steps
     "extra": {...}}                     # anything else tensor/plain-valued

Loading never unpickles code: ``torch.load(path, weights_only=True)``; a file holding a
pickled object is refused with one line (:class:`UserError`).
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .errors import UserError
from .files import atomic_path

FORMAT = "rnntk-checkpoint"
FORMAT_VERSION = 1
_PLAIN = (str, int, float, bool, type(None))


def _check_values(obj: Any, where: str, *, tensors: bool) -> None:
    """Only what ``torch.load(weights_only=True)`` accepts: plain values (and, with ``tensors``,
    tensors, sizes, dtypes, devices) in lists, tuples and dicts. Hyper-parameters must be plain."""
    ok = _PLAIN + ((torch.Tensor, torch.Size, torch.dtype, torch.device) if tensors else ())
    if isinstance(obj, ok):
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_values(v, f"{where}[{i}]", tensors=tensors)
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str) and not (tensors and isinstance(k, int)):
                raise TypeError(f"{where}: key {k!r} is not a string")
            _check_values(v, f"{where}.{k}", tensors=tensors)
        return
    what = "tensors and plain values" if tensors else "plain values (str/int/float/bool/None/list/dict)"
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__name__}; checkpoints hold {what} only")


def model_name(model: nn.Module | str) -> str:
    return model if isinstance(model, str) else type(model).__name__


def save_checkpoint(
    path: Path | str,
    *,
    model: nn.Module | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    model_class: str | None = None,
    hparams: Mapping[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | Mapping[str, Any] | None = None,
    rng: Mapping[str, Any] | None = None,
    step: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Save a checkpoint atomically (temp file, fsync, rename). Returns ``{bytes, sha256}``.

    Give ``model`` (its ``state_dict()`` and class name are taken) or ``state_dict`` plus
    ``model_class``. Tensors are moved to CPU so the file loads on any machine.
    """
    if model is not None:
        state_dict = model.state_dict()
        model_class = model_class or model_name(model)
    if state_dict is None:
        raise ValueError("save_checkpoint needs model= or state_dict=")
    hp = dict(hparams or {})
    _check_values(hp, "hparams", tensors=False)
    opt_sd = getattr(optimizer, "state_dict", None)  # a torch optimizer, or any object with state_dict() (SOFO)
    opt_state = opt_sd() if callable(opt_sd) else optimizer
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model_class or "",
        "hparams": hp,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "optimizer": _to_cpu(opt_state) if opt_state is not None else None,
        "rng": dict(rng) if rng is not None else None,
        "step": int(step),
        "extra": dict(extra or {}),
    }
    _check_values(payload, "checkpoint", tensors=True)  # never write what weights_only=True would refuse
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    data = path.read_bytes()
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def load_file(path: Path | str) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one-line errors.

    Raises :class:`UserError` for a missing or unreadable file, a truncated or corrupt
    file, and for a file that holds pickled Python objects (refused, never executed).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise UserError(f"checkpoint path is a folder, not a file: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's notes on old pickle protocols
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        for line in msg.splitlines():
            if "GLOBAL" in line or "Unsupported global" in line:  # a class/function import: refuse
                what = line.strip().split("GLOBAL", 1)[-1].strip().split(" ")[0][:80] if "GLOBAL" in line else "?"
                raise UserError(
                    f"refusing to load {path}: it contains pickled Python objects ({what}); rnntk loads tensors and plain values only (weights_only=True)"
                ) from None
        raise UserError(f"cannot read checkpoint {path}: corrupt or not a torch file") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, IndexError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot read checkpoint {path}: truncated or corrupt ({first})") from None


def load_checkpoint(path: Path | str, expect_model: nn.Module | str | None = None) -> dict[str, Any]:
    """Load an rnntk checkpoint dict (see module doc) with ``weights_only=True``.

    ``expect_model``: a module or class name; a checkpoint of another model is refused.
    """
    ck = load_file(path)
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise UserError(f"{path} is not an rnntk checkpoint (no 'format: {FORMAT}' entry)")
    for key, kind in (("step", int), ("state_dict", dict), ("hparams", dict), ("model", str)):
        if not isinstance(ck.get(key), kind):
            raise UserError(f"{path} is a damaged rnntk checkpoint: '{key}' is missing or not a {kind.__name__}")
    for key in ("rng", "optimizer", "extra"):
        if ck.get(key) is not None and not isinstance(ck[key], dict):
            raise UserError(f"{path} is a damaged rnntk checkpoint: '{key}' is not a dict")
    if expect_model is not None and ck.get("model") and ck["model"] != model_name(expect_model):
        raise UserError(f"{path} holds a {ck['model']} checkpoint, not a {model_name(expect_model)}")
    return ck


def load_state_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """``model.load_state_dict(state_dict, strict=True)`` with a one-line error naming the
    first missing/unexpected key, shape mismatch or kind of dtype mismatch (complex, integer or
    floating-point where the model has another kind: ``load_state_dict`` would cast it silently)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s), e.g. '{missing[0]}'")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s), e.g. '{unexpected[0]}'")
        raise UserError(f"{source} does not fit {type(model).__name__}: " + "; ".join(parts))
    for k, v in own.items():
        w = state_dict[k]
        if not isinstance(w, torch.Tensor):
            raise UserError(f"{source} does not fit {type(model).__name__}: '{k}' is not a tensor")
        if tuple(w.shape) != tuple(v.shape):
            raise UserError(f"{source} does not fit {type(model).__name__}: '{k}' has shape {tuple(w.shape)}, model expects {tuple(v.shape)}")
        if w.is_complex() != v.is_complex() or w.dtype.is_floating_point != v.dtype.is_floating_point:
            raise UserError(f"{source} does not fit {type(model).__name__}: '{k}' has dtype {w.dtype}, model expects {v.dtype}")
    model.load_state_dict(dict(state_dict), strict=True)
