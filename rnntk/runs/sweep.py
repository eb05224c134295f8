"""Sweeps: one rnntk command over seeds × a grid (× aligned lists), expanded to jobs.

A sweep file (TOML)::

    command = "selftest"      # any engine command
    seeds = 2                 # or a list: [0, 1, 7]
    name = "lr-grid"          # optional; default: the file's stem
    [options]                 # fixed options, named as in the command's config files
    iters = 20
    [grid]                    # cartesian product, in file order
    lr = [0.01, 0.003]
    [zip]                     # aligned lists (all the same length), crossed with the grid
    hidden = [16, 32]
    batch = [32, 64]
    [slurm]                   # defaults for --launcher slurm/print (flags override)
    partition = "gpu"
    time = "01:00:00"

expands to ``seeds × Π|grid| × |zip|`` jobs. Job ``lr=0.01,hidden=16,batch=32-s0`` is the run
folder ``<sweep>/lr=0.01,hidden=16,batch=32-s0``; its options go to
``<sweep>/configs/<job>.toml`` (passed with ``--config``) and the seed with ``--seed``. The
sweep folder holds ``sweep.json`` (the manifest: the sweep file's content and every job),
``configs/``, ``logs/<job>.log`` (the job's stdout and stderr), and the run folders.

A job's state is read from its run folder alone (so it is right for jobs a cluster ran):
``pending`` (no folder), ``running`` (locked by a live process), ``completed``, ``nonfinite``,
``interrupted`` (checkpointed: a re-run continues it with ``--resume``), ``failed`` (also
``error``: bad input, and a folder without ``summary.json`` whose run died).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from rnntk.engine.config import read_toml, to_toml
from rnntk.engine.errors import UserError

MANIFEST = "sweep.json"
STATES = ("pending", "running", "completed", "nonfinite", "interrupted", "failed")
_KEYS = {"command", "seeds", "name", "options", "grid", "zip", "slurm"}
_SAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


@dataclass(frozen=True)
class Job:
    """One run of a sweep: ``name`` is also its run folder's name inside the sweep folder."""

    name: str
    seed: int
    axes: dict[str, Any]  # the swept values (grid and zip)
    options: dict[str, Any]  # fixed options updated with the axes: the job's config file

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "axes": self.axes, "options": self.options}


@dataclass
class Sweep:
    """A parsed sweep file (see the module doc)."""

    command: str
    seeds: list[int]
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    zip: dict[str, list[Any]] = field(default_factory=dict)
    slurm: dict[str, Any] = field(default_factory=dict)

    @property
    def axes(self) -> list[str]:
        return [*self.grid, *self.zip]

    def jobs(self) -> list[Job]:
        """Every job, in a stable order: grid (file order, last axis fastest), zip row, seed."""
        grid_rows = [dict(zip(self.grid, vals)) for vals in itertools.product(*self.grid.values())]
        n_zip = len(next(iter(self.zip.values()))) if self.zip else 1
        zip_rows = [{k: v[i] for k, v in self.zip.items()} for i in range(n_zip)]
        jobs: list[Job] = []
        seen: dict[str, dict[str, Any]] = {}
        for g, z, s in itertools.product(grid_rows, zip_rows, self.seeds):
            axes = {**g, **z}
            name = job_name(axes, s)
            if name in seen:
                raise UserError(f"sweep '{self.name}': two jobs would share the folder '{name}' ({seen[name]} and {axes}); make the axis values distinct")
            seen[name] = axes
            jobs.append(Job(name=name, seed=s, axes=axes, options={**self.options, **axes}))
        return jobs

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "seeds": self.seeds,
            "name": self.name,
            "options": self.options,
            "grid": self.grid,
            "zip": self.zip,
            "slurm": self.slurm,
        }


def _value_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    if isinstance(v, list):
        return "+".join(_value_text(x) for x in v)
    return str(v)


def job_name(axes: Mapping[str, Any], seed: int) -> str:
    """``lr=0.01,hidden=16-s0``: the axis values in order, then the seed; characters a shell or
    a file system dislikes become ``_``."""
    parts = [f"{k}={_SAFE.sub('_', _value_text(v))}" for k, v in axes.items()]
    return (",".join(parts) + "-" if parts else "") + f"s{seed}"


def _seeds(v: Any, where: str) -> list[int]:
    if isinstance(v, bool) or not isinstance(v, (int, list)):
        raise UserError(f"{where}: 'seeds' must be a count (seeds = 4) or a list of integers (seeds = [0, 1, 7])")
    if isinstance(v, int):
        if not 1 <= v <= 100_000:
            raise UserError(f"{where}: 'seeds = {v}' must be between 1 and 100000")
        return list(range(v))
    if not v or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63 for s in v):
        raise UserError(f"{where}: 'seeds' must list non-negative integers")
    if len(set(v)) != len(v):
        raise UserError(f"{where}: 'seeds' lists a seed twice")
    return list(v)


def parse_sweep(data: Mapping[str, Any], where: str, default_name: str = "sweep") -> Sweep:
    """A :class:`Sweep` from a sweep file's content; :class:`UserError` naming the problem."""
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}' (a sweep file has {', '.join(sorted(_KEYS))})")
    command = data.get("command")
    if not isinstance(command, str) or not command:
        raise UserError(f"{where}: 'command' must name an rnntk command, e.g. command = \"selftest\"")
    tables: dict[str, dict[str, Any]] = {}
    for key in ("options", "grid", "zip", "slurm"):
        t = data.get(key, {})
        if not isinstance(t, dict):
            raise UserError(f"{where}: '{key}' must be a table ([{key}])")
        tables[key] = dict(t)
    for key in ("grid", "zip"):
        for k, v in tables[key].items():
            if not isinstance(v, list) or not v:
                raise UserError(f"{where}: [{key}] '{k}' must be a non-empty list of values")
    if tables["zip"] and len({len(v) for v in tables["zip"].values()}) != 1:
        lens = ", ".join(f"{k}: {len(v)}" for k, v in tables["zip"].items())
        raise UserError(f"{where}: the [zip] lists must have one length ({lens})")
    for k in ("seed", "out", "resume", "config", "force"):
        for key in ("options", "grid", "zip"):
            if k in tables[key]:
                raise UserError(f"{where}: '{k}' is set by the sweep itself; remove it from [{key}] (seeds: the top-level 'seeds')")
    twice = (set(tables["options"]) & set(tables["grid"])) | (set(tables["options"]) & set(tables["zip"])) | (set(tables["grid"]) & set(tables["zip"]))
    if twice:
        raise UserError(f"{where}: option '{sorted(twice)[0]}' is given in two of [options], [grid], [zip]")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name or _SAFE.search(name):
        raise UserError(f"{where}: 'name' must be a plain folder name (letters, digits, . _ + = -)")
    return Sweep(
        command=command,
        seeds=_seeds(data.get("seeds", 1), where),
        name=name,
        options=tables["options"],
        grid=tables["grid"],
        zip=tables["zip"],
        slurm=tables["slurm"],
    )


def load_sweep(path: Path | str) -> Sweep:
    """Read and check a sweep file (one-line :class:`UserError` on any problem)."""
    path = Path(path)
    return parse_sweep(read_toml(path), str(path), default_name=_SAFE.sub("_", path.stem) or "sweep")


def check_options(sweep: Sweep, params: Mapping[str, Any]) -> None:
    """Every option the sweep sets must be an option of its command: ``params`` maps the
    command's option names (underscored) to anything."""
    for key in (*sweep.options, *sweep.grid, *sweep.zip):
        if key.replace("-", "_") not in params:
            raise UserError(f"sweep '{sweep.name}': unknown option '{key}' for rnntk {sweep.command} (see rnntk {sweep.command} --help)")


# --- the sweep folder -----------------------------------------------------------------------


def write_manifest(folder: Path, sweep: Sweep, jobs: Sequence[Job], extra: Optional[dict[str, Any]] = None) -> None:
    """Create ``folder`` (refusing a non-empty folder that is not this sweep's), write
    ``sweep.json`` and one config file per job."""
    man = folder / MANIFEST
    if man.exists():
        old = read_manifest(folder)
        if old.get("sweep") != sweep.to_json():
            raise UserError(f"{folder} holds another sweep ({MANIFEST} differs from this sweep file); choose another --out")
    elif folder.exists() and any(folder.iterdir()):
        raise UserError(f"--out {folder} exists and is not a sweep folder (no {MANIFEST}); choose another --out")
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    data = {"sweep": sweep.to_json(), "jobs": [j.to_json() for j in jobs], "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(extra or {})}
    if man.exists():
        data["created"] = read_manifest(folder).get("created", data["created"])
    tmp = man.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(man)
    for j in jobs:
        cfg = folder / "configs" / f"{j.name}.toml"
        text = to_toml(j.options, header=f"rnntk sweep '{sweep.name}', job {j.name} (seed {j.seed} is given with --seed)")
        if not cfg.exists() or cfg.read_text() != text:
            cfg.write_text(text)


def read_manifest(folder: Path) -> dict[str, Any]:
    """``sweep.json`` of a sweep folder (UserError when absent or unreadable)."""
    man = Path(folder) / MANIFEST
    try:
        data = json.loads(man.read_text())
    except FileNotFoundError:
        raise UserError(f"{folder} is not a sweep folder (no {MANIFEST})") from None
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {man}: {e}") from None
    if not isinstance(data, dict) or "jobs" not in data:
        raise UserError(f"{man} is not an rnntk sweep manifest")
    return data


def job_state(run_dir: Path) -> str:
    """One of :data:`STATES`, from the run folder alone (see the module doc)."""
    from rnntk.engine.folder import lock_holder

    if not run_dir.exists():  # never started, or it stopped before making its folder:
        return "failed" if _log_says_error(run_dir) else "pending"  # bad input (exit 2), in the job's log
    if lock_holder(run_dir) is not None:
        return "running"
    try:
        status = json.loads((run_dir / "summary.json").read_text()).get("status")
    except (OSError, ValueError):  # no summary: the run was killed hard (SIGKILL, a lost node)
        if (run_dir / "ckpt-last.pt").exists():
            return "interrupted"  # continue from its last checkpoint
        return "failed" if (run_dir / "run.h5").exists() else "pending"
    if status in ("completed", "nonfinite", "interrupted"):
        return str(status)
    return "failed"


def _log_says_error(run_dir: Path) -> bool:
    """Whether the last attempt of the job ``run_dir`` ended with rnntk's JSON error line in its
    sweep log (``<sweep>/logs/<job>.log``): a job refused before it made its folder."""
    log = run_dir.parent / "logs" / f"{run_dir.name}.log"
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return False
    if not lines or not lines[-1].startswith("{"):
        return False
    try:
        return json.loads(lines[-1]).get("status") == "error"
    except (ValueError, AttributeError):
        return False


def states(folder: Path, jobs: Iterable[Job]) -> dict[str, str]:
    """Job name → state for every job of a sweep folder."""
    return {j.name: job_state(folder / j.name) for j in jobs}


def job_argv(command: str, folder: Path, job: Job, state: str) -> list[str]:
    """The ``rnntk`` arguments that start (``pending``), continue (``interrupted``: ``--resume``)
    or redo (a folder that exists: ``--force``, which rnntk allows on a folder it made) a job."""
    run_dir = str(folder / job.name)
    if state == "interrupted":
        return [command, "--resume", run_dir, "--quiet"]
    argv = [command, "--config", str(folder / "configs" / f"{job.name}.toml"), "--seed", str(job.seed), "--out", run_dir, "--quiet"]
    return argv + (["--force"] if (folder / job.name).exists() else [])
