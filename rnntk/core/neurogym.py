"""neurogym tasks as rnntk trial batches (``--task neurogym:<EnvId>``).

:class:`NeurogymTask` wraps one neurogym environment (``neurogym.make(env_id, **kwargs)``; its
``dt`` and ``timing`` in **milliseconds**, as neurogym has them) and draws trials with the
environment's own generator, ``env.new_trial()``, one trial per batch row. Trials are padded to one
fixed length (an upper bound of the trial length from the timing specs) and never stitched across
rows, unlike neurogym's ``Dataset``. :meth:`NeurogymTask.sample` gives a :class:`TrialBatch` with

* ``inputs  (B, T, n_in)``  the observations ``env.ob`` (0 after the trial's end);
* ``targets (B, T)`` int64  the ground truth ``env.gt`` as class labels (0 after the end);
* ``mask    (B, T)``       the loss weight: 1 on the decision period (``loss_on="decision"``), or
  with ``loss_on="all"`` 1 on the decision period and ``fixation_weight`` on the trial's other
  steps; 0 on padding;
* ``table``  the environment's per-trial dict (scalars; tuples as ``name_0, name_1, ...``),
  ``trial_len`` (steps) and ``period_<name>_start`` / ``period_<name>_end`` (step indices,
  end exclusive);
* ``dt`` in seconds (neurogym's ms / 1000).

neurogym and gymnasium are an optional extra (``pip install 'rnntk[neurogym]'``); without them
:func:`require_neurogym` raises a one-line :class:`NeurogymMissing` (a ``ValueError``). Metrics
for any model's logits: :func:`decision_accuracy`, :func:`psychometric`.
"""

from __future__ import annotations

import atexit
import copy
import json
import math
import operator
import os
import threading
import warnings
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

    from rnntk.core.trials import TrialBatch

PREFIX = "neurogym:"
INSTALL = "pip install 'rnntk[neurogym]' (neurogym and gymnasium)"
LOSS_ON = ("decision", "all")
#: prefetched batches in a row that the next call did not take before prefetch turns itself off
MAX_MISSES = 3


class NeurogymMissing(ValueError):
    """neurogym (or gymnasium) is not installed."""


class NoDecisionPeriod(ValueError):
    """``loss_on="decision"`` for an environment whose timing has no ``decision`` period."""


#: the environment variable that turns prefetch on (1) or off (0, unset) for every task made without ``prefetch=``
PREFETCH_ENV = "RNNTK_NEUROGYM_PREFETCH"


def prefetch_default() -> bool:
    """Whether :class:`NeurogymTask` prefetches when not told: ``RNNTK_NEUROGYM_PREFETCH`` is 1
    (0, empty or unset: no); any other value is a one-line ``ValueError``."""
    v = os.environ.get(PREFETCH_ENV, "").strip().lower()
    if v in ("", "0", "false", "no", "off"):
        return False
    if v in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"bad {PREFETCH_ENV}={v!r}: use 1 (prefetch the next neurogym batch in a thread) or 0")


def is_neurogym(task: str) -> bool:
    """True for a task name ``neurogym:<EnvId>``."""
    return isinstance(task, str) and task.startswith(PREFIX)


def env_id(task: str) -> str:
    """``neurogym:PerceptualDecisionMaking-v0`` -> ``PerceptualDecisionMaking-v0``."""
    if not is_neurogym(task) or not task[len(PREFIX) :]:
        raise ValueError(f"bad task {task!r}: use neurogym:<EnvId>, e.g. neurogym:PerceptualDecisionMaking-v0")
    return task[len(PREFIX) :]


def require_neurogym() -> Any:
    """Import and return the ``neurogym`` module; :class:`NeurogymMissing` (one line) without it."""
    try:
        import gymnasium  # noqa: F401
        import neurogym
    except ImportError as e:
        raise NeurogymMissing(f"neurogym tasks need the optional extra: {INSTALL} (missing: {e.name or e})") from None
    return neurogym


def parse_kwargs(text: Optional[str | Mapping[str, Any]]) -> dict[str, Any]:
    """``--task-kwargs`` as a dict: a JSON object (or a mapping already); ``None``/empty -> {}."""
    if text is None or text == "":
        return {}
    if isinstance(text, Mapping):
        return dict(text)
    try:
        out = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"bad --task-kwargs {text!r}: not JSON ({e.msg})") from None
    if not isinstance(out, dict):
        raise ValueError(f"bad --task-kwargs {text!r}: need a JSON object, e.g. '{{\"dt\": 20}}'")
    return out


def _max_ms(spec: Any, fallback: Optional[float]) -> Optional[float]:
    """Largest duration (ms) a neurogym timing spec can draw, or ``fallback`` when unknown."""
    if isinstance(spec, (int, float)):
        return float(spec)
    if hasattr(spec, "vmax"):  # neurogym.utils.ngym_random.TruncExp and friends
        return float(spec.vmax)
    if isinstance(spec, (list, tuple)) and spec and isinstance(spec[0], (int, float)):
        return float(max(spec))
    if isinstance(spec, (list, tuple)) and len(spec) == 2 and isinstance(spec[0], str):
        dist, args = spec
        if dist in ("uniform", "choice") and len(args):
            return float(max(args))
        if dist == "truncated_exponential" and len(args) >= 3:
            return float(args[2])
        if dist == "constant":
            return float(args)
    return fallback


@dataclass(eq=False)  # hashable (by identity): a task is one environment with its own state
class NeurogymTask:
    """One neurogym environment as a trial generator (see the module doc).

    task: ``neurogym:<EnvId>`` or the bare id; kwargs: ``neurogym.make`` keyword arguments
    (``dt`` and ``timing`` in ms); loss_on: ``decision`` or ``all``; fixation_weight: the mask
    value of the non-decision steps with ``loss_on="all"``; steps: the padded length (default:
    the longest trial the timing specs allow, else the longest of 2000 probe trials); prefetch:
    build the next batch in a background thread (see :meth:`sample`; the batches are the same with
    it on or off); None (the default): on when the environment variable ``RNNTK_NEUROGYM_PREFETCH``
    is 1, else off. Off by default because it did not pay on the 2-core machine it was measured on
    (``benchmarks/neurogym_adapter.py``, arm "prefetch": the thread's Python work holds the GIL and
    needs a free core; it does not make the generation cheaper).
    """

    task: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    loss_on: str = "decision"
    fixation_weight: float = 1.0
    steps: Optional[int] = None
    prefetch: Optional[bool] = None

    def __post_init__(self) -> None:
        ngym = require_neurogym()
        self.id = env_id(self.task) if is_neurogym(self.task) else self.task
        self.name = PREFIX + self.id
        self.kwargs = parse_kwargs(self.kwargs)
        if self.loss_on not in LOSS_ON:
            raise ValueError(f"bad --loss-on {self.loss_on!r}: use one of {', '.join(LOSS_ON)}")
        if not (math.isfinite(self.fixation_weight) and self.fixation_weight >= 0):
            raise ValueError(f"bad --fixation-weight {self.fixation_weight}: must be a finite number >= 0")
        try:
            with warnings.catch_warnings():  # gymnasium: "metadata doesn't include render_modes", for every neurogym env
                warnings.filterwarnings("ignore", message=".*render_modes")
                env = ngym.make(self.id, **self.kwargs)
        except TypeError as e:
            raise ValueError(f"bad --task-kwargs for {self.id}: {e}") from None
        except Exception as e:  # gymnasium's NameNotFound / Error: an unknown id
            msg = " ".join(str(e).split())
            raise ValueError(f"bad --task {self.name}: {msg}") from None
        self._env = env.unwrapped
        self._pending: Optional[_Prefetch] = None
        self._last_generator: Optional[torch.Generator] = None
        self.prefetched = 0  # batches taken from the prefetch thread (the others were built in place)
        self._misses = 0  # prefetched batches in a row not taken (another seed, batch size or padded length)
        if self.prefetch is None:
            self.prefetch = prefetch_default()
        _LIVE.add(self)
        self.dt_ms = float(self._env.dt)
        self.n_in = int(self._env.observation_space.shape[0])
        if not hasattr(self._env.action_space, "n"):
            space = type(self._env.action_space).__name__
            raise ValueError(f"--task {self.name} has a continuous action space ({space}); rnntk trains on neurogym tasks with discrete actions (class labels)")
        self.n_out = int(self._env.action_space.n)
        if "decision" not in self._env.timing and self.loss_on == "decision":
            raise NoDecisionPeriod(f"--task {self.name} has no decision period (periods: {', '.join(self._env.timing)}); use --loss-on all")
        if self.steps is None:
            self.steps = self._bound_steps()

    # ------------------------------------------------------------------ description
    @property
    def dt(self) -> float:
        """Time step in seconds."""
        return self.dt_ms / 1000.0

    def periods(self) -> list[str]:
        """Period names in trial order."""
        return list(self._env.timing)

    def input_names(self) -> list[str]:
        """A name per input channel (from ``observation_space.name``)."""
        return _channel_names(getattr(self._env.observation_space, "name", None), self.n_in, "in")

    def output_names(self) -> list[str]:
        """A name per output class (from ``action_space.name``)."""
        return _channel_names(getattr(self._env.action_space, "name", None), self.n_out, "action")

    def timing_table(self) -> list[dict[str, Any]]:
        """Per period: the timing spec as given and its largest duration in ms (None if unbounded)."""
        return [{"period": p, "spec": _spec_str(s), "max_ms": _max_ms(s, None)} for p, s in self._env.timing.items()]

    def _bound_steps(self) -> int:
        bound = 0
        for spec in self._env.timing.values():
            m = _max_ms(spec, None)
            if m is None or (isinstance(spec, (list, tuple)) and len(spec) == 2 and spec[0] == "until"):
                return self._probe_steps()
            bound += int(m // self.dt_ms)
        return max(bound, 1)

    def _probe_steps(self, n: int = 2000, seed: int = 0) -> int:
        """The longest of ``n`` probe trials, drawn with RandomStates of ``seed`` swapped in for the
        environment's own and for those of its timing samplers (``TruncExp`` and friends keep one
        each), all left as they were: the padded length is the same in every process (neurogym
        makes environments and samplers with unseeded RandomStates)."""
        env = self.env
        samplers = [s for s in env.timing.values() if isinstance(getattr(s, "rng", None), np.random.RandomState)]
        own, own_samplers = env.rng, [s.rng for s in samplers]
        env.rng = np.random.RandomState(seed)
        for j, s in enumerate(samplers):
            s.rng = np.random.RandomState(seed + 1 + j)
        longest = 1
        try:
            for _ in range(n):
                env.new_trial()
                longest = max(longest, int(env.ob.shape[0]))
        finally:
            env.rng = own
            for s, r in zip(samplers, own_samplers):
                s.rng = r
        return longest

    # ------------------------------------------------------------------ trials
    def seed(self, seed: int) -> None:
        """Seed the environment's generators (``env.seed``: its RandomState, action space, timing samplers)."""
        self.env.seed(int(seed))

    def new_trials(self, batch: int) -> list[dict[str, Any]]:
        """``batch`` trials from ``env.new_trial()``: per trial its ``ob (T_i, n_in)``, ``gt (T_i,)``,
        ``trial`` dict and ``start``/``end`` step indices per period."""
        out = []
        for _ in range(batch):
            info = self.env.new_trial()
            out.append(
                {
                    "ob": np.asarray(self.env.ob, dtype=np.float32),
                    "gt": np.asarray(self.env.gt).astype(np.int64).reshape(-1),
                    "trial": dict(info),
                    "start": dict(self.env.start_ind),
                    "end": dict(self.env.end_ind),
                }
            )
        return out

    @property
    def env(self) -> Any:
        """The (unwrapped) neurogym environment. Reaching it first waits for a batch being prefetched
        and discards it (the caller may change the environment's state, which that batch was built
        from), so that batches stay those of the environment as the caller leaves it."""
        self._cancel()
        return self._env

    def sample(self, batch: int, generator: Optional[torch.Generator] = None) -> TrialBatch:
        """``batch`` trials padded to :attr:`steps` (see the module doc). With ``generator`` the
        environment is first seeded with an integer drawn from it, so the batch depends on that
        generator alone; without, the environment's own stream continues.

        Prefetch (:attr:`prefetch`, off by default): from the second call in a row with the same
        ``generator``, the next batch is built in a background thread while the caller trains, on
        a copy of the environment as this call leaves it, for the seed the generator will give next
        (peeked: the generator's state is restored, so it is exactly as without prefetch). The next
        call draws its seed as always and takes that batch only if the seed, ``batch`` and the
        padded length match and the environment was not reached in between (else it waits for the
        thread, discards its batch and builds in place): the batches, the generator and the
        environment's stream are those of the path without prefetch, bit for bit. An exception in
        the thread is raised by the call that takes its batch. :meth:`close` ends the thread.
        After :data:`MAX_MISSES` prefetched batches in a row are not taken (a caller that draws
        from the generator between batches), prefetch turns itself off."""
        if generator is None:
            self._cancel()
            self._last_generator = None
            tb, self.steps = self._build(self._env, batch, self._padded())
            return tb
        seed = _draw_seed(generator)
        tb = self._take(seed, batch)
        if tb is None:
            self._env.seed(seed)
            tb, self.steps = self._build(self._env, batch, self._padded())
        if self.prefetch and generator is self._last_generator:
            self._start(_peek_seed(generator), batch)
        self._last_generator = generator
        return tb

    def close(self) -> None:
        """Wait for a batch being prefetched (if any) and discard it: no thread is left."""
        self._cancel()

    def _padded(self) -> int:
        return max(int(self.steps or 1), 1)

    def _cancel(self) -> None:
        """Wait for the prefetch thread (if any), discard its batch and put the environment back
        in the state it had before the thread drew from it."""
        job, self._pending = getattr(self, "_pending", None), None
        if job is not None:
            job.thread.join()
            job.restore(self._env)

    def _take(self, seed: int, batch: int) -> Optional[TrialBatch]:
        """The prefetched batch if it is the one ``seed`` and ``batch`` give now (the environment
        is then in the state building it in place would have left), else None (discarded, the
        environment put back)."""
        job, self._pending = self._pending, None
        if job is None:
            return None
        job.thread.join()
        if job.snapshot is None:  # an environment deepcopy cannot copy: no prefetch for it
            self.prefetch = False
            return None
        if (job.seed, job.batch, job.steps_in) != (seed, batch, self._padded()):
            job.restore(self._env)
            self._misses += 1  # e.g. the caller draws from the generator between batches (noise): prefetch cannot guess the seed
            if self._misses >= MAX_MISSES:
                self.prefetch = False
            return None
        self._misses = 0
        if job.error is not None:  # the environment is where building in place would have left it
            raise job.error
        assert job.result is not None
        self.steps = job.steps_out
        self.prefetched += 1
        return job.result

    def _start(self, seed: int, batch: int) -> None:
        """Build the batch of ``seed`` in a thread, on this task's environment itself (the main
        thread leaves it alone until it joins the thread: every use goes through :meth:`sample`,
        :attr:`env` or :meth:`close`); a snapshot of its state, taken first, puts it back when the
        batch is not taken. The snapshot deep-copies the attributes but keeps the environment
        object itself, so closures over it (timing lambdas drawing from ``self.rng``) stay right."""
        job = _Prefetch(seed=seed, batch=batch, steps_in=self._padded())
        env = self._env

        def work() -> None:
            try:
                job.snapshot = copy.deepcopy(env.__dict__, {id(env): env})
            except Exception:  # left untouched; sample() turns prefetch off
                return
            try:
                env.seed(seed)
                job.result, job.steps_out = self._build(env, batch, job.steps_in)
            except BaseException as e:  # raised again by the sample() call that takes this batch
                job.error = e

        job.thread = threading.Thread(target=work, name="rnntk-neurogym-prefetch", daemon=True)
        self._pending = job
        job.thread.start()

    def _build(self, env: Any, batch: int, T: int) -> tuple[TrialBatch, int]:
        """``batch`` trials of ``env`` (seeded by the caller) padded to ``T`` steps or more; the
        batch and its padded length. Touches nothing of ``self`` but constants (runs in the
        prefetch thread too)."""
        import torch

        from rnntk.core.trials import TrialBatch

        periods = list(env.timing)
        x = np.zeros((batch, T, self.n_in), dtype=np.float32)
        y = np.zeros((batch, T), dtype=np.int64)
        lens: list[int] = []
        bounds: list[tuple[Any, Any]] = []  # per trial: (starts, ends) of each period and then of the decision period, -1 when absent
        infos: list[dict[str, Any]] = []
        names = [*periods, "decision"]
        get = operator.itemgetter(*names)
        for i in range(batch):  # env.new_trial() is neurogym's own, one per row; the rest is a copy into place
            infos.append(dict(env.new_trial()))
            ob, gt = getattr(env, "ob", None), getattr(env, "gt", None)
            if ob is None or gt is None:
                raise ValueError(f"--task {self.name} builds no supervised trial (no env.ob / env.gt); rnntk trains on neurogym's supervised tasks")
            gt = np.asarray(gt).reshape(-1)
            n = gt.shape[0]
            if n > T:  # a longer trial than the bound (a callable spec): grow the padded length
                x = np.concatenate([x, np.zeros((batch, n - T, self.n_in), np.float32)], 1)
                y = np.concatenate([y, np.zeros((batch, n - T), np.int64)], 1)
                T = n
            x[i, :n] = ob
            y[i, :n] = gt
            lens.append(n)
            start, end = env.start_ind, env.end_ind
            try:  # neurogym keeps one start_ind / end_ind dict per env, filled in place
                bounds.append((get(start), get(end)))
            except KeyError:  # a period this trial (and every trial before it) has not had
                bounds.append((tuple(start.get(p, -1) for p in names), tuple(end.get(p, -1) for p in names)))
        B = np.asarray(bounds, dtype=np.int64).reshape(batch, 2, len(names)).transpose(0, 2, 1)
        L = np.asarray(lens, dtype=np.int64)
        t = np.arange(T)
        d0, d1 = B[:, -1, :1], B[:, -1, 1:]  # the decision period, -1 when the trial has none
        m = np.zeros((batch, T), dtype=np.float32)
        if self.loss_on == "all":
            inside = t < L[:, None]
            m[inside] = self.fixation_weight
            m[inside & (d0 < 0)] = 1.0  # no decision period in this trial: every step scored
        m[(t >= d0) & (t < d1) & (d0 >= 0)] = 1.0
        table = _columns(infos)
        table["trial_len"] = L
        for j, p in enumerate(periods):
            table[f"period_{p}_start"], table[f"period_{p}_end"] = B[:, j, 0].copy(), B[:, j, 1].copy()
        tb = TrialBatch(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(m), {k: torch.as_tensor(v) for k, v in table.items()}, dt=self.dt)
        return tb, T  # a longer trial than the bound grows the padded length for good

    def input_stream(self, steps: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Observations of consecutive trials concatenated to ``(1, steps, n_in)`` (a drive sequence
        for Lyapunov spectra and flossing, where trial boundaries do not matter)."""
        import torch

        if generator is not None:
            self.seed(_draw_seed(generator))
        chunks, n = [], 0
        while n < steps:
            tr = self.new_trials(1)[0]
            chunks.append(tr["ob"])
            n += len(tr["ob"])
        return torch.from_numpy(np.concatenate(chunks)[:steps])[None]

    def describe(self) -> dict[str, Any]:
        return {
            "env": self.id,
            "kwargs": json.dumps(self.kwargs, sort_keys=True),
            "dt_s": self.dt,
            "steps": self.steps,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "loss_on": self.loss_on,
            "fixation_weight": self.fixation_weight,
            "loss": "masked softmax cross-entropy on neurogym's ground-truth labels",
        }


#: tasks that may have a prefetch thread; closed at exit (the threads are daemons: this only waits for them)
_LIVE: weakref.WeakSet[NeurogymTask] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Close every task's prefetch thread (at interpreter exit)."""
    for task in list(_LIVE):
        task.close()


def _draw_seed(generator: torch.Generator) -> int:
    """The environment seed of one batch: an integer in [0, 2**31 - 1) drawn from ``generator``."""
    import torch

    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))


def _peek_seed(generator: torch.Generator) -> int:
    """The seed :func:`_draw_seed` will draw next; ``generator`` is left in the state it was."""
    state = generator.get_state()
    try:
        return _draw_seed(generator)
    finally:
        generator.set_state(state)


@dataclass
class _Prefetch:
    """A batch being built in the background: for ``seed``, ``batch`` trials, padded from ``steps_in``."""

    seed: int
    batch: int
    steps_in: int
    thread: threading.Thread = field(init=False)
    snapshot: Optional[dict[str, Any]] = None  # the environment's attributes before the thread drew from it
    result: Optional[TrialBatch] = None
    steps_out: int = 0
    error: Optional[BaseException] = None

    def restore(self, env: Any) -> None:
        """Put ``env`` back in the state of :attr:`snapshot` (after the thread has ended)."""
        if self.snapshot is not None:
            env.__dict__.clear()
            env.__dict__.update(self.snapshot)
            self.snapshot = None


def _spec_str(spec: Any) -> str:
    if callable(spec) and not hasattr(spec, "vmax"):
        return "function (drawn per trial)"
    if hasattr(spec, "vmax"):
        return f"{type(spec).__name__}(" + ", ".join(f"{k}={v}" for k, v in vars(spec).items() if isinstance(v, (int, float))) + ")"
    return str(spec)


def _channel_names(names: Any, n: int, stem: str) -> list[str]:
    out = [f"{stem}{i}" for i in range(n)]
    if not isinstance(names, Mapping):
        return out
    for key, idx in names.items():
        idxs = [int(idx)] if isinstance(idx, (int, np.integer)) else [int(i) for i in idx]
        for j, i in enumerate(idxs):
            if 0 <= i < n:
                out[i] = str(key) if len(idxs) == 1 else f"{key}{j + 1}"
    return out


#: value types whose trial-dict entries are table columns (scalars whose ``.item()`` is a bool, int or float)
_SCALARS = frozenset(
    [bool, int, float, np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float16, np.float32, np.float64]
)
#: value types that never give a column (0-d, ``.item()`` not a number)
_NOT_SCALARS = frozenset([str, type(None), np.str_])


def _qualifying(info: Mapping[str, Any]) -> list[str]:
    """The column names one trial dict gives, in its order: numeric scalars, and the numeric
    items ``name_0, name_1, ...`` of a 1-D tuple / list / array of at most 8 entries."""
    out = []
    for k, v in info.items():
        vals = {k: v}
        if isinstance(v, (tuple, list, np.ndarray)) and np.ndim(v) == 1 and len(v) <= 8:
            vals = {f"{k}_{j}": x for j, x in enumerate(v)}
        for kk, x in vals.items():
            if np.ndim(x) == 0 and isinstance(np.asarray(x).item(), (bool, int, float)):
                out.append(kk)
    return out


def _columns(infos: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The per-trial table of the trial dicts ``infos`` (one per row): a column per scalar entry
    (tuples split as ``name_0, name_1, ...``), NaN where a trial lacks it; int64 when every value
    is integral and the first trial's is an int/bool (or absent), else float64. Column order: first
    appearance. Trials whose entries are all plain scalars are classified once per key/type
    signature (neurogym's dicts repeat one per task); when every trial has the same such signature
    each column is one ``np.asarray`` of the values."""
    keys: dict[str, None] = {}
    done: set[tuple[Any, ...]] = set()
    mixed = False
    for info in infos:
        types = tuple((k, type(v)) for k, v in info.items())
        if types in done:
            continue
        if all(t in _SCALARS or t in _NOT_SCALARS for _, t in types):
            done.add(types)
            keys.update((k, None) for k, t in types if t in _SCALARS)
        else:
            mixed = True
            keys.update((k, None) for k in _qualifying(info))
    out: dict[str, np.ndarray] = {}
    uniform = len(done) == 1 and not mixed  # every trial has one signature of plain scalars: each key in every trial
    for k in keys:
        cells = [info[k] for info in infos] if uniform else [_cell(info, k) for info in infos]
        arr = np.asarray(cells, dtype=np.float64)
        first = infos[0].get(k)
        int_like = first is None or isinstance(first, (bool, int, np.integer, np.bool_))
        out[k] = arr.astype(np.int64) if int_like and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) else arr
    return out


def _cell(info: Mapping[str, Any], key: str) -> float:
    """``info[key]`` as a float; ``name_j``: item j of ``info[name]``; NaN when absent."""
    v = info.get(key)
    if v is None and "_" in key:
        base, j = key.rsplit("_", 1)
        seq = info.get(base)
        v = seq[int(j)] if isinstance(seq, (tuple, list, np.ndarray)) and j.isdigit() and int(j) < len(seq) else None
    return np.nan if v is None else float(v)


# ---------------------------------------------------------------------- metrics (any model)
def decision_choices(logits: torch.Tensor, batch: TrialBatch) -> torch.Tensor:
    """The choice of each trial ``(B,)``: argmax of the logits ``(B, T, C)`` at the last decision
    step (the last scored step of the mask when the task has no decision period)."""
    import torch

    last = _decision_last(batch)
    return logits[torch.arange(logits.shape[0], device=logits.device), last].argmax(-1)


def _decision_last(batch: TrialBatch) -> torch.Tensor:
    import torch

    if "period_decision_end" in batch.table:
        return (torch.as_tensor(batch.table["period_decision_end"]) - 1).clamp(min=0).to(batch.inputs.device)
    scored = (batch.mask.reshape(batch.batch, batch.steps, -1).sum(-1) > 0).to(torch.int64)
    idx = torch.arange(batch.steps, device=scored.device)
    return (scored * idx).argmax(-1)


def decision_correct(logits: torch.Tensor, batch: TrialBatch) -> torch.Tensor:
    """``(B,)`` bool: the trial's choice equals neurogym's ground truth at that step."""
    import torch

    last = _decision_last(batch)
    truth = batch.targets[torch.arange(batch.batch, device=batch.targets.device), last.to(batch.targets.device)]
    return decision_choices(logits, batch).to(truth.device) == truth


def decision_accuracy(logits: torch.Tensor, batch: TrialBatch) -> float:
    """Fraction of trials whose choice at the end of the decision period is correct."""
    return float(decision_correct(logits, batch).float().mean())


def masked_cross_entropy(logits: torch.Tensor, batch: TrialBatch) -> torch.Tensor:
    """Σ_{b,t} mask · CE(logits[b, t], label[b, t]) / B: the per-step softmax cross-entropy that
    SOFO's :class:`CrossEntropy` sums over time (scale 1), with an autograd graph."""
    import torch

    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1), reduction="none")
    return (ce.reshape(batch.targets.shape) * batch.mask).sum() / batch.batch


#: table columns that are bookkeeping, never a condition
_NOT_CONDITIONS = ("trial_len", "ground_truth")


def conditions(table: Mapping[str, Any], max_levels: int = 12) -> list[str]:
    """Graded-stimulus columns of a trial table: numeric, 2..``max_levels`` distinct values, not
    a period boundary, the trial length or the ground truth (e.g. ``coh``)."""
    out = []
    for k, v in table.items():
        if k in _NOT_CONDITIONS or k.startswith("period_") or k.endswith("_correct"):
            continue
        a = np.asarray(v.cpu() if hasattr(v, "cpu") else v)
        if a.ndim != 1 or a.dtype.kind not in "iuf":
            continue
        if 2 <= len(np.unique(a[np.isfinite(a)])) <= max_levels:
            out.append(k)
    return out


def psychometric(table: Mapping[str, Any], correct: Any, key: str) -> dict[str, np.ndarray]:
    """Accuracy per level of condition ``key``: ``{key: levels, "n": trials, "accuracy": fraction}``."""
    a = np.asarray(table[key].cpu() if hasattr(table[key], "cpu") else table[key], dtype=np.float64)
    c = np.asarray(correct.cpu() if hasattr(correct, "cpu") else correct, dtype=np.float64)
    levels = np.unique(a[np.isfinite(a)])
    n = np.asarray([int((a == lv).sum()) for lv in levels])
    acc = np.asarray([float(c[a == lv].mean()) for lv in levels])
    return {key: levels, "n": n, "accuracy": acc}


def record_decisions(run: Any, logits: torch.Tensor, batch: TrialBatch, prefix: str = "", n_trials: Optional[int] = None) -> dict[str, float]:
    """Write what neuroscientists read for a neurogym task, from the logits ``(B, T, C)`` of the
    validation trials (the caller writes the accuracy itself): a psychometric table per graded
    condition (``/results/<prefix>psychometric_<key>``: rows level, trials, accuracy), the
    per-trial table with ``choice`` and ``correct`` in ``/trials`` (first ``n_trials``), and
    ``psychometric.png`` when the task has a graded condition. Returns the accuracy."""
    correct = decision_correct(logits, batch).cpu()
    choice = decision_choices(logits, batch).cpu()
    acc = float(correct.float().mean())
    k = batch.batch if n_trials is None else min(n_trials, batch.batch)
    cols = {c: v[:k] for c, v in batch.table.items()}
    cols["choice"], cols["correct"] = choice[:k], correct[:k]
    if not prefix:
        run.trials(cols)
    keys = conditions(batch.table)
    tables = {}
    for key in keys:
        tab = psychometric(batch.table, correct, key)
        tables[key] = tab
        run.result(
            f"{prefix}psychometric_{key}",
            np.stack([tab[key], tab["n"], tab["accuracy"]], 1),
            dims=f"level, ({key}, trials, accuracy)",
            description=f"decision accuracy of the validation trials per level of {key}",
        )
    if tables and not prefix:
        run.figure(psychometric_figure(tables), "psychometric")
    return {"decision_accuracy": acc}


def psychometric_figure(tables: Mapping[str, Mapping[str, np.ndarray]]) -> Any:
    """One panel per condition: accuracy vs level, with chance-free axes (0..1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(4 * len(tables), 3.5), squeeze=False)
    for ax, (key, tab) in zip(axes[0], tables.items()):
        ax.plot(tab[key], tab["accuracy"], "o-")
        ax.set_xlabel(key)
        ax.set_ylabel("decision accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
