"""Sizes that cannot fit, allocation failures and overflowing values, as one-line errors.

Commands estimate the bytes of a run's main tensors *before* allocating them and call
:func:`check_fits`; an allocation that fails anyway (another process took the memory) is
turned into a one-line :class:`UserError` (exit 2) by :func:`oom_as_error`; an optimizer
whose update overflows (``--lr 1e38``) stops the run through the non-finite guard (exit 3,
last good checkpoint kept) by :func:`overflow_as_nonfinite`.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
from collections.abc import Iterator
from typing import Any

from .errors import NonFiniteError, UserError
from .files import human_bytes

# what a run may plan to use of the memory the device has free (the rest: Python, libraries,
# temporaries the estimate leaves out)
FRACTION = 0.8


def _cgroup_free() -> float:
    """Bytes left under this process's cgroup (v2 or v1) memory limit, inf without one."""
    for lim, use in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            with open(lim) as f:
                raw = f.read().strip()
            if raw == "max":
                continue
            with open(use) as f:
                return max(0.0, float(int(raw)) - float(int(f.read().strip())))
        except (OSError, ValueError):
            continue
    return math.inf


def available_bytes(device: Any = "cpu") -> float:
    """Bytes a new allocation can get on ``device``: for CUDA the free device memory; for the
    CPU the least of ``MemAvailable`` (/proc/meminfo), the cgroup limit left and the address
    space limit (``ulimit -v``) left. ``inf`` when nothing can be read."""
    dev = str(device)
    if dev.startswith("cuda"):
        import torch

        try:
            free, _total = torch.cuda.mem_get_info(torch.device(dev))
            return float(free)
        except (RuntimeError, AssertionError, ValueError):
            return math.inf
    avail = math.inf
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = float(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    avail = min(avail, _cgroup_free())
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        try:
            with open("/proc/self/statm") as f:
                used = float(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            avail = min(avail, max(0.0, soft - used))
        except (OSError, ValueError, IndexError):
            pass
    return avail


def check_fits(nbytes: float, device: Any, what: str, hint: str = "") -> None:
    """Raise a one-line :class:`UserError` (exit 2) when ``nbytes`` (the estimated bytes of
    ``what``, e.g. "the recurrent weights of --hidden 10000000") exceed ``FRACTION`` of
    :func:`available_bytes` on ``device``. Call it before allocating. (``--dry-run`` reports
    the largest estimate: :data:`rnntk.engine.dry_run.ESTIMATES`.)"""
    from .dry_run import ESTIMATES

    ESTIMATES.append((float(nbytes), what))
    if not math.isfinite(nbytes):
        raise UserError(f"{what} would need more memory than any machine has{'; ' + hint if hint else ''}")
    avail = available_bytes(device)
    if nbytes > FRACTION * avail:
        raise UserError(f"{what} would need {human_bytes(nbytes)} but {device} has {human_bytes(avail)} free{'; ' + hint if hint else ''}")


def nbytes_of(*shape: float, itemsize: int = 4) -> float:
    """Bytes of a tensor of ``shape`` (float, so that huge products do not overflow)."""
    return float(math.prod(float(s) for s in shape)) * itemsize


def is_oom(e: BaseException) -> bool:
    """True for a failed allocation: MemoryError, torch's OutOfMemoryError, or the allocator's
    RuntimeError ("can't allocate memory", "not enough memory", "CUDA out of memory")."""
    if isinstance(e, MemoryError):
        return True
    name = type(e).__name__
    if name == "OutOfMemoryError":
        return True
    if isinstance(e, RuntimeError):
        msg = str(e)
        return any(
            s in msg
            for s in (
                "can't allocate memory",
                "not enough memory",
                "out of memory",
                "Cannot allocate memory",
                "Trying to create tensor with negative dimension",
                "numel: integer multiplication overflow",
            )
        )
    return False


def oom_line(e: BaseException, what: str = "", hint: str = "use smaller sizes") -> str:
    """The one-line message for a failed allocation ``e`` (see :func:`is_oom`), optionally
    saying ``what`` was being done."""
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
    during = f" while {what}" if what else ""
    return f"out of memory{during} ({type(e).__name__}: {first}); {hint}"


@contextlib.contextmanager
def oom_as_error(what: str, hint: str = "use smaller sizes") -> Iterator[None]:
    """Turn an allocation failure inside the block into a one-line :class:`UserError` (exit 2)."""
    try:
        yield
    except Exception as e:
        if not is_oom(e):
            raise
        raise UserError(oom_line(e, what, hint)) from None


@contextlib.contextmanager
def overflow_as_nonfinite(step: int, name: str) -> Iterator[None]:
    """An update whose value overflows the tensor's dtype (``--lr 1e38`` in Adam: "value
    cannot be converted to type float without overflow") raises :class:`NonFiniteError`
    (exit 3; the run keeps its last good checkpoint) instead of an internal error."""
    try:
        yield
    except (RuntimeError, OverflowError) as e:
        msg = str(e)
        if "overflow" not in msg and not isinstance(e, OverflowError):
            raise
        raise NonFiniteError(step, name, math.inf, note="the update overflowed") from None
