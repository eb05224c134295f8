"""The figures of ``rnntk lyapunov``, ``rnntk eigs`` and ``rnntk fixed-points``, made from
``run.h5`` alone: by each command at its end (``run.figures()``) and later by ``rnntk plot RUN``
(registered in :func:`rnntk.analysis.cli.register`). A maker reads only ``/results``,
``/config`` and attributes; the drawing is in the ``*_report`` modules.

* ``lyapunov_spectrum``: ``/results/lyapunov_mean[_<layer>]``, ``lyapunov_sem[_<layer>]``
  (attrs ``time``, ``dt``), the layer order and model class in ``/results``' attributes
  ``lyapunov_layers`` and ``model_class``, ``n_traj`` and ``steps`` from ``/config``.
* ``eigs_layer<j>``: ``/results/eigs/layer<j>_<LM|LR>`` (attrs ``N``, ``time``, ``operator``,
  ``state``, ``layer_name``), their per-value ``layer<j>_<w>_converged``, the root attributes
  ``model`` and ``method``.
* ``fixed_points``: ``/results/fixed_points[/<layer>]/{xstar, n_unstable, is_slow}`` and the
  figure's projection: ``pca_mean``, ``pca_axes``, ``trajectories_pca`` (attr ``span``),
  ``unstable_directions_pca`` and ``unstable_directions_point``; the layer order in the
  attribute ``layers`` of ``/results/fixed_points``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from rnntk.engine.figures import RunReader


def _need(reader: RunReader, name: str) -> np.ndarray:
    """``/results/<name>``; KeyError when the run did not store it (an older run)."""
    a = reader.result(name)
    if a is None:
        raise KeyError(f"/results/{name}")
    return a


def _json_list(v: Any) -> list[str]:
    """A list attribute (stored as JSON)."""
    return list(json.loads(v) if isinstance(v, str) else v)


def lyapunov_figures(reader: RunReader) -> list[tuple[str, Any]]:
    """``lyapunov_spectrum``: one errorbar line per layer (mean ± s.e.m. per step; a per-second
    axis for continuous-time models)."""
    from rnntk.analysis.lyapunov_report import spectrum_figure

    ra = reader.attrs_of("results")
    name, layers = str(ra["model_class"]), _json_list(ra["lyapunov_layers"])
    cfg = reader.config
    spectra = []
    for lname in layers:
        sfx = f"_{lname}" if lname else ""
        at = reader.attrs_of(f"results/lyapunov_mean{sfx}")
        dt = float(at["dt"]) if at.get("time") == "continuous" else None
        spectra.append((lname or name, _need(reader, f"lyapunov_mean{sfx}"), _need(reader, f"lyapunov_sem{sfx}"), dt))
    return [("lyapunov_spectrum", spectrum_figure(spectra, f"{name}: {cfg['n_traj']} trajectories of {cfg['steps']} steps"))]


def eigs_figures(reader: RunReader) -> list[tuple[str, Any]]:
    """``eigs_layer<j>`` for each analysed layer: its eigenvalues in the complex plane
    (converged filled, not converged hollow)."""
    from rnntk.analysis.eigs_report import eig_plot

    g = reader.f.get("results/eigs")
    if g is None:
        return []
    tags = sorted({m.group(1) for k in g for m in [re.fullmatch(r"(layer\d+)_(LM|LR)", k)] if m}, key=lambda t: int(t[5:]))
    root = reader.attrs
    out = []
    for tag in tags:
        res: dict[str, Any] = {}
        for w in ("LM", "LR"):
            if f"{tag}_{w}" in g:
                res[w] = (_need(reader, f"eigs/{tag}_{w}"), _need(reader, f"eigs/{tag}_{w}_converged"))
        at = reader.attrs_of(f"results/eigs/{tag}_{next(iter(res))}")
        lname, operator = str(at["layer_name"]), str(at["operator"])
        label = f"{root['model']}{' ' + lname if lname else ''}"
        title = f"{label} ({operator}, {at['state']}, {root['method']}, N = {int(at['N'])})"
        out.append((f"eigs_{tag}", eig_plot(res, at["time"] == "continuous", operator, title)))
    return out


def fixed_points_figures(reader: RunReader) -> list[tuple[str, Any]]:
    """``fixed_points``: per layer the trajectories and points in principal components."""
    from rnntk.analysis.fixed_points_report import FigureLayer, figure

    layers = _json_list(reader.attrs_of("results/fixed_points")["layers"])
    plots = []
    for lname in layers:
        grp = f"fixed_points/{lname}" if lname else "fixed_points"
        plots.append(
            FigureLayer(
                lname,
                xstar=_need(reader, f"{grp}/xstar"),
                n_unstable=_need(reader, f"{grp}/n_unstable"),
                is_slow=_need(reader, f"{grp}/is_slow"),
                mean=_need(reader, f"{grp}/pca_mean"),
                axes=_need(reader, f"{grp}/pca_axes"),
                trajectories=_need(reader, f"{grp}/trajectories_pca"),
                span=float(reader.attrs_of(f"results/{grp}/trajectories_pca")["span"]),
                directions=_need(reader, f"{grp}/unstable_directions_pca"),
                direction_point=_need(reader, f"{grp}/unstable_directions_point"),
            )
        )
    return [("fixed_points", figure(plots, str(reader.attrs["model"])))]
