"""From ``cordsnet-eval`` / ``cordsnet-eigs`` options to objects, with one-line errors (exit 2):
the model (a checkpoint or a fresh init), the areas named by an option, the normalisation
preset, the image of the image-driven Jacobian, and the memory check of an evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from rnntk.cordsnet.config import EvalConfig
from rnntk.engine.errors import UserError
from rnntk.engine.limits import check_fits, oom_as_error


def load_model(checkpoint: Path, expect: dict[str, Any]) -> Any:
    """The CordsNet of ``checkpoint`` (its sizes checked against ``expect``)."""
    from rnntk.cordsnet.model import CheckpointError, load_cordsnet

    try:
        return load_cordsnet(checkpoint, expect=expect)
    except CheckpointError as e:
        raise UserError(str(e)) from None


def areas(spec: str, depth: int, option: str) -> list[int]:
    """Area indices named by ``spec`` (all, top, none, or comma-separated) for a ``depth``-area model."""
    s = spec.strip().lower()
    if s == "none":
        return []
    if s == "all":
        return list(range(depth))
    if s == "top":
        return [depth - 2, depth - 1]
    try:
        js = sorted({int(v) for v in s.split(",") if v.strip()})
    except ValueError:
        raise UserError(f"bad {option} '{spec}': use all, top, none or comma-separated area indices") from None
    bad = [j for j in js if not 0 <= j < depth]
    if bad or not js:
        raise UserError(f"bad {option} '{spec}': the model has areas 0..{depth - 1}")
    return js


def norm_preset(name: str, data: str, channels: int) -> Any:
    """The normalisation preset ``name`` (auto: by channels and data) for ``channels``-channel images."""
    from rnntk.cordsnet.images import ImageError, preset_for

    if name == "auto":
        name = "imagenet" if channels == 3 else ("digits" if data == "digits" else "mnist")
    try:
        p = preset_for(name, channels)
    except ImageError as e:
        raise UserError(str(e)) from None
    if p.channels != channels:
        raise UserError(f"--dataset-preset {name} is for {p.channels}-channel images, but the model takes {channels}")
    return p


def eval_model(cfg: EvalConfig) -> tuple[Any, dict[str, Any]]:
    """(the checkpoint's model or None for --init random, the model's hyper-parameters)."""
    if (cfg.checkpoint is None) == (cfg.init is None):
        raise UserError("give either --checkpoint PATH or --init random")
    if cfg.checkpoint is not None:
        model = load_model(cfg.checkpoint, dict(depth=cfg.depth, classes=cfg.classes, image_size=cfg.image_size, width=cfg.width))
        return model, model.hparams()
    digits = cfg.data == "digits"
    chans = 1 if digits or cfg.dataset_preset in ("mnist", "fashionmnist", "digits") else 3
    hp = dict(
        depth=cfg.depth or 8,
        classes=cfg.classes or (10 if digits else 1000),
        in_channels=chans,
        image_size=cfg.image_size or (32 if digits else 224),
        width=cfg.width or 1.0,
    )
    return None, hp


def check_eval_fits(model: Any, hp: dict[str, Any], shapes: list, batch_size: int, dtype: Any, device: str) -> None:
    """Refuse (one line, exit 2) a CordsNet or a batch that cannot fit in memory: the weights
    (counted on the meta device, nothing allocated) plus the states of one batch."""
    import torch

    from rnntk.cordsnet.model import CordsNet
    from rnntk.engine.device import resolve_device

    isz = torch.empty((), dtype=dtype).element_size()
    n_params = 0.0
    if model is None:
        with torch.device("meta"), oom_as_error("sizing the CordsNet"):
            try:
                n_params = float(sum(p.numel() for p in CordsNet(**hp).parameters()))
            except (ValueError, TypeError, RuntimeError) as e:
                raise UserError(f"bad CordsNet size {hp}: {' '.join(str(e).split())[:160]}") from None
    per_image = sum(float(c) * h * w for c, h, w in shapes)
    state = 4.0 * batch_size * per_image * isz  # states, pre-activations, drives, one step's temporaries
    check_fits(
        n_params * isz + state,
        resolve_device(device),
        f"a CordsNet with width {hp['width']:g}, {hp['classes']} classes and --batch-size {batch_size}",
        hint="use a smaller --width/--classes/--image-size/--batch-size",
    )


def eigs_image(spec: Optional[str], model: Any, preset_name: str) -> Any:
    """One preprocessed image ``(1, C, S, S)`` for the image-driven Jacobian."""
    from rnntk.cordsnet.images import ImageError, load_digits_source

    if spec is None:
        raise UserError("--operator jacobian-image needs --image FILE (or --image digits:N)")
    try:
        if spec.startswith("digits:"):
            try:
                i = int(spec.split(":", 1)[1])
            except ValueError:
                raise UserError(f"bad --image '{spec}': use digits:N with an integer N") from None
            src = load_digits_source()
            if not 0 <= i < len(src):
                raise UserError(f"bad --image '{spec}': the digits have images 0..{len(src) - 1}")
            return src.load([i], model.image_size, norm_preset(preset_name, "digits", model.in_channels))
        p = Path(spec)
        if not p.is_file():
            raise UserError(f"image not found: {p}")
        from rnntk.cordsnet.images import load_image_file

        return load_image_file(p, model.image_size, norm_preset(preset_name, str(p), model.in_channels))
    except ImageError as e:
        raise UserError(str(e)) from None
