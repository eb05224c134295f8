"""CordsNet on the engine: batched evaluation of an image set (logits over time, accuracy by
step, per-area activity traces) and upstream's stage-5 training ("train directly" from a random
init, or fine-tuning a checkpoint) for small data.

Training loss (upstream ``training/5_*.py``, our reading): after a no-grad spontaneous phase,
``stim_steps`` steps with the image; cross-entropy at the last ``loss_steps`` stimulus steps
weighted by ``logspace(-3, 0, loss_steps)`` and averaged (weights not normalised); then
``post_steps`` zero-input steps, penalty = ``penalty_weight`` x mean squared difference between
the last ``penalty_steps`` states and the pre-stimulus (spontaneous) state, averaged over areas.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from rnntk.cordsnet.config import EvalConfig
from rnntk.cordsnet.images import ImageSource, Preset
from rnntk.cordsnet.model import DT, TAU, CordsNet

if TYPE_CHECKING:
    from rnntk.engine.run import Rows, Run


# ---------------------------------------------------------------------- evaluation
def evaluate(model: CordsNet, source: ImageSource, preset: Preset, cfg: EvalConfig, run: Run) -> dict[str, Any]:
    """Simulate every image of ``source`` (batches of ``cfg.batch_size``; the spontaneous phase
    once) and write to ``run``: ``/results/logits`` ``[n, T_readout, classes]`` (streamed),
    ``/results/pred``, ``/results/labels``, ``/results/accuracy_by_step`` (one value per
    readout step; ``/metrics`` holds one row per batch), ``/traces/layer{j}``
    ``[trial, time, C, H, W]``, ``/results/spontaneous/layer{j}``, the per-area population rates
    (mean over each area's units) ``/results/population_rate`` ``[trial, time, area]`` (stimulus
    and post steps) and ``/results/spontaneous_population_rate`` ``[time, area]``, and two PNGs:
    ``accuracy_vs_time.png`` (labels and ``readout='every'``) and ``population_rate.png`` (each
    area's rate, spontaneous then stimulus, averaged over images). Returns the final numbers."""
    dev = run.device
    model = model.to(dev).eval()
    n = len(source)
    dt = cfg.alpha * TAU  # s per Euler step (0.2 * 10 ms = 2 ms upstream)
    t_read = (cfg.stim_steps + cfg.post_steps) if cfg.readout == "every" else 1
    final_idx = cfg.stim_steps - 1 if cfg.readout == "every" else 0
    # checkpoints hold the model and the batches done: --resume continues after the last one
    run.track(model, hparams=model.hparams() if hasattr(model, "hparams") else None)
    labels = source.labels
    correct = torch.zeros(t_read, dtype=torch.float64)
    top5 = 0.0
    preds = []
    t0 = time.perf_counter()
    stop_check = lambda: run.check_interrupt(checkpoint=False)  # noqa: E731  # a signal stops within one Euler step

    def account(lg: torch.Tensor, idx: Sequence[int]) -> None:
        """Predictions and running accuracies of logits ``lg`` for the images ``idx``."""
        nonlocal top5
        preds.append(lg[:, final_idx].argmax(-1))
        if labels is not None:
            y = labels[list(idx)]
            correct.add_((lg.argmax(-1) == y[:, None]).sum(0).double())
            k5 = min(5, model.classes)
            top5 += float((lg[:, final_idx].topk(k5, -1).indices == y[:, None]).any(-1).sum())

    def prepare(done: int) -> tuple[Rows, Rows]:
        """Called once the run writes (after a --resume committed): the logits and population
        rates with exactly the ``done`` images the checkpoint covers (rows past it are cut, also
        from the traces), the spontaneous recordings, and the accuracies of the kept images."""
        logits = run.rows(
            "logits",
            (t_read, model.classes),
            chunk_rows=max(1, min(64, n)),
            dims="trial,readout_step,class",
            readout=cfg.readout,
            dt=dt * (1 if cfg.readout == "every" else cfg.stim_steps),
            t0=(cfg.spont_steps + (1 if cfg.readout == "every" else cfg.stim_steps)) * dt,
            units="logit",
            description="logits after each stimulus (and post) step" if cfg.readout == "every" else "logits after the last stimulus step",
        )
        logits.truncate(done)
        for j in cfg.record:
            run.truncate(f"traces/layer{j}", done)
        pop = run.rows(
            "population_rate",
            (cfg.stim_steps + cfg.post_steps, model.depth),
            chunk_rows=max(1, min(64, n)),
            dims="trial,time,area",
            dt=dt,
            t0=(cfg.spont_steps + 1) * dt,
            units="rate (a.u.)",
            description="mean rate of each area's units after each stimulus (and post) step",
        )
        pop.truncate(done)
        run.result(
            "spontaneous_population_rate",
            torch.stack(spont_rates, 1)[0].float().cpu() if spont_rates else torch.zeros(0, model.depth),
            dims="time,area",
            dt=dt,
            t0=dt,
            description="mean rate of each area's units in the spontaneous phase (zero image)",
        )
        for j, tr in spont[1].items():
            run.result(
                f"spontaneous/layer{j}",
                tr.float().cpu(),
                dims="time,channel,y,x",
                dt=dt * cfg.record_stride,
                t0=dt * cfg.record_stride,
                tau=TAU,
                pool=cfg.record_pool,
                description="spontaneous phase (zero image), shared by all images",
            )
        if done:
            account(torch.from_numpy(logits.read(done)), range(done))
        return logits, pop

    with torch.no_grad(), parametrize.cached():
        spont_rates: list[torch.Tensor] = []
        spont = model.spontaneous(cfg.spont_steps, cfg.alpha, cfg.record, cfg.record_stride, cfg.record_pool, check=stop_check, rates=spont_rates)
        trace_attrs: dict[str, Any] = dict(
            tau=TAU,
            alpha=cfg.alpha,
            spont_steps=cfg.spont_steps,
            stim_steps=cfg.stim_steps,
            post_steps=cfg.post_steps,
            stride=cfg.record_stride,
            pool=cfg.record_pool,
            stim_onset=cfg.spont_steps * dt,
            stim_offset=(cfg.spont_steps + cfg.stim_steps) * dt,
        )
        nb = (n + cfg.batch_size - 1) // cfg.batch_size
        streams: tuple[Rows, Rows] | None = None
        for b in run.steps(nb, desc="cordsnet-eval"):
            if streams is None:
                streams = prepare(b * cfg.batch_size)
            idx = list(range(b * cfg.batch_size, min(n, (b + 1) * cfg.batch_size)))
            x = source.load(idx, cfg.image_size or model.image_size, preset).to(device=dev, dtype=model.conv_bias[0].dtype)
            rates: list[torch.Tensor] = []
            res = model.simulate(
                x,
                cfg.alpha,
                cfg.spont_steps,
                cfg.stim_steps,
                cfg.post_steps,
                cfg.record,
                cfg.record_stride,
                cfg.record_pool,
                cfg.readout,
                spont=spont,
                check=stop_check,
                rates=rates,
            )
            lg = res.logits.float().cpu()
            n0 = len(streams[0])
            streams[0].append(lg)
            streams[1].append(torch.stack(rates, 1).float().cpu())
            for j, tr in res.traces.items():
                run.trace(
                    f"layer{j}",
                    tr,
                    dt=dt * cfg.record_stride,
                    dims=("trial", "time", "channel", "y", "x"),
                    t0=(cfg.spont_steps + cfg.record_stride) * dt,
                    append=b > 0,
                    units="rate (a.u.)",
                    **trace_attrs,
                )
            account(lg, idx)
            row: dict[str, float] = {"images": float(n0 + len(idx))}
            if labels is not None:
                row["running_top1"] = float(correct[final_idx]) / (n0 + len(idx))
            run.log(b, **row)
        if streams is None:  # a --resume of a run whose batches were all done
            streams = prepare(n)
    seconds = time.perf_counter() - t0
    pred = torch.cat(preds)
    run.result("pred", pred.numpy(), description="argmax of the logits after the last stimulus step")
    out: dict[str, Any] = dict(n_images=n, seconds=round(seconds, 3), images_per_s=round(n / max(seconds, 1e-9), 2))
    if labels is not None:
        acc = (correct / n).numpy()
        run.result("labels", labels.numpy())
        run.result("accuracy_by_step", acc, dt=dt, t0=(cfg.spont_steps + 1) * dt, readout=cfg.readout)
        out.update(top1=float(acc[final_idx]), top5=top5 / n)
        if cfg.readout == "every":
            out["best_step_top1"] = float(acc.max())
    if source.classes:
        run.annotate("results", classes=",".join(source.classes)[:60000])
    run.figures()  # rnntk/cordsnet/figures.py, from run.h5
    return out


# ---------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    """Stage-5 training (upstream defaults: 100/100/100 steps, loss at the last 30 stimulus
    steps, penalty 1e-3 over the last 10 post steps, AdamW 1e-5, clip 1e-4, batch 2)."""

    epochs: int = 20
    batch_size: int = 2
    lr: float = 1e-5
    weight_decay: float = 0.01
    clip: float = 1e-4
    alpha: float = 0.2
    spont_steps: int = 100
    stim_steps: int = 100
    post_steps: int = 100
    loss_steps: int = 30
    penalty_steps: int = 10
    penalty_weight: float = 1e-3
    image_size: int = 224


def stage5_loss(
    model: CordsNet, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, spont: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total loss, weighted cross-entropy, settling penalty) for images ``x`` ``(B, C, S, S)``
    and labels ``y`` ``(B,)``, starting from the (no-grad) spontaneous states ``spont``."""
    B = x.shape[0]
    rs = [s.expand(B, *s.shape[1:]) for s in spont]
    drive = model.drives(model.stem(x))
    w = torch.logspace(-3, 0, cfg.loss_steps, dtype=x.dtype, device=x.device)
    ce = x.new_zeros(())
    first = cfg.stim_steps - cfg.loss_steps
    for t in range(cfg.stim_steps):
        rs = model.step(rs, drive, cfg.alpha)
        if t >= first:
            ce = ce + w[t - first] * F.cross_entropy(model.readout(rs), y)
    ce = ce / cfg.loss_steps
    pen = x.new_zeros(())
    for t in range(cfg.post_steps):
        rs = model.step(rs, (None, None), cfg.alpha)
        if t >= cfg.post_steps - cfg.penalty_steps:
            pen = pen + sum(((r - s) ** 2).mean() for r, s in zip(rs, spont)) / len(rs)
    pen = pen / max(1, min(cfg.penalty_steps, cfg.post_steps))
    return ce + cfg.penalty_weight * pen, ce, pen


def train_cordsnet(
    model: CordsNet,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    cfg: TrainConfig,
    run: Run,
    test_x: Optional[torch.Tensor] = None,
    test_y: Optional[torch.Tensor] = None,
) -> dict[str, float]:
    """Stage-5 training of ``model`` on preprocessed images ``train_x`` ``(n, C, S, S)``,
    labels ``(n,)``: AdamW, global grad-norm clip, one run step per batch, metrics logged
    (loss, ce, penalty, batch accuracy); test accuracy (upstream readout) after each epoch."""
    dev = run.device
    model = model.to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run.track(model, opt, hparams=model.hparams())
    n = train_x.shape[0]
    nb = (n + cfg.batch_size - 1) // cfg.batch_size
    st = run.state
    st.setdefault("test_acc", [])
    perm: Optional[torch.Tensor] = None
    out: dict[str, float] = {}
    for step in run.steps(cfg.epochs * nb, desc="cordsnet-train"):
        epoch, b = divmod(step, nb)
        if perm is None or b == 0:
            perm = torch.randperm(n, generator=run.rng(f"cordsnet-train/shuffle/{epoch}", legacy_offset=7918 * run.seed + epoch))  # legacy: seed * 7919 + epoch
        idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        x, y = train_x[idx].to(dev), train_y[idx].to(dev)
        with parametrize.cached():
            with torch.no_grad():
                spont, _ = model.spontaneous(cfg.spont_steps, cfg.alpha)
            loss, ce, pen = stage5_loss(model, x, y, cfg, spont)
        opt.zero_grad()
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip if cfg.clip > 0 else float("inf")))
        opt.step()
        row = dict(loss=float(loss), ce=float(ce), penalty=float(pen), grad_norm=gnorm)
        if b == nb - 1 and test_x is not None and test_y is not None:
            acc = accuracy(model, test_x, test_y, cfg)
            st["test_acc"].append(acc)
            row["test_accuracy"] = acc
            model.train()
        run.log(step, **row)
        out = row
    return out


def accuracy(model: CordsNet, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig | EvalConfig, batch: int = 256) -> float:
    """Top-1 accuracy with upstream's eval protocol (readout after the last stimulus step)."""
    model.eval()
    dev = model.conv_bias[0].device
    hits = 0
    with torch.no_grad(), parametrize.cached():
        spont = model.spontaneous(cfg.spont_steps, cfg.alpha)
        for s in range(0, x.shape[0], batch):  # memory chunks; each chunk is one batched simulation
            r = model.simulate(x[s : s + batch].to(dev), cfg.alpha, cfg.spont_steps, cfg.stim_steps, 0, spont=spont)
            hits += int((r.logits[:, -1].argmax(-1).cpu() == y[s : s + batch]).sum())
    return hits / x.shape[0]


__all__ = ["EvalConfig", "evaluate", "TrainConfig", "stage5_loss", "train_cordsnet", "accuracy", "DT"]


def train_mini_digits(
    out: str,
    epochs: int = 4,
    n_train: int = 1500,
    batch_size: int = 32,
    lr: float = 2e-3,
    clip: float = 1.0,
    post_steps: int = 20,
    width: float = 1.0,
    image_size: int = 32,
    seed: int = 0,
    device: str = "auto",
) -> dict[str, Any]:
    """Train the shipped demo: a mini (non-upstream) R2 CordsNet on scikit-learn's digits
    upsampled to ``image_size``, stage-5 loss from a random init (first ``n_train`` digits for
    training, the rest held out). Writes an engine run folder ``out`` with ``model.pt``.
    Returns the final metrics (held-out and all-digit accuracy)."""
    from rnntk.cordsnet.images import PRESETS, load_digits_source
    from rnntk.engine import Run

    src = load_digits_source()
    x = src.load(list(range(len(src))), image_size, PRESETS["digits"])
    y = src.labels
    assert y is not None  # the bundled digits are labelled
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, clip=clip, post_steps=post_steps, image_size=image_size)
    conf = dict(vars(cfg), n_train=n_train, width=width, recipe="rnntk.cordsnet.train.train_mini_digits")
    with Run.open(out, command="cordsnet-train", config=conf, seed=seed, device=device, force=True) as run:
        model = CordsNet(depth=2, classes=10, in_channels=1, image_size=image_size, width=width)
        train_cordsnet(model, x[:n_train], y[:n_train], cfg, run, x[n_train:], y[n_train:])
        final = dict(test_accuracy=accuracy(model, x[n_train:], y[n_train:], cfg), all_digits_accuracy=accuracy(model, x, y, cfg))
        run.save_model(model, hparams=model.hparams())
        run.finish(**final)
    return final
