"""The ``run.h5`` layout, the same for every method.

::

    /                 attrs: format, format_version, rnntk_version, command, argv, created,
                      finished, status, seed, seeds, device, torch_version, h5py_version,
                      host, slurm_*, wall_s, error
    /config           attrs: small scalar options; dataset ``toml``: the whole resolved config
    /metrics/step     int64 [n] (resizable, chunked); /metrics/<name> float64 [n] aligned with
                      step (NaN where a metric was not logged at that step); /metrics/wall_time
    /traces/<name>    float32 [trial, time, unit] (or as attr ``dims`` says), gzip-1 + shuffle,
                      attrs dt (s), t0 (s), units, dims, description; time axis scale in /axes
    /trials/<column>  one 1-D dataset per per-trial field
    /results/<name>   final analysis arrays (complex allowed)
    /model/<param>    final weights as plain arrays, readable without torch
    /checkpoints/<n>  attrs: path, step, bytes, sha256, created

Crash safety: metrics are appended and the file flushed at every interval, so a killed
writer leaves a readable file holding every flushed row (``status`` stays ``running``).
The file uses HDF5's default format version (readable by MATLAB, HDFView, h5py).
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import h5py
import numpy as np

from .errors import StorageError
from .files import write_failure

FORMAT = "rnntk-run"
FORMAT_VERSION = "1"
STATUSES = ("running", "completed", "nonfinite", "interrupted", "failed")
_CHUNK_BYTES = 1 << 20  # ≤ 1 MiB chunks: HDF5's default chunk cache


# h5py ships no type stubs: a type checker infers ``Group | Dataset | Datatype`` for every
# ``f[name]`` from its source. Files are typed ``Any`` here (the one module that reads and
# writes HDF5); what leaves this module is NumPy arrays and plain Python values.
H5 = Any


def _open(path: Path | str, mode: str) -> H5:
    # 'best-effort' locking: works on cluster filesystems where flock fails.
    return h5py.File(path, mode, locking="best-effort")


def _attr_value(v: Any) -> Any:
    """Coerce a Python value to something HDF5 attributes hold (JSON for containers)."""
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str):
        return str(v)  # plain str: subclasses (torch's TorchVersion) confuse h5py
    if isinstance(v, (int, float, np.integer, np.floating)):
        return v
    if isinstance(v, Path):
        return str(v)
    return json.dumps(v, default=str)


def _chunks(shape: Sequence[int], itemsize: int) -> tuple[int, ...] | None:
    """Chunk along the first axis so one chunk is at most ~1 MiB."""
    if len(shape) == 0 or 0 in shape:
        return None
    row = itemsize * int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else itemsize
    k = max(1, min(int(shape[0]), _CHUNK_BYTES // max(row, 1)))
    rest = tuple(int(s) for s in shape[1:])
    if row > _CHUNK_BYTES and len(shape) > 1:  # a single row is too big: split axis 1 too
        n1 = max(1, int(shape[1] * _CHUNK_BYTES // row))
        rest = (n1,) + rest[1:]
    return (k,) + rest


def _guarded(after_failure: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A write that fails on the disk (full, quota, I/O) raises :class:`StorageError`
    (exit 2) with one line naming the disk, after calling ``on_failure`` (which frees the
    run's reserve) and flushing what was committed, so the file stays readable. Later data
    writes are refused without touching HDF5; ``after_failure`` writes (attributes: the
    status) are still tried."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(self: "RunFile", *args: Any, **kwargs: Any) -> Any:
            if self.failed and not after_failure:
                raise StorageError(self.failed)
            try:
                return fn(self, *args, **kwargs)
            except (OSError, RuntimeError) as e:
                msg = write_failure(self.path, e)
                if msg is None:
                    raise
                self._fail(msg)
                raise StorageError(self.failed) from None

        return wrapper

    return deco


def _read(path: Path | str) -> H5:
    """Open a run file read-only without locking (a running or crashed writer's file too)."""
    return h5py.File(path, "r", locking=False)


class RunFile:
    """Writer for one ``run.h5``. Created by :class:`rnntk.engine.Run`; usable alone.

    Metrics are buffered in memory by the caller and appended with :meth:`append_metrics`,
    which resizes, writes and flushes.
    """

    def __init__(self, path: Path | str, mode: str = "a", *, before_write: Callable[[], None] | None = None) -> None:
        """``mode="r"`` opens the file read-only until :meth:`reopen_writable` (a resume
        that must leave the file byte-identical if it fails): attributes set meanwhile are
        kept and written then, and any other write first calls ``before_write`` (which
        commits the resume and reopens the file)."""
        self.path = Path(path)
        self.f = _open(self.path, mode)
        self.readonly = mode == "r"
        self._pending_attrs: dict[str, Any] = {}
        self._before_write = before_write
        self.failed = ""  # set by the first write the disk refused
        self.on_failure: Callable[[], None] | None = None
        if mode in ("w", "w-", "x"):
            self.f.attrs["format"] = FORMAT
            self.f.attrs["format_version"] = FORMAT_VERSION
        if not self.readonly:
            self._require_groups()

    def _require_groups(self) -> None:
        for g in ("config", "metrics", "traces", "trials", "results", "model", "checkpoints", "axes"):
            self.f.require_group(g)

    def reopen_writable(self) -> None:
        """Reopen a read-only file for appending; write the attributes set meanwhile."""
        if not self.readonly:
            return
        self.f.close()
        self.f = _open(self.path, "a")
        self.readonly = False
        self._require_groups()
        pending, self._pending_attrs = self._pending_attrs, {}
        self.set_attrs(**pending)

    def _fail(self, msg: str) -> None:
        if self.failed:
            return
        self.failed = msg
        if self.on_failure is not None:
            try:
                self.on_failure()
            except Exception:  # noqa: BLE001, S110 - freeing room is best effort
                pass
        try:  # commit what was written (the reserve just freed room for HDF5's metadata)
            self.f.flush()
        except Exception:  # noqa: BLE001, S110
            pass

    def _writable(self) -> None:
        if self.readonly:
            if self._before_write is not None:
                self._before_write()
            self.reopen_writable()

    # -- root ---------------------------------------------------------------------------
    @_guarded(after_failure=True)
    def set_attrs(self, **attrs: Any) -> None:
        """Set root attributes (containers are stored as JSON strings)."""
        if self.readonly:
            self._pending_attrs.update(attrs)
            return
        for k, v in attrs.items():
            self.f.attrs[k] = _attr_value(v)

    def root_attr(self, name: str, default: Any = None) -> Any:
        """The root attribute ``name`` as plain Python (``default`` when absent)."""
        return _decode(self.f.attrs[name]) if name in self.f.attrs else default

    def checkpoint_step(self) -> int | None:
        """The step of the last checkpoint recorded in ``/checkpoints/last``, if any."""
        g = self.f.get("checkpoints/last")
        return int(g.attrs["step"]) if isinstance(g, h5py.Group) and "step" in g.attrs else None  # pyright: ignore[reportArgumentType]

    def set_status(self, status: str, **attrs: Any) -> None:
        """Set ``/`` attr ``status`` (one of :data:`STATUSES`) plus any extra attrs; flush."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self._writable()
        self.set_attrs(status=status, **attrs)
        if self.failed:  # record the status if the disk allows; the failure is reported already
            try:
                self.f.flush()
            except Exception:  # noqa: BLE001, S110
                pass
        else:
            self.flush()

    @_guarded()
    def write_config(self, config: Mapping[str, Any], toml_text: str) -> None:
        """``/config``: scalar options as attrs, the whole TOML as a string dataset."""
        self._writable()
        g = self.f["config"]
        for k in list(g.attrs):
            del g.attrs[k]
        for k, v in config.items():
            if isinstance(v, (bool, int, float, str)) and len(str(v)) < 1024:
                g.attrs[k] = v
        if "toml" in g:
            del g["toml"]
        g.create_dataset("toml", data=toml_text, dtype=h5py.string_dtype("utf-8"))

    # -- metrics ------------------------------------------------------------------------
    def metric_names(self) -> list[str]:
        return [k for k in self.f["metrics"] if k != "step"]

    def n_rows(self) -> int:
        g = self.f["metrics"]
        return int(g["step"].shape[0]) if "step" in g else 0

    def _metric_ds(self, name: str, dtype: Any, n: int) -> H5:
        g = self.f["metrics"]
        if name in g:
            return g[name]
        fill = 0 if np.dtype(dtype).kind == "i" else np.nan
        ds = g.create_dataset(name, shape=(n,), maxshape=(None,), dtype=dtype, chunks=(1024,), fillvalue=fill)
        if n:
            ds[:] = fill  # backfill rows logged before this metric existed
        return ds

    @_guarded()
    def append_metrics(self, rows: Sequence[Mapping[str, float]]) -> None:
        """Append rows (each a dict with ``step`` and metric values), then flush.

        Metrics absent from a row are NaN in that row. New metric names get a column
        back-filled with NaN.
        """
        if not rows:
            return
        self._writable()
        n0 = self.n_rows()
        n1 = n0 + len(rows)
        names = sorted({k for r in rows for k in r if k != "step"})
        try:
            step = self._metric_ds("step", np.int64, n0)
            step.resize((n1,))
            step[n0:n1] = np.array([int(r["step"]) for r in rows], dtype=np.int64)
            for name in set(names) | set(self.metric_names()):
                ds = self._metric_ds(name, np.float64, n0)
                ds.resize((n1,))
                ds[n0:n1] = np.array([float(r.get(name, math.nan)) for r in rows], dtype=np.float64)
        except BaseException:
            # roll back: every column back to n0 rows, so the caller can retry without duplicates
            for k in self.f["metrics"]:
                if self.f["metrics"][k].shape[0] > n0:
                    self.f["metrics"][k].resize((n0,))
            raise
        self.flush()

    @_guarded()
    def truncate_metrics(self, before_step: int) -> int:
        """Drop every row whose step is ``>= before_step`` (used by ``--resume``).
        Returns the number of rows kept."""
        self._writable()
        g = self.f["metrics"]
        if "step" not in g:
            return 0
        steps = g["step"][:]
        keep = int(np.searchsorted(steps, before_step, side="left")) if np.all(np.diff(steps) >= 0) else int(np.sum(steps < before_step))
        for k in g:
            g[k].resize((keep,))
        self.flush()
        return keep

    # -- arrays -------------------------------------------------------------------------
    @_guarded()
    def write_trace(
        self,
        name: str,
        data: np.ndarray,
        *,
        dt: float,
        dims: Sequence[str] = ("trial", "time", "unit"),
        units: str = "a.u.",
        t0: float = 0.0,
        description: str = "",
        append: bool = False,
        **attrs: Any,
    ) -> H5:
        """Write ``/traces/<name>`` as float32, gzip-1 + shuffle, chunked ≤ 1 MiB.

        ``data``: array whose axes are named by ``dims`` (default ``[trial, time, unit]``);
        ``dt`` and ``t0`` in seconds along the ``time`` axis. With ``append=True`` the
        trials are added along axis 0 of an existing trace (streaming; never hold a whole
        run's traces in memory).
        """
        self._writable()
        data = np.asarray(data, dtype=np.float32)
        if data.ndim != len(dims):
            raise ValueError(f"trace {name!r}: data has {data.ndim} axes but dims={tuple(dims)}")
        g = self.f["traces"]
        if append and name in g:
            ds = g[name]
            n0 = ds.shape[0]
            ds.resize((n0 + data.shape[0],) + ds.shape[1:])
            ds[n0:] = data
            self.flush()
            return ds
        if name in g:
            del g[name]
        ds = g.create_dataset(
            name,
            data=data,
            maxshape=(None,) + data.shape[1:],
            chunks=_chunks(data.shape, 4) if data.size else True,
            compression="gzip",
            compression_opts=1,
            shuffle=True,
        )
        ds.attrs.update(dt=float(dt), t0=float(t0), units=units, dims=json.dumps(list(dims)), description=description, precision="float32")
        for k, v in attrs.items():
            ds.attrs[k] = _attr_value(v)
        for i, d in enumerate(dims):
            ds.dims[i].label = d
        if "time" in dims:
            ax = dims.index("time")
            tname = f"{name}_time"
            axes = self.f["axes"]
            if tname in axes:
                del axes[tname]
            t = axes.create_dataset(tname, data=t0 + dt * np.arange(data.shape[ax], dtype=np.float64))
            t.attrs["units"] = "s"
            t.make_scale("time")
            ds.dims[ax].attach_scale(t)
        self.flush()
        return ds

    @_guarded()
    def write_table(self, group: str, table: Mapping[str, Iterable[Any]], append: bool = False) -> None:
        """Write columns of a per-trial table into ``/<group>/<column>`` (1-D each)."""
        self._writable()
        g = self.f.require_group(group)
        for col, values in table.items():
            arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
            if arr.dtype.kind in "UO":
                arr = arr.astype(object)
                dtype = h5py.string_dtype("utf-8")
            else:
                dtype = arr.dtype
            if append and col in g:
                ds = g[col]
                n0 = ds.shape[0]
                ds.resize((n0 + arr.shape[0],) + ds.shape[1:])
                ds[n0:] = arr
                continue
            if col in g:
                del g[col]
            g.create_dataset(col, data=arr, dtype=dtype, maxshape=(None,) + arr.shape[1:], chunks=True)
        self.flush()

    @_guarded()
    def write_array(self, group: str, name: str, data: Any, **attrs: Any) -> H5:
        """Write ``/<group>/<name>`` (results, model weights); complex arrays allowed."""
        self._writable()
        g = self.f.require_group(group)
        if name in g:
            del g[name]
        arr = np.asarray(data)
        kw: dict[str, Any] = {}
        if arr.ndim and arr.nbytes > 64 * 1024:
            kw = dict(compression="gzip", compression_opts=1, chunks=_chunks(arr.shape, arr.itemsize))
        ds = g.create_dataset(name, data=arr, **kw)
        for k, v in attrs.items():
            ds.attrs[k] = _attr_value(v)
        return ds

    @_guarded(after_failure=True)
    def set_group_attrs(self, group: str, /, **attrs: Any) -> None:
        """Set attributes of ``/<group>`` (made if missing; containers stored as JSON)."""
        self._writable()
        g = self.f.require_group(group)
        for k, v in attrs.items():
            g.attrs[k] = _attr_value(v)

    @_guarded()
    def require_rows(self, group: str, name: str, row_shape: Sequence[int], dtype: Any = "f4", chunk_rows: int = 64, **attrs: Any) -> None:
        """Make ``/<group>/<name>`` a dataset that grows along axis 0 (``[0, *row_shape]``,
        gzip-1, ``chunk_rows`` rows a chunk, ``attrs`` set), unless it exists already."""
        self._writable()
        g = self.f.require_group(group)
        if name in g:
            return
        shape = tuple(int(s) for s in row_shape)
        ds = g.create_dataset(
            name,
            shape=(0, *shape),
            maxshape=(None, *shape),
            dtype=dtype,
            chunks=(max(1, int(chunk_rows)), *shape),
            compression="gzip",
            compression_opts=1,
        )
        for k, v in attrs.items():
            ds.attrs[k] = _attr_value(v)

    def _rows(self, group: str, name: str) -> H5:
        ds = self.f[group][name]
        if not isinstance(ds, h5py.Dataset):
            raise ValueError(f"/{group}/{name} is not a dataset")
        return ds

    def n_rows_of(self, group: str, name: str) -> int | None:
        """Rows (length of axis 0) of ``/<group>/<name>``, or None when it does not exist."""
        g = self.f.get(group)
        return int(self._rows(group, name).shape[0]) if g is not None and name in g else None

    @_guarded()
    def append_rows(self, group: str, name: str, data: Any) -> None:
        """Append ``data`` (``[k, *row_shape]``) to a growing dataset, after its last row."""
        self._writable()
        ds = self._rows(group, name)
        arr = np.asarray(data, dtype=ds.dtype)
        n0 = ds.shape[0]
        ds.resize((n0 + arr.shape[0],) + ds.shape[1:])
        ds[n0:] = arr

    @_guarded()
    def truncate_rows(self, group: str, name: str, n: int) -> None:
        """Keep the first ``n`` rows of a growing dataset (``--resume`` cuts what the
        checkpoint does not cover); no-op when it does not exist."""
        if self.n_rows_of(group, name) is None:
            return
        self._writable()
        ds = self._rows(group, name)
        ds.resize((int(n),) + ds.shape[1:])

    def read_array(self, group: str, name: str, stop: int | None = None) -> np.ndarray:
        """``/<group>/<name>`` (its first ``stop`` rows) as a NumPy array."""
        ds = self._rows(group, name)
        return np.asarray(ds[:stop] if stop is not None else ds[()])

    def read_metric_columns(self, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """``/metrics`` columns as arrays: ``step`` and each of ``names`` that was logged
        (all columns when ``names`` is None)."""
        g = self.f.get("metrics")
        if g is None or "step" not in g:
            return {}
        want = list(g) if names is None else ["step", *[n for n in names if n != "step"]]
        return {k: np.asarray(g[k][:]) for k in want if k in g}

    @_guarded()
    def flush(self) -> None:
        if not self.readonly:
            self.f.flush()

    def close(self) -> None:
        if self.f.id.valid:
            try:
                if not self.readonly and not self.failed:
                    self.flush()
            finally:
                self.f.close()


# ---------------------------------------------------------------------------------------
# reading back
# ---------------------------------------------------------------------------------------
_HDF5_INTERNAL = ("DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "DIMENSION_LABELS", "shape")


def _decode(v: Any) -> Any:
    """An HDF5 attribute value as plain Python: bytes → str, NumPy scalars → numbers, arrays
    (also of variable-length or string items) → nested lists."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "O" or v.dtype.kind in "SU":
            return [_decode(x) for x in v.tolist()] if v.ndim else _decode(v.item())
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_decode(x) for x in v]
    if isinstance(v, np.generic):
        return _decode(v.item())
    return v


def read_metrics(path: Path | str) -> dict[str, np.ndarray]:
    """All ``/metrics`` columns as NumPy arrays (``step`` included)."""
    with _read(path) as f:
        return {k: f["metrics"][k][:] for k in f.get("metrics", {})}


def read_config_toml(path: Path | str) -> str:
    """The resolved config stored in ``/config/toml``."""
    with _read(path) as f:
        return _decode(f["config/toml"][()]) if "config/toml" in f else ""


def summarize(path: Path | str) -> dict[str, Any]:
    """A plain-dict summary of a run file (what ``rnntk inspect`` prints).

    Works on a running or crashed file: opened read-only without file locking.
    """
    out: dict[str, Any] = {"file": str(path)}
    with _read(path) as f:
        out["attrs"] = {k: _decode(v) for k, v in f.attrs.items()}
        out["config_toml"] = _decode(f["config/toml"][()]) if "config/toml" in f else ""
        metrics: dict[str, Any] = {}
        if "metrics" in f:
            g = f["metrics"]
            steps = g["step"][:] if "step" in g else np.zeros(0, dtype=np.int64)
            out["n_rows"] = int(steps.shape[0])
            out["steps"] = [int(steps[0]), int(steps[-1])] if steps.size else []
            for k in g:
                if k == "step":
                    continue
                v = g[k][:]
                fin = v[np.isfinite(v)]
                logged = v[~np.isnan(v)]
                metrics[k] = {
                    "n": int(logged.size),
                    "first": float(logged[0]) if logged.size else None,
                    "last": float(logged[-1]) if logged.size else None,
                    "min": float(fin.min()) if fin.size else None,
                    "max": float(fin.max()) if fin.size else None,
                    "units": _decode(g[k].attrs.get("units", "")),
                }
        out["metrics"] = metrics

        def arrays(group: str) -> dict[str, Any]:
            res: dict[str, Any] = {}
            if group not in f:
                return res

            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    res[name] = {
                        "shape": list(obj.shape),
                        "dtype": str(obj.dtype),
                        "attrs": {k: _decode(v) for k, v in obj.attrs.items() if k not in _HDF5_INTERNAL},
                    }
                    if obj.size is not None and obj.size <= 8 and obj.dtype.kind in "biufc":  # size None: an empty dataspace
                        val = obj[()]
                        res[name]["value"] = val.tolist() if isinstance(val, np.ndarray) else _decode(val)

            f[group].visititems(visit)
            return res

        out["traces"] = arrays("traces")
        out["results"] = arrays("results")
        out["trials"] = arrays("trials")
        out["model"] = arrays("model")
        out["checkpoints"] = {k: {a: _decode(v) for a, v in f["checkpoints"][k].attrs.items()} for k in f.get("checkpoints", {})}
    return out
