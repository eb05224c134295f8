"""Train a :class:`~rnntk.sofo.problems.Problem` with SOFO, Adam+BPTT, or both side by
side on identical data, on an engine :class:`~rnntk.engine.Run` (metrics, checkpoints,
resume, non-finite guard, traces, figures).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from typing import TYPE_CHECKING, Any

import torch

from rnntk.engine.device import device_generator
from rnntk.engine.seeding import derive_seed, stream_generator
from rnntk.sofo.config import TrainConfig
from rnntk.sofo.optimizer import SOFO
from rnntk.sofo.problems import Problem

if TYPE_CHECKING:
    from rnntk.engine.run import Run


class DataStreams:
    """The random streams of the training data, derived from the run seed alone: ``trials``
    (CPU generator, seed ``derive_seed(seed, "sofo-train/trials")``) and ``noise`` (on the run's
    device; the same generator on the CPU). Tangents come from the run's device generator, so two
    runs with the same seed see the same trials and noise whatever their optimizer, K or tangent
    kind. ``state_dict``/``load_state_dict`` make them part of the checkpoint (exact resume)."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.trials = stream_generator(seed, "sofo-train/trials")
        self.noise = device_generator(device, self.trials, derive_seed(seed, "sofo-train/noise"))

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {"trials": self.trials.get_state()}
        if self.noise is not self.trials:
            state["noise"] = self.noise.get_state()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.trials.set_state(state["trials"])
        if self.noise is not self.trials and "noise" in state:
            self.noise.set_state(state["noise"])


def make_problem_for(cfg: TrainConfig) -> Problem:
    """The :class:`Problem` ``sofo-train`` trains on for the options ``cfg`` (task, model sizes,
    task options, constraints); ``benchmarks/sofo_neurogym.py`` builds its problem with it too.
    ``ValueError`` (one line) for a bad task or option."""
    from rnntk.sofo.problems import make_problem

    return make_problem(
        cfg.task,
        hidden=cfg.hidden,
        dt=cfg.dt,
        tau=cfg.tau,
        duration=cfg.duration,
        noise=cfg.noise,
        init_gain=cfg.init_gain,
        steps=cfg.steps,
        supervise=cfg.supervise,
        target_noise=cfg.target_noise,
        task_kwargs=cfg.task_kwargs,
        loss_on=cfg.loss_on,
        fixation_weight=cfg.fixation_weight,
        constraints=cfg.constraint_kwargs() if cfg.constrained else None,
    )


def make_sofo(model: torch.nn.Module, cfg: TrainConfig, generator: torch.Generator) -> SOFO:
    """The SOFO optimiser ``sofo-train`` builds for ``model`` from its options (K, damping and its
    mode, lr, tangent kind, step cap as :class:`TrainConfig` resolved it); ``generator``: the
    tangents' stream. ``benchmarks/sofo_neurogym.py`` builds its SOFO arm with it too."""
    return SOFO(
        dict(model.named_parameters()),
        n_tangents=cfg.n_tangents,
        damping=cfg.damping,
        lr=cfg.lr,
        tangents=cfg.tangents,
        damping_mode=cfg.damping_mode.replace("-", "_"),
        max_step_norm=cfg.max_step_norm or 0.0,  # resolved by TrainConfig (auto cap with constraints)
        generator=generator,
    )


def train(problem: Problem, cfg: TrainConfig, run: Run) -> dict[str, float]:
    """Run the training loop on ``run`` and return the final metrics.

    Same init for both optimisers (a deep copy), the same training batch and noise each
    iteration, and a fixed validation batch with fixed noise (seeded from the run seed).
    """
    dev = run.device
    problem.prepare(run.generator)
    model = problem.make_model(run.generator).to(dev)
    P = sum(p.numel() for p in model.parameters())
    if cfg.n_tangents > P and cfg.optimizer != "adam":
        print(f"note: -K {cfg.n_tangents} > {P} parameters; using K = {P}", file=sys.stderr, flush=True)
    run.annotate(n_params=P, n_tangents_used=min(cfg.n_tangents, P))
    arms: dict[str, dict[str, Any]] = {}
    names = ["sofo", "adam"] if cfg.optimizer == "both" else [cfg.optimizer]
    for i, name in enumerate(names):
        m = model if i == 0 else copy.deepcopy(model)
        if name == "sofo":
            opt: Any = make_sofo(m, cfg, run.device_generator)
        else:
            opt = torch.optim.Adam(m.parameters(), lr=cfg.adam_lr, eps=cfg.adam_eps)
        arms[name] = {"model": m, "opt": opt}
    first = arms[names[0]]
    others = {}
    if len(names) == 2:
        others = {"adam_model": arms["adam"]["model"], "adam_opt": arms["adam"]["opt"]}
    streams = DataStreams(run.seed, dev)  # training trials and noise: never the tangents' generator
    run.track(first["model"], first["opt"], hparams=first["model"].hparams(), data_streams=streams, **others)

    val = problem.sample(cfg.eval_batch, run.rng("sofo-train/val", legacy_offset=10_007)).to(dev)  # legacy: README figures
    problem.noise_generator = streams.noise  # training noise drawn on the run's device, from the data streams
    prefix = (lambda n, k: f"{n}_{k}") if len(names) == 2 else (lambda n, k: k)
    impl = cfg.tangent_impl
    if impl == "auto" and not problem.has_manual_tangents:
        impl = "generic"
    if impl == "manual" and not problem.has_manual_tangents:
        raise ValueError(f"task {problem.name} has no hand-written tangents; use --tangent-impl generic")

    for step in run.steps(cfg.iters, desc=f"sofo-train {problem.name}", time_budget=cfg.time_budget):
        b = problem.sample(cfg.batch, streams.trials).to(dev)
        row: dict[str, float] = {}
        evals: dict[str, float] = {}  # logged first, so that the progress line shows them
        for name in names:
            arm = arms[name]
            t0 = time.perf_counter()
            if name == "sofo":
                info = arm["opt"].step(lambda V, m=arm["model"]: problem.sketch(m, V, b, impl))  # noqa: B023 - called at once, inside the loop
                row.update(
                    {
                        prefix(name, "loss"): info.loss,
                        prefix(name, "eig_max"): info.eig_max,
                        prefix(name, "eig_min"): info.eig_min,
                        prefix(name, "lam"): info.lam,
                        prefix(name, "step_norm"): info.step_norm,
                        prefix(name, "g_hat_norm"): info.g_hat_norm,
                        prefix(name, "pred_decrease"): info.pred_decrease,
                        prefix(name, "lr"): cfg.lr,
                    }
                )
            else:
                loss = problem.loss(arm["model"], b)
                arm["opt"].zero_grad()
                loss.backward()
                gn = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in arm["model"].parameters() if p.grad is not None))
                arm["opt"].step()
                row.update({prefix(name, "loss"): float(loss.detach()), prefix(name, "grad_norm"): gn, prefix(name, "lr"): cfg.adam_lr})
            row[prefix(name, "iter_s")] = time.perf_counter() - t0
            if step % cfg.eval_every == 0:
                v, task = problem.evaluate_task(arm["model"], val)
                evals[prefix(name, "val_loss")] = v
                evals.update({prefix(name, k): x for k, x in problem.progress_metrics(task).items()})
        run.log(step, **evals, **row)

    final: dict[str, float] = {}
    for name in names:
        v, task = problem.evaluate_task(arms[name]["model"], val)
        final[prefix(name, "val_loss_final")] = v
        run.result(prefix(name, "val_loss_final"), v)
        for k, x in task.items():  # task-level metrics on the fixed validation trials
            final[prefix(name, k)] = x
            run.result(prefix(name, k), x, description=problem.metric_descriptions.get(k, ""))
    final.update(problem.record(run, first["model"], val, cfg.save_traces))
    run.save_model(first["model"])
    if len(names) == 2:
        run.save_model(arms["adam"]["model"], name="adam_model")
    run.figures()  # rnntk/sofo/figures.py, from run.h5
    run.finish(**final)
    return final
