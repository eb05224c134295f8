"""Issue 13.1: the thread policy is decided before torch loads (passive OpenMP wait, one
thread unless the work is large), honours --threads / RNNTK_THREADS / OMP_NUM_THREADS /
the affinity mask / SLURM_CPUS_PER_TASK, and is recorded in run.h5. Speed is measured in
benchmarks/threads.py, not here."""

import os

import h5py
import pytest

from conftest import assert_user_error, cli_env, run_cli
from rnntk.engine import threads

FAST = ("--iters", "2", "--steps", "5", "--batch", "4", "--hidden", "4", "-q")


def _env(**extra: str) -> dict[str, str]:
    env = cli_env(**extra)
    for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "RNNTK_THREADS", "SLURM_CPUS_PER_TASK"):
        if k not in extra:
            env.pop(k, None)
    return env


def _attrs(run_dir) -> dict:
    with h5py.File(run_dir / "run.h5", "r") as f:
        return {k: f.attrs[k] for k in ("threads", "threads_policy", "threads_source", "omp_wait_policy", "cpus_available")}


def test_default_policy_is_passive_and_one_thread_decided_before_torch(tmp_path):
    r = run_cli("selftest", *FAST, "--out", tmp_path / "a", env=_env())
    assert r.code == 0, r.stderr
    a = _attrs(tmp_path / "a")
    # "PASSIVE" without "(not applied ...)": the policy ran before torch was imported
    assert a["omp_wait_policy"] == "PASSIVE"
    assert a["threads"] == 1 and a["threads_policy"] == "auto" and a["threads_source"] == "default"


def test_threads_option_env_and_user_wait_policy(tmp_path):
    r = run_cli("selftest", *FAST, "--threads", "2", "--out", tmp_path / "a", env=_env(OMP_WAIT_POLICY="active"))
    assert r.code == 0, r.stderr
    a = _attrs(tmp_path / "a")
    assert a["threads"] == 2 and a["threads_source"] == "--threads" and a["omp_wait_policy"] == "ACTIVE"
    r = run_cli("selftest", *FAST, "--out", tmp_path / "b", env=_env(RNNTK_THREADS="2"))
    assert r.code == 0 and _attrs(tmp_path / "b")["threads"] == 2
    r = run_cli("selftest", *FAST, "--out", tmp_path / "c", env=_env(OMP_NUM_THREADS="2"))
    a = _attrs(tmp_path / "c")
    assert r.code == 0 and a["threads"] == 2 and a["threads_source"] == "OMP_NUM_THREADS"
    r = run_cli("selftest", *FAST, "--threads", "zero", "--out", tmp_path / "d", env=_env())
    assert_user_error(r, "--threads")
    assert not (tmp_path / "d").exists()


def test_auto_honours_affinity_and_slurm(monkeypatch):
    for k in ("OMP_NUM_THREADS", "RNNTK_THREADS", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    assert threads.available_cpus() == 6
    assert threads.decide("auto", large=False).threads == 1  # small work: one thread
    assert threads.decide("auto", large=True).threads == 6
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    assert threads.available_cpus() == 4 and threads.decide(None, large=True).threads == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert threads.decide(None, large=True).threads == 1  # the mask is narrower than Slurm's count
    assert threads.decide(3).threads == 3 and threads.decide(3).source == "--threads"
    with pytest.raises(Exception, match="--threads"):
        threads.decide("-1")


def test_api_run_records_policy(tmp_path, monkeypatch):
    import torch

    from rnntk.engine import Run

    monkeypatch.delenv("RNNTK_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    n = torch.get_num_threads()
    threads._reset_for_tests()
    try:
        with Run.open(tmp_path / "r", command="t", device="cpu", progress="none") as run:
            assert torch.get_num_threads() == 1
        with h5py.File(run.dir / "run.h5", "r") as f:
            assert f.attrs["threads"] == 1 and "threads_policy" in f.attrs
    finally:
        threads._reset_for_tests()
        torch.set_num_threads(n)
