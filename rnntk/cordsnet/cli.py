"""``rnntk cordsnet-eval`` (simulate a CordsNet on images) and ``rnntk cordsnet-eigs MODEL.pth``
(per-area spectra of the recurrent operator or of the Jacobian).

Every option (name, default, help, validation) is a field of :class:`rnntk.cordsnet.config.EvalConfig`
or :class:`rnntk.cordsnet.config.EigsConfig`."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer

from rnntk.cordsnet.config import EigsConfig, EvalConfig
from rnntk.cordsnet.prepare import areas, check_eval_fits, eigs_image, eval_model, load_model, norm_preset
from rnntk.engine.config_cli import config_command
from rnntk.engine.errors import UserError
from rnntk.engine.limits import oom_as_error
from rnntk.engine.options import RunOptions

_MODEL_PATH = inspect.Parameter(
    "model_path",
    inspect.Parameter.KEYWORD_ONLY,
    annotation=Annotated[Path, typer.Argument(metavar="MODEL.pth", help="Upstream CordsNet state dict or rnntk CordsNet checkpoint.", show_default=False)],
)


def cordsnet_eval(opts: RunOptions, cfg: EvalConfig) -> None:
    """Simulate a CordsNet (Soo et al. 2024) on images: logits over time, accuracy by step,
    per-area activity traces \\[trial, time, C, H, W] to run.h5, accuracy_vs_time.png and
    population_rate.png (each area's mean rate: spontaneous, then stimulus).

    Upstream protocol: 100 zero-image steps, then 100 steps with the image, alpha 0.2.
    Example: [bold]rnntk cordsnet-eval --checkpoint checkpoints/cordsnet-mini-digits.pth --data digits[/bold]."""
    from rnntk.cordsnet.images import ImageError, open_source
    from rnntk.cordsnet.model import CordsNet, area_shapes
    from rnntk.cordsnet.train import evaluate
    from rnntk.engine.device import resolve_dtype

    dt_ = resolve_dtype(cfg.dtype)
    model, hp = eval_model(cfg)
    preset = norm_preset(cfg.dataset_preset, cfg.data, hp["in_channels"])
    layers = areas(cfg.record_layers, hp["depth"], "--record-layers")
    try:
        source = open_source(cfg.data)
    except ImageError as e:
        raise UserError(str(e)) from None
    if cfg.limit:
        source = source.limit(cfg.limit)
    if source.labels is not None and int(source.labels.max()) >= hp["classes"]:
        raise UserError(f"labels go up to {int(source.labels.max())} but the model has {hp['classes']} classes")
    shapes = area_shapes(hp["depth"], hp["image_size"], hp["width"])
    pooled = {"none": lambda c, h, w: c * h * w, "gap": lambda c, h, w: c, "avg2": lambda c, h, w: c * math.ceil(h / 2) * math.ceil(w / 2)}[cfg.record_pool]
    t_rec = (cfg.stim_steps + cfg.post_steps) // cfg.record_stride
    gb = 4 * len(source) * t_rec * sum(pooled(*shapes[j]) for j in layers) / 1e9
    if gb > cfg.max_trace_gb:
        raise UserError(
            f"the recording would take {gb:.1f} GB (> --max-trace-gb {cfg.max_trace_gb:g}); use --record-stride, --record-pool gap|avg2, fewer --record-layers or --limit"
        )
    if len(source) == 0:
        raise UserError(f"--data {cfg.data}: no images to evaluate")
    if source.labels is not None and len(source.labels) and int(source.labels.min()) < 0:
        raise UserError(f"--data {cfg.data}: labels must be class indices >= 0 (found {int(source.labels.min())})")
    check_eval_fits(model, hp, shapes, cfg.batch_size, dt_, opts.device)
    cfg = dataclasses.replace(cfg, record=tuple(layers), image_size=hp["image_size"])
    with opts.open_run() as run, oom_as_error("building and simulating the CordsNet", "use a smaller --width/--batch-size/--image-size"):
        model = (model if model is not None else CordsNet(**hp)).to(device=run.device, dtype=dt_)
        # run.h5 gets the recorded traces (gb above), the logits, the areas' population rates, the
        # predictions and labels, and the spontaneous phase once (float32)
        t_read = (cfg.stim_steps + cfg.post_steps) if cfg.readout == "every" else 1
        n_img = len(source)
        spont_b = 4 * cfg.spont_steps * (hp["depth"] + sum(pooled(*shapes[j]) for j in layers) / cfg.record_stride)
        results = gb * 1e9 + 4 * n_img * (t_read * hp["classes"] + (cfg.stim_steps + cfg.post_steps) * hp["depth"]) + 16 * n_img + spont_b
        run.before_compute(f"simulating {n_img} images (batches of {cfg.batch_size}; {cfg.spont_steps} spontaneous steps first)", model, results_bytes=results)
        ck = str(cfg.checkpoint) if cfg.checkpoint else ""
        run.annotate(model=model.describe(), model_hparams=json.dumps(hp), upstream_config=model.upstream, data=cfg.data, n_images=len(source),
                     dataset_preset=preset.name, checkpoint=ck, init=cfg.init or "")  # fmt: skip
        try:
            final = evaluate(model, source, preset, cfg, run)
        except ImageError as e:
            raise UserError(str(e)) from None
        run.finish(**final, model_checkpoint=ck or None)
        if source.labels is not None:
            print(f"{model.describe()}: top-1 {final['top1']:.4f}, top-5 {final['top5']:.4f} on {len(source)} images", file=sys.stderr)


def cordsnet_eigs(opts: RunOptions, cfg: EigsConfig, model_path: Path) -> None:
    """Per-area spectra of a CordsNet: the recurrent conv W_j (upstream's analysis) or the ReLU
    Jacobian D_j W_j at the spontaneous / an image-driven state, with Ritz residuals, spectral
    radius, max real part and stability verdicts, to run.h5, eigs.csv and one PNG per area.

    Continuous stability: max Re lambda < 1; Euler (alpha): |lambda - (1 - 1/alpha)| < 1/alpha.
    Example: [bold]rnntk cordsnet-eigs checkpoints/cordsnet-mini-digits.pth --k 10[/bold]."""
    from rnntk.cordsnet.spectra import eigs_report
    from rnntk.engine.device import resolve_dtype

    if cfg.dtype != "mixed":
        resolve_dtype(cfg.dtype)
    model = load_model(model_path, {})
    js = areas(cfg.layers, model.depth, "--layers")
    if not js:
        raise UserError("bad --layers 'none': nothing to analyse")
    Ns = {j: math.prod(model.shapes[j]) for j in js}
    if cfg.method == "dense" and max(Ns.values()) > cfg.max_dense_n:
        big = max(Ns, key=lambda j: Ns[j])
        raise UserError(
            f"--method dense: area {big} has N = {Ns[big]} > --max-dense-n {cfg.max_dense_n}; dense eig is O(N^3) — use --method arnoldi (or arpack)"
        )
    img = eigs_image(cfg.image, model, cfg.dataset_preset) if cfg.operator == "jacobian-image" else None
    _check_eigs_fits(cfg, max(Ns.values()), sum(Ns.values()), opts.device)
    # per area and ordering: values, residuals, flags, reported and computed
    results = len(js) * len(cfg.whiches) * 2 * min(cfg.k_computed, max(Ns.values())) * (16 + 8 + 1)
    with opts.open_run(config={"model_path": str(model_path)}) as run:
        run.before_compute(f"the spectra of {len(js)} area(s) (--operator {cfg.operator}, --method {cfg.method})", model, results_bytes=results)
        eigs_report(cfg, model, js, img, model_path, run)


def _check_eigs_fits(cfg: EigsConfig, n: int, n_all: int, device: str) -> None:
    """Refuse (one line, exit 2) spectra whose main arrays cannot fit, before any is computed:
    the states and gates of the analysed areas (``n_all`` units in all, float64) and the solver's
    arrays for the largest area (``n`` units; :func:`rnntk.analysis.eigs.solver_bytes`)."""
    from rnntk.analysis.eigs import solver_bytes
    from rnntk.engine.device import resolve_device
    from rnntk.engine.limits import check_fits, nbytes_of

    need = nbytes_of(n_all, 4, itemsize=8)
    need += solver_bytes(cfg.method, n, cfg.k_computed, len(cfg.whiches), krylov_m=cfg.krylov, ncv=cfg.ncv, max_restarts=cfg.max_restarts, dtype=cfg.dtype)
    check_fits(
        need,
        resolve_device(device),
        f"--method {cfg.method} on an area of N = {n} units",
        hint="use --method arnoldi, a smaller --k/--krylov/--ncv or fewer --layers",
    )


def register(app: typer.Typer) -> None:
    """Add the cordsnet commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    from rnntk.cordsnet.figures import cordsnet_eigs_figures, cordsnet_eval_figures
    from rnntk.engine.figures import register_figures

    register_figures("cordsnet-eval", cordsnet_eval_figures)
    register_figures("cordsnet-eigs", cordsnet_eigs_figures)
    config_command(app, "cordsnet-eval", EvalConfig)(cordsnet_eval)
    config_command(app, "cordsnet-eigs", EigsConfig, extra=[_MODEL_PATH])(cordsnet_eigs)
