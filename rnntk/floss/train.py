"""Task training with gradient flossing on an engine :class:`~rnntk.engine.Run`.

Epoch = one fresh batch = one task Adam step (per-tensor gradient clipping, as upstream);
flossing episodes run *before* the task step of their epoch (epoch 0: ``before`` steps;
then every ``every`` epochs, at most ``times`` episodes), each step on a fresh input sequence
of the task with a fixed initial basis Q0. Spectra of a fixed probe sequence are recorded
before/after every flossing episode and every ``le_every`` epochs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from rnntk.analysis.lyapunov import condition_numbers, initial_basis, long_term_jacobian_singular_values, lyapunov_spectrum
from rnntk.core.constrained_rnn import ConstrainedRNN
from rnntk.core.vanilla_rnn import VanillaRNN
from rnntk.engine.limits import overflow_as_nonfinite
from rnntk.floss.config import FlossConfig
from rnntk.floss.flossing import clip_per_tensor, floss_step, flossed_parameters
from rnntk.floss.tasks import task_source, to_device

if TYPE_CHECKING:
    from rnntk.engine.run import Run


def train_floss(cfg: FlossConfig, run: Run) -> dict[str, float]:
    """Train a :class:`VanillaRNN` on the delayed parity task (or a neurogym task) with the flossing schedule."""
    dev = run.device
    src = task_source(cfg)
    model = make_model(cfg, src.n_in, src.n_out, run.generator).to(dev)
    if not cfg.train_x0 and isinstance(model, VanillaRNN):
        model.x0.requires_grad_(False)
    task_opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.9, 0.999))
    flossed = ("theta_in", "theta_rec", "b") if isinstance(model, ConstrainedRNN) else ("W_in", "J", "b")  # the free parameters
    floss_opt = torch.optim.Adam(flossed_parameters(model, flossed), lr=cfg.floss_lr, betas=(0.9, 0.999))
    run.track(model, task_opt, hparams=model.hparams(), floss_opt=floss_opt)
    st = run.state
    for key in ("episodes", "floss_losses", "floss_lambdas", "le_epochs", "le_after_floss", "le", "cond", "sv", "accs", "floss_s", "task_s", "nonfinite_floss"):
        st.setdefault(key, 0 if key in ("episodes", "floss_s", "task_s", "nonfinite_floss") else [])
    # streams drawn on the run's device (the same on CPU); legacy offsets: README figures depend on these draws
    q0 = initial_basis(cfg.n_units, cfg.floss_k, generator=run.rng("floss/q0", device=dev, legacy_offset=3), dtype=torch.float32, device=dev)
    probe = src.drive(cfg.le_len, run.rng("floss/probe", device=dev, legacy_offset=5))
    horizons = [h for h in cfg.horizons if h <= cfg.le_len]
    q_probe = initial_basis(cfg.n_units, cfg.n_units, generator=run.rng("floss/q-probe", device=dev, legacy_offset=7), dtype=torch.float32, device=dev)
    test = to_device(src.trials(cfg.eval_batch, run.rng("floss/test", legacy_offset=11)), dev)

    def stop_check() -> None:  # a signal stops a long spectrum or episode within a time step
        run.check_interrupt(checkpoint=False)

    def spectrum(updates: int, after_floss: bool = False) -> None:
        """Spectrum of the probe sequence; ``updates`` = task updates done so far."""
        with torch.no_grad():
            x0 = model.initial_state(1).detach()  # VanillaRNN: its first trained x0; ConstrainedRNN: zeros
            res = lyapunov_spectrum(model, probe, cfg.n_units, x0=x0, q0=q_probe, warmup=min(100, cfg.le_len // 4), check=stop_check)
            sv = long_term_jacobian_singular_values(model, probe, horizons, x0=x0, check=stop_check) if horizons else torch.zeros(0, cfg.n_units)
        st["le_epochs"].append(int(updates))
        st["le_after_floss"].append(bool(after_floss))
        st["le"].append([float(v) for v in res.exponents[0]])
        st["sv"].append(sv.cpu().tolist())
        st["cond"].append([float(c) for c in condition_numbers(sv, cfg.floss_k)] if horizons else [])

    def episode(epoch: int, n_fl: int) -> None:
        t0 = time.perf_counter()
        fgen = run.rng(f"floss/episode/{epoch}", device=dev, legacy_offset=1_000_002 * run.seed + epoch)  # legacy: seed * 1_000_003 + epoch
        for _ in range(n_fl):
            u = src.drive(cfg.floss_len, fgen)
            with overflow_as_nonfinite(run.step, "floss_update"):  # e.g. --floss-lr 1e38: exit 3, last good checkpoint kept
                info = floss_step(
                    model,
                    floss_opt,
                    u,
                    cfg.floss_k,
                    x0=model.initial_state(1).detach(),
                    warmup=cfg.floss_warmup,
                    t_ons=cfg.floss_tons,
                    target=cfg.floss_target,
                    reduce=cfg.floss_reduce,
                    q0=q0,
                    check=stop_check,
                )
            st["floss_losses"].append(info.loss)
            st["floss_lambdas"].append([float(v) for v in info.exponents])
            st["nonfinite_floss"] += 0 if info.finite else 1
        if epoch > 0:
            st["episodes"] += 1
        st["floss_s"] += time.perf_counter() - t0
        spectrum(epoch, after_floss=True)

    if not st["le"]:  # a resumed run already holds the initial spectrum in its state
        spectrum(0)
    if cfg.epochs == 0:  # flossing only: the before-training steps, spectra before and after
        if not st["floss_losses"] and cfg.schedule.before:
            episode(0, cfg.schedule.before)
        return _finish(cfg, run, model, horizons)
    for epoch in run.steps(cfg.epochs, desc="floss"):
        row: dict[str, float] = {}
        n_fl = cfg.schedule.steps_at(epoch, st["episodes"] if epoch > 0 else 0)
        if n_fl:
            episode(epoch, n_fl)
            row.update(floss_loss=st["floss_losses"][-1], floss_lambda_1=st["floss_lambdas"][-1][0])
        t0 = time.perf_counter()
        tr = to_device(src.trials(cfg.batch, run.generator), dev)
        logits, _ = model(tr.inputs, model.sample_noise(tr.batch, tr.steps, run.generator)) if isinstance(model, ConstrainedRNN) else model(tr.inputs)
        loss = src.loss(logits, tr)
        acc = src.accuracy(logits.detach(), tr)  # on never-seen data, before the update
        task_opt.zero_grad()
        loss.backward()
        gx0 = float(model.x0.grad.norm()) if isinstance(model, VanillaRNN) and model.x0.grad is not None else 0.0
        gnorm = clip_per_tensor([p for p in model.parameters() if p.requires_grad], cfg.clip)
        with overflow_as_nonfinite(epoch, "task_update"):  # e.g. --lr 1e38
            task_opt.step()
        st["task_s"] += time.perf_counter() - t0
        st["accs"].append(acc)
        row.update(loss=float(loss.detach()), accuracy=acc, grad_norm=gnorm, grad_norm_x0=gx0)
        if epoch % cfg.eval_every == 0:
            with torch.no_grad():
                row["test_accuracy"] = src.accuracy(model(test.inputs)[0], test)
        if cfg.le_every and epoch > 0 and epoch % cfg.le_every == 0:
            spectrum(epoch + 1)
            row["lambda_1"] = st["le"][-1][0]
            row["lambda_k_mean"] = sum(st["le"][-1][: cfg.floss_k]) / cfg.floss_k
        run.log(epoch, **row)
    spectrum(run.step)
    with torch.no_grad():
        test_logits = model(test.inputs)[0]
    test_acc = src.accuracy(test_logits, test)
    run.result("test_accuracy_final", test_acc, description="held-out batch at the end")
    src.record(run, test_logits, test)
    return _finish(cfg, run, model, horizons)


def make_model(cfg: FlossConfig, n_in: int, n_out: int, generator: torch.Generator) -> VanillaRNN | ConstrainedRNN:
    """The upstream :class:`VanillaRNN`, or with any of ``--dale-ratio/--connectivity/--no-autapses/
    --rec-noise/--input-noise`` a :class:`ConstrainedRNN` with the same leak (``dt/tau = --alpha``,
    tau = 1 step), gain ``--g`` (spectral radius of W_rec) and zero initial state; its rates are
    tanh, or softplus (non-negative) under Dale's law. Flossing then changes its free parameters
    (``theta_in``, ``theta_rec``, ``b``), so the constraints hold exactly throughout."""
    if not cfg.constrained:
        return VanillaRNN(cfg.n_units, n_in, n_out, batch=cfg.batch, g=cfg.g, init=cfg.init, alpha=cfg.alpha, generator=generator)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))  # the connectivity draw
    act = "softplus" if cfg.dale_ratio is not None else "tanh"
    return ConstrainedRNN(n_in, cfg.n_units, n_out, dt=cfg.alpha, tau=1.0, g=cfg.g, activation=act, generator=generator, seed=seed, **cfg.constraint_kwargs())


def _finish(cfg: FlossConfig, run: Run, model: VanillaRNN | ConstrainedRNN, horizons: list[int]) -> dict[str, float]:
    st = run.state
    accs = st["accs"]
    final_acc = sum(accs[-100:]) / max(len(accs[-100:]), 1)
    to90 = -1
    for i in range(len(accs)):
        w = accs[max(0, i - 49) : i + 1]
        if len(w) == 50 and sum(w) / 50 >= 0.9:
            to90 = i
            break
    out = {
        "final_accuracy": final_acc if accs else float("nan"),
        "success": float(bool(accs) and final_acc >= 0.95),
        "epochs_to_90": float(to90),
        "lambda_1_init": st["le"][0][0],
        "lambda_1_final": st["le"][-1][0],
        "floss_seconds": st["floss_s"],
        "task_seconds": st["task_s"],
        "floss_overhead": st["floss_s"] / max(st["floss_s"] + st["task_s"], 1e-9),
        "nonfinite_floss_steps": float(st["nonfinite_floss"]),
    }
    run.result("lyapunov", st["le"], description="Lyapunov spectrum of the probe sequence (per step), one row per evaluation")
    run.result("lyapunov_epoch", st["le_epochs"], description="task updates done when each spectrum row was taken")
    run.result("lyapunov_after_floss", st["le_after_floss"], description="True where the row was taken right after a flossing episode")
    if horizons:
        run.result("jac_singular_values", st["sv"], horizons=horizons, description="singular values of the long-term Jacobian T_{t,0} at each horizon")
        run.result("cond_number", st["cond"], horizons=horizons, k=cfg.floss_k, description="sigma_1/sigma_k of T_{t,0}")
    if st["floss_lambdas"]:
        run.result("floss_lambdas", st["floss_lambdas"], description="k exponents of every flossing step (short window)")
        run.result("floss_loss", st["floss_losses"])
    for k, v in out.items():
        run.result(k, v)
    run.save_model(model)
    run.figures()  # rnntk/floss/figures.py, from run.h5
    run.finish(**out)
    return out
