"""Neural-ODE training on the engine with a choice of gradient: ``gq`` (Gauss–Legendre
quadrature adjoint), ``adjoint`` / ``seminorm`` (torchdiffeq's adjoint), ``direct`` (backprop
through the solver), ``sde-direct`` / ``sde-adjoint`` (torchsde, ou); each is a strategy object
of :mod:`rnntk.ode.gradients`, made from its name when the problem is built. Tasks (spec §3):
nested spheres, sines (second-order ODE), g1d, and a leaky continuous-time rate RNN fitted to
trajectories.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any, Optional, cast

import torch
from torch import nn
from torchdiffeq import odeint

from rnntk.engine.errors import NonFiniteError
from rnntk.ode.config import ODEConfig
from rnntk.ode.gradients import GRADIENTS, Direct, Gradient, SDEDirect, make_gradient

if TYPE_CHECKING:
    from rnntk.engine.run import Run

ADJOINTS = (*GRADIENTS, "auto")

# --adjoint auto (issue 7; measured by benchmarks/gq_ratio.py, see the README): GQ pays one
# backward restart per output interval and gains over direct backprop only when the parameters
# dominate the cost of f, i.e. many parameters per state number.
AUTO_MAX_INTERVALS = 4
AUTO_MIN_PARAMS_PER_STATE = 100


def auto_adjoint(n_intervals: int, n_params: int, state_numel: int) -> str:
    """The gradient ``--adjoint auto`` picks from the problem's shape: ``"gq"`` when there are at
    most AUTO_MAX_INTERVALS output intervals and at least AUTO_MIN_PARAMS_PER_STATE parameters
    per state number (one batch), else ``"direct"``. torchdiffeq's adjoint is never picked: it
    was slower than GQ in every setting measured."""
    if n_intervals <= AUTO_MAX_INTERVALS and n_params >= AUTO_MIN_PARAMS_PER_STATE * state_numel:
        return "gq"
    return "direct"


TASKS = ("spheres", "sines", "g1d", "rate-rnn", "ou")


class MLPField(nn.Module):
    """[x, t] → width → width → dim with Softplus (``mlp_t``; without t for g1d)."""

    def __init__(self, dim: int, width: int, with_t: bool = True) -> None:
        super().__init__()
        self.with_t = with_t
        self.net = nn.Sequential(nn.Linear(dim + int(with_t), width), nn.Softplus(), nn.Linear(width, width), nn.Softplus(), nn.Linear(width, dim))

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.with_t:
            x = torch.cat([x, t.expand(*x.shape[:-1], 1).to(x)], -1)
        return self.net(x)


class SecondOrderField(nn.Module):
    """SONODE: state [x, v], d/dt [x, v] = [v, a(x, v)] with an MLP acceleration."""

    def __init__(self, dim: int, width: int) -> None:
        super().__init__()
        self.dim = dim
        self.acc = nn.Sequential(nn.Linear(2 * dim, width), nn.Softplus(), nn.Linear(width, width), nn.Softplus(), nn.Linear(width, dim))

    def forward(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return torch.cat([s[..., self.dim :], self.acc(s)], -1)


class RateRNNField(nn.Module):
    """Leaky rate RNN τ dx/dt = −x + W tanh(x) + b (τ in seconds, fixed)."""

    def __init__(self, n: int, tau: float, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.tau = float(tau)
        self.W = nn.Parameter(torch.randn(n, n, generator=generator) / math.sqrt(n))
        self.b = nn.Parameter(torch.zeros(n))

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (-x + torch.tanh(x) @ self.W.T + self.b) / self.tau


def _count(v: Optional[int]) -> float:
    return float("nan") if v is None else float(v)


class ODEProblem:
    """Data, model and loss of one task (see module doc), and the gradient strategy of its
    solves (``gradient``: given, or made from ``cfg.adjoint``; ``auto`` picks by
    :func:`auto_adjoint` from :meth:`auto_shape`)."""

    train: tuple[torch.Tensor, ...]  # (inputs, targets[, times]) of the task
    test: tuple[torch.Tensor, ...]

    def __init__(self, cfg: ODEConfig, generator: torch.Generator, gradient: Optional[Gradient] = None) -> None:
        from rnntk.ode import tasks as ode_tasks

        self.cfg = cfg
        g = generator
        if cfg.task == "spheres":
            tr = ode_tasks.nested_spheres(cfg.n_train // 2, generator=g)
            te = ode_tasks.nested_spheres(max(cfg.n_test // 2, 1), generator=g)
            self.train = (self._aug(tr.inputs[:, 0]), tr.targets[:, 0, 0].long())
            self.test = (self._aug(te.inputs[:, 0]), te.targets[:, 0, 0].long())
            self.t = torch.tensor([0.0, 1.0])
            self.field: nn.Module = MLPField(5, cfg.width, with_t=True)
            self.readout: Optional[nn.Module] = nn.Linear(5, 2)
        elif cfg.task == "g1d":
            tr = ode_tasks.g1d(cfg.n_train, generator=g)
            te = ode_tasks.g1d(cfg.n_test, generator=g)
            self.train = (self._aug(tr.inputs[:, 0], 3), tr.targets[:, 0])
            self.test = (self._aug(te.inputs[:, 0], 3), te.targets[:, 0])
            self.t = torch.tensor([0.0, 1.0])
            self.field = MLPField(4, cfg.width, with_t=False)
            self.readout = None
        elif cfg.task == "sines":
            tr = ode_tasks.sines(15, cfg.ntimes, irregular=cfg.irregular, generator=g)
            te = ode_tasks.sines(5, cfg.ntimes, irregular=cfg.irregular, generator=g)
            self.train, self.test = (tr.inputs[:, 0], tr.targets, tr.extra["times"]), (te.inputs[:, 0], te.targets, te.extra["times"])
            self.field = SecondOrderField(1, cfg.width)
            self.readout = None
        elif cfg.task == "ou":
            from rnntk.ode.wong_zakai import KLNoise, WongZakaiSDE

            self.t = ode_tasks.ou_times(cfg.ntimes)
            y_tr = ode_tasks.ou_initial(40, generator=g)
            y_te = ode_tasks.ou_initial(10, generator=g)
            P = cfg.n_paths
            self.train = (y_tr, ode_tasks.ou_paths(y_tr, P, self.t, generator=g, dtype=torch.float32))
            self.test = (y_te, ode_tasks.ou_paths(y_te, P, self.t, generator=g, dtype=torch.float32))
            self.sde = WongZakaiSDE(
                MLPField(1, cfg.width), MLPField(1, cfg.width), KLNoise(cfg.n_cos, 0.0, 10.0, generator=int(torch.randint(0, 2**31, (1,), generator=g)))
            )
            self.field = self.sde
            self.readout = None
            self._bm_seed = int(torch.randint(0, 2**31, (1,), generator=g))
        elif cfg.task == "rate-rnn":
            times = ode_tasks.rate_rnn_times(cfg.ntimes)
            tr = ode_tasks.leaky_rnn_trajectories(ode_tasks.RATE_RNN_TRAIN, cfg.n_units, times, tau=cfg.tau, generator=g)
            te = ode_tasks.leaky_rnn_trajectories(8, cfg.n_units, times, tau=cfg.tau, generator=g)
            self.train, self.test = (tr.inputs[:, 0], tr.targets), (te.inputs[:, 0], te.targets)
            self.t = times
            self.field = RateRNNField(cfg.n_units, cfg.tau, generator=g)
            self.readout = None
        else:
            raise ValueError(f"unknown task {cfg.task!r}")
        if gradient is None:
            gradient = make_gradient(auto_adjoint(*self.auto_shape()) if cfg.adjoint == "auto" else cfg.adjoint)
        self.gradient = gradient

    def auto_shape(self) -> tuple[int, int, int]:
        """(output intervals K, parameters P of the field, state numbers S) of the first
        training batch's solve: what ``--adjoint auto`` decides on."""
        K, S = self.shape(self.batches(torch.Generator().manual_seed(0))[0])
        return K, sum(p.numel() for p in self.field.parameters()), S

    @staticmethod
    def _aug(x: torch.Tensor, extra: int = 3) -> torch.Tensor:
        return torch.cat([x, torch.zeros(x.shape[0], extra, dtype=x.dtype)], -1)

    def modules(self) -> nn.ModuleDict:
        m = nn.ModuleDict({"field": self.field})
        if self.readout is not None:
            m["readout"] = self.readout
        return m

    def shape(self, batch: tuple) -> tuple[int, int]:
        """(output intervals K, state numbers S) of one training batch's solve."""
        task = self.cfg.task
        if task == "sines":
            return len(torch.unique(batch[2])) - 1, batch[0].shape[0] * 2
        if task == "ou":
            return len(self.t) - 1, batch[0].shape[0] * self.cfg.n_paths
        return len(self.t) - 1, batch[0].numel()

    def batches(self, generator: torch.Generator) -> list[tuple]:
        if self.cfg.task in ("sines", "rate-rnn", "ou"):
            return [self.train]  # full batch
        n = self.train[0].shape[0]
        perm = torch.randperm(n, generator=generator)
        return [tuple(a[perm[i : i + self.cfg.batch]] for a in self.train) for i in range(0, n, self.cfg.batch)]

    def loss(self, batch: tuple, dev: torch.device, gradient: Optional[Gradient] = None) -> tuple[torch.Tensor, Any, Optional[float]]:
        """Loss of one batch (with graph), solver stats, and the task metric (or None), with the
        problem's gradient strategy or ``gradient``."""
        cfg = self.cfg
        grad = self.gradient if gradient is None else gradient
        if cfg.task in ("spheres", "g1d"):
            x0, y = (b.to(dev) for b in batch)
            sol, st = grad.solve(cfg, self.field, x0, self.t.to(dev))
            xT = sol[-1]
            if cfg.task == "spheres":
                assert self.readout is not None  # set for spheres
                logits = self.readout(xT)
                return nn.functional.cross_entropy(logits, y), st, float((logits.argmax(-1) == y).float().mean())
            return ((xT[:, :1] - y) ** 2).mean(), st, None
        if cfg.task == "sines":
            s0, x, times = (b.to(dev) for b in batch)
            grid, inv = torch.unique(times, sorted=True, return_inverse=True)  # union of all series' times
            s0 = torch.cat([s0, torch.zeros_like(s0)], -1)[:, :2] if s0.shape[-1] == 1 else s0
            sol, st = grad.solve(cfg, self.field, s0, grid)  # (len(grid), B, 2)
            pred = sol[:, :, 0].T.gather(1, inv)  # (B, T)
            return ((pred - x[..., 0]) ** 2).mean(), st, None
        if cfg.task == "ou":
            return self._ou_loss(batch, dev, grad)
        x0, xs = (b.to(dev) for b in batch)
        sol, st = grad.solve(cfg, self.field, x0, self.t.to(dev))
        return ((sol.transpose(0, 1) - xs) ** 2).mean(), st, None

    def _ou_paths(self, y0: torch.Tensor, dev: torch.device, gradient: Optional[Gradient] = None) -> tuple[torch.Tensor, Any]:
        """Model paths (n_init, n_paths, T) from initial values y0 (n_init,) by the gradient
        strategy (default: the problem's): the Wong–Zakai ODE with fresh KL noise, or torchsde
        Stratonovich (the sde-* baselines; :class:`SDEDirect` for evaluation)."""
        P = self.cfg.n_paths
        x0 = y0.to(dev).repeat_interleave(P)[:, None]  # (n_init·P, 1)
        t = self.t.to(dev)
        grad = self.gradient if gradient is None else gradient
        sol, stats = grad.sample_paths(self.cfg, self.sde, x0, t, self._next_bm_seed)
        return sol[..., 0].T.reshape(len(y0), P, len(t)), stats

    def _next_bm_seed(self) -> int:
        """A new Brownian seed for torchsde (the OU task's stream, one step per solve)."""
        self._bm_seed += 1
        return self._bm_seed

    @staticmethod
    def _moments(paths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return paths.mean(1), paths.var(1).clamp_min(1e-6)

    def _ou_loss(self, batch: tuple, dev: torch.device, gradient: Optional[Gradient] = None) -> tuple[torch.Tensor, Any, Optional[float]]:
        """Mean over initial values and times t > 0 of KL(N(model moments) ‖ N(data moments))."""
        y0, data = batch
        pred, st = self._ou_paths(y0, dev, gradient)
        mp, vp = self._moments(pred[..., 1:])
        md, vd = self._moments(data.to(dev)[..., 1:])
        kl = 0.5 * (torch.log(vd / vp) + (vp + (mp - md) ** 2) / vd - 1.0)
        return kl.mean(), st, None

    def ou_evaluate(self, dev: torch.device) -> tuple[float, float]:
        """Test KL and Gaussian log-likelihood of the data, with the model run by torchsde."""
        with torch.no_grad():
            y0, data = self.test
            pred, _ = self._ou_paths(y0, dev, SDEDirect())
            mp, vp = self._moments(pred[..., 1:])
            d = data.to(dev)[..., 1:]
            md, vd = self._moments(d)
            kl = 0.5 * (torch.log(vd / vp) + (vp + (mp - md) ** 2) / vd - 1.0)
            ll = -0.5 * (torch.log(2 * math.pi * vp[:, None]) + (d - mp[:, None]) ** 2 / vp[:, None])
        return float(kl.mean()), float(ll.mean())

    def evaluate(self, dev: torch.device) -> tuple[float, float]:
        if self.cfg.task == "ou":
            return self.ou_evaluate(dev)
        with torch.no_grad():
            loss, _, metric = self.loss(self.test, dev, Direct())
        return float(loss), float(metric) if metric is not None else float(loss)


def train_ode(cfg: ODEConfig, run: Run) -> dict[str, float]:
    """Train on ``run``; records loss, validation metric, epoch time, NFE and GQ nodes."""
    dev = run.device
    prob = ODEProblem(cfg, run.generator)
    model = prob.modules().to(dev)
    if getattr(prob, "sde", None) is not None:  # the Wong–Zakai noise ξ drawn on the run's device (the same stream on CPU)
        prob.sde.noise.generator = torch.Generator(device=dev).manual_seed(prob.sde.noise.seed)
    if cfg.adjoint == "auto":  # ODEProblem picked the strategy by auto_adjoint: record which
        K, P, S = prob.auto_shape()
        cfg.adjoint = prob.gradient.name
        run.annotate(adjoint=cfg.adjoint, adjoint_requested="auto")
        print(f"note: --adjoint auto: {K} output intervals, {P:,} parameters, {S:,} state numbers -> {cfg.adjoint}", file=sys.stderr, flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    run.track(model, opt, hparams={"task": cfg.task, "width": cfg.width, "n_units": cfg.n_units, "tau": cfg.tau})
    train_time = run.state.setdefault("train_seconds", 0.0)
    for epoch in run.steps(cfg.epochs, desc=f"ode-train {cfg.task} ({cfg.adjoint})"):
        t0 = time.perf_counter()
        losses, nfe_f, nfe_b, nodes = [], [], [], []
        for batch in prob.batches(run.generator):
            try:
                loss, st, _ = prob.loss(batch, dev)
                if not bool(torch.isfinite(loss)):
                    raise NonFiniteError(epoch, "loss", float(loss.detach()), "the solve diverged; parameters not updated")
                opt.zero_grad()
                loss.backward()
            except AssertionError as e:  # torchdiffeq: "underflow in dt", "max_num_steps exceeded"
                raise NonFiniteError(epoch, "solve", float("nan"), f"the ODE solver failed to converge ({e})") from None
            if not all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None):
                raise NonFiniteError(epoch, "gradient", float("nan"), "parameters not updated")
            opt.step()
            losses.append(float(loss.detach()))
            nfe_f.append(_count(st.nfe_forward))
            nfe_b.append(_count(st.nfe_backward))
            if st.nodes_per_interval:
                nodes.append(sum(st.nodes_per_interval) / len(st.nodes_per_interval))
        dt = time.perf_counter() - t0
        train_time += dt
        run.state["train_seconds"] = train_time
        val_loss, val_metric = prob.evaluate(dev)
        row = dict(loss=sum(losses) / len(losses), val_loss=val_loss, val_metric=val_metric, epoch_time=dt)
        for key, vals in (("nfe_f", nfe_f), ("nfe_b", nfe_b)):
            if all(math.isfinite(v) for v in vals):  # torchsde baselines report no NFE: omit, never NaN
                row[key] = sum(vals) / len(vals)
        if nodes:
            row["gq_nodes"] = sum(nodes) / len(nodes)
        run.log(epoch, **row)
    val_loss, val_metric = prob.evaluate(dev)
    _record(prob, run, dev)
    run.save_model(model)
    out = {"val_loss_final": val_loss, "val_metric_final": val_metric, "train_seconds": train_time}
    for k, v in out.items():
        run.result(k, v)
    run.finish(**out)
    return out


def _record(prob: ODEProblem, run: Run, dev: torch.device) -> None:
    """Predicted trajectories on the test set (dense grid) to /traces/trajectory and a PNG
    (rnntk/ode/figures.py, from run.h5)."""
    cfg = prob.cfg
    if cfg.task == "ou":
        with torch.no_grad():
            y0, data = prob.test
            pred, _ = prob._ou_paths(y0, dev, SDEDirect())
        dt = float(prob.t[1] - prob.t[0])
        run.trace(
            "trajectory",
            pred.cpu().transpose(1, 2),
            dt=dt,
            dims=("trial", "time", "path"),
            description="model paths by torchsde (Stratonovich) per test initial value",
        )
        run.trace("truth", data.transpose(1, 2), dt=dt, dims=("trial", "time", "path"), description="OU data paths")
        mp, vp = prob._moments(pred.cpu())
        md, vd = prob._moments(data)
        for k, v in (("model_mean", mp), ("model_var", vp), ("data_mean", md), ("data_var", vd)):
            run.result(k, v, dims='["initial value", "time"]')
        run.figures()
        return
    with torch.no_grad():
        if cfg.task == "sines":
            s0, x, times = prob.test
            grid = torch.linspace(0, float(times.max()), 100)
            traj = cast(torch.Tensor, odeint(prob.field, s0.to(dev), grid.to(dev), rtol=cfg.rtol, atol=cfg.atol)).transpose(0, 1).cpu()
            truth = s0[:, None, 1:2] * torch.sin(grid)[None, :, None] + s0[:, None, 0:1] * torch.cos(grid)[None, :, None]
        elif cfg.task == "rate-rnn":
            x0, xs = prob.test
            grid = prob.t
            traj = cast(torch.Tensor, odeint(prob.field, x0.to(dev), grid.to(dev), rtol=cfg.rtol, atol=cfg.atol)).transpose(0, 1).cpu()
            truth = xs
        else:
            x0 = prob.test[0][:16]
            grid = torch.linspace(0, 1, 50)
            traj = cast(torch.Tensor, odeint(prob.field, x0.to(dev), grid.to(dev), rtol=cfg.rtol, atol=cfg.atol)).transpose(0, 1).cpu()
            truth = None
    dt = float(grid[1] - grid[0])
    run.trace("trajectory", traj, dt=dt, units="a.u.", description="predicted state on test trials", times=grid.cpu().tolist())
    if truth is not None:
        t_truth = grid if cfg.task == "sines" else prob.t
        run.trace("truth", truth, dt=float(t_truth[1] - t_truth[0]), units="a.u.", description="true trajectories", times=t_truth.cpu().tolist())
    run.figures()
