"""How a sweep's jobs run: launchers are objects, chosen by name at the CLI edge only.

* :class:`LocalLauncher`: ``n_jobs`` worker processes on this machine, with a live table;
  SIGINT/SIGTERM reach every running job, which checkpoints (a re-run continues it).
* :class:`SlurmLauncher`: a Slurm job array through submitit (``AutoExecutor.map_array``);
  preemption/time-out signals checkpoint the run and requeue the job, which continues its
  run folder with ``--resume``. submitit is an optional extra (``pip install rnntk[cluster]``).
* :class:`PrintLauncher`: an ``sbatch`` array script, for clusters where submitit cannot be used.

Every job is the ``rnntk`` command line in a child process (``python -m rnntk ...``): a sweep
runs any engine command without importing it.
"""

from __future__ import annotations

import enum
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol, Sequence

from rnntk.engine.errors import UserError

from .sweep import Job, Sweep, job_argv, job_state

RNNTK = [sys.executable, "-m", "rnntk"]  # the same interpreter and install as this process


def _log_file(folder: Path, job: Job) -> Any:
    log = open(folder / "logs" / f"{job.name}.log", "ab")
    log.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} rnntk sweep starts job {job.name}\n".encode())
    log.flush()
    return log


def _mark_queued(folder: Path, todo: Sequence[tuple[Job, str]], how: str) -> None:
    """Append a line to the log of each job of ``todo`` that ran before (``--retry failed``): a
    job handed to Slurm waits in its queue, and until it starts its log would still end with its
    last attempt's error line, which reads as 'failed' (:func:`rnntk.runs.sweep.job_state`)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for job, _ in todo:
        log = folder / "logs" / f"{job.name}.log"
        if log.exists():
            with open(log, "ab") as f:
                f.write(f"# {stamp} rnntk sweep {how} job {job.name}; pending until it starts\n".encode())


class Launcher(Protocol):
    """Runs (or submits) ``todo``: each job with the state it starts from."""

    def launch(self, folder: Path, sweep: Sweep, todo: Sequence[tuple[Job, str]]) -> dict[str, Any]:
        """Returns facts for the manifest/JSON line (e.g. counts, Slurm job ids)."""
        ...


@dataclass
class _Running:
    job: Job
    proc: subprocess.Popen[bytes]
    log: Any
    start: float


@dataclass
class LocalLauncher:
    """``n_jobs`` jobs at a time on this machine; ``live``: a rich table on stderr (else one
    line per finished job); ``poll_s``: how often the workers are polled."""

    n_jobs: int = 1
    live: Optional[bool] = None
    poll_s: float = 0.05
    stopped_by: Optional[int] = field(default=None, init=False)

    def _stop(self, signum: int, frame: object) -> None:
        self.stopped_by = signum

    def launch(self, folder: Path, sweep: Sweep, todo: Sequence[tuple[Job, str]]) -> dict[str, Any]:
        from rich.console import Console

        console = Console(stderr=True)
        live_on = console.is_terminal if self.live is None else self.live
        queue = list(todo)
        running: dict[str, _Running] = {}
        done: dict[str, tuple[str, int, float]] = {}  # name -> (state, exit code, seconds)
        old = {s: signal.signal(s, self._stop) for s in (signal.SIGINT, signal.SIGTERM)}
        forwarded = False
        view = _LiveTable(console, sweep, len(todo)) if live_on else None
        try:
            if view is not None:
                view.start()
            while queue or running:
                if self.stopped_by is not None and not forwarded:  # every running job checkpoints
                    queue.clear()
                    for r in running.values():
                        _signal(r.proc, self.stopped_by)
                    forwarded = True
                while queue and len(running) < self.n_jobs and self.stopped_by is None:
                    job, state = queue.pop(0)
                    log = _log_file(folder, job)
                    argv = RNNTK + job_argv(sweep.command, folder, job, state)
                    log.write(("# " + shlex.join(argv) + "\n").encode())
                    log.flush()
                    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
                    running[job.name] = _Running(job, proc, log, time.monotonic())
                for name, r in list(running.items()):
                    rc = r.proc.poll()
                    if rc is None:
                        continue
                    r.log.close()
                    del running[name]
                    state = job_state(folder / name)
                    done[name] = (state, rc, time.monotonic() - r.start)
                    if view is None:
                        console.print(f"rnntk sweep: {name}: {state} (exit {rc}, {done[name][2]:.1f} s)", highlight=False)
                if view is not None:
                    view.update(running, done)
                time.sleep(self.poll_s)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            if view is not None:
                view.stop()
        return {"ran": {k: {"state": v[0], "exit": v[1], "seconds": round(v[2], 3)} for k, v in done.items()}, "stopped_by": self.stopped_by}


def _signal(proc: subprocess.Popen[bytes], signum: int) -> None:
    try:
        proc.send_signal(signum)
    except (ProcessLookupError, OSError):
        pass


class _LiveTable:
    """The live view of a local sweep: counts by state, the running jobs, the last finished."""

    def __init__(self, console: Any, sweep: Sweep, total: int) -> None:
        from rich.live import Live

        self.sweep, self.total = sweep, total
        self.live = Live(console=console, refresh_per_second=4, transient=False)

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.live.stop()

    def update(self, running: dict[str, _Running], done: dict[str, tuple[str, int, float]]) -> None:
        from rich.table import Table

        t = Table(title=f"rnntk sweep {self.sweep.name}: {self.sweep.command}, {len(done)}/{self.total} done", title_justify="left")
        for col in ("job", "state", "exit", "seconds"):
            t.add_column(col)
        now = time.monotonic()
        for name, r in running.items():
            t.add_row(name, "running", "", f"{now - r.start:.0f}")
        for name, (state, rc, sec) in list(done.items())[-8:]:
            t.add_row(name, state, str(rc), f"{sec:.1f}")
        counts: dict[str, int] = {}
        for state, _, _ in done.values():
            counts[state] = counts.get(state, 0) + 1
        t.caption = "  ".join(f"{k} {v}" for k, v in {"running": len(running), **counts}.items())
        self.live.update(t)


# --- Slurm through submitit --------------------------------------------------------------------

_CHILD: Optional[subprocess.Popen[bytes]] = None  # the rnntk process of this worker (for checkpoint())


class SweepJob:
    """The callable submitit runs on a node: one sweep job as an ``rnntk`` child process.
    ``checkpoint`` (called by submitit on preemption/time-out) forwards the signal, waits for
    the run to checkpoint, and requeues this job, which then continues with ``--resume``."""

    def __init__(self, command: str, folder: str, grace_s: float = 120.0) -> None:
        self.command, self.folder, self.grace_s = command, folder, grace_s

    def __call__(self, job: dict[str, Any]) -> str:
        global _CHILD
        j = Job(**job)
        folder = Path(self.folder)
        state = job_state(folder / j.name)
        if state == "completed":
            return state
        log = _log_file(folder, j)
        try:
            _CHILD = subprocess.Popen(RNNTK + job_argv(self.command, folder, j, state), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            while (rc := _CHILD.poll()) is None:  # not wait(): checkpoint() must be able to reap it
                time.sleep(0.2)
        finally:
            log.close()
        state = job_state(folder / j.name)
        if state != "completed":
            raise RuntimeError(f"rnntk sweep job {j.name}: {state} (exit {rc}); see {folder / 'logs' / (j.name + '.log')}")
        return state

    def checkpoint(self, job: dict[str, Any]) -> Any:
        import submitit

        child = _CHILD
        if child is not None and child.poll() is None:
            _signal(child, getattr(signal, "SIGUSR2", signal.SIGTERM))  # rnntk checkpoints, exits 143
            end = time.monotonic() + self.grace_s
            while child.poll() is None and time.monotonic() < end:
                time.sleep(0.1)
            if child.poll() is None:
                child.kill()
        return submitit.helpers.DelayedSubmission(SweepJob(self.command, self.folder, self.grace_s), job)


def _minutes(t: Any) -> int:
    """Slurm's time forms: minutes, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]`` → minutes."""
    if isinstance(t, int) and not isinstance(t, bool) and t > 0:
        return t
    s = str(t).strip()
    try:
        days, _, rest = s.rpartition("-")
        parts = [int(p) for p in rest.split(":")]
        if days:
            h, m, sec = (parts + [0, 0])[:3]
            total = int(days) * 1440 + h * 60 + m + (sec > 0)
        elif len(parts) == 1:
            total = parts[0]
        elif len(parts) == 2:
            total = parts[0] + (parts[1] > 0)
        else:
            total = parts[0] * 60 + parts[1] + (parts[2] > 0)
    except ValueError:
        raise UserError(f"bad --time '{t}': use minutes or HH:MM:SS (Slurm's forms)") from None
    if total <= 0:
        raise UserError(f"bad --time '{t}': must be positive")
    return total


SLURM_KEYS = ("partition", "time", "cpus_per_task", "gpus_per_task", "mem", "array_parallelism", "extra")


@dataclass
class SlurmLauncher:
    """Submit the jobs as one Slurm array with submitit. ``cluster``: submitit's cluster
    (None: Slurm when ``sbatch`` is found; ``"local"``: submitit's local executor, for tests).
    ``wait``: block until every job ended (the CLI returns at once by default)."""

    partition: Optional[str] = None
    time: Any = "01:00:00"
    cpus_per_task: int = 2
    gpus_per_task: int = 0
    mem: Optional[str] = None
    array_parallelism: int = 256
    extra: dict[str, str] = field(default_factory=dict)
    cluster: Optional[str] = None
    wait: bool = False
    cluster_params: dict[str, Any] = field(default_factory=dict)  # submitit's own, e.g. local_timeout_min
    submitted: list[Any] = field(default_factory=list, init=False)

    def executor(self, folder: Path, sweep: Sweep) -> Any:
        try:
            import submitit
        except ImportError:
            raise UserError("--launcher slurm needs submitit: pip install 'rnntk[cluster]' (or pip install submitit)") from None
        if self.cluster == "local":  # submitit's local executor: jobs as processes, with its signals and requeue
            extra = dict(self.cluster_params)
            ex = submitit.LocalExecutor(folder=str(folder / "slurm" / "%j"), max_num_timeout=int(extra.pop("max_num_timeout", 3)))
            ex.update_parameters(timeout_min=extra.pop("timeout_min", _minutes(self.time)), cpus_per_task=self.cpus_per_task, **extra)
            return ex
        ex = submitit.AutoExecutor(folder=str(folder / "slurm" / "%j"), cluster=self.cluster)
        params: dict[str, Any] = {"name": f"rnntk-{sweep.name}", "timeout_min": _minutes(self.time), "cpus_per_task": self.cpus_per_task}
        slurm: dict[str, Any] = {"slurm_array_parallelism": self.array_parallelism, "slurm_signal_delay_s": 90}
        if self.partition:
            slurm["slurm_partition"] = self.partition
        if self.gpus_per_task:
            slurm["slurm_gpus_per_task"] = self.gpus_per_task
        if self.mem:
            slurm["slurm_mem"] = self.mem
        if self.extra:
            slurm["slurm_additional_parameters"] = dict(self.extra)
        if ex.cluster == "slurm":
            params.update(slurm)
        ex.update_parameters(**params, **self.cluster_params)
        return ex

    def launch(self, folder: Path, sweep: Sweep, todo: Sequence[tuple[Job, str]]) -> dict[str, Any]:
        ex = self.executor(folder, sweep)
        if self.cluster is None and getattr(ex, "cluster", None) != "slurm" and todo:  # submitit's AutoExecutor fell back
            print(
                f"rnntk: warning: no Slurm here (sbatch not found): submitit runs the {len(todo)} job(s) as processes on this machine, "
                "in the background; follow them with --status",
                file=sys.stderr,
                flush=True,
            )
        fn = SweepJob(sweep.command, str(folder.resolve()))
        _mark_queued(folder, todo, "submits")
        self.submitted = ex.map_array(fn, [j.to_json() for j, _ in todo]) if todo else []
        ids = {j.name: s.job_id for (j, _), s in zip(todo, self.submitted)}
        if self.wait:
            for s in self.submitted:
                try:
                    s.result()
                except Exception:  # noqa: BLE001 - a failed job: its state is read from its folder
                    pass
        return {"slurm_jobs": ids, "cluster": getattr(ex, "cluster", self.cluster)}


# --- an sbatch script ------------------------------------------------------------------------


@dataclass
class PrintLauncher:
    """An ``sbatch`` array script on stdout (nothing is run). Each task runs its job with the
    USR2/TERM signal forwarded to rnntk (which checkpoints); a checkpointed task requeues
    itself (``scontrol requeue``) and continues its folder with ``--resume``."""

    partition: Optional[str] = None
    time: Any = "01:00:00"
    cpus_per_task: int = 2
    gpus_per_task: int = 0
    mem: Optional[str] = None
    array_parallelism: int = 256
    extra: dict[str, str] = field(default_factory=dict)
    script: str = field(default="", init=False)

    def render(self, folder: Path, sweep: Sweep, todo: Sequence[tuple[Job, str]]) -> str:
        folder = folder.resolve()
        n = len(todo)
        head = [f"#SBATCH --job-name=rnntk-{sweep.name}", f"#SBATCH --array=0-{max(n - 1, 0)}%{self.array_parallelism}"]
        head.append(f"#SBATCH --time={_minutes(self.time)}")
        head.append(f"#SBATCH --cpus-per-task={self.cpus_per_task}")
        if self.partition:
            head.append(f"#SBATCH --partition={self.partition}")
        if self.gpus_per_task:
            head.append(f"#SBATCH --gpus-per-task={self.gpus_per_task}")
        if self.mem:
            head.append(f"#SBATCH --mem={self.mem}")
        head += [f"#SBATCH --{k}={v}" for k, v in self.extra.items()]
        head += ["#SBATCH --signal=B:USR2@90", "#SBATCH --requeue", f"#SBATCH --output={folder}/logs/slurm-%A_%a.log"]
        names = " ".join(shlex.quote(j.name) for j, _ in todo)
        seeds = " ".join(str(j.seed) for j, _ in todo)
        rnntk = shlex.join(RNNTK)
        body = f"""set -uo pipefail
jobs=({names})
seeds=({seeds})
i=${{SLURM_ARRAY_TASK_ID:-0}}
name=${{jobs[$i]}}
run={shlex.quote(str(folder))}/"$name"
if [ -f "$run/summary.json" ] && grep -q '"status": "completed"' "$run/summary.json"; then exit 0; fi
if [ -f "$run/ckpt-last.pt" ]; then
  cmd=({rnntk} {shlex.quote(sweep.command)} --resume "$run" --quiet)
elif [ -e "$run" ]; then
  cmd=({rnntk} {shlex.quote(sweep.command)} --config {shlex.quote(str(folder))}/configs/"$name".toml --seed "${{seeds[$i]}}" --out "$run" --quiet --force)
else
  cmd=({rnntk} {shlex.quote(sweep.command)} --config {shlex.quote(str(folder))}/configs/"$name".toml --seed "${{seeds[$i]}}" --out "$run" --quiet)
fi
"${{cmd[@]}}" &
pid=$!
trap 'kill -USR2 "$pid" 2>/dev/null' USR2 TERM   # rnntk checkpoints and exits 143
rc=0
wait "$pid" || rc=$?
while kill -0 "$pid" 2>/dev/null; do rc=0; wait "$pid" || rc=$?; done
if [ "$rc" = 143 ] || [ "$rc" = 130 ]; then
  scontrol requeue "${{SLURM_ARRAY_JOB_ID:-0}}_$i"   # continues with --resume
fi
exit "$rc"
"""
        return "#!/bin/bash\n" + "\n".join(head) + "\n" + body

    def launch(self, folder: Path, sweep: Sweep, todo: Sequence[tuple[Job, str]]) -> dict[str, Any]:
        self.script = self.render(folder, sweep, todo)
        path = folder / "sbatch.sh"
        path.write_text(self.script)
        os.chmod(path, 0o755)
        _mark_queued(folder, todo, "wrote sbatch.sh for")
        return {"sbatch_script": str(path)}


# --- chosen by name at the CLI edge ---------------------------------------------------------


class LauncherName(str, enum.Enum):
    local = "local"
    slurm = "slurm"
    print = "print"


class Retry(str, enum.Enum):
    failed = "failed"
    nonfinite = "nonfinite"


def parse_extra(items: list[str]) -> dict[str, str]:
    """``--slurm-extra KEY=VALUE`` items as a dict (UserError naming a bad item)."""
    out: dict[str, str] = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k:
            raise UserError(f"bad --slurm-extra '{it}': use KEY=VALUE, e.g. --slurm-extra qos=high")
        out[k.strip().lstrip("-")] = v
    return out


def make_launcher(name: LauncherName, jobs: int, sweep: Sweep, flags: dict[str, Any]) -> Launcher:
    """The launcher object for ``name``: flags override the sweep file's [slurm] table."""
    if name is LauncherName.local:
        if jobs < 1:
            raise UserError(f"bad --jobs {jobs}: must be at least 1")
        return LocalLauncher(n_jobs=jobs)
    if name is LauncherName.slurm:  # before anything is written
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise UserError("--launcher slurm needs submitit: pip install 'rnntk[cluster]' (or pip install submitit)") from None
    given = {k: v for k, v in flags.items() if v not in (None, [], {})}
    unknown = sorted(set(sweep.slurm) - {"partition", "time", "cpus_per_task", "gpus_per_task", "mem", "array_parallelism", "extra"})
    if unknown:
        raise UserError(f"sweep '{sweep.name}': unknown key '{unknown[0]}' in [slurm]")
    kw = {**sweep.slurm, **given}
    return SlurmLauncher(**kw) if name is LauncherName.slurm else PrintLauncher(**kw)
