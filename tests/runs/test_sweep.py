"""``rnntk sweep``: expansion, the local launcher end to end, skip/retry, signals, the Slurm
launcher through submitit's local executor (preempted and requeued), the sbatch script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from rnntk.engine.errors import UserError
from rnntk.runs.launchers import PrintLauncher, SlurmLauncher, _minutes
from rnntk.runs.sweep import job_name, job_state, load_sweep, parse_sweep, write_manifest

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
TINY = "iters = 6\nhidden = 8\nbatch = 8\nsteps = 10\n"


def rnntk(*args: str, cwd: Path, check_json: bool = True) -> tuple[int, dict, str]:
    p = subprocess.run([sys.executable, "-m", "rnntk", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    out = json.loads(lines[-1]) if lines and check_json else {}
    return p.returncode, out, p.stderr


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def losses(run: Path) -> np.ndarray:
    with h5py.File(run / "run.h5", "r") as f:
        d = f["metrics/loss"]
        assert isinstance(d, h5py.Dataset)
        return np.asarray(d[()])


# --- expansion --------------------------------------------------------------------------------


def test_expansion_grid_zip_seeds_in_stable_order():
    s = parse_sweep(
        {"command": "selftest", "seeds": [3, 7], "options": {"iters": 5}, "grid": {"lr": [0.01, 0.003]}, "zip": {"hidden": [8, 16], "batch": [4, 8]}}, "x.toml"
    )
    jobs = s.jobs()
    assert len(jobs) == 2 * 2 * 2
    assert [j.name for j in jobs[:3]] == ["lr=0.01,hidden=8,batch=4-s3", "lr=0.01,hidden=8,batch=4-s7", "lr=0.01,hidden=16,batch=8-s3"]
    assert jobs[2].options == {"iters": 5, "lr": 0.01, "hidden": 16, "batch": 8} and jobs[2].seed == 3
    assert job_name({}, 4) == "s4" and job_name({"task": "a b/c"}, 0) == "task=a_b_c-s0"


@pytest.mark.parametrize(
    "data, msg",
    [
        ({"command": "selftest", "colour": 1}, "unknown key 'colour'"),
        ({"seeds": 2}, "'command' must name"),
        ({"command": "selftest", "zip": {"a": [1, 2], "b": [1]}}, "one length"),
        ({"command": "selftest", "grid": {"lr": []}}, "non-empty list"),
        ({"command": "selftest", "options": {"seed": 3}}, "set by the sweep itself"),
        ({"command": "selftest", "options": {"lr": 1}, "grid": {"lr": [1, 2]}}, "given in two"),
        ({"command": "selftest", "seeds": 0}, "between 1 and"),
        ({"command": "selftest", "seeds": [1, 1]}, "twice"),
        ({"command": "selftest", "grid": {"lr": [0.1, "0.1"]}}, "share the folder"),
    ],
)
def test_bad_sweep_files_name_the_problem(data, msg):
    with pytest.raises(UserError, match=msg):
        parse_sweep(data, "x.toml").jobs()


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    f = write(tmp_path / "s.toml", 'command = "selftest"\n[grid]\nlearning_rate = [0.1]\n')
    rc, out, err = rnntk("sweep", str(f), cwd=tmp_path)
    assert rc == 2 and out["status"] == "error" and "unknown option 'learning_rate' for rnntk selftest" in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    f = write(tmp_path / "t.toml", 'command = "inspect"\n')
    rc, _, err = rnntk("sweep", str(f), cwd=tmp_path)
    assert rc == 2 and "not an rnntk run command" in err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep")
    rc, _, err = rnntk("sweep", str(tmp_path / "s.toml").replace("s.toml", "u.toml"), cwd=tmp_path)
    assert rc == 2 and "config file not found" in err
    write(tmp_path / "u.toml", 'command = "selftest"\n')
    rc, _, err = rnntk("sweep", str(tmp_path / "u.toml"), "--out", str(tmp_path / "busy"), cwd=tmp_path)
    assert rc == 2 and "not a sweep folder" in err and (tmp_path / "busy" / "mine.txt").read_text() == "keep"


# --- local launcher ---------------------------------------------------------------------------


def test_local_sweep_end_to_end_skip_and_retry(tmp_path):
    f = write(tmp_path / "grid.toml", f'command = "selftest"\nseeds = 2\n[options]\n{TINY}[grid]\nnan_at = [-1, 3]\n')
    rc, out, err = rnntk("sweep", str(f), "--jobs", "2", cwd=tmp_path)
    sweep = tmp_path / "runs" / "grid"
    names = ["nan_at=-1-s0", "nan_at=-1-s1", "nan_at=3-s0", "nan_at=3-s1"]
    assert rc == 1 and "2 of 4 jobs did not complete" in err  # the planted NaN at step 3
    assert out["counts"] == {"completed": 2, "nonfinite": 2} and out["ran"] == 4
    man = json.loads((sweep / "sweep.json").read_text())
    assert [j["name"] for j in man["jobs"]] == names and man["sweep"]["grid"] == {"nan_at": [-1, 3]}
    for n in names:
        cfg = (sweep / "configs" / f"{n}.toml").read_text()
        assert "iters = 6" in cfg and f"nan_at = {n.split('=')[1].split('-s')[0]}" in cfg
        assert (sweep / "logs" / f"{n}.log").exists()
        summ = json.loads((sweep / n / "summary.json").read_text())
        assert summ["seed"] == int(n[-1])
    assert job_state(sweep / names[0]) == "completed" and job_state(sweep / names[2]) == "nonfinite"
    # seeds differ, options reach the run: seed 0 and 1 give different losses
    assert not np.array_equal(losses(sweep / names[0]), losses(sweep / names[1]))

    # a re-run skips everything done; a planted failure is re-run by --retry failed only
    done0 = losses(sweep / names[0])
    summ = json.loads((sweep / names[1] / "summary.json").read_text())
    (sweep / names[1] / "summary.json").write_text(json.dumps({**summ, "status": "failed"}))
    rc, out, _ = rnntk("sweep", str(f), "--jobs", "2", cwd=tmp_path)
    assert out["ran"] == 0 and out["skipped"] == {"completed": 1, "nonfinite": 2, "failed": 1}
    rc, out, _ = rnntk("sweep", str(f), "--retry", "failed", cwd=tmp_path)
    assert out["ran"] == 1 and out["counts"] == {"completed": 2, "nonfinite": 2}
    assert np.array_equal(losses(sweep / names[0]), done0)
    rc, out, _ = rnntk("sweep", str(f), "--status", cwd=tmp_path)
    assert rc == 0 and out["jobs"] == {names[0]: "completed", names[1]: "completed", names[2]: "nonfinite", names[3]: "nonfinite"}
    # the same folder for another sweep is refused
    write(f, f'command = "selftest"\nseeds = 3\n[options]\n{TINY}')
    rc, _, err = rnntk("sweep", str(f), cwd=tmp_path)
    assert rc == 2 and "holds another sweep" in err


def test_local_sweep_sigint_checkpoints_running_jobs_and_rerun_continues(tmp_path):
    f = write(tmp_path / "slow.toml", 'command = "selftest"\nseeds = 2\n[options]\niters = 40\nhidden = 8\nbatch = 8\nsteps = 10\nsleep = 0.1\n')
    p = subprocess.Popen(
        [sys.executable, "-m", "rnntk", "sweep", str(f), "--jobs", "2"], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sweep = tmp_path / "runs" / "slow"
    deadline = time.time() + 120
    while time.time() < deadline and not all((sweep / n / "ckpt-last.pt").exists() or (sweep / n / "run.h5").exists() for n in ("s0", "s1")):
        time.sleep(0.2)
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    assert json.loads(stdout.splitlines()[-1])["status"] == "interrupted" and "checkpointed" in stderr
    assert {job_state(sweep / n) for n in ("s0", "s1")} == {"interrupted"}
    rc, out, _ = rnntk("sweep", str(f), "--jobs", "2", cwd=tmp_path)
    assert rc == 0 and out["counts"] == {"completed": 2}
    assert all("--resume" in (sweep / "logs" / f"{n}.log").read_text() for n in ("s0", "s1"))


# --- Slurm (submitit's local executor) and the sbatch script -------------------------------------


def _reference(tmp_path: Path, cfg: Path, seed: int) -> np.ndarray:
    rc, _, err = rnntk("selftest", "--config", str(cfg), "--seed", str(seed), "--out", str(tmp_path / f"ref-s{seed}"), "--quiet", cwd=tmp_path)
    assert rc == 0, err
    return losses(tmp_path / f"ref-s{seed}")


SLOW = 'command = "selftest"\nseeds = [5]\n[options]\niters = 60\nhidden = 8\nbatch = 8\nsteps = 10\nsleep = 0.2\n'


@pytest.mark.slow
def test_slurm_launcher_preempted_job_is_requeued_and_resumes_identically(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.chdir(tmp_path)
    for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY"):
        monkeypatch.setenv(k, ENV[k])
    sweep = load_sweep(write(tmp_path / "pre.toml", SLOW.replace("iters = 60", "iters = 80").replace("sleep = 0.2", "sleep = 0.25")))
    folder = tmp_path / "runs" / "pre"
    jobs = sweep.jobs()
    write_manifest(folder, sweep, jobs)
    # a 45 s time limit with the signal 25 s before it: the 20 s job (plus start-up) is signalled at
    # 20 s, checkpoints, is requeued, and continues its run folder (until it completes)
    launcher = SlurmLauncher(cluster="local", time="00:10:00", cluster_params={"timeout_min": 45 / 60, "signal_delay_s": 25, "max_num_timeout": 10})
    facts = launcher.launch(folder, sweep, [(j, "pending") for j in jobs])
    assert facts["cluster"] == "local" and list(facts["slurm_jobs"]) == ["s5"]
    assert launcher.submitted[0].result() == "completed"
    log = (folder / "logs" / "s5.log").read_text()
    assert log.count("rnntk sweep starts job") >= 2 and "--resume" in log, log  # requeued, continued
    run = folder / "s5"
    assert np.array_equal(losses(run), _reference(tmp_path, folder / "configs" / "s5.toml", 5))


def _default_signals() -> None:
    """In the child: Slurm starts a batch script with default signal dispositions. pytest's own
    process may have SIGUSR2/SIGTERM ignored by an earlier in-process CLI test, and a shell
    cannot trap a signal that was ignored when it started (POSIX), so reset them."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):
        signal.signal(s, signal.SIG_DFL)


def test_sbatch_script_task_checkpoints_requeues_and_resumes(tmp_path):
    sweep = load_sweep(write(tmp_path / "arr.toml", SLOW))
    folder = tmp_path / "runs" / "arr"
    jobs = sweep.jobs()
    write_manifest(folder, sweep, jobs)
    pl = PrintLauncher(partition="cpu", time="1:30:00", extra={"qos": "high"})
    pl.launch(folder, sweep, [(j, "pending") for j in jobs])
    script = (folder / "sbatch.sh").read_text()
    for line in (
        "#SBATCH --array=0-0%256",
        "#SBATCH --time=90",
        "#SBATCH --partition=cpu",
        "#SBATCH --qos=high",
        "#SBATCH --requeue",
        "#SBATCH --signal=B:USR2@90",
    ):
        assert line in script
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    write(bin_ / "scontrol", f'#!/bin/sh\necho "$@" >> {tmp_path}/requeued\n').chmod(0o755)
    env = {**ENV, "PATH": f"{bin_}:{ENV['PATH']}", "SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_JOB_ID": "77"}
    p = subprocess.Popen(["bash", str(folder / "sbatch.sh")], env=env, cwd=tmp_path, preexec_fn=_default_signals)
    run = folder / "s5"
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "ckpt-last.pt").exists() and not (run / "run.h5").exists():
        time.sleep(0.2)
    time.sleep(1.5)
    p.send_signal(signal.SIGUSR2)  # Slurm's --signal=B:USR2@90
    assert p.wait(timeout=120) == 143
    assert (tmp_path / "requeued").read_text().split() == ["requeue", "77_0"]
    assert job_state(run) == "interrupted"
    assert (
        subprocess.run(["bash", str(folder / "sbatch.sh")], env=env, cwd=tmp_path, timeout=300, preexec_fn=_default_signals).returncode == 0
    )  # the requeued task
    assert job_state(run) == "completed"
    assert np.array_equal(losses(run), _reference(tmp_path, folder / "configs" / "s5.toml", 5))


def test_slurm_time_forms():
    assert [_minutes(t) for t in (30, "30", "1:30:00", "90:00", "2-00", "0:00:30")] == [30, 30, 90, 90, 2880, 1]
    with pytest.raises(UserError, match="bad --time"):
        _minutes("soon")


def test_a_job_refused_before_it_made_its_folder_is_failed_not_pending(tmp_path):
    """A job whose options the command refuses (exit 2, no run folder) is 'failed' (was shown and
    counted as 'pending'); --status says so, a plain re-run skips it, --retry failed re-runs it."""
    f = write(tmp_path / "bad.toml", 'command = "selftest"\nseeds = [3]\n[grid]\nhidden = [0]\n')
    rc, out, err = rnntk("sweep", str(f), cwd=tmp_path)
    assert rc == 1 and out["counts"] == {"failed": 1}, (out, err)
    assert "hidden=0-s3: failed (exit 2" in err
    assert not (tmp_path / "runs" / "bad" / "hidden=0-s3").exists()
    rc, out, _ = rnntk("sweep", str(f), "--status", cwd=tmp_path)
    assert rc == 0 and out["jobs"] == {"hidden=0-s3": "failed"}
    rc, out, _ = rnntk("sweep", str(f), cwd=tmp_path)
    assert out["ran"] == 0 and out["skipped"] == {"failed": 1}
    rc, out, _ = rnntk("sweep", str(f), "--retry", "failed", cwd=tmp_path)
    assert out["ran"] == 1 and out["counts"] == {"failed": 1}
    # a job that was never started, or whose log ends otherwise, stays pending
    assert job_state(tmp_path / "runs" / "bad" / "nothing-s0") == "pending"
    (tmp_path / "runs" / "bad" / "logs" / "started-s0.log").write_text("# 2026-01-01T00:00:00Z rnntk sweep starts job started-s0\n")
    assert job_state(tmp_path / "runs" / "bad" / "started-s0") == "pending"


def test_help_names_the_sweep_file_tables(tmp_path):
    """rich markup ate '[options]' etc. from the argument's help ('command, seeds, , , , .')."""
    p = subprocess.run([sys.executable, "-m", "rnntk", "sweep", "--help"], env={**ENV, "COLUMNS": "250"}, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "command, seeds, [options], [grid], [zip], [slurm]." in p.stdout, p.stdout


def test_slurm_without_submitit_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, cli_in_process):
    """Without submitit: one line, exit 2, and no sweep folder (the manifest was written first)."""
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "s.toml", 'command = "selftest"\n[options]\niters = 2\n')
    r = cli_in_process("sweep", "s.toml", "--launcher", "slurm", "--out", "sw")
    assert r.code == 2 and r.stderr.strip().splitlines() == [
        "rnntk: error: --launcher slurm needs submitit: pip install 'rnntk[cluster]' (or pip install submitit)"
    ]
    assert json.loads(r.stdout.splitlines()[-1])["status"] == "error"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_slurm_launcher_reports_submitted_and_warns_when_submitit_falls_back_to_local(tmp_path):
    """--launcher slurm returns once the array is submitted: status 'submitted' (was 'completed'
    with every job pending); where sbatch is absent submitit's AutoExecutor runs the jobs as local
    processes, which is said on stderr (was silent)."""
    pytest.importorskip("submitit")
    path = os.pathsep.join(p for p in ENV["PATH"].split(os.pathsep) if not (Path(p) / "sbatch").exists())
    f = write(tmp_path / "s.toml", f'command = "selftest"\nseeds = [4]\n[options]\n{TINY}')
    p = subprocess.run(
        [sys.executable, "-m", "rnntk", "sweep", str(f), "--launcher", "slurm"],
        cwd=tmp_path,
        env={**ENV, "PATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = json.loads(p.stdout.splitlines()[-1])
    assert p.returncode == 0 and out["status"] == "submitted" and out["cluster"] == "local" and list(out["slurm_jobs"]) == ["s4"], (p.stdout, p.stderr)
    assert p.stderr.startswith("rnntk: warning: no Slurm here (sbatch not found)") and p.stderr.count("\n") == 1
    run, deadline = tmp_path / "runs" / "s" / "s4", time.time() + 120
    while job_state(run) != "completed" and time.time() < deadline:  # the background job finishes its run
        time.sleep(0.3)
    assert job_state(run) == "completed"


def test_a_failed_job_resubmitted_to_slurm_is_pending_while_it_waits(tmp_path, monkeypatch):
    """--retry failed through --launcher slurm (or a new sbatch.sh): while the array waits in
    Slurm's queue, --status said 'failed' for a job refused before it made its folder (its log
    still ended with the last attempt's error line); now 'pending' until the job starts."""
    sweep = load_sweep(write(tmp_path / "q.toml", 'command = "selftest"\nseeds = [3, 4]\n[options]\niters = 2\n'))
    folder = tmp_path / "runs" / "q"
    jobs = sweep.jobs()
    write_manifest(folder, sweep, jobs)
    err = json.dumps({"status": "error", "run_dir": None, "command": "selftest", "error": "bad --hidden 0"})
    (folder / "logs" / "s3.log").write_text(f"# 2026-01-01T00:00:00Z rnntk sweep starts job s3\nrnntk: error: bad --hidden 0\n{err}\n")
    assert job_state(folder / "s3") == "failed" and job_state(folder / "s4") == "pending"

    class Queued:  # a Slurm array accepted by the scheduler, not started yet
        cluster = "slurm"

        def map_array(self, fn, args):
            return [type("J", (), {"job_id": f"77_{i}"})() for i, _ in enumerate(args)]

    launcher = SlurmLauncher(cluster="slurm")
    monkeypatch.setattr(launcher, "executor", lambda folder, sweep: Queued())
    launcher.launch(folder, sweep, [(j, job_state(folder / j.name)) for j in jobs])
    assert job_state(folder / "s3") == "pending" and job_state(folder / "s4") == "pending"
    assert not (folder / "logs" / "s4.log").exists()  # a job that never ran gets no log from this
    (folder / "logs" / "s3.log").write_text(f"{err}\n")
    PrintLauncher().launch(folder, sweep, [(j, job_state(folder / j.name)) for j in jobs])
    assert job_state(folder / "s3") == "pending"
