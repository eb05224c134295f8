"""``--resume`` for a :class:`rnntk.engine.run.Run`: reopen a run folder read-only, check its
checkpoint, commit (truncate metrics past the checkpoint, rewrite the config) only when
training continues, and load the tracked objects' states. A resume that fails before it
commits leaves every byte of the folder as it was."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import load_checkpoint, load_state_into
from .errors import UserError
from .folder import RunLock, new_run_id, read_marker, write_marker
from .run_base import CHECKPOINT, RunBase, iso
from .seeding import validate_rng_state
from .store import RunFile


def check_optimizer_state(opt: Any, sd: Any, src: str) -> None:
    """A torch optimizer's checkpointed state must fit its parameters: the same number of
    parameters, and every per-parameter state tensor (momenta, second moments) of the
    parameter's shape. ``load_state_dict`` checks only the counts; a wrong shape would fail
    at the first step, after the resume committed."""
    if not isinstance(opt, torch.optim.Optimizer):
        return
    if not isinstance(sd, dict) or not isinstance(sd.get("state"), dict) or not isinstance(sd.get("param_groups"), list):
        raise UserError(f"--resume: {src} has a damaged optimizer state (no 'state'/'param_groups')")
    params = [p for g in opt.param_groups for p in g["params"]]
    try:
        ids = [i for g in sd["param_groups"] for i in g["params"]]
    except (TypeError, KeyError):
        raise UserError(f"--resume: {src} has a damaged optimizer state (param_groups)") from None
    if len(ids) != len(params):
        raise UserError(f"--resume: {src} holds an optimizer state for {len(ids)} parameters, this run has {len(params)}")
    for i, p in zip(ids, params):
        st = sd["state"].get(i, {})
        if not isinstance(st, dict):
            raise UserError(f"--resume: {src} has a damaged optimizer state for parameter {i}")
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and v.dim() > 0 and tuple(v.shape) != tuple(p.shape):
                raise UserError(f"--resume: {src}: optimizer state '{k}' of parameter {i} has shape {tuple(v.shape)}, the parameter has {tuple(p.shape)}")
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all():
                raise UserError(f"--resume: {src}: optimizer state '{k}' of parameter {i} is not finite")


class RunResume(RunBase):
    """The ``--resume`` part of a run."""

    def _open_resume(self, *, lock: bool = True) -> None:
        """Open the run folder read-only and load and check its checkpoint. ``lock=False``
        (``--resume --dry-run``): take no lock (make no file), only refuse as ``lock`` would
        while another process writes the run."""
        d = self.dir
        if not d.is_dir():
            raise UserError(f"--resume: no such run folder: {d}")
        if not (d / "run.h5").exists():
            raise UserError(f"--resume: {d} has no run.h5; not an rnntk run folder")
        if lock:
            self._lock = RunLock(d).acquire()  # refuses while another process writes the run
        else:
            RunLock(d).check_free()
        marker = read_marker(d)
        self.run_id = marker["id"] if marker else ""
        self._registered = set(marker["files"]) if marker else set()
        try:  # read-only until the resume commits: a failed resume changes no byte
            self.h5 = RunFile(d / "run.h5", "r", before_write=self._commit_resume)
        except OSError as e:
            raise UserError(f"--resume: cannot open {d / 'run.h5'}: {e}") from None
        ck_path = d / CHECKPOINT
        try:
            if ck_path.exists():
                self._resume_ck = load_checkpoint(ck_path)
                self._validate_resume_checkpoint(self._resume_ck, ck_path)
                self.start_step = int(self._resume_ck["step"])
                self.state = dict(self._resume_ck.get("extra", {}).get("state", {}))
            else:
                print(f"note: --resume: {d} has no checkpoint yet; starting again from step 0", file=sys.stderr)
                self.start_step = 0
        except BaseException:
            self.h5.close()
            raise
        self.step = self.start_step
        self._last_ckpt_step = self.start_step if self._resume_ck else None
        self.resumed = True
        self._resume_committed = False  # nothing on disk changes until _commit_resume()

    def _validate_resume_checkpoint(self, ck: dict[str, Any], path: Path) -> None:
        """Everything a resume applies after its commit, checked before it (exit 2, the
        folder unchanged): the step, the RNG states, the extra state."""
        step = ck["step"]
        if isinstance(step, bool) or step < 0:
            raise UserError(f"--resume: {path} is damaged: step {step} is negative")
        rows = self.h5.n_rows()
        recorded = self.h5.checkpoint_step()
        bound = max(rows, recorded if recorded is not None else 0)
        if (rows or recorded is not None) and step > bound:
            raise UserError(f"--resume: {path} is damaged: step {step} is past what run.h5 recorded ({rows} metric rows, checkpoint at step {recorded})")
        if ck.get("rng") is not None:
            try:
                validate_rng_state(ck["rng"], torch.Generator())
            except UserError as e:
                raise UserError(f"--resume: {path} is damaged: {e}") from None
        extra = ck.get("extra") or {}
        for key in ("state", "objects"):
            if extra.get(key) is not None and not isinstance(extra[key], dict):
                raise UserError(f"--resume: {path} is damaged: extra '{key}' is not a dict")

    def _check_resume_steps(self, n_steps: int | None) -> None:
        """:class:`UserError` when a resumed run asks for fewer steps than its checkpoint holds."""
        if n_steps is not None and n_steps < self.start_step:
            raise UserError(f"--resume: {self.dir} is already at step {self.start_step}; ask for at least that many steps (got {n_steps})")

    def _commit_resume(self, n_steps: int | None = None) -> None:
        """Truncate metrics past the checkpoint, rewrite the config, mark the run running.
        Called when training actually continues, after the model and optimizer loaded."""
        if not self.resumed or self._resume_committed:
            return
        self._check_resume_steps(n_steps)
        self._resume_committed = True
        d = self.dir
        try:
            self.h5.reopen_writable()
        except OSError as e:
            raise UserError(f"--resume: cannot open {d / 'run.h5'} for writing: {e}") from None
        self.h5.on_failure = self._free_reserve
        self._make_reserve()
        if not self.run_id:  # a run of an older rnntk: mark it now
            self.run_id = new_run_id()
            write_marker(d, self.run_id, self._registered)
            self.h5.set_attrs(run_id=self.run_id)
        kept = self.h5.truncate_metrics(self.start_step)
        for k, v in self.h5.read_metric_columns().items():
            if k in ("step", "wall_time"):
                continue
            v = v[np.isfinite(v)]
            if v.size:
                self.last_metrics[k] = float(v[-1])
        prev = self.h5.root_attr("resume_count", 0)
        self.h5.set_attrs(
            resumed=iso(self.created),
            resume_count=int(prev) + 1,
            resumed_from_step=self.start_step,
            metrics_rows_kept=kept,
            finished="",
            error="",
            **self._provenance(),
        )
        self._write_config()
        (d / "summary.json").unlink(missing_ok=True)  # the run is no longer finished
        self.h5.set_status("running")

    def _load_tracked(self, model: nn.Module | None, optimizer: Any, others: dict[str, Any]) -> None:
        """On a resume, load the checkpointed states of what :meth:`Run.track` registers."""
        ck = self._resume_ck
        if ck is None:
            return
        src = f"{self.dir / CHECKPOINT}"
        if model is not None:
            if ck.get("model") and ck["model"] != type(model).__name__:
                raise UserError(f"--resume: checkpoint holds a {ck['model']}, this run builds a {type(model).__name__}")
            load_state_into(model, ck["state_dict"], source=f"--resume: {src}")
        try:
            if optimizer is not None and ck.get("optimizer") is not None:
                check_optimizer_state(optimizer, ck["optimizer"], src)
                optimizer.load_state_dict(ck["optimizer"])
            objs = ck.get("extra", {}).get("objects", {})
            for name, obj in others.items():
                if name in objs:
                    if isinstance(obj, nn.Module):
                        load_state_into(obj, objs[name], source=f"{src} [{name}]")
                    else:
                        obj.load_state_dict(objs[name])
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise UserError(f"--resume: {src} does not fit this run's optimizer or state ({first})") from None
