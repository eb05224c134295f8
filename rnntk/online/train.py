"""Training a :class:`SeqModel` with an online learning rule on an engine Run (spec §3).

Optimiser as upstream: the recurrent parameters (LRU: nu_log, theta_log, gamma_log, B_re,
B_im; RNN: A, B; GRU: none match) use Adam without weight decay at ``rec_lr = lr_factor·lr``,
everything else AdamW(lr, weight_decay); ``b_fast_decay`` moves B to the AdamW group,
``b_decay`` keeps B at rec_lr with decay. Linear warm-up then cosine to ``lr_min``, per step.
Gradient accumulation over micro-batches (mean, as optax.MultiSteps). Model selection on the
best validation loss; test metrics of that model at the end.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any, Optional

import torch

from rnntk.online.alignment import gradient_alignment
from rnntk.online.config import TrainConfig
from rnntk.online.learner import StreamingLearner, loss_weights, online_gradients, step_losses
from rnntk.online.models.lru import LRU, linear_scan
from rnntk.online.models.seq_model import SeqModel
from rnntk.online.rules import make_rule
from rnntk.online.tasks.seq_loaders import SeqData

if TYPE_CHECKING:
    from rnntk.engine.run import Run


def make_optimizer(model: SeqModel, lr: float, rec_lr: float, weight_decay: float, groups: str = "standard") -> torch.optim.Optimizer:
    """AdamW with upstream's parameter groups (see module doc); each group remembers its
    base lr in ``base_lr``."""
    rec, bees, other = [], [], []
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        is_rec = ".rec." in name and leaf in getattr(model.layers[0].rec, "rec_names", ()) and model.arch != "gru"
        if is_rec and leaf in ("B_re", "B_im", "B") and groups != "standard":
            bees.append(p)
        elif is_rec:
            rec.append(p)
        else:
            other.append(p)
    pg = [{"params": other, "lr": lr, "weight_decay": weight_decay, "base_lr": lr, "name": "other"}]
    if rec:
        pg.append({"params": rec, "lr": rec_lr, "weight_decay": 0.0, "base_lr": rec_lr, "name": "rec"})
    if bees:
        blr = lr if groups == "b_fast_decay" else rec_lr
        pg.append({"params": bees, "lr": blr, "weight_decay": weight_decay, "base_lr": blr, "name": "B"})
    return torch.optim.AdamW(pg, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)


def default_check_rules(arch: str) -> tuple[str, ...]:
    """The online rules compared with BPTT for ``arch`` (online_snap is online_full on the LRU)."""
    return ("online_full", "online_truncated", "online_spat") if arch == "lru" else ("online_snap", "online_truncated", "online_spat")


def lr_factor(step: int, total: int, warmup: int, schedule: str, floor: float) -> float:
    """Multiplier of the base learning rates at ``step``: linear warm-up over ``warmup``
    steps, then cosine from 1 to ``floor`` (or constant)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    frac = (step - warmup) / max(total - warmup, 1)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))


def _targets(model: SeqModel, y: torch.Tensor, mask: torch.Tensor, ev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss mask, accuracy mask) for the model's pooling."""
    if model.pooling == "last":
        return ev, ev
    return mask, ev


@torch.no_grad()
def evaluate(model: SeqModel, data: SeqData, batch_size: int, device: torch.device, dtype: torch.dtype, limit: int = 0) -> dict[str, Any]:
    """Loss and accuracy of ``model`` on ``data`` (dropout off): {loss, acc, loss_per_step (T,)}."""
    was = model.training
    model.eval()
    n = len(data) if not limit else min(limit, len(data))
    tot_loss, tot_acc, cnt = 0.0, 0.0, 0
    T = data.steps
    step_sum = torch.zeros(T, dtype=torch.float64)
    step_cnt = torch.zeros(T, dtype=torch.float64)
    for a in range(0, n, batch_size):
        idx = torch.arange(a, min(a + batch_size, n))
        x, y, mask, ev = data.batch(idx, device, dtype)
        mask, ev = _targets(model, y, mask, ev)
        logp = model(x)
        if model.pooling == "pool":
            yy, mm, ee = y[:, -1:], torch.ones_like(mask[:, -1:]), torch.ones_like(mask[:, -1:])
        else:
            yy, mm, ee = y, mask, ev
        ls = step_losses(logp, yy)
        tot_loss += float((loss_weights(mm, 1) * ls).sum())
        correct = (logp.argmax(-1) == yy).to(dtype).mean(-1)
        tot_acc += float(((correct * ee).sum(1) / ee.sum(1).clamp(min=1)).sum())
        cnt += len(idx)
        if model.pooling != "pool":
            step_sum += (ls * mm).sum(0).double().cpu()
            step_cnt += mm.sum(0).double().cpu()
    model.train(was)
    per_step = torch.where(step_cnt > 0, step_sum / step_cnt.clamp(min=1), torch.full_like(step_sum, float("nan")))
    return {"loss": tot_loss / max(cnt, 1), "acc": tot_acc / max(cnt, 1), "loss_per_step": per_step}


def lambda_values(model: SeqModel) -> Optional[torch.Tensor]:
    """λ of every LRU layer, (L, N) complex128, or None for RNN/GRU."""
    if model.arch != "lru":
        return None
    lrus = [rec for rec in model.recs if isinstance(rec, LRU)]  # all of them for arch lru
    return torch.stack([rec.lam().detach().cpu().to(torch.complex128) for rec in lrus])


@torch.no_grad()
def hidden_traces(model: SeqModel, x: torch.Tensor, block: int = 0) -> dict[str, torch.Tensor]:
    """States of the top recurrent layer (|h| and phase, (trial, T, N)) and, for the LRU,
    ‖E^B_t‖ (Frobenius, online_full's B trace) per layer (trial, T, L). The trace is formed
    ``block`` steps at a time (0: as many as fit in 2^22 elements), carried between blocks."""
    was = model.training
    model.eval()
    z = model.encoder(x)
    norms, h = [], None
    for lay in model.seq_layers:
        rec = lay.rec
        u = lay.pre(z)
        h = rec.states(u)
        if isinstance(rec, LRU):  # arch lru
            lam, gam = rec.lam(), rec.gamma()
            b, T, H = u.shape
            k = block or max(1, 2**22 // (b * lam.shape[0] * H))
            EB, parts = None, []
            for a in range(0, T, k):
                blk = linear_scan(lam[:, None], gam[:, None] * u[:, a : a + k].to(lam.dtype).unsqueeze(2), EB)  # (b, k, N, H)
                parts.append(blk.abs().pow(2).sum((-1, -2)).sqrt())
                EB = blk[:, -1]
            norms.append(torch.cat(parts, 1))
        z = lay.post(z, rec.readout(h, u))
    model.train(was)
    if h is None:
        raise ValueError("hidden_traces: the model has no sequence layers")
    out = {"hidden": h.abs().float()}
    if h.is_complex():
        out["hidden_phase"] = torch.angle(h).float()
    if norms:
        out["trace_norm"] = torch.stack(norms, -1).float()
    return out


def train_online(model: SeqModel, data: tuple[SeqData, SeqData, SeqData], cfg: TrainConfig, run: Run) -> dict[str, float]:
    """Train ``model`` on (train, val, test) with ``cfg.rule``; logs to ``run`` (see the
    command's help for the layout). Returns the final metrics."""
    train, val, test = data
    dev = run.device
    dtype = next(model.parameters()).dtype
    rule = make_rule(cfg.rule, model.arch)  # the rule object, from its name
    spe = max(1, math.ceil(len(train) / cfg.batch_size))
    total = cfg.steps if cfg.steps else cfg.epochs * spe
    warm = int(round(cfg.warmup_epochs * spe))
    opt = make_optimizer(model, cfg.lr, cfg.lr * cfg.rec_lr_factor, cfg.weight_decay, cfg.opt_groups)
    best = copy.deepcopy(model)
    run.track(model, opt, hparams=model.hparams(), best=best)
    st = run.state
    st.setdefault("best_val", float("inf"))
    st.setdefault("best_step", -1)
    check_rules = [r for r in (cfg.grad_check_rules or default_check_rules(model.arch)) if r != "bptt"]
    floor = cfg.lr_min / cfg.lr if cfg.lr > 0 else 0.0
    st.setdefault("grad_agg", {})  # this epoch's gradient alignments, in the checkpoint: a resumed epoch keeps them
    for step in run.steps(total, desc=f"online-lru {rule.name}"):
        epoch, pos = divmod(step, spe)
        if pos == 0:
            st["grad_agg"] = {}
        agg: dict[str, list[float]] = st["grad_agg"]
        f = lr_factor(step, total, warm, cfg.schedule, floor)
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * f
        # legacy seed * 1_000_003 + epoch: README figures depend on these shuffles
        perm = torch.randperm(len(train), generator=run.rng(f"online-lru/shuffle/{epoch}", legacy_offset=1_000_002 * run.seed + epoch))
        idx = perm[pos * cfg.batch_size : (pos + 1) * cfg.batch_size]
        if len(idx) == 0:
            idx = perm[: cfg.batch_size]
        x, y, mask, ev = train.batch(idx, dev, dtype)
        mask, ev = _targets(model, y, mask, ev)
        if pos < cfg.grad_check_batches and check_rules:
            al = gradient_alignment(model, (x, y, mask), check_rules)
            for r, groups in al.items():
                for grp, v in groups.items():
                    for k in ("cos", "relnorm", "norm"):
                        agg.setdefault(f"grad_{k}_{r}_{grp}", []).append(v[k])
        model.train()
        opt.zero_grad(set_to_none=True)
        b = x.shape[0]
        k = max(1, min(cfg.accumulate, b))
        loss_sum, acc_num = 0.0, 0.0
        for part in torch.tensor_split(torch.arange(b), k):
            masks = model.sample_masks(len(part), run.device_generator, dev, dtype)  # drawn on the run's device
            w = loss_weights(mask[part], b)
            if cfg.update_every:  # streaming with parameter updates every K steps (extension)
                sl = StreamingLearner(model, rule, opt, cfg.update_every, masks)
                logp = torch.stack([sl.step(x[part][:, t], y[part][:, t], w[:, t])[1] for t in range(x.shape[1])], 1)
                loss_sum += sl.finish()
                continue_update = False
            else:
                lt, info = online_gradients(model, x[part], y[part], mask[part], rule, cfg.exec, masks=masks, weights=w)
                loss_sum += float(lt)
                logp = info["logp"]
                continue_update = True
            yy, ee = (y[part][:, -1:], torch.ones_like(ev[part][:, -1:])) if model.pooling == "pool" else (y[part], ev[part])
            corr = (logp.argmax(-1) == yy).to(dtype).mean(-1)
            acc_num += float(((corr * ee).sum(1) / ee.sum(1).clamp(min=1)).sum())
        row: dict[str, float] = {"train_loss": loss_sum, "train_acc": acc_num / b, "lr": opt.param_groups[0]["lr"]}
        if len(opt.param_groups) > 1:
            row["rec_lr"] = opt.param_groups[1]["lr"]
        gn = [p.grad for p in model.parameters() if p.grad is not None]
        if not math.isfinite(loss_sum) or any(not torch.isfinite(g).all() for g in gn):
            run.log(step, **row, grad_norm=float("nan"))  # raises NonFiniteError before the update
        if continue_update:
            opt.step()
        if pos == spe - 1 or step == total - 1:
            row.update(_epoch_end(model, val, test, cfg, dev, dtype, st, best, step, agg))
        run.log(step, **row)
    return _finish(model, best, test, cfg, run, dev, dtype)


def _epoch_end(
    model: SeqModel,
    val: SeqData,
    test: SeqData,
    cfg: TrainConfig,
    dev: torch.device,
    dtype: torch.dtype,
    st: dict,
    best: SeqModel,
    step: int,
    agg: dict[str, list[float]],
) -> dict[str, float]:
    row: dict[str, float] = {}
    v = evaluate(model, val, max(cfg.batch_size, 64), dev, dtype, cfg.eval_samples)
    te = evaluate(model, test, max(cfg.batch_size, 64), dev, dtype, cfg.eval_samples)
    row.update(val_loss=v["loss"], val_acc=v["acc"], test_loss=te["loss"], test_acc=te["acc"])
    if math.isfinite(v["loss"]) and v["loss"] < st["best_val"]:
        st["best_val"], st["best_step"] = v["loss"], step + 1
        best.load_state_dict(model.state_dict())
    lam = lambda_values(model)
    if lam is not None:
        row.update(lambda_abs_mean=float(lam.abs().mean()), lambda_abs_max=float(lam.abs().max()))
    row.update({k: sum(vs) / len(vs) for k, vs in agg.items()})
    return row


def _finish(model: SeqModel, best: SeqModel, test: SeqData, cfg: TrainConfig, run: Run, dev: torch.device, dtype: torch.dtype) -> dict[str, float]:
    st = run.state
    chosen = best if st["best_step"] >= 0 else model
    te = evaluate(chosen, test, max(cfg.batch_size, 64), dev, dtype)
    last = evaluate(model, test, max(cfg.batch_size, 64), dev, dtype)
    run.result("test_loss_per_step", te["loss_per_step"].numpy(), description="test loss per time step of the selected model (NaN: step never scored)")
    lam = lambda_values(chosen)
    if lam is not None:
        run.result("lambda", lam.numpy(), description="eigenvalues λ of each LRU layer (layer, N)")
    n = min(cfg.trace_trials, len(test))
    if n:
        x = test.batch(torch.arange(n), dev, dtype)[0]
        tr = hidden_traces(chosen, x)
        run.trace("hidden", tr["hidden"], dt=1.0, units="|h|", description="top recurrent layer, |h_t|, first test trials")
        if "hidden_phase" in tr:
            run.trace("hidden_phase", tr["hidden_phase"], dt=1.0, units="rad", description="top LRU layer, arg h_t")
        if "trace_norm" in tr:
            run.trace(
                "trace_norm",
                tr["trace_norm"],
                dt=1.0,
                dims=("trial", "time", "layer"),
                units="a.u.",
                description="Frobenius norm of online_full's B trace E^B_t per layer",
            )
    run.save_model(chosen)
    out = {
        "test_loss": te["loss"],
        "test_acc": te["acc"],
        "best_val_loss": st["best_val"],
        "best_step": float(st["best_step"]),
        "last_test_loss": last["loss"],
        "last_test_acc": last["acc"],
    }
    for k, v in out.items():
        run.result(k, v)
    run.finish(**out)
    return out
