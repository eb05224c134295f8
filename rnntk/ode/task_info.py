"""``rnntk task show`` for ode-train's tasks (registered in :mod:`rnntk.core.task_registry` as
``ode-train:<task>``; the bare names spheres, sines, g1d, ou, rate-rnn are unique), drawn by the
task generators of :mod:`rnntk.ode.tasks` at ``rnntk ode-train``'s default options.

A neural ODE has no periods: a trial is the initial state (step 0) and the solution at the
output times the loss reads. The "steps" of the table are those output times: spheres and g1d
solve over t in [0, 1] and score the state at t = 1; sines observes the oscillator at its
output times (time unit: radians of phase); rate-rnn's times are seconds (its tau is in s);
ou's are the process's own time unit.
"""

from __future__ import annotations

import torch

from rnntk.core.task_registry import TaskSpec, register_task
from rnntk.core.trials import TrialBatch
from rnntk.ode import tasks as T
from rnntk.ode.config import ODEConfig

COMMAND = "ode-train"


def _on_grid(x0: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, table: dict[str, torch.Tensor], dt: float | None) -> TrialBatch:
    """A trial over the output times: the initial state ``x0 (B, d)`` as the input at step 0 (zero
    after), ``targets``/``mask`` ``(B, K, ...)`` at the K output times; periods ``initial``
    (step 0) and ``solve`` (the scored output times)."""
    B, K = targets.shape[:2]
    inputs = torch.zeros(B, K, x0.shape[-1], dtype=x0.dtype)
    inputs[:, 0] = x0
    scored = mask.reshape(B, K, -1).amax(-1) > 0
    first = scored.float().argmax(1)
    z = torch.zeros(B, dtype=torch.long)
    cols = {"trial_len": torch.full((B,), K), "period_initial_start": z, "period_initial_end": z + 1, "period_solve_start": first, "period_solve_end": z + K}
    return TrialBatch(inputs, targets, mask, {**table, **cols}, dt=dt)


def spheres_trials(n: int, g: torch.Generator) -> TrialBatch:
    """Nested spheres: the 2-D point at t = 0, its class scored at t = 1 (grid [0, 1])."""
    tb = T.nested_spheres((n + 1) // 2, generator=g)
    x0, lab = tb.inputs[:n, 0], tb.table["label"][:n]
    K = 2  # ODEProblem's output times [0, 1]
    targets = lab[:, None].expand(-1, K).clone()
    mask = torch.zeros(len(lab), K)
    mask[:, -1] = 1.0
    return _on_grid(x0, targets, mask, {"label": lab}, None)


def g1d_trials(n: int, g: torch.Generator) -> TrialBatch:
    """g1d: x at t = 0, the target y = -x scored at t = 1 (grid [0, 1])."""
    tb = T.g1d(n, generator=g)
    x0 = tb.inputs[:, 0]
    targets = torch.cat([torch.zeros_like(tb.targets), tb.targets], 1)  # (n, 2, 1): nothing at t = 0
    mask = torch.cat([torch.zeros_like(tb.mask), tb.mask], 1)
    return _on_grid(x0, targets, mask, {"x": x0[:, 0]}, None)


def sines_trials(cfg: ODEConfig, n: int, g: torch.Generator) -> TrialBatch:
    """sines: [x0, v0] at t = 0, x(t) scored at every output time (``cfg.ntimes``, regular or irregular)."""
    tb = T.sines(n, cfg.ntimes, irregular=cfg.times == "irregular", generator=g)
    return _on_grid(tb.inputs[:, 0], tb.targets, tb.mask, dict(tb.table), None)


def rate_rnn_trials(cfg: ODEConfig, n: int, g: torch.Generator) -> TrialBatch:
    """rate-rnn: x0 of the teacher RNN at t = 0, its trajectory scored at ``cfg.ntimes`` times in [0, 1] s
    (a step of the table = an output time; the spacing is in the spec's notes)."""
    tb = T.leaky_rnn_trajectories(n, cfg.n_units, T.rate_rnn_times(cfg.ntimes), tau=cfg.tau, generator=g)
    return _on_grid(tb.inputs[:, 0], tb.targets, tb.mask, {}, None)


def ou_trials(cfg: ODEConfig, n: int, g: torch.Generator, n_paths: int = 8) -> TrialBatch:
    """ou: y0 ~ U(-3, 3) at t = 0 and ``n_paths`` sample paths at ``cfg.ntimes`` times in [0, 10];
    the loss compares the paths' mean and variance at every t > 0 (ODEProblem's KL)."""
    y0 = T.ou_initial(n, generator=g)
    paths = T.ou_paths(y0, n_paths, T.ou_times(cfg.ntimes), generator=g, dtype=torch.float32)  # (n, P, K)
    targets = paths.transpose(1, 2).contiguous()  # (n, K, P)
    mask = torch.ones(n, cfg.ntimes)
    mask[:, 0] = 0.0
    return _on_grid(y0[:, None], targets, mask, {"y0": y0}, None)


def _spec(task: str) -> TaskSpec:
    cfg = ODEConfig(task=task)
    base = f"ode-train --task {task}"
    if task == "spheres":
        return TaskSpec(
            task,
            spheres_trials,
            None,
            ["x (t = 0)", "y (t = 0)"],
            ["inner (r < 0.4)", "outer (0.7 < r < 0.9)"],
            description=f"{base}: 2-D points of two nested classes, state augmented by {T.SPHERES_AUG_DIMS} zeros",
            labels=True,
            notes=["continuous time t in [0, 1] (dimensionless), no physical step: step 0 = t 0, step 1 = t 1; the class is scored at t = 1 only"],
        )
    if task == "g1d":
        return TaskSpec(
            task,
            g1d_trials,
            None,
            ["x (t = 0)"],
            ["y = -x"],
            description=f"{base}: the map [-1, 1] -> [1, -1], state augmented by {T.G1D_AUG_DIMS} zeros",
            notes=["continuous time t in [0, 1] (dimensionless): step 0 = t 0, step 1 = t 1; squared error at t = 1 only"],
        )
    if task == "sines":
        probe = T.sines(1, cfg.ntimes, irregular=cfg.times == "irregular", generator=torch.Generator().manual_seed(0))
        spacing = f"{probe.dt:.4g} rad apart" if probe.dt is not None else "irregular, per series"
        return TaskSpec(
            task,
            lambda n, g: sines_trials(cfg, n, g),
            None,
            ["x0 (t = 0)", "v0 (t = 0)"],
            ["x(t)"],
            description=f"{base}: harmonic oscillator x'' = -x observed at {cfg.ntimes} {cfg.times} times in [0, 2 pi] (--ntimes, --times)",
            notes=[f"continuous time in radians of phase, a step = an output time ({spacing}); squared error at every output time"],
        )
    if task == "rate-rnn":
        times = T.rate_rnn_times(cfg.ntimes)
        return TaskSpec(
            task,
            lambda n, g: rate_rnn_trials(cfg, min(n, T.RATE_RNN_TRAIN), g),
            None,
            [f"x0 unit {i}" for i in range(cfg.n_units)],
            [f"x unit {i}" for i in range(cfg.n_units)],
            description=f"{base}: trajectories of a chaotic leaky rate RNN ({cfg.n_units} units, tau {cfg.tau:g} s; --n-units, --tau), T = 1 s",
            notes=[
                f"continuous time in s, a step = an output time: {cfg.ntimes} times over 1 s, {float(times[1] - times[0]) * 1000:.4g} ms = {float(times[1] - times[0]):.4g} s apart (--ntimes); the solver steps adaptively in between",
                "squared error on every unit at every output time",
                f"at most {T.RATE_RNN_TRAIN} trajectories sampled (ode-train's training set; each is a tight dopri5 solve)",
            ],
        )
    return TaskSpec(
        task,
        lambda n, g: ou_trials(cfg, n, g),
        None,
        ["y0 (t = 0)"],
        [f"path {i}" for i in range(8)],
        description=f"{base}: time-dependent Ornstein-Uhlenbeck SDE, {cfg.ntimes} output times in [0, 10] (8 of the {cfg.n_paths} training paths per y0 shown)",
        notes=["continuous time in the process's own unit (t in [0, 10]); loss: KL between the Gaussian moments of model and data paths at every t > 0"],
    )


for _t in ("spheres", "sines", "g1d", "rate-rnn", "ou"):
    register_task(_t, lambda t=_t: _spec(t), command=COMMAND)
