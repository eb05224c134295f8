"""What a :class:`rnntk.engine.run.Run` writes besides metrics: files in its folder, traces,
per-trial tables, results (also growing ones, a block of trials per step), attributes,
figures and the final model; and what a method may read back (its metrics)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .checkpoint import save_checkpoint
from .config import plain
from .files import atomic_path
from .run_base import RunBase
from .store import RunFile


def _numpy(data: Any) -> Any:
    return data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else data


class Rows:
    """A dataset of ``run.h5`` that grows along axis 0 (``[row, *row_shape]``): results
    streamed a block of trials per step. Made by :meth:`RunOutputs.rows`."""

    def __init__(self, h5: RunFile, group: str, name: str) -> None:
        self._h5, self.group, self.name = h5, group, name

    def __len__(self) -> int:
        return self._h5.n_rows_of(self.group, self.name) or 0

    def append(self, data: Any) -> None:
        """Append ``data`` ``(k, *row_shape)`` (tensor or array) after the last row."""
        self._h5.append_rows(self.group, self.name, _numpy(data))

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` rows (a ``--resume`` drops rows its checkpoint does not cover)."""
        self._h5.truncate_rows(self.group, self.name, n)

    def read(self, stop: int | None = None) -> np.ndarray:
        """The rows (the first ``stop``) as a NumPy array."""
        return self._h5.read_array(self.group, self.name, stop)


class RunOutputs(RunBase):
    """The output verbs of a run."""

    def path(self, name: str) -> Path:
        """A path inside the run folder, for a file the command writes itself (recorded in
        the ``.rnntk-run`` marker as rnntk's, so ``--force`` may replace it)."""
        self._register(Path(name).name if Path(name).parent == Path(".") else Path(name).parts[0])
        return self.dir / name

    def trace(
        self,
        name: str,
        data: Any,
        *,
        dt: float,
        dims: Sequence[str] = ("trial", "time", "unit"),
        units: str = "a.u.",
        t0: float = 0.0,
        description: str = "",
        append: bool = False,
        **attrs: Any,
    ) -> None:
        """``/traces/<name>``: activity ``[trial, time, unit]`` (float32, gzip), ``dt`` in s."""
        if isinstance(data, torch.Tensor):
            data = data.detach().cpu().float().numpy()
        self.h5.write_trace(name, data, dt=dt, dims=dims, units=units, t0=t0, description=description, append=append, recorded_at_step=self.step, **attrs)

    def trials(self, table: Mapping[str, Any], append: bool = False) -> None:
        """``/trials/<column>``: the per-trial table a task returns (one 1-D column each)."""
        cols = {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v) for k, v in table.items()}
        self.h5.write_table("trials", cols, append=append)

    def result(self, name: str, data: Any, **attrs: Any) -> None:
        """``/results/<name>``: a final analysis array (complex allowed)."""
        if isinstance(data, torch.Tensor):
            data = data.detach().cpu().numpy()
        self.h5.write_array("results", name, data, **attrs)
        self.h5.flush()

    def save_model(self, model: nn.Module | None = None, name: str = "model", hparams: Mapping[str, Any] | None = None) -> Path:
        """Write ``<name>.pt`` (an rnntk checkpoint without optimizer) and the weights as
        plain arrays under ``/model`` (readable without torch)."""
        model = model if model is not None else self._tracked.get("model")
        if model is None:
            raise ValueError("save_model: no model given or tracked")
        hp = dict(plain(dict(hparams))) if hparams is not None else self._hparams
        path = self.dir / f"{name}.pt"
        self._register(path.name)
        try:
            save_checkpoint(path, model=model, hparams=hp, step=self.step)
        except (OSError, RuntimeError) as e:
            err = self._storage_failed(path, e)
            if err is None:
                raise
            raise err from None
        prefix = "" if name == "model" else f"{name}/"
        for k, v in model.state_dict().items():
            arr = v.detach().cpu()
            if arr.is_floating_point():
                arr = arr.float()
            self.h5.write_array("model", prefix + k, arr.numpy(), shape=list(v.shape))
        self.h5.f["model"].attrs.update(model_class=type(model).__name__, hparams=json.dumps(hp), checkpoint=path.name)
        self.h5.flush()
        return path

    def figure(self, fig: Any, name: str, dpi: int = 120) -> Path:
        """Save a matplotlib figure as ``<name>.png`` in the run folder (atomically) and close it."""
        path = self.dir / (name if name.endswith(".png") else f"{name}.png")
        self._register(path.name)
        try:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        except (OSError, RuntimeError) as e:
            err = self._storage_failed(path, e)
            if err is None:
                raise
            raise err from None
        try:
            import matplotlib.pyplot as plt

            plt.close(fig)
        except Exception:  # pragma: no cover - matplotlib missing is fine
            pass
        return path

    def finish(self, **final: Any) -> None:
        """Record final values (accuracy, best loss...) for ``summary.json`` and the JSON line."""
        self.final.update({k: plain(v.item() if isinstance(v, torch.Tensor) else v) for k, v in final.items()})

    def rows(self, name: str, row_shape: Sequence[int], *, dtype: Any = "float32", chunk_rows: int = 64, group: str = "results", **attrs: Any) -> Rows:
        """``/<group>/<name>`` (default ``/results``) as a dataset growing along axis 0,
        ``[row, *row_shape]`` (gzip-1, ``chunk_rows`` rows a chunk, ``attrs`` set when made);
        made if missing, else opened as it is (a resumed run continues it)."""
        self.h5.require_rows(group, name, row_shape, dtype=dtype, chunk_rows=chunk_rows, **attrs)
        return Rows(self.h5, group, name)

    def truncate(self, where: str, n: int) -> None:
        """Keep the first ``n`` rows of the growing dataset ``where`` (``"traces/layer0"``,
        ``"results/logits"``); a no-op when it does not exist."""
        group, _, name = where.strip("/").partition("/")
        self.h5.truncate_rows(group, name, n)

    def annotate(self, group: str = "/", /, **attrs: Any) -> None:
        """Set attributes of ``run.h5``'s root (default: what the run is, e.g. ``task=``,
        ``model=``) or of one of its groups (``"results"``, ``"traces"``...). Containers are
        stored as JSON strings; keep them small."""
        if group in ("", "/"):
            self.h5.set_attrs(**attrs)
        else:
            self.h5.set_group_attrs(group.strip("/"), **attrs)
