"""Atomic writes: temp file in the same folder, fsync, ``os.replace``."""

from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success fsync it and rename it into place.

    The previous file at ``path`` stays untouched until the rename, so a crash
    never leaves a half-written file under the final name.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN/inf float replaced by None, so that strict JSON parsers (jq,
    JSON.parse, serde) read it; containers copied, other values as they are."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and hasattr(obj, "dtype") and getattr(obj, "ndim", 1) == 0:  # NumPy/torch scalars
        return json_safe(obj.item())
    return obj


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`json_safe` ``(obj)``: never prints bare NaN/Infinity."""

    def default(o: Any) -> Any:
        v = json_safe(o)
        return v if v is not o else str(o)

    return json.dumps(json_safe(obj), allow_nan=False, default=default, **kwargs)


def write_json_atomic(path: Path | str, obj: Any) -> None:
    """Write ``obj`` as indented strict JSON (NaN/inf → null) to ``path`` atomically."""
    write_text_atomic(path, dumps_strict(obj, indent=2) + "\n")


_DISK_ERRNOS = {28, 122, 30, 5}  # ENOSPC, EDQUOT, EROFS, EIO
_DISK_WORDS = (
    "no space left",
    "disk quota",
    "read-only file system",
    "input/output error",
    "file write failed",
    "unexpected pos",
    "iostream error",
    "errno = 28",
)


def _mount_of(path: Path) -> tuple[str, str]:
    """(mount point, device) of the filesystem holding ``path`` (Linux /proc/mounts)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    dev = "?"
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 2 and parts[1] == str(p):
                    dev = f"{parts[0]}, {parts[2]}"
    except OSError:
        pass
    return str(p), dev


def human_bytes(n: float) -> str:
    """``n`` bytes as a short binary-unit string (``1.5 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def disk_free(path: Path | str) -> int | None:
    """Bytes available to this user on the filesystem holding ``path`` (None if unknown)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def write_failure(path: Path | str, exc: BaseException) -> str | None:
    """If ``exc`` is a failed write to ``path`` (disk full, quota, read-only, I/O error),
    one line naming the disk; else None (a bug, not the disk)."""
    text = f"{exc}".lower()
    no = getattr(exc, "errno", None)
    free = disk_free(path)
    full = (
        no in (28, 122)
        or "no space left" in text
        or "errno = 28" in text
        or "disk quota" in text
        or (free is not None and free < 64 * 1024 and isinstance(exc, (OSError, RuntimeError)))
    )
    if not full and no not in _DISK_ERRNOS and not any(w in text for w in _DISK_WORDS):
        return None
    mount, dev = _mount_of(Path(path))
    if full:
        what = f"no space left on {mount} ({dev}; {human_bytes(free) if free is not None else '?'} free)"
    else:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        what = f"{first} (disk {mount}, {dev})"
    return f"cannot write {path}: {what}; what was written before is kept"
