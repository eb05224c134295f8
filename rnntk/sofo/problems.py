"""Training problems for SOFO vs Adam+BPTT: a model, a trial sampler, the loss, and what to
record. Each problem offers the same four operations:

    sample(batch, generator)        → Batch (trials + the noise every tangent shares)
    sketch(model, V, batch, impl)   → Sketch (SOFO, forward mode, constant memory in T)
    loss(model, batch)              → scalar with autograd graph (Adam + BPTT)
    evaluate(model, batch)          → float, no graph (validation)
and ``record(run, model, batch)`` writes traces/results at the end of training.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional, cast

import torch
from torch import nn

from rnntk.core.trials import TrialBatch
from rnntk.sofo.models.kalman_rnn import KalmanRNN
from rnntk.sofo.models.lorenz_map import LorenzMap
from rnntk.sofo.models.motor_rnn import MotorRNN, noise_sigma, rate_noise
from rnntk.sofo.optimizer import MSE, Params, Sketch, sketch_feedforward, sketch_recurrent
from rnntk.sofo.tasks import kalman, linreg, lorenz, reach

TANGENT_IMPLS = ("auto", "generic", "manual")


@dataclass
class Batch:
    """Trials plus the noise sampled for them (shared by the primal and all tangents)."""

    trials: TrialBatch
    noise: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device) -> "Batch":
        tr = self.trials
        moved = TrialBatch(
            tr.inputs.to(device),
            tr.targets.to(device),
            tr.mask.to(device),
            tr.table,
            tr.dt,
            {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in tr.extra.items()},
        )
        noise = self.noise.to(device) if isinstance(self.noise, torch.Tensor) else self.noise
        return Batch(moved, noise, self.extra)


class Problem(abc.ABC):
    """The interface every SOFO training problem implements (see the module docstring);
    a subclass missing one of the abstract methods cannot be instantiated."""

    name = ""
    has_manual_tangents = False
    #: where per-trial noise is drawn from (on its device); None: the ``sample`` generator
    noise_generator: Optional[torch.Generator] = None

    @abc.abstractmethod
    def make_model(self, generator: torch.Generator) -> nn.Module:
        """A freshly initialised model (weights drawn from ``generator``)."""

    @abc.abstractmethod
    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        """``batch`` fresh trials and the noise all tangents share."""

    @abc.abstractmethod
    def sketch(self, model: nn.Module, V: Params, b: Batch, impl: str = "auto") -> Sketch:
        """SOFO's gradient and GGN sketch along tangents ``V`` (forward mode, no graph)."""

    @abc.abstractmethod
    def loss(self, model: nn.Module, b: Batch) -> torch.Tensor:
        """The same loss with an autograd graph (Adam + BPTT)."""

    def evaluate(self, model: nn.Module, b: Batch) -> float:
        with torch.no_grad():
            return float(self.loss(model, b))

    def evaluate_task(self, model: nn.Module, b: Batch) -> tuple[float, dict[str, float]]:
        """Validation loss and task-level metrics (e.g. reach error, MSE / Kalman-filter MSE)
        from one rollout; the base class has no task metrics."""
        return self.evaluate(model, b), {}

    #: a description per task metric of :meth:`evaluate_task`, written beside it in /results
    metric_descriptions: ClassVar[dict[str, str]] = {}

    def progress_metrics(self, task: dict[str, float]) -> dict[str, float]:
        """The task metrics logged to /metrics (with a ``val_`` name) and shown on the progress line."""
        return {}

    def record(self, run: Any, model: nn.Module, b: Batch, n_trials: int) -> dict[str, float]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {}

    def prepare(self, generator: torch.Generator) -> None:
        """Build any fixed data set (called once per run, before sampling)."""


class ReachProblem(Problem):
    """double-reach / single-reach: :class:`MotorRNN` driving the two-link arm."""

    has_manual_tangents = True

    def __init__(
        self,
        task: str = "double-reach",
        *,
        hidden: int = 64,
        dt: float = 0.002,
        tau: float = 0.02,
        duration: float = 2.0,
        noise: bool = True,
        init_gain: Optional[float] = None,
        constraints: Optional[dict[str, Any]] = None,
    ) -> None:
        if task not in ("double-reach", "single-reach"):
            raise ValueError(task)
        self.constraints = {k: v for k, v in (constraints or {}).items() if k not in ("rec_noise", "input_noise")}
        if constraints and (constraints.get("rec_noise") or constraints.get("input_noise")):
            raise ValueError("--rec-noise/--input-noise do not apply to the reach tasks (their network has its own rate noise: --noise/--no-noise)")
        self.name, self.hidden, self.dt, self.tau, self.duration, self.noise = task, hidden, dt, tau, duration, noise
        self.init_gain = init_gain
        self.steps = int(round(duration / dt))
        self.n_in = 6 if task == "double-reach" else 3
        self.mse = MSE(reach.loss_scale(self.steps))

    def describe(self) -> dict[str, Any]:
        return {"steps": self.steps, "n_in": self.n_in, "loss": f"(10/T) sum_t mean_b w (|p-p*|^2 + |v|^2), T={self.steps}"}

    def make_model(self, generator: torch.Generator) -> MotorRNN:
        if self.constraints:  # Dale's law / masks / no autapses (rnntk.sofo.models.constrained_motor)
            from rnntk.sofo.models.constrained_motor import ConstrainedMotorRNN

            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))  # the connectivity draw
            kw = dict(dt=self.dt, tau=self.tau, noise=self.noise, generator=generator, init_gain=self.init_gain, seed=seed)
            return ConstrainedMotorRNN(self.n_in, self.hidden, **kw, **self.constraints)
        return MotorRNN(self.n_in, self.hidden, dt=self.dt, tau=self.tau, noise=self.noise, generator=generator, init_gain=self.init_gain)

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        fn = reach.double_reach_trials if self.name == "double-reach" else reach.single_reach_trials
        tr = fn(batch, dt=self.dt, duration=self.duration, generator=generator)
        sigma = noise_sigma(self.tau, self.dt) if self.noise else 0.0
        return Batch(tr, rate_noise(batch, self.steps, self.hidden, sigma, self.noise_generator or generator))

    def sketch(self, model: MotorRNN, V: Params, b: Batch, impl: str = "auto") -> Sketch:
        p = model.params()
        B = b.trials.batch
        tstep = model.tangent_step if impl in ("auto", "manual") else None
        return sketch_recurrent(
            model.step,
            p,
            V,
            model.initial_state(p, B),
            b.trials.inputs,
            b.trials.targets,
            b.trials.mask,
            self.mse,
            dstate0=model.initial_tangent(V, B),
            noise=b.noise,
            tangent_step=tstep,
        )

    def _loss_from(self, hand: torch.Tensor, b: Batch) -> torch.Tensor:
        w = b.trials.mask[..., None]
        return self.mse.scale / hand.shape[0] * (w * (hand - b.trials.targets) ** 2).sum()

    def loss(self, model: MotorRNN, b: Batch) -> torch.Tensor:
        out = model.rollout(dict(model.named_parameters()), b.trials.inputs, b.noise)
        return self._loss_from(out["hand"], b)

    def evaluate_task(self, model: MotorRNN, b: Batch) -> tuple[float, dict[str, float]]:
        """Loss and :func:`rnntk.sofo.tasks.reach.reach_summary` (medians in m over reachable targets)."""
        with torch.no_grad():
            hand = model.rollout(model.params(), b.trials.inputs, b.noise)["hand"]
            err = reach.reach_errors(hand, b.trials.extra["hold_masks"], b.trials.extra["hold_targets"])
            return float(self._loss_from(hand, b)), reach.reach_summary(err)

    metric_descriptions: ClassVar[dict[str, str]] = {
        "reach_error": "median over reachable validation targets of the hand's distance to its target at the end of the hold (m), all reaches",
        "reach_error_hold1": "median over reachable validation trials of the hand's distance to target 1 at the end of hold 1 (m)",
        "reach_error_hold1_mean": "median over reachable validation trials of the distance to target 1 averaged over hold 1 (m)",
        "reach_error_hold2": "median over reachable validation trials of the hand's distance to target 2 at the end of hold 2 (m)",
        "reach_error_hold2_mean": "median over reachable validation trials of the distance to target 2 averaged over hold 2 (m)",
        "reach_success": "fraction of reachable validation holds that end within 2 cm of the target",
    }

    def progress_metrics(self, task: dict[str, float]) -> dict[str, float]:
        out = {"val_reach_err_cm": 100 * task["reach_error"], "val_reach_success": task["reach_success"]}
        for r in (1, 2):
            if f"reach_error_hold{r}" in task:
                out[f"val_reach_err{r}_cm"] = 100 * task[f"reach_error_hold{r}"]
        return out

    def record(self, run: Any, model: MotorRNN, b: Batch, n_trials: int) -> dict[str, float]:
        k = min(n_trials, b.trials.batch)
        with torch.no_grad():
            full = model.rollout(model.params(), b.trials.inputs, b.noise)
        out = {key: v[:k] for key, v in full.items()}
        err = reach.reach_errors(full["hand"], b.trials.extra["hold_masks"], b.trials.extra["hold_targets"])
        for key in ("end", "mean"):
            run.result(
                f"reach_error_{key}_trials",
                err[key],
                units="m",
                dims="trial, reach",
                description=f"hand distance to target {'at the end of' if key == 'end' else 'averaged over'} each hold period, every validation trial",
            )
        run.result("reach_reachable_trials", err["reachable"], dims="trial, reach", description="target within reach (|p| <= 0.6 m)")
        dt = self.dt
        run.trace("activity", out["rates"], dt=dt, units="a.u.", description="rates r = eta * relu(z)")
        run.trace("hand", out["hand"][..., :2], dt=dt, dims=("trial", "time", "xy"), units="m", description="hand position after each step")
        run.trace("hand_vel", out["hand"][..., 2:], dt=dt, dims=("trial", "time", "xy"), units="m/s", description="hand velocity")
        run.trace("torque", out["torque"], dt=dt, dims=("trial", "time", "joint"), units="N*m", description="joint torques")
        run.trace("inputs", b.trials.inputs[:k], dt=dt, dims=("trial", "time", "channel"), description="network inputs")
        run.trace("targets", b.trials.targets[:k], dt=dt, dims=("trial", "time", "channel"), units="m, m/s", description="hand targets (x, y, vx, vy)")
        run.trace("weights", b.trials.mask[:k, :, None], dt=dt, dims=("trial", "time", "channel"), description="loss weight per step")
        cols = {c: v[:k] for c, v in b.trials.table.items()}
        for r in range(err["end"].shape[1]):
            cols[f"reach_error_end{r + 1}"] = err["end"][:k, r]
            cols[f"reach_error_mean{r + 1}"] = err["mean"][:k, r]
        run.trials(cols)
        unreach = [v for c, v in b.trials.table.items() if c.startswith("unreachable")]
        frac = float(torch.cat([u.float() for u in unreach]).mean()) if unreach else 0.0
        run.result("unreachable_frac", frac, description="fraction of validation targets beyond reach (|p| > 0.6 m)")
        return {"unreachable_frac": frac}


class KalmanProblem(Problem):
    """Adaptive Kalman filtering: :class:`KalmanRNN` estimates the latent x from observations y.
    Loss (1/T) Σ_t mean_b (x̂ − x)²; the optimal Kalman filter (≈ 0.49) is the bound."""

    name = "kalman"
    has_manual_tangents = True

    def __init__(self, *, hidden: int = 100, steps: int = 500) -> None:
        self.hidden, self.steps = hidden, steps
        self.mse = MSE(1.0 / steps)

    def describe(self) -> dict[str, Any]:
        return {"steps": self.steps, "loss": f"(1/T) sum_t mean_b (xhat - x)^2, T={self.steps}"}

    def make_model(self, generator: torch.Generator) -> KalmanRNN:
        return KalmanRNN(self.hidden, generator=generator)

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        tr = kalman.kalman_trials(batch, self.steps, generator=generator)
        first = torch.zeros(batch, self.steps, 1)
        first[:, 0] = 1.0
        u = torch.cat([tr.inputs, torch.ones(batch, self.steps, 1), first], -1)
        return Batch(TrialBatch(u, tr.targets, tr.mask, tr.table, None, tr.extra), None, {"raw": tr})

    def sketch(self, model: KalmanRNN, V: Params, b: Batch, impl: str = "auto") -> Sketch:
        p = model.params()
        tstep = model.tangent_step if impl in ("auto", "manual") else None
        return sketch_recurrent(
            model.step, p, V, model.initial_state(p, b.trials.batch), b.trials.inputs, b.trials.targets, b.trials.mask, self.mse, tangent_step=tstep
        )

    def loss(self, model: KalmanRNN, b: Batch) -> torch.Tensor:
        xhat, _ = model.rollout(dict(model.named_parameters()), b.trials.inputs)
        return self.mse.scale / xhat.shape[0] * ((xhat - b.trials.targets) ** 2).sum()

    metric_descriptions: ClassVar[dict[str, str]] = {
        "mse_over_kf": "validation MSE of the RNN's estimate / MSE of the optimal (context-aware) Kalman filter on the same trials (1 = the bound)",
    }

    def evaluate_task(self, model: KalmanRNN, b: Batch) -> tuple[float, dict[str, float]]:
        """The loss is the MSE of x̂ against the latent x; also MSE / optimal-KF MSE (cached on ``b``)."""
        if "kf_mse" not in b.extra:
            b.extra["kf_mse"] = kalman.kalman_filter_mse(b.extra["raw"], "optimal")
        v = self.evaluate(model, b)
        return v, {"mse_over_kf": v / b.extra["kf_mse"]}

    def progress_metrics(self, task: dict[str, float]) -> dict[str, float]:
        return {"val_mse_over_kf": task["mse_over_kf"]}

    def record(self, run: Any, model: KalmanRNN, b: Batch, n_trials: int) -> dict[str, float]:
        raw = b.extra["raw"]
        rng = run.np_rng("sofo-train/kalman-baseline", legacy_offset=0)  # legacy: README figures
        base = {
            "kf_mse": kalman.kalman_filter_mse(raw, "optimal"),
            "kf_random_mse": kalman.kalman_filter_mse(raw, "random_params", rng=rng),
            "obs_mse": kalman.kalman_filter_mse(raw, "observation"),
            "context_unknown_mse": kalman.kalman_filter_mse(raw, "context_unknown"),
        }
        for k, v in base.items():
            run.result(k, v, description="baseline on the validation batch")
        k = min(n_trials, b.trials.batch)
        with torch.no_grad():
            xhat, z = model.rollout(model.params(), b.trials.inputs[:k])
        kf = torch.from_numpy(kalman.kalman_filter_estimates(raw, "optimal")[:k]).float()
        dims = ("trial", "time", "channel")
        run.trace("activity", z, dt=1.0, units="a.u.", description="RNN state z (time in steps)")
        run.trace("x", b.trials.targets[:k], dt=1.0, dims=dims, description="latent state")
        run.trace("y", b.trials.inputs[:k, :, :1], dt=1.0, dims=dims, description="observation")
        run.trace("xhat", xhat, dt=1.0, dims=dims, description="RNN estimate")
        run.trace("kf_xhat", kf[..., None], dt=1.0, dims=dims, description="optimal Kalman filter estimate")
        run.trials({c: v[:k] for c, v in raw.table.items()})
        return base


class LorenzProblem(Problem):
    """Lorenz attractor: iterate the learned map 32 steps from a point on the attractor.

    ``supervise="final"`` (the paper's sparse supervision, upstream's OCaml example): only the
    final state is penalised, loss mean_b mean_d (y_32 − x_32)². ``supervise="all"`` (upstream's
    PyTorch/JAX ``lorenz.py``): every step, loss (1/32) Σ_t mean_b mean_d (y_t − x_t)², the same
    normalisation as upstream. ``target_noise`` σ > 0: training targets carry N(0, σ²) noise
    drawn once per stored point (upstream's PyTorch variant: σ = 0.0125); validation compares
    with the noise-free chunks."""

    name = "lorenz"
    has_manual_tangents = True

    def __init__(
        self, *, hidden: int = 400, n_chunks: int = 4000, chunk_len: int = 33, free_run: int = 2000, supervise: str = "final", target_noise: float = 0.0
    ) -> None:
        if supervise not in ("final", "all"):
            raise ValueError(f"supervise must be 'final' or 'all', got {supervise!r}")
        if not (target_noise >= 0 and math.isfinite(target_noise)):
            raise ValueError(f"bad --target-noise {target_noise}: must be finite and >= 0")
        self.hidden, self.n_chunks, self.chunk_len, self.free_run = hidden, n_chunks, chunk_len, free_run
        self.supervise, self.target_noise = supervise, float(target_noise)
        self.n_supervised = 1 if supervise == "final" else chunk_len - 1
        self.mse = MSE(1.0 / self.n_supervised, mean_dims=True)
        self.data: Optional[lorenz.LorenzData] = None

    def describe(self) -> dict[str, Any]:
        n = self.chunk_len - 1
        loss = f"mean_b mean_d (y_{n} - x_{n})^2 (final state only)" if self.supervise == "final" else f"(1/{n}) sum_t mean_b mean_d (y_t - x_t)^2, t = 1..{n}"
        return {"chunks": self.n_chunks, "chunk_len": self.chunk_len, "supervise": self.supervise, "target_noise": self.target_noise, "loss": loss}

    def prepare(self, generator: torch.Generator) -> None:
        self.data = lorenz.make_lorenz_data(self.n_chunks, self.chunk_len, generator=generator, dtype=torch.float32, target_noise=self.target_noise)

    def make_model(self, generator: torch.Generator) -> LorenzMap:
        return LorenzMap(self.hidden, generator=generator)

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        if self.data is None:
            raise RuntimeError("LorenzProblem.prepare(generator) must be called first")
        return Batch(lorenz.lorenz_trials(self.data, batch, generator=generator, supervise=self.supervise))  # type: ignore[arg-type]

    def sketch(self, model: LorenzMap, V: Params, b: Batch, impl: str = "auto") -> Sketch:
        p = model.params()
        tr = b.trials
        tstep = model.tangent_step if impl in ("auto", "manual") else None
        y0 = tr.inputs[:, 0].contiguous()
        return sketch_recurrent(model.step, p, V, y0, tr.inputs[:, 1:], tr.targets[:, 1:], tr.mask[:, 1:], self.mse, tangent_step=tstep)

    def loss(self, model: LorenzMap, b: Batch, targets: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The training loss (against ``targets``, default the batch's, noisy with --target-noise)."""
        tr = b.trials
        ys = model.rollout(dict(model.named_parameters()), tr.inputs[:, 0], tr.inputs.shape[1] - 1)
        w = tr.mask[..., None]
        tgt = tr.targets if targets is None else targets
        return (w * (ys - tgt) ** 2).sum() / (ys.shape[0] * ys.shape[-1] * self.n_supervised)

    def evaluate(self, model: LorenzMap, b: Batch) -> float:
        """The loss against the noise-free chunks."""
        with torch.no_grad():
            return float(self.loss(model, b, b.trials.extra.get("clean_targets")))

    def record(self, run: Any, model: LorenzMap, b: Batch, n_trials: int) -> dict[str, float]:
        assert self.data is not None, "prepare() first"
        truth = lorenz.lorenz_free_run_truth(self.data, self.free_run, generator=run.rng("sofo-train/lorenz-truth", legacy_offset=77)).float()
        with torch.no_grad():
            pred = model.rollout(model.params(), truth[None, 0].to(run.device), self.free_run)[0].cpu()
        dt = self.data.dt
        run.trace("free_run", pred[None], dt=dt, dims=("trial", "time", "coordinate"), description="learned map iterated from a held-out point (z-scored)")
        run.trace("truth", truth[None], dt=dt, dims=("trial", "time", "coordinate"), description="true Lorenz trajectory (z-scored)")
        run.trials({"chunk": b.trials.table["chunk"][:n_trials]})
        err30 = float(((pred[1:31] - truth[1:31]) ** 2).mean())
        var30 = float(((truth[1:31] - truth[1:31].mean(0)) ** 2).mean())
        out = {"free_run_mse30": err30, "free_run_r2_30": 1 - err30 / var30}
        for k, v in out.items():
            run.result(k, v, description="first 30 free-run steps vs truth")
        return out


class LinregProblem(Problem):
    """Ill-conditioned linear regression (100 → 3, input spectrum 1/(1+i²)); the validation
    loss is the exact population MSE, computed analytically."""

    name = "linreg"

    def __init__(self, *, n_in: int = 100, n_out: int = 3) -> None:
        self.n_in, self.n_out = n_in, n_out
        self.mse = MSE(1.0, mean_dims=True)
        self.teacher: Optional[torch.Tensor] = None

    def describe(self) -> dict[str, Any]:
        return {"n_in": self.n_in, "n_out": self.n_out, "loss": "mean over samples and outputs of (x W - y)^2"}

    def prepare(self, generator: torch.Generator) -> None:
        self.teacher = linreg.draw_teacher(self.n_in, self.n_out, generator=generator)

    def make_model(self, generator: torch.Generator) -> nn.Module:
        m = nn.Linear(self.n_in, self.n_out, bias=False)
        nn.init.zeros_(m.weight)
        m.hparams = lambda: {"in_features": self.n_in, "out_features": self.n_out, "bias": False}  # type: ignore[method-assign]
        return m

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        return Batch(linreg.ill_conditioned_regression(batch, self.n_in, self.n_out, generator=generator, teacher=self.teacher))

    def sketch(self, model: nn.Module, V: Params, b: Batch, impl: str = "auto") -> Sketch:
        x, y = b.trials.inputs[:, 0], b.trials.targets[:, 0]
        p = {k: v.detach() for k, v in model.named_parameters()}
        return sketch_feedforward(lambda q: x @ q["weight"].T, p, V, self.mse, y)

    def loss(self, model: nn.Module, b: Batch) -> torch.Tensor:
        return self.mse.value(model(b.trials.inputs[:, 0]), b.trials.targets[:, 0])

    def evaluate(self, model: nn.Module, b: Batch) -> float:
        w = cast(torch.Tensor, model.weight)  # an nn.Linear
        assert self.teacher is not None, "prepare() first"
        spec = linreg.linreg_spectrum(self.n_in).to(w)
        return float(linreg.population_mse(w.detach().T, self.teacher.to(w), spec))

    def record(self, run: Any, model: nn.Module, b: Batch, n_trials: int) -> dict[str, float]:
        run.result("teacher", self.teacher, description="true weights W* (n_in, n_out)")
        return {}


def make_problem(task: str, **kw: Any) -> Problem:
    """Build the problem for ``task`` (one of :data:`TASKS`, or ``neurogym:<EnvId>``)."""
    if task.startswith("neurogym:"):
        from rnntk.sofo.neurogym_problem import NeurogymProblem

        keep = ("hidden", "tau", "task_kwargs", "loss_on", "fixation_weight", "constraints")
        return NeurogymProblem(task, **{k: v for k, v in kw.items() if k in keep and v is not None})
    if task in ("double-reach", "single-reach"):
        return ReachProblem(task, **{k: v for k, v in kw.items() if k in ("hidden", "dt", "tau", "duration", "noise", "init_gain", "constraints")})
    if task == "kalman":
        return KalmanProblem(**{k: v for k, v in kw.items() if k in ("hidden", "steps")})
    if task == "lorenz":
        return LorenzProblem(**{k: v for k, v in kw.items() if k in ("hidden", "supervise", "target_noise") and v is not None})
    if task == "linreg":
        return LinregProblem()
    raise ValueError(f"unknown task {task!r}")


TASKS = ("double-reach", "single-reach", "kalman", "lorenz", "linreg")
