"""Device and dtype policy: ``--device auto|cpu|cuda|cuda:N`` and ``--dtype``."""

from __future__ import annotations

import re

import torch

from .errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn a ``--device`` value into a :class:`torch.device`.

    ``"auto"`` picks ``cuda`` when a CUDA device is visible, else ``cpu``.
    Asking for CUDA where there is none, or for an index past the last GPU,
    raises :class:`UserError` (exit 2) rather than falling back silently.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    s = str(spec).strip().lower()
    if s == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if s == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", s)
    if not m:
        raise UserError(f"bad --device '{spec}': use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise UserError(f"--device {spec} asked for CUDA, but none is available (torch {torch.__version__}); use --device cpu or auto")
    idx = int(m.group(1)) if m.group(1) is not None else torch.cuda.current_device()
    n = torch.cuda.device_count()
    if idx >= n:
        raise UserError(f"--device {spec}: only {n} CUDA device(s) visible (cuda:0..cuda:{n - 1})")
    return torch.device("cuda", idx)


def resolve_dtype(name: str | torch.dtype = "float32") -> torch.dtype:
    """``"float32"``/``"float64"`` (or a torch dtype) to a torch dtype; UserError otherwise."""
    if isinstance(name, torch.dtype):
        return name
    try:
        return DTYPES[str(name).lower()]
    except KeyError:
        raise UserError(f"bad --dtype '{name}': use {' or '.join(DTYPES)}") from None


def generator_device(generator: torch.Generator | None, default: torch.device | str | None = None) -> torch.device:
    """Where to draw random numbers: ``generator``'s own device, or ``default`` (CPU when
    None) without one. Drawing with ``device=generator_device(g, x.device)`` keeps a CPU
    generator's stream bit-identical and makes a CUDA generator draw on its GPU (no copy)."""
    if generator is not None:
        return generator.device
    return torch.device(default) if default is not None else torch.device("cpu")


def device_generator(device: torch.device, cpu_generator: torch.Generator, seed: int) -> torch.Generator:
    """The generator a run draws per-step randomness from (tangents, noise, dropout, start
    vectors) on ``device``: ``cpu_generator`` itself on the CPU (so CPU streams are unchanged),
    else a generator on that device seeded with ``seed``."""
    if device.type == "cpu":
        return cpu_generator
    return torch.Generator(device=device).manual_seed(int(seed))


def device_name(device: torch.device) -> str:
    """A human-readable device description for provenance (GPU model name on CUDA)."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
