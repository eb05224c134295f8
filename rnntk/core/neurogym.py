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

import json
import math
import operator
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

    from rnntk.core.trials import TrialBatch

PREFIX = "neurogym:"
INSTALL = "pip install 'rnntk[neurogym]' (neurogym and gymnasium)"
LOSS_ON = ("decision", "all")


class NeurogymMissing(ValueError):
    """neurogym (or gymnasium) is not installed."""


class NoDecisionPeriod(ValueError):
    """``loss_on="decision"`` for an environment whose timing has no ``decision`` period."""


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


@dataclass
class NeurogymTask:
    """One neurogym environment as a trial generator (see the module doc).

    task: ``neurogym:<EnvId>`` or the bare id; kwargs: ``neurogym.make`` keyword arguments
    (``dt`` and ``timing`` in ms); loss_on: ``decision`` or ``all``; fixation_weight: the mask
    value of the non-decision steps with ``loss_on="all"``; steps: the padded length (default:
    the longest trial the timing specs allow, else the longest of 2000 probe trials).
    """

    task: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    loss_on: str = "decision"
    fixation_weight: float = 1.0
    steps: Optional[int] = None

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
        self.env = env.unwrapped
        self.dt_ms = float(self.env.dt)
        self.n_in = int(self.env.observation_space.shape[0])
        if not hasattr(self.env.action_space, "n"):
            space = type(self.env.action_space).__name__
            raise ValueError(f"--task {self.name} has a continuous action space ({space}); rnntk trains on neurogym tasks with discrete actions (class labels)")
        self.n_out = int(self.env.action_space.n)
        if "decision" not in self.env.timing and self.loss_on == "decision":
            raise NoDecisionPeriod(f"--task {self.name} has no decision period (periods: {', '.join(self.env.timing)}); use --loss-on all")
        if self.steps is None:
            self.steps = self._bound_steps()

    # ------------------------------------------------------------------ description
    @property
    def dt(self) -> float:
        """Time step in seconds."""
        return self.dt_ms / 1000.0

    def periods(self) -> list[str]:
        """Period names in trial order."""
        return list(self.env.timing)

    def input_names(self) -> list[str]:
        """A name per input channel (from ``observation_space.name``)."""
        return _channel_names(getattr(self.env.observation_space, "name", None), self.n_in, "in")

    def output_names(self) -> list[str]:
        """A name per output class (from ``action_space.name``)."""
        return _channel_names(getattr(self.env.action_space, "name", None), self.n_out, "action")

    def timing_table(self) -> list[dict[str, Any]]:
        """Per period: the timing spec as given and its largest duration in ms (None if unbounded)."""
        return [{"period": p, "spec": _spec_str(s), "max_ms": _max_ms(s, None)} for p, s in self.env.timing.items()]

    def _bound_steps(self) -> int:
        bound = 0
        for spec in self.env.timing.values():
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

    def sample(self, batch: int, generator: Optional[torch.Generator] = None) -> TrialBatch:
        """``batch`` trials padded to :attr:`steps` (see the module doc). With ``generator`` the
        environment is first seeded with an integer drawn from it, so the batch depends on that
        generator alone; without, the environment's own stream continues."""
        import torch

        from rnntk.core.trials import TrialBatch

        if generator is not None:
            self.seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device)))
        env, periods = self.env, self.periods()
        T = max(int(self.steps or 1), 1)
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
        self.steps = T  # a longer trial than the bound grows the padded length for good
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
        return TrialBatch(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(m), {k: torch.as_tensor(v) for k, v in table.items()}, dt=self.dt)

    def input_stream(self, steps: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Observations of consecutive trials concatenated to ``(1, steps, n_in)`` (a drive sequence
        for Lyapunov spectra and flossing, where trial boundaries do not matter)."""
        import torch

        if generator is not None:
            self.seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device)))
        chunks, n = [], 0
        while n < steps:
            self.env.new_trial()  # neurogym's own, one per trial; only its observations are kept
            ob = np.asarray(self.env.ob, dtype=np.float32)
            chunks.append(ob)
            n += len(ob)
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
