"""Figures made from ``run.h5`` alone: a registry of each command's figure makers, a
read-only view of a run file for them, and a generic panel of the metrics of any run.

A slice registers its makers in its ``register(app)``::

    register_figures("floss", floss_figures)     # floss_figures(reader) -> [(name, fig), ...]

A command makes them at its end with ``run.figures()`` (the PNGs in the run folder), and
``rnntk plot RUN`` makes them again later from the file, in any format, without re-running.
A maker reads only what the run stored (``/config``, ``/metrics``, ``/traces``, ``/results``,
root attributes), never objects of the process that ran it.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np

FORMATS = ("png", "pdf", "svg")


def _decode(v: Any) -> Any:
    from .store import _decode as decode

    return decode(v)


class RunReader:
    """Read-only view of a ``run.h5`` (an open :class:`h5py.File`, or a path opened without
    locking, so that a running run can be read)."""

    def __init__(self, source: Any) -> None:
        import h5py

        self._own = not isinstance(source, h5py.File)
        self.f: Any = h5py.File(source, "r", locking=False) if self._own else source
        self.path = Path(self.f.filename)

    def close(self) -> None:
        """Close the file if this reader opened it."""
        if self._own and self.f.id.valid:
            self.f.close()

    def __enter__(self) -> "RunReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes (command, seed, what the run annotated...), as plain Python."""
        return {k: _decode(v) for k, v in self.f.attrs.items()}

    @property
    def command(self) -> str:
        """The rnntk command that wrote the run."""
        return str(_decode(self.f.attrs.get("command", "")))

    @property
    def config(self) -> dict[str, Any]:
        """Every resolved option of the run (``/config/toml``)."""
        if "config/toml" not in self.f:
            return {}
        return tomllib.loads(str(_decode(self.f["config/toml"][()])))

    def metrics(self, names: Optional[Iterable[str]] = None) -> dict[str, np.ndarray]:
        """``/metrics`` columns: ``step`` and each of ``names`` that was logged (every
        column when None); ``{}`` before the first row."""
        g = self.f.get("metrics")
        if g is None or "step" not in g:
            return {}
        want = list(g) if names is None else ["step", *[n for n in names if n != "step"]]
        return {k: np.asarray(g[k][:]) for k in want if k in g}

    def _array(self, group: str, name: str) -> Optional[np.ndarray]:
        key = f"{group}/{name}"
        if key not in self.f or not hasattr(self.f[key], "shape"):
            return None
        return np.asarray(self.f[key][()])

    def result(self, name: str) -> Optional[np.ndarray]:
        """``/results/<name>`` (may be a path such as ``fixed_points/xstar``), None if absent."""
        return self._array("results", name)

    def trace(self, name: str) -> Optional[np.ndarray]:
        """``/traces/<name>`` ``[trial, time, ...]``, None if absent."""
        return self._array("traces", name)

    def attrs_of(self, where: str) -> dict[str, Any]:
        """Attributes of a group or dataset (``"traces/hand"``), {} if absent."""
        return {k: _decode(v) for k, v in self.f[where].attrs.items()} if where in self.f else {}

    def table(self, group: str = "trials") -> dict[str, np.ndarray]:
        """The per-trial table ``/trials`` as columns."""
        g = self.f.get(group)
        return {k: np.asarray(g[k][()]) for k in g} if g is not None else {}


# a maker: reader -> [(file stem, matplotlib figure), ...]
FigureMaker = Callable[[RunReader], list[tuple[str, Any]]]
FIGURES: dict[str, list[FigureMaker]] = {}


def register_figures(command: str, maker: FigureMaker) -> None:
    """Register ``maker`` as one of ``command``'s figure makers (idempotent)."""
    makers = FIGURES.setdefault(command, [])
    if maker not in makers:
        makers.append(maker)


# what a maker raises on a run older or shorter than it expects (a dataset it needs is absent)
STALE_RUN_ERRORS = (KeyError, ValueError, IndexError, TypeError)


def command_figures(reader: RunReader, skipped: Optional[list[str]] = None) -> list[tuple[str, Any]]:
    """Every figure registered for the run's command, made from ``reader``. With ``skipped``
    (a list), a maker that fails on what the file lacks is left out and a line saying why is
    appended to it; without, the error propagates."""
    out: list[tuple[str, Any]] = []
    for maker in FIGURES.get(reader.command, []):
        if skipped is None:
            out.extend(maker(reader))
            continue
        try:
            out.extend(maker(reader))
        except STALE_RUN_ERRORS as e:
            skipped.append(f"{getattr(maker, '__name__', 'maker')}: {type(e).__name__}: {e}")
    return out


def metric_panel(reader: RunReader, max_panels: int = 16) -> Optional[Any]:
    """One panel per logged metric against the step (log scale where every value is > 0 and
    they span more than a decade); None when the run logged none."""
    g = reader.metrics()
    names = [k for k in g if k not in ("step", "wall_time")][:max_panels]
    if not names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
    step = g["step"]
    for ax, name in zip(axes.flat, names):
        v = np.asarray(g[name], dtype=float)
        ok = np.isfinite(v)
        ax.plot(step[ok], v[ok], "-" if ok.sum() > 20 else "o-", ms=3, lw=1.0)
        if ok.any() and (v[ok] > 0).all() and v[ok].max() > 10 * v[ok].min():
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(f"rnntk {reader.command}: metrics ({len(step)} rows)", fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig: Any, path: Path, fmt: str = "png", dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (suffix set from ``fmt``) atomically and close it."""
    import matplotlib.pyplot as plt

    from .files import atomic_path

    path = path.with_suffix("." + fmt)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=fmt)
    finally:
        plt.close(fig)
    return path
