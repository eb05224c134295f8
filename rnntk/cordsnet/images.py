"""Image sources for vision models, read locally (never downloaded), with upstream CordsNet's
preprocessing reimplemented with Pillow + torch (no torchvision):

* ``digits`` — scikit-learn's bundled 8x8 digits (1,797 images, labels 0-9), upsampled;
* ``folder:DIR`` — an ImageFolder-style tree ``DIR/<class>/<image>`` (class = sorted
  sub-folder name -> index; for ImageNet this is the standard synset order);
* ``npz:FILE`` — an ``.npz`` with ``images`` (uint8 ``[N,H,W]`` or ``[N,H,W,3]``, or float in
  [0,1]) and optional ``labels`` (int);
* ``images:GLOB`` — image files matching a glob, unlabeled.

Preprocessing (:class:`Preset`): ``crop`` presets (ImageNet) resize the shorter side to
``S*256/224`` and centre-crop ``S``; ``resize`` presets (CIFAR, MNIST, digits) resize straight
to ``S x S`` (upstream upsamples small datasets to 224). Then scale to [0,1] and normalise.
Image files and uint8 arrays go through Pillow exactly as upstream's torchvision transforms do
(``Resize`` = PIL bilinear on the uint8 image, rounded; ``CenterCrop``; ``ToTensor``;
``Normalize``), so an image gives upstream's input tensor bit for bit (:func:`preprocess_pil`;
torchvision is not needed). Float arrays (the bundled digits, float ``.npz``) have no uint8
image: they are resized in float with ``torch.nn.functional.interpolate(antialias=True)``.
"""

from __future__ import annotations

import glob as _glob
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from PIL import Image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageError(ValueError):
    """Bad image input (missing folder, unreadable image, npz without ``images``): one line."""


@dataclass(frozen=True)
class Preset:
    """Preprocessing of a dataset: channels (1 or 3), ``mode`` (``crop``|``resize``), mean/std
    per channel (applied after scaling to [0,1])."""

    name: str
    channels: int
    mode: str
    mean: tuple[float, ...]
    std: tuple[float, ...]


PRESETS = {
    "imagenet": Preset("imagenet", 3, "crop", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": Preset("cifar10", 3, "resize", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": Preset("cifar100", 3, "resize", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": Preset("mnist", 1, "resize", (0.1307,), (0.3081,)),
    "fashionmnist": Preset("fashionmnist", 1, "resize", (0.2860,), (0.3530,)),
    # rnntk-only: mean/std of all 1,797 scikit-learn digits scaled to [0,1]
    "digits": Preset("digits", 1, "resize", (0.30526,), (0.37605,)),
}


def preset_for(name: str, channels: int) -> Preset:
    """A named preset, or ``none``: no normalisation (mean 0, std 1), resize mode."""
    if name == "none":
        return Preset("none", channels, "resize", (0.0,) * channels, (1.0,) * channels)
    if name not in PRESETS:
        raise ImageError(f"unknown dataset preset '{name}'; use one of {', '.join([*PRESETS, 'none'])}")
    return PRESETS[name]


def preprocess(x: torch.Tensor, size: int, preset: Preset) -> torch.Tensor:
    """``(B, C, H, W)`` images in [0,1] -> ``(B, C, size, size)`` normalised float32.

    ``crop`` mode: shorter side -> ``round(size*256/224)`` (bilinear, antialiased), then a
    centre crop of ``size`` (offsets rounded as torchvision does). ``resize`` mode: straight
    to ``size x size``."""
    x = x.float()
    if x.shape[1] != preset.channels:
        if preset.channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif preset.channels == 1 and x.shape[1] == 3:  # ITU-R 601-2 luma, as Pillow's "L"
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        else:
            raise ImageError(f"images have {x.shape[1]} channels; the model needs {preset.channels}")
    H, W = x.shape[-2:]
    if preset.mode == "crop":
        short = max(1, round(size * 256 / 224))
        nh, nw = (short, max(1, int(short * W / H))) if H <= W else (max(1, int(short * H / W)), short)
        if (nh, nw) != (H, W):
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
        if nh < size or nw < size:
            raise ImageError(f"image of {H}x{W} is too small to crop {size}x{size}")
        x = x[..., top : top + size, left : left + size]
    elif (H, W) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return _normalize(x, preset)


def _normalize(x: torch.Tensor, preset: Preset) -> torch.Tensor:
    """``(x - mean) / std`` per channel of ``x`` ``(B, C, H, W)`` in [0,1], in ``x``'s dtype."""
    mean = torch.tensor(preset.mean, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(preset.std, dtype=x.dtype).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()


def preprocess_pil(im: Image.Image, size: int, preset: Preset) -> torch.Tensor:
    """One Pillow image -> ``(1, C, size, size)`` float32, as upstream's
    ``Resize(round(size*256/224)) + CenterCrop(size)`` (``crop`` presets; 256/224 at size 224) or
    ``Resize((size, size))`` (``resize`` presets), then ``ToTensor`` and ``Normalize``: the image is
    converted to ``RGB``/``L`` (Pillow's rounded ITU-R 601-2 luma), resized by Pillow's bilinear
    filter on uint8 (the result rounded to uint8), cropped with torchvision's rounded offsets,
    divided by 255 and normalised in float32."""
    from PIL import Image

    im = im.convert("RGB" if preset.channels == 3 else "L")
    w, h = im.size
    if preset.mode == "crop":
        short = max(1, round(size * 256 / 224))
        nw, nh = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), Image.Resampling.BILINEAR)
        if nh < size or nw < size:
            raise ImageError(f"image of {h}x{w} is too small to crop {size}x{size}")
        top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
        im = im.crop((left, top, left + size, top + size))
    elif (w, h) != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    a = np.asarray(im, dtype=np.uint8)
    x = torch.from_numpy(a.copy()).float().div(255.0)
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    return _normalize(x, preset)


def _pil_from_uint8(a: np.ndarray) -> Image.Image:
    from PIL import Image

    a = np.ascontiguousarray(a)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    return Image.fromarray(a, "L" if a.ndim == 2 else "RGB")


def load_image_file(path: Path, size: int, preset: Preset) -> torch.Tensor:
    """One image file, read and preprocessed as upstream: ``(1, C, size, size)`` float32."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return preprocess_pil(im, size, preset)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        if isinstance(e, ImageError):
            raise
        raise ImageError(f"cannot read image {path}: {' '.join(str(e).split())[:160]}") from None


class ImageSource:
    """``n`` images, loaded in batches with :meth:`load` (files are read lazily).

    labels: int64 ``(n,)`` or None; names: one string per image (file name or index);
    classes: class names (index = label) or None; kind: ``digits|folder|npz|images``."""

    def __init__(
        self,
        kind: str,
        names: list[str],
        labels: Optional[np.ndarray],
        classes: Optional[list[str]],
        arrays: Optional[np.ndarray] = None,
        files: Optional[list[Path]] = None,
    ) -> None:
        self.kind, self.names, self.classes = kind, names, classes
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self._arrays, self._files = arrays, files

    def __len__(self) -> int:
        return len(self.names)

    def limit(self, n: int) -> "ImageSource":
        """The first ``n`` images."""
        return ImageSource(
            self.kind,
            self.names[:n],
            None if self.labels is None else self.labels[:n].numpy(),
            self.classes,
            None if self._arrays is None else self._arrays[:n],
            None if self._files is None else self._files[:n],
        )

    def load(self, idx: Sequence[int], size: int, preset: Preset) -> torch.Tensor:
        """Images ``idx`` preprocessed: ``(len(idx), C, size, size)`` float32."""
        if self._arrays is not None:
            a = self._arrays[np.asarray(idx)]
            if a.dtype == np.uint8:  # exact upstream path, one Pillow image at a time
                return torch.cat([preprocess_pil(_pil_from_uint8(x), size, preset) for x in a], 0)
            return preprocess(_to_nchw(a), size, preset)
        assert self._files is not None
        return torch.cat([load_image_file(self._files[i], size, preset) for i in idx], 0)


def _to_nchw(a: np.ndarray) -> torch.Tensor:
    """``[N,H,W]`` / ``[N,H,W,C]`` uint8 or float in [0,1] -> float ``(N, C, H, W)`` in [0,1]."""
    t = torch.from_numpy(np.ascontiguousarray(a))
    t = t.float() / 255.0 if a.dtype == np.uint8 else t.float()
    if t.ndim == 3:
        t = t[:, None]
    else:
        t = t.permute(0, 3, 1, 2)
    return t


def _check_readable(path: Path) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            pass
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ImageError(f"cannot read image {path}: {' '.join(str(e).split())[:160]}") from None


def load_digits_source() -> ImageSource:
    """scikit-learn's 1,797 bundled 8x8 digits, scaled to [0,1] (labels 0-9)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImageError("the digits demo needs scikit-learn: pip install scikit-learn") from None
    d: Any = load_digits()  # a Bunch
    return ImageSource(
        "digits",
        [f"digit{i}" for i in range(len(d.target))],
        d.target.astype(np.int64),
        [str(c) for c in range(10)],
        arrays=(d.images / 16.0).astype(np.float32),
    )


def load_npz_source(path: Path) -> ImageSource:
    """``images`` (+ optional ``labels``) from an ``.npz``."""
    if not path.is_file():
        raise ImageError(f"npz file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            if "images" not in keys:
                raise ImageError(f"{path} has no 'images' array (found: {', '.join(keys) or 'nothing'})")
            images = z["images"]
            labels = z["labels"] if "labels" in keys else None
    except ImageError:
        raise
    except (ValueError, OSError, EOFError) as e:
        raise ImageError(f"cannot read npz {path}: {' '.join(str(e).split())[:160]}") from None
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise ImageError(f"{path}: 'images' has shape {images.shape}; expected [N,H,W] or [N,H,W,3]")
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise ImageError(f"{path}: 'images' has dtype {images.dtype}; expected uint8 (0-255) or float (0-1)")
    if images.shape[0] == 0 or 0 in images.shape[1:3]:
        raise ImageError(f"{path}: 'images' has shape {images.shape}: no image to evaluate")
    if np.issubdtype(images.dtype, np.floating):
        lo, hi = (float(images.min()), float(images.max())) if np.isfinite(images).all() else (math.nan, math.nan)
        if not (0.0 <= lo and hi <= 1.0):
            raise ImageError(f"{path}: float 'images' must be finite values in [0, 1] (found {lo:g}..{hi:g}); store 0-255 pixels as uint8")
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != images.shape[0] or not np.issubdtype(labels.dtype, np.integer):
            raise ImageError(f"{path}: 'labels' must be {images.shape[0]} integers, got shape {labels.shape} dtype {labels.dtype}")
        if labels.size and int(labels.min()) < 0:
            raise ImageError(f"{path}: 'labels' must be class indices >= 0 (found {int(labels.min())})")
    return ImageSource("npz", [str(i) for i in range(images.shape[0])], labels, None, arrays=images)


def load_folder_source(root: Path) -> ImageSource:
    """An ImageFolder-style tree: ``root/<class>/<image>``; sorted class names -> 0, 1, ..."""
    if not root.is_dir():
        raise ImageError(f"image folder not found: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ImageError(f"{root} has no class sub-folders (expected {root}/<class>/<image files>)")
    files, labels = [], []
    for ci, c in enumerate(classes):
        for f in sorted((root / c).rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_EXTS:
                files.append(f)
                labels.append(ci)
    if not files:
        raise ImageError(f"{root}: no image files ({', '.join(IMAGE_EXTS[:4])}, ...) in its class folders")
    for f in files:
        _check_readable(f)
    return ImageSource("folder", [str(f.relative_to(root)) for f in files], np.array(labels, dtype=np.int64), classes, files=files)


def load_glob_source(pattern: str) -> ImageSource:
    """Image files matching ``pattern`` (sorted), unlabeled."""
    files = sorted(Path(p) for p in _glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not files:
        raise ImageError(f"no image files match '{pattern}'")
    for f in files:
        _check_readable(f)
    return ImageSource("images", [str(f) for f in files], None, None, files=files)


def open_source(spec: str) -> ImageSource:
    """``digits``, ``folder:DIR``, ``npz:FILE`` or ``images:GLOB`` (a bare folder, ``.npz``
    path or glob pattern is recognised too)."""
    kind, _, rest = spec.partition(":")
    if spec == "digits":
        return load_digits_source()
    if kind == "folder" and rest:
        return load_folder_source(Path(rest))
    if kind == "npz" and rest:
        return load_npz_source(Path(rest))
    if kind == "images" and rest:
        return load_glob_source(rest)
    if any(ch in spec for ch in "*?["):
        return load_glob_source(spec)
    p = Path(spec)
    if p.suffix == ".npz":
        return load_npz_source(p)
    if p.is_dir():
        return load_folder_source(p)
    raise ImageError(f"bad --data '{spec}': use digits, folder:DIR, npz:FILE or images:GLOB (no such folder or file)")
