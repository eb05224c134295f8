"""One call seeds everything; RNG states captured and restored for exact resume.

All captured states are made of tensors, ints and tuples only, so they load with
``torch.load(..., weights_only=True)`` (NumPy's legacy ``get_state()`` returns an
ndarray, which does not; we store its key as a tensor).
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from typing import Any

import numpy as np
import torch

from .errors import UserError

MAX_SEED = 2**63 - 1


def resolve_seed(value: str | int | None) -> int:
    """Parse ``--seed``: a non-negative integer, or ``auto``.

    ``auto`` (or ``auto+BASE``) takes ``BASE + SLURM_ARRAY_TASK_ID``, so each task of
    a Slurm array gets its own seed; outside an array it is ``BASE`` (default 0)
    and a note is printed to stderr.
    """
    if value is None:
        return 0
    if isinstance(value, int):
        s = str(value)
    else:
        s = str(value).strip()
    if s.lower().startswith("auto"):
        rest = s[4:]
        base = 0
        if rest:
            if not rest.startswith("+") or not rest[1:].isdigit():
                raise UserError(f"bad --seed '{value}': use an integer, 'auto' or 'auto+BASE'")
            base = int(rest[1:])
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        if task is None or task.strip() == "":
            print(f"note: --seed {s}: SLURM_ARRAY_TASK_ID is not set; using seed {base}", file=sys.stderr)
            return base
        if not task.strip().isdigit():
            raise UserError(f"--seed auto: SLURM_ARRAY_TASK_ID='{task}' is not an integer")
        return base + int(task)
    try:
        seed = int(s)
    except ValueError:
        raise UserError(f"bad --seed '{value}': use an integer, 'auto' or 'auto+BASE'") from None
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"bad --seed {seed}: must be between 0 and 2**63-1")
    return seed


def derive_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for a named sub-stream (e.g. ``"brownian"``, ``"data"``), stable
    across platforms and Python versions (SHA-256 of ``"{seed}/{stream}"``)."""
    h = hashlib.sha256(f"{int(seed)}/{stream}".encode()).digest()
    return int.from_bytes(h[:8], "little") & MAX_SEED


def stream_generator(seed: int, stream: str, *, device: str | torch.device = "cpu", legacy_offset: int | None = None) -> torch.Generator:
    """A fresh :class:`torch.Generator` on ``device`` for the named random stream of a run
    seeded ``seed``: seeded with :func:`derive_seed` ``(seed, stream)``, so streams never
    overlap and adding one changes no other.

    ``legacy_offset``: seed it with ``seed + legacy_offset`` instead, the derivation of
    rnntk before named streams, kept where a published figure or a pinned test depends on
    those exact draws (the stream name then only documents the site).
    """
    s = int(seed) + int(legacy_offset) if legacy_offset is not None else derive_seed(seed, stream)
    return torch.Generator(device=device).manual_seed(s)


def numpy_stream(seed: int, stream: str, *, legacy_offset: int | None = None) -> np.random.Generator:
    """:func:`stream_generator` for NumPy: a fresh ``np.random.Generator`` (PCG64) for the
    named stream (``legacy_offset``: seeded ``seed + legacy_offset``, the older derivation)."""
    return np.random.default_rng(int(seed) + int(legacy_offset) if legacy_offset is not None else derive_seed(seed, stream))


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, NumPy's global RNG, torch (CPU and every CUDA device).

    Returns a CPU :class:`torch.Generator` seeded from the ``"data"`` sub-stream, for
    trial generators that should not share the global stream. Same seed, same thread
    count, same device → bit-identical results on CPU.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds all CUDA devices
    gen = torch.Generator(device="cpu")
    gen.manual_seed(derive_seed(seed, "data"))
    return gen


def seeds_record(seed: int) -> dict[str, int]:
    """The seeds of every stream, for the run file's provenance."""
    return {
        "python": int(seed),
        "numpy": int(seed) % 2**32,
        "torch": int(seed),
        "data": derive_seed(seed, "data"),
        "brownian": derive_seed(seed, "brownian"),
    }


def get_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Capture every RNG state (weights_only-loadable)."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what :func:`get_rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": int(n["pos"])},
            "has_gauss": int(n["has_gauss"]),
            "gauss": float(n["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def validate_rng_state(state: Any, generator: torch.Generator | None = None) -> None:
    """Check that :func:`set_rng_state` would accept ``state`` (every entry present and of
    the right kind and size) without changing any RNG: the states are applied, then the
    current ones restored. Raises :class:`UserError` naming the first bad entry."""
    if not isinstance(state, dict):
        raise UserError(f"the RNG state is a {type(state).__name__}, not a dict")
    for key in ("python", "numpy", "torch"):
        if key not in state:
            raise UserError(f"the RNG state has no '{key}' entry")
    n = state["numpy"]
    if not isinstance(n, dict) or not all(k in n for k in ("key", "pos", "has_gauss", "gauss")):
        raise UserError("the RNG state's 'numpy' entry is not a MT19937 state")
    if not isinstance(n["key"], torch.Tensor) or tuple(n["key"].shape) != (624,):
        raise UserError("the RNG state's 'numpy' key is not 624 integers")
    t = state["torch"]
    own = torch.get_rng_state()
    if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.shape != own.shape:
        raise UserError("the RNG state's 'torch' entry is not a CPU generator state")
    g = state.get("generator")
    if generator is not None and g is not None and (not isinstance(g, torch.Tensor) or g.dtype != torch.uint8 or g.shape != generator.get_state().shape):
        raise UserError("the RNG state's 'generator' entry is not a CPU generator state")
    saved = get_rng_state(generator)
    try:
        set_rng_state(state, generator)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any malformed entry
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise UserError(f"the RNG state cannot be restored ({type(e).__name__}: {first})") from None
    finally:
        set_rng_state(saved, generator)
