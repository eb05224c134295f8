"""CPU thread policy, decided before torch is imported.

PyTorch's OpenMP threads spin while they wait for work. On a machine where anything else
runs (a shared node, a second rnntk run), that spinning steals the cores the work needs:
the SOFO quick start took 74 s with torch's default threads and 11.7 s with one thread
next to one busy process on 2 cores. rnntk therefore decides, once per process and
before ``import torch``:

- ``OMP_WAIT_POLICY=PASSIVE`` unless the user set a wait policy (idle OpenMP threads sleep);
- the intra-op thread count: ``--threads N`` (env ``RNNTK_THREADS``), else
  ``OMP_NUM_THREADS`` when the user set it, else ``auto``;
- ``auto`` = 1 thread, unless the command declares its work large enough to gain from
  more (``large=True``: convolutions over image batches), then every CPU the process may
  use: the CPU affinity mask (``os.sched_getaffinity``), capped by ``SLURM_CPUS_PER_TASK``.
  A small RNN step gains nothing from 2 threads (``benchmarks/threads.py``).

The decision is recorded in ``run.h5`` (attrs ``threads``, ``threads_policy``,
``threads_source``, ``omp_wait_policy``, ``cpus_available``). This module does not import
torch.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

from .errors import UserError

ENV = "RNNTK_THREADS"
MAX_THREADS = 4096


@dataclass(frozen=True)
class ThreadPolicy:
    """What rnntk decided: ``threads`` intra-op threads; ``spec`` the asked value
    (``auto`` or a number); ``source`` where it came from (``--threads``, ``RNNTK_THREADS``,
    ``OMP_NUM_THREADS``, ``default``); ``wait_policy`` OpenMP's; ``cpus`` usable CPUs;
    ``large`` whether the command declared large work; ``wait_policy_applied`` False when
    torch was imported before the policy could set the wait policy."""

    threads: int
    spec: str
    source: str
    wait_policy: str
    cpus: int
    large: bool
    wait_policy_applied: bool

    def attrs(self) -> dict[str, Any]:
        """The ``run.h5`` root attributes that record this policy."""
        return {
            "threads": self.threads,
            "threads_policy": self.spec,
            "threads_source": self.source,
            "omp_wait_policy": self.wait_policy if self.wait_policy_applied else f"{self.wait_policy} (not applied: torch imported first)",
            "cpus_available": self.cpus,
            "threads_large_work": self.large,
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_applied: ThreadPolicy | None = None
_our_omp: str | None = None  # the OMP_NUM_THREADS value apply() set (not the user's)


def available_cpus() -> int:
    """CPUs this process may run on: the affinity mask (else ``os.cpu_count()``), capped
    by ``SLURM_CPUS_PER_TASK`` when that is a positive integer."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "").strip()
    if slurm.isdigit() and int(slurm) > 0:
        n = min(n, int(slurm))
    return max(1, n)


def parse_threads(value: str | int | None, where: str = "--threads") -> str | int | None:
    """``auto`` → ``"auto"``, a positive integer → int, empty/None → None; UserError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise UserError(f"bad {where} {value!r}: use a positive integer or 'auto'")
    s = str(value).strip().lower()
    if s == "":
        return None
    if s == "auto":
        return "auto"
    if s.isdigit() and 1 <= int(s) <= MAX_THREADS:
        return int(s)
    raise UserError(f"bad {where} '{value}': use a positive integer (at most {MAX_THREADS}) or 'auto'")


def decide(spec: str | int | None = None, *, large: bool = False) -> ThreadPolicy:
    """Decide the policy (pure: changes nothing). ``spec``: the ``--threads`` value (None:
    not given; then ``RNNTK_THREADS``, then ``OMP_NUM_THREADS``, then ``auto``)."""
    cpus = available_cpus()
    source = "--threads"
    parsed = parse_threads(spec)
    if parsed is None:
        parsed, source = parse_threads(os.environ.get(ENV), ENV), ENV
    if parsed is None:
        raw = os.environ.get("OMP_NUM_THREADS", "")
        omp = raw.strip().split(",")[0] if raw != _our_omp else ""
        if omp.isdigit() and int(omp) > 0:
            parsed, source = int(omp), "OMP_NUM_THREADS"
    if parsed is None:
        parsed, source = "auto", "default"
    if parsed == "auto":
        n = cpus if large else 1
    else:
        n = int(parsed)
    wait = os.environ.get("OMP_WAIT_POLICY", "").strip() or "PASSIVE"
    return ThreadPolicy(
        threads=n,
        spec=str(parsed),
        source=source,
        wait_policy=wait.upper(),
        cpus=cpus,
        large=large,
        wait_policy_applied="torch" not in sys.modules or bool(os.environ.get("OMP_WAIT_POLICY")),
    )


def apply(spec: str | int | None = None, *, large: bool = False) -> ThreadPolicy:
    """Decide and apply the policy: set ``OMP_WAIT_POLICY`` (unless the user set one) while
    torch is not imported yet, and the intra-op thread count of torch when it is (else
    ``OMP_NUM_THREADS`` for the coming import). Returns the policy; :func:`current` keeps it.
    """
    global _applied, _our_omp
    policy = decide(spec, large=large)
    torch_loaded = "torch" in sys.modules
    if not os.environ.get("OMP_WAIT_POLICY") and not torch_loaded:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    if torch_loaded:
        import torch

        if torch.get_num_threads() != policy.threads:
            torch.set_num_threads(policy.threads)
    else:
        # read by libgomp / MKL when torch loads; the user's own value is what decide() used
        if os.environ.get("OMP_NUM_THREADS") != str(policy.threads):
            os.environ["OMP_NUM_THREADS"] = _our_omp = str(policy.threads)
    _applied = policy
    return policy


def ensure_torch_threads() -> ThreadPolicy:
    """Called once torch is imported (``Run.open``): apply the decided policy to torch, or
    decide one now (``auto``) when no command did (the Python API)."""
    if _applied is None:
        return apply(None)
    import torch

    if torch.get_num_threads() != _applied.threads:
        torch.set_num_threads(_applied.threads)
    return _applied


def current() -> ThreadPolicy | None:
    """The policy applied in this process, if any."""
    return _applied


def _reset_for_tests() -> None:
    global _applied, _our_omp
    if _our_omp is not None and os.environ.get("OMP_NUM_THREADS") == _our_omp:
        del os.environ["OMP_NUM_THREADS"]
    _applied = _our_omp = None
