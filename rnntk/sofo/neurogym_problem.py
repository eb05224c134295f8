"""``sofo-train --task neurogym:<EnvId>``: a leaky rate RNN (:class:`rnntk.core.leaky_rnn.LeakyRNN`)
on a neurogym task, trained with SOFO (exact categorical Gauss–Newton: :class:`CrossEntropy`) or
Adam+BPTT on the same masked cross-entropy.

The trials come from :class:`rnntk.core.neurogym.NeurogymTask` (one ``env.new_trial()`` per batch
row, padded, loss mask on the decision period by default). The network's time step is the task's
``dt`` (s); its time constant is ``max(--tau, dt)`` (an Euler step longer than τ is unstable).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Optional

import torch

from rnntk.core import neurogym as ngt
from rnntk.core.constrained_rnn import ConstrainedRNN
from rnntk.core.leaky_rnn import ACTIVATIONS, LeakyRNN
from rnntk.sofo.constrained import sketch_constrained
from rnntk.sofo.optimizer import CrossEntropy, Params, Sketch, sketch_recurrent
from rnntk.sofo.problems import Batch, Problem


class NeurogymProblem(Problem):
    """A neurogym task for SOFO / Adam (see the module doc). ``task``: ``neurogym:<EnvId>``;
    ``task_kwargs``: ``neurogym.make`` arguments (ms); ``loss_on``/``fixation_weight``: the mask."""

    has_manual_tangents = False

    def __init__(
        self,
        task: str,
        *,
        hidden: int = 64,
        tau: float = 0.1,
        task_kwargs: Optional[dict[str, Any] | str] = None,
        loss_on: str = "decision",
        fixation_weight: float = 1.0,
        activation: str = "tanh",
        g: float = 0.9,
        constraints: Optional[dict[str, Any]] = None,
    ) -> None:
        self.task = ngt.NeurogymTask(task, ngt.parse_kwargs(task_kwargs), loss_on=loss_on, fixation_weight=fixation_weight)
        self.name = self.task.name
        self.hidden, self.activation, self.g = int(hidden), activation, float(g)
        self.dt = self.task.dt
        self.tau = max(float(tau), self.dt)
        self.ce = CrossEntropy(1.0)
        # --dale-ratio/--connectivity/--no-autapses/--rec-noise/--input-noise: a ConstrainedRNN
        # (softplus rates, non-negative, so that Dale's signs mean excitation and inhibition)
        self.constraints = dict(constraints) if constraints else None
        if self.constraints:
            self.activation = "softplus"
            self.has_manual_tangents = True

    def describe(self) -> dict[str, Any]:
        return {**self.task.describe(), "hidden": self.hidden, "tau_s": self.tau, "model": "ConstrainedRNN" if self.constraints else "LeakyRNN"}

    def make_model(self, generator: torch.Generator) -> LeakyRNN | ConstrainedRNN:
        if self.constraints:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))  # the connectivity draw
            kw = dict(dt=self.dt, tau=self.tau, g=self.g, activation=self.activation, generator=generator, seed=seed)
            return ConstrainedRNN(self.task.n_in, self.hidden, self.task.n_out, **kw, **self.constraints)
        m = LeakyRNN(self.task.n_in, self.hidden, self.task.n_out, dt=self.dt, tau=self.tau, g=self.g, activation=self.activation)
        n, k = self.hidden, self.task.n_in
        with torch.no_grad():  # LeakyRNN draws from the global stream; redraw from the run's generator
            m.W.copy_(torch.randn(n, n, generator=generator) * self.g / math.sqrt(n))
            m.U.copy_(torch.randn(n, k, generator=generator) / math.sqrt(k))
            m.C.copy_(torch.randn(self.task.n_out, n, generator=generator) / math.sqrt(n))
        return m

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        tr = self.task.sample(batch, generator)
        c = self.constraints or {}
        if c.get("rec_noise") or c.get("input_noise"):  # standard normals (B, T, n + n_in), shared by all tangents
            g = self.noise_generator or generator
            return Batch(tr, torch.randn(batch, tr.steps, self.hidden + self.task.n_in, generator=g, device=g.device))
        return Batch(tr)

    def step(self, p: Params, x: torch.Tensor, u: torch.Tensor, noise: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One Euler step of :class:`LeakyRNN` as a function of its parameters: ``x (B, N)``,
        ``u (B, n_in)`` -> the next state and the logits ``C φ(x') + d (B, C)``."""
        phi = ACTIVATIONS[self.activation]
        a = self.dt / self.tau
        x1 = x + a * (-x + phi(x) @ p["W"].T + u @ p["U"].T + p["b"])
        return x1, phi(x1) @ p["C"].T + p["d"]

    def sketch(self, model: LeakyRNN | ConstrainedRNN, V: Params, b: Batch, impl: str = "auto") -> Sketch:
        if isinstance(model, ConstrainedRNN):
            return sketch_constrained(model, V, b.trials, self.ce, b.noise, impl)
        p = {k: v.detach() for k, v in model.named_parameters()}
        x0 = model.initial_state(b.trials.batch).to(b.trials.inputs.dtype)
        return sketch_recurrent(self.step, p, V, x0, b.trials.inputs, b.trials.targets, b.trials.mask, self.ce)

    def logits(self, model: LeakyRNN | ConstrainedRNN, b: Batch) -> torch.Tensor:
        """``(B, T, C)`` logits of the whole batch (differentiable)."""
        return self._forward(model, b)[0]

    @staticmethod
    def _forward(model: LeakyRNN | ConstrainedRNN, b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(model, ConstrainedRNN):
            return model(b.trials.inputs, b.noise)
        return model(b.trials.inputs)

    def loss(self, model: LeakyRNN, b: Batch) -> torch.Tensor:
        return ngt.masked_cross_entropy(self.logits(model, b), b.trials)

    metric_descriptions: ClassVar[dict[str, str]] = {
        "decision_accuracy": "fraction of validation trials whose choice (argmax of the output at the last decision step) equals neurogym's ground truth",
    }

    def evaluate_task(self, model: LeakyRNN, b: Batch) -> tuple[float, dict[str, float]]:
        with torch.no_grad():
            z = self.logits(model, b)
            return float(ngt.masked_cross_entropy(z, b.trials)), {"decision_accuracy": ngt.decision_accuracy(z, b.trials)}

    def progress_metrics(self, task: dict[str, float]) -> dict[str, float]:
        return {"val_decision_acc": task["decision_accuracy"]}

    def record(self, run: Any, model: LeakyRNN, b: Batch, n_trials: int) -> dict[str, float]:
        with torch.no_grad():
            z, r = self._forward(model, b)
        ngt.record_decisions(run, z, b.trials, n_trials=n_trials)
        k = min(n_trials, b.trials.batch)
        dt, dims = self.dt, ("trial", "time", "channel")
        run.trace("activity", r[:k], dt=dt, units="a.u.", description="rates phi(x)")
        run.trace("inputs", b.trials.inputs[:k], dt=dt, dims=dims, description="neurogym observations: " + ", ".join(self.task.input_names()))
        run.trace("logits", z[:k], dt=dt, dims=dims, description="output logits: " + ", ".join(self.task.output_names()))
        run.trace("targets", b.trials.targets[:k, :, None], dt=dt, dims=dims, description="neurogym ground truth (class label)")
        run.trace("weights", b.trials.mask[:k, :, None], dt=dt, dims=dims, description="loss weight per step")
        return {}
