"""What makes a folder an rnntk run folder, what ``--force`` may delete, and the lock that
keeps two processes from writing one run.

- **Marker.** When rnntk creates a run it writes ``.rnntk-run``: JSON holding a random
  ``id`` (also stored as the ``run_id`` attribute of ``run.h5``) and the list of every
  file rnntk wrote there (fixed names plus what commands write through ``run.path`` /
  ``run.figure`` / ``run.save_model``). A folder is recognised by this marker only, never by
  file names or headers: a copied ``config.toml`` or ``run.h5``, an imitated header or a
  recipe is not a run folder.
- **--force** replaces a folder only when it, its marker and its ``run.h5`` are plain
  files/folders (no symbolic link anywhere), the marker's id matches ``run.h5``'s, every
  entry is listed in the marker (a stray ``thesis.tex`` stops it), and no live process
  holds the lock. It then deletes exactly the entries it checked, one by one.
- **Lock.** ``.rnntk-lock`` (JSON: pid, host, process start time) is created with
  ``O_EXCL`` when a run opens and removed when it closes. A lock whose owner is gone (same
  host, pid dead or reused) is stale and taken over; a lock from another host is respected.

This module does not import torch.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import stat
import time
from pathlib import Path
from typing import Any, Iterable

from .errors import UserError
from .files import write_text_atomic

MARKER = ".rnntk-run"
LOCK = ".rnntk-lock"
RESERVE = ".rnntk-reserve"
MARKER_FORMAT = "rnntk-run-marker"
#: the names rnntk itself writes in every run folder
RUN_FILES = ("run.h5", "config.toml", "summary.json", "ckpt-last.pt", "model.pt", MARKER, LOCK, RESERVE)
_TMP = re.compile(r"^(?P<base>.+)\.tmp-\d+$")  # files.atomic_path's temp names (left by kill -9)


def new_run_id() -> str:
    """A random 128-bit id (hex) for a new run."""
    return secrets.token_hex(16)


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def read_marker(folder: Path | str) -> dict[str, Any] | None:
    """The marker of ``folder`` (``{"id", "files", ...}``), or None when there is no
    marker rnntk could have written (missing, a symlink, not JSON, wrong format)."""
    p = Path(folder) / MARKER
    if not _regular(p):
        return None
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            data = json.loads(fh.read(1 << 20).decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT or not isinstance(data.get("id"), str):
        return None
    if not isinstance(data.get("files"), list) or not all(isinstance(x, str) for x in data["files"]):
        return None
    return data


def write_marker(folder: Path | str, run_id: str, files: Iterable[str] = ()) -> None:
    """Write (atomically) ``folder/.rnntk-run`` with ``run_id`` and the written ``files``."""
    data = {
        "format": MARKER_FORMAT,
        "id": run_id,
        "files": sorted(set(files)),
        "note": "written by rnntk: marks this folder as an rnntk run (--force checks it)",
    }
    write_text_atomic(Path(folder) / MARKER, json.dumps(data, indent=1) + "\n")


def register(folder: Path | str, run_id: str, names: Iterable[str]) -> None:
    """Add ``names`` (files rnntk writes in the run folder) to the marker's list."""
    m = read_marker(folder)
    files = set(m["files"]) if m and m.get("id") == run_id else set()
    new = {n for n in names if n not in RUN_FILES} - files
    if new or m is None:
        write_marker(folder, run_id, files | new)


# ---------------------------------------------------------------------------------------
# lock
# ---------------------------------------------------------------------------------------
def _proc_start(pid: int) -> str:
    """The start time of process ``pid`` (Linux /proc), '' where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError):
        return ""


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    now = _proc_start(pid)
    return not (start and now and now != start)  # a reused pid is another process


def read_lock(folder: Path | str) -> dict[str, Any] | None:
    """The lock's content (``pid``, ``host``, ``start``, ``created``); ``{}`` for a lock
    file that cannot be parsed; None when there is none."""
    p = Path(folder) / LOCK
    if not os.path.lexists(p):
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def lock_holder(folder: Path | str) -> str | None:
    """A description of the live process holding ``folder``'s lock, or None when the
    folder is not locked or the lock is stale."""
    info = read_lock(folder)
    if info is None:
        return None
    pid, host = info.get("pid"), info.get("host")
    if not isinstance(pid, int) or not isinstance(host, str):
        age = time.time() - os.lstat(Path(folder) / LOCK).st_mtime
        return None if age > 60 else "an unreadable lock written less than a minute ago"
    if host != socket.gethostname():
        return f"pid {pid} on host {host} (delete {Path(folder) / LOCK} if no rnntk run is writing there)"
    if pid == os.getpid() or _alive(pid, str(info.get("start", ""))):
        return f"pid {pid} on host {host}"
    return None


class RunLock:
    """``.rnntk-lock`` in a run folder, held while a run writes it."""

    def __init__(self, folder: Path | str) -> None:
        self.path = Path(folder) / LOCK
        self.held = False
        self.took_over = ""

    def acquire(self) -> "RunLock":
        """Create the lock (``O_EXCL``), taking over a stale one; :class:`UserError` while
        another live process holds it."""
        body = (
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "start": _proc_start(os.getpid()),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
            + "\n"
        )
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except FileExistsError:
                self.check_free()
                old = read_lock(self.path.parent) or {}
                self.took_over = f"stale lock of pid {old.get('pid', '?')} on {old.get('host', '?')}"
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                continue
            except OSError as e:
                raise UserError(f"cannot lock {self.path.parent}: {e.strerror or e}") from None
            try:
                os.write(fd, body.encode())
            finally:
                os.close(fd)
            self.held = True
            return self
        raise UserError(f"cannot lock {self.path.parent}: another process keeps re-creating {LOCK}")

    def check_free(self) -> None:
        """:class:`UserError` while another live process holds the lock (a stale lock is free);
        makes and changes nothing (``--resume --dry-run`` checks with it)."""
        holder = lock_holder(self.path.parent)
        if holder is not None:
            raise UserError(f"{self.path.parent} is in use by another rnntk process ({holder}); wait for it to finish or stop it") from None

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        if not self.held:
            return
        self.held = False
        info = read_lock(self.path.parent)
        if info and info.get("pid") == os.getpid() and info.get("host") == socket.gethostname():
            try:
                os.unlink(self.path)
            except OSError:
                pass


# ---------------------------------------------------------------------------------------
# --force
# ---------------------------------------------------------------------------------------
def replaceable_entries(folder: Path | str, *, locked_by_us: bool = False) -> list[str]:
    """Check that ``folder`` is an rnntk run folder that ``--force`` may replace; return
    the names to delete. :class:`UserError` (nothing deleted) otherwise. ``locked_by_us``:
    this process holds the folder's lock (the check after taking it)."""
    d = Path(folder)
    if os.path.islink(d):
        raise UserError(f"--force: {d} is a symbolic link; refusing to delete what it points to")
    marker = read_marker(d)
    if marker is None:
        raise UserError(f"--force: {d} is not an rnntk run folder (no {MARKER} marker written by rnntk when it created the run); refusing to delete it")
    holder = None if locked_by_us else lock_holder(d)
    if holder is not None:
        raise UserError(f"--force: {d} is in use by a running rnntk process ({holder}); refusing to delete it")
    h5 = d / "run.h5"
    if not _regular(h5):
        raise UserError(f"--force: {d} has no run.h5 written by rnntk (missing or a link); refusing to delete it")
    if _h5_run_id(h5) != marker["id"]:
        raise UserError(f"--force: {d}/run.h5 does not belong to this run folder (run_id differs from {MARKER}); refusing to delete it")
    known = set(RUN_FILES) | set(marker["files"])
    names = []
    with os.scandir(d) as it:
        for e in it:
            m = _TMP.match(e.name)
            base = m.group("base") if m else e.name
            if e.is_symlink():
                raise UserError(f"--force: {d} holds a symbolic link {e.name!r}; refusing to delete the folder")
            if not e.is_file(follow_symlinks=False):
                raise UserError(f"--force: {d} holds {e.name!r}, which rnntk did not write; refusing to delete the folder")
            if base not in known:
                raise UserError(f"--force: {d} holds {e.name!r}, which rnntk did not write; refusing to delete the folder")
            names.append(e.name)
    return names


def _h5_run_id(path: Path) -> str | None:
    import h5py

    try:
        with h5py.File(path, "r", locking=False) as f:
            v = f.attrs.get("run_id")
    except (OSError, ValueError):
        return None
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return v if isinstance(v, str) else None


def clear_run_folder(folder: Path | str, names: Iterable[str]) -> None:
    """Delete the checked ``names`` in ``folder`` (never a folder, never through a link)."""
    d = Path(folder)
    for n in names:
        if n == LOCK:
            continue  # ours now; rewritten by the new run
        try:
            os.unlink(d / n)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise UserError(f"--force: cannot delete {d / n}: {e.strerror}") from None
