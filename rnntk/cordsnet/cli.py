"""``rnntk cordsnet-eval`` (simulate a CordsNet on images) and ``rnntk cordsnet-eigs MODEL.pth``
(per-area spectra of the recurrent operator or of the Jacobian)."""

from __future__ import annotations

import json
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rnntk.engine.errors import NonFiniteError, UserError
from rnntk.engine.limits import check_fits, oom_as_error
from rnntk.engine.options import RunOptions, engine_command, require_positive

O = typer.Option
M = "Model"
D = "Data"
S = "Simulation"
R = "Recording"


class Readout(str, Enum):
    every = "every"
    final = "final"


class Pool(str, Enum):
    none = "none"
    gap = "gap"
    avg2 = "avg2"


class Method(str, Enum):
    arnoldi = "arnoldi"
    arpack = "arpack"
    dense = "dense"
    power = "power"
    fft_circular = "fft-circular"


class Which(str, Enum):
    LM = "LM"
    LR = "LR"
    both = "both"


class Operator(str, Enum):
    recurrent = "recurrent"
    jacobian_spont = "jacobian-spont"
    jacobian_image = "jacobian-image"


def _load_model(checkpoint: Optional[Path], expect: dict[str, Any]) -> Any:
    from rnntk.cordsnet.model import CheckpointError, load_cordsnet

    try:
        return load_cordsnet(checkpoint, expect=expect)
    except CheckpointError as e:
        raise UserError(str(e)) from None


def _layers(spec: str, depth: int, option: str) -> list[int]:
    s = spec.strip().lower()
    if s == "none":
        return []
    if s == "all":
        return list(range(depth))
    if s == "top":
        return [depth - 2, depth - 1]
    try:
        js = sorted({int(v) for v in s.split(",") if v.strip()})
    except ValueError:
        raise UserError(f"bad {option} '{spec}': use all, top, none or comma-separated area indices") from None
    bad = [j for j in js if not 0 <= j < depth]
    if bad or not js:
        raise UserError(f"bad {option} '{spec}': the model has areas 0..{depth - 1}")
    return js


def _check_sim(alpha: float, spont_steps: int, stim_steps: int) -> None:
    require_positive(alpha=alpha)
    if alpha > 1:
        raise UserError(f"bad --alpha {alpha}: must be in (0, 1] (dt/tau)")
    if stim_steps < 1 or spont_steps < 0:
        raise UserError("bad --stim-steps/--spont-steps: need --stim-steps >= 1 and --spont-steps >= 0")


def _preset(name: str, data: str, channels: int) -> Any:
    from rnntk.cordsnet.images import ImageError, preset_for

    if name == "auto":
        name = "imagenet" if channels == 3 else ("digits" if data == "digits" else "mnist")
    try:
        p = preset_for(name, channels)
    except ImageError as e:
        raise UserError(str(e)) from None
    if p.channels != channels:
        raise UserError(f"--dataset-preset {name} is for {p.channels}-channel images, but the model takes {channels}")
    return p


def cordsnet_eval(
    opts: RunOptions,
    checkpoint: Annotated[Optional[Path], O("--checkpoint", help="Upstream state dict (.pth) or rnntk CordsNet checkpoint.", rich_help_panel=M)] = None,
    init: Annotated[Optional[str], O("--init", help="'random': a freshly initialised model instead of a checkpoint.", rich_help_panel=M)] = None,
    depth: Annotated[Optional[int], O("--depth", help="2, 4, 6 or 8 areas (default: the checkpoint's; 8 with --init random).", rich_help_panel=M)] = None,
    classes: Annotated[
        Optional[int], O("--classes", min=1, help="Readout size (default: the checkpoint's; 1000 with --init random).", rich_help_panel=M)
    ] = None,
    image_size: Annotated[
        Optional[int], O("--image-size", min=8, help="Input size (224 upstream; smaller = non-upstream mini model).", rich_help_panel=M)
    ] = None,
    width: Annotated[Optional[float], O("--width", help="Channel multiplier (1 upstream; mini models only).", rich_help_panel=M)] = None,
    data: Annotated[str, O("--data", help="digits | folder:DIR (DIR/<class>/<img>) | npz:FILE (images, labels) | images:GLOB.", rich_help_panel=D)] = "digits",
    dataset_preset: Annotated[
        str,
        O(
            "--dataset-preset",
            help="Normalisation: auto (imagenet for RGB models; digits or mnist for 1-channel), imagenet, cifar10, cifar100, mnist, fashionmnist, digits, none.",
            rich_help_panel=D,
        ),
    ] = "auto",
    limit: Annotated[int, O("--limit", min=0, help="Use the first N images (0 = all).", rich_help_panel=D)] = 0,
    batch_size: Annotated[int, O("--batch-size", min=1, help="Images simulated together.", rich_help_panel=D)] = 16,
    alpha: Annotated[float, O("--alpha", help="dt/tau (upstream 0.2 = 2 ms steps, tau 10 ms).", rich_help_panel=S)] = 0.2,
    spont_steps: Annotated[int, O("--spont-steps", min=0, help="Zero-image steps first (computed once, shared by the batch).", rich_help_panel=S)] = 100,
    stim_steps: Annotated[int, O("--stim-steps", min=1, help="Steps with the image.", rich_help_panel=S)] = 100,
    post_steps: Annotated[int, O("--post-steps", min=0, help="Zero-image steps after the stimulus.", rich_help_panel=S)] = 0,
    readout: Annotated[
        Readout, O("--readout", help="every: logits at each stimulus/post step; final: after the last stimulus step (upstream).", rich_help_panel=S)
    ] = Readout.every,
    record_layers: Annotated[str, O("--record-layers", help="Areas to record: top (the two top areas), all, none, or e.g. 0,1.", rich_help_panel=R)] = "top",
    record_stride: Annotated[int, O("--record-stride", min=1, help="Record every N steps.", rich_help_panel=R)] = 1,
    record_pool: Annotated[
        Pool, O("--record-pool", help="Spatial pooling of recordings: none, gap (global mean), avg2 (2x2 mean).", rich_help_panel=R)
    ] = Pool.none,
    max_trace_gb: Annotated[float, O("--max-trace-gb", help="Refuse recordings larger than this (GB, float32 before compression).", rich_help_panel=R)] = 4.0,
    dtype: Annotated[str, O("--dtype", help="float32 or float64.")] = "float32",
) -> None:
    """Simulate a CordsNet (Soo et al. 2024) on images: logits over time, accuracy by step,
    per-area activity traces \\[trial, time, C, H, W] to run.h5, accuracy_vs_time.png and
    population_rate.png (each area's mean rate: spontaneous, then stimulus).

    Upstream protocol: 100 zero-image steps, then 100 steps with the image, alpha 0.2.
    Example: [bold]rnntk cordsnet-eval --checkpoint checkpoints/cordsnet-mini-digits.pth --data digits[/bold]."""
    from rnntk.cordsnet.images import ImageError, open_source
    from rnntk.cordsnet.model import CordsNet, area_shapes
    from rnntk.cordsnet.train import EvalConfig, evaluate
    from rnntk.engine.device import resolve_dtype

    _check_sim(alpha, spont_steps, stim_steps)
    require_positive(max_trace_gb=max_trace_gb, width=width)
    dt_ = resolve_dtype(dtype)
    if (checkpoint is None) == (init is None):
        raise UserError("give either --checkpoint PATH or --init random")
    if init is not None and init != "random":
        raise UserError(f"bad --init '{init}': only 'random' is supported")
    expect = dict(depth=depth, classes=classes, image_size=image_size, width=width)
    model = None
    if checkpoint is not None:
        model = _load_model(checkpoint, expect)
        hp = model.hparams()
    else:
        if depth is not None and depth not in (2, 4, 6, 8):
            raise UserError(f"bad --depth {depth}: CordsNet has 2, 4, 6 or 8 areas")
        chans = 1 if data == "digits" or dataset_preset in ("mnist", "fashionmnist", "digits") else 3
        hp = dict(
            depth=depth or 8,
            classes=classes or (10 if data == "digits" else 1000),
            in_channels=chans,
            image_size=image_size or (32 if data == "digits" else 224),
            width=width or 1.0,
        )
    preset = _preset(dataset_preset, data, hp["in_channels"])
    layers = _layers(record_layers, hp["depth"], "--record-layers")
    try:
        source = open_source(data)
    except ImageError as e:
        raise UserError(str(e)) from None
    if limit:
        source = source.limit(limit)
    if source.labels is not None and int(source.labels.max()) >= hp["classes"]:
        raise UserError(f"labels go up to {int(source.labels.max())} but the model has {hp['classes']} classes")
    shapes = area_shapes(hp["depth"], hp["image_size"], hp["width"])
    pooled = {"none": lambda c, h, w: c * h * w, "gap": lambda c, h, w: c, "avg2": lambda c, h, w: c * math.ceil(h / 2) * math.ceil(w / 2)}[record_pool.value]
    t_rec = (stim_steps + post_steps) // record_stride
    gb = 4 * len(source) * t_rec * sum(pooled(*shapes[j]) for j in layers) / 1e9
    if gb > max_trace_gb:
        raise UserError(
            f"the recording would take {gb:.1f} GB (> --max-trace-gb {max_trace_gb:g}); use --record-stride, --record-pool gap|avg2, fewer --record-layers or --limit"
        )
    if len(source) == 0:
        raise UserError(f"--data {data}: no images to evaluate")
    if source.labels is not None and len(source.labels) and int(source.labels.min()) < 0:
        raise UserError(f"--data {data}: labels must be class indices >= 0 (found {int(source.labels.min())})")
    _check_eval_fits(model, hp, shapes, batch_size, dt_, opts.device)
    cfg = EvalConfig(
        alpha=alpha,
        spont_steps=spont_steps,
        stim_steps=stim_steps,
        post_steps=post_steps,
        readout=readout.value,
        record=tuple(layers),
        record_stride=record_stride,
        record_pool=record_pool.value,
        batch_size=batch_size,
        image_size=hp["image_size"],
    )
    with opts.open_run() as run, oom_as_error("building and simulating the CordsNet", "use a smaller --width/--batch-size/--image-size"):
        if model is None:
            model = CordsNet(**hp)
        model = model.to(device=run.device, dtype=dt_)
        run.h5.set_attrs(
            model=model.describe(),
            model_hparams=json.dumps(hp),
            upstream_config=model.upstream,
            data=data,
            n_images=len(source),
            dataset_preset=preset.name,
            checkpoint=str(checkpoint) if checkpoint else "",
            init=init or "",
        )
        try:
            final = evaluate(model, source, preset, cfg, run)
        except ImageError as e:
            raise UserError(str(e)) from None
        run.finish(**final, model_checkpoint=str(checkpoint) if checkpoint else None)
        if source.labels is not None:
            print(f"{model.describe()}: top-1 {final['top1']:.4f}, top-5 {final['top5']:.4f} on {len(source)} images", file=sys.stderr)


def cordsnet_eigs(
    opts: RunOptions,
    model_path: Annotated[Path, typer.Argument(metavar="MODEL.pth", help="Upstream CordsNet state dict or rnntk CordsNet checkpoint.", show_default=False)],
    layers: Annotated[str, O("--layers", help="Areas to analyse: all, or e.g. 0,7.")] = "all",
    operator: Annotated[
        Operator, O("--operator", help="recurrent (W_j), jacobian-spont or jacobian-image (D_j W_j at a state; --image).")
    ] = Operator.recurrent,
    image: Annotated[Optional[str], O("--image", help="Image for --operator jacobian-image: an image file, or digits:N.")] = None,
    dataset_preset: Annotated[str, O("--dataset-preset", help="Normalisation of --image (auto, imagenet, ..., digits, none).")] = "auto",
    method: Annotated[
        Method, O("--method", help="arnoldi (default, matrix-free), arpack (certified), dense (small N), power, fft-circular (preview).")
    ] = Method.arnoldi,
    k: Annotated[int, O("--k", min=1, help="Eigenvalues reported per ordering.")] = 20,
    which: Annotated[Which, O("--which", help="LM (largest |lambda|), LR (largest real part) or both.")] = Which.both,
    krylov: Annotated[
        Optional[int], O("--krylov", min=2, help="Arnoldi basis size m (default: max(60, 8 x wanted values); 300 with --max-restarts 0).")
    ] = None,
    max_restarts: Annotated[
        int, O("--max-restarts", min=0, help="Krylov-Schur restarts at most (0: one unrestarted run, as upstream; values then may stay unconverged).")
    ] = 1000,
    plot_k: Annotated[
        Optional[int], O("--plot-k", min=1, help="Also plot up to this many leading values per ordering (a fuller picture of the spectrum's edge; more work).")
    ] = None,
    qr_steps: Annotated[int, O("--qr-steps", min=0, help="Upstream's unshifted QR steps on H (no effect on accuracy).")] = 0,
    ncv: Annotated[Optional[int], O("--ncv", min=3, help="ARPACK basis size (default max(4k, 40)).")] = None,
    power_iters: Annotated[int, O("--power-iters", min=1, help="Power iteration steps (at most).")] = 10000,
    dtype: Annotated[
        str, O("--dtype", help="mixed (Arnoldi: float32 Krylov-Schur, float64 polish; other methods float64), float64 or float32 (~1e-6 at best).")
    ] = "mixed",
    tol: Annotated[float, O("--tol", help="Convergence tolerance (relative residual).")] = 1e-8,
    max_dense_n: Annotated[int, O("--max-dense-n", min=1, help="--method dense refuses operators larger than this.")] = 4096,
    alpha: Annotated[float, O("--alpha", help="dt/tau for the Euler-stability verdict and the Jacobian state.")] = 0.2,
    spont_steps: Annotated[int, O("--spont-steps", min=0, help="Steps to the spontaneous state (Jacobian operators).")] = 100,
    stim_steps: Annotated[int, O("--stim-steps", min=1, help="Image steps to the image-driven state (jacobian-image).")] = 100,
    csv: Annotated[bool, O("--csv/--no-csv", help="Also write eigs.csv.")] = True,
) -> None:
    """Per-area spectra of a CordsNet: the recurrent conv W_j (upstream's analysis) or the ReLU
    Jacobian D_j W_j at the spontaneous / an image-driven state, with Ritz residuals, spectral
    radius, max real part and stability verdicts, to run.h5, eigs.csv and one PNG per area.

    Continuous stability: max Re lambda < 1; Euler (alpha): |lambda - (1 - 1/alpha)| < 1/alpha.
    Example: [bold]rnntk cordsnet-eigs checkpoints/cordsnet-mini-digits.pth --k 10[/bold]."""
    import torch

    from rnntk.cordsnet.eigs import certified_stability, cordsnet_operators, leading_eigs
    from rnntk.engine.device import resolve_dtype
    from rnntk.engine.files import write_text_atomic

    _check_sim(alpha, spont_steps, stim_steps)
    require_positive(tol=tol)
    mixed = dtype == "mixed"
    dt_ = torch.float64 if mixed else resolve_dtype(dtype)
    model = _load_model(model_path, {})
    js = _layers(layers, model.depth, "--layers")
    if not js:
        raise UserError("bad --layers 'none': nothing to analyse")
    whiches = ["LM", "LR"] if which == Which.both else [which.value]
    if method == Method.power and whiches != ["LM"]:
        raise UserError("--method power finds the largest-|lambda| eigenvalue only: use --which LM (or --method arnoldi for LR)")
    if method == Method.fft_circular and operator != Operator.recurrent:
        raise UserError("--method fft-circular applies to --operator recurrent only")
    Ns = {j: math.prod(model.shapes[j]) for j in js}
    if method == Method.dense and max(Ns.values()) > max_dense_n:
        big = max(Ns, key=Ns.get)
        raise UserError(f"--method dense: area {big} has N = {Ns[big]} > --max-dense-n {max_dense_n}; dense eig is O(N^3) — use --method arnoldi (or arpack)")
    img = None
    if operator == Operator.jacobian_image:
        img = _eigs_image(image, model, dataset_preset)
    elif image is not None:
        raise UserError("--image is used only with --operator jacobian-image")
    with opts.open_run(config={"model_path": str(model_path)}) as run:
        model = model.to(device=run.device, dtype=torch.float64)
        stop_check = lambda: run.check_interrupt(checkpoint=False)  # noqa: E731  # a signal stops any loop within one iteration
        ops = cordsnet_operators(
            model, operator.value, js, None if img is None else img.to(run.device, torch.float64), alpha, spont_steps, stim_steps, dtype=dt_, check=stop_check
        )
        for j in js:  # NaN/inf weights (or a diverged state for the Jacobians) would fail inside LAPACK/ARPACK
            if not bool(torch.isfinite(ops[j].weight).all()):
                raise NonFiniteError(0, f"area {j} recurrent weight", float("nan"), note="the model's weights are not finite")
        run.h5.set_attrs(model=model.describe(), operator=operator.value, method=method.value)
        rows = ["layer,N,method,rank,which,real,imag,abs,residual,converged"]
        final: dict[str, Any] = {}
        for step in run.steps(len(js), desc="cordsnet-eigs"):
            j = js[step]
            op = ops[j]
            kk_ = max(k, plot_k or 0)  # --plot-k: one run for the larger set; the top k of it are reported
            try:
                shown = leading_eigs(
                    op,
                    method.value,
                    kk_,
                    whiches,
                    krylov,
                    qr_steps,
                    tol,
                    max_dense_n,
                    ncv,
                    power_iters,
                    generator=torch.Generator(device=run.device).manual_seed(run.seed + j),
                    dtype=dt_,
                    seed=run.seed + j,
                    check=stop_check,
                    max_restarts=max_restarts,
                    polish=mixed,
                )
            except ValueError as e:
                raise UserError(str(e)) from None
            res = {w: _top(r, k) for w, r in shown.items()}
            verdict = certified_stability(res, alpha)
            print(f"area {j} (N = {op.N}): " + _verdict_line(verdict), file=sys.stderr)
            for w, r in res.items():
                run.result(
                    f"eigs/layer{j}_{w}",
                    r.values,
                    N=op.N,
                    method=r.method,
                    which=w,
                    seconds=r.seconds,
                    n_matvec=r.n_matvec,
                    converged=bool(r.converged.all()),
                    **{kk: vv for kk, vv in r.info.items() if isinstance(vv, (int, float, str, bool))},
                )
                run.result(f"eigs/layer{j}_{w}_residual", r.residuals)
                for i, (v, rr, c) in enumerate(zip(r.values, r.residuals, r.converged)):
                    rows.append(f"{j},{op.N},{r.method},{i + 1},{w},{v.real:.12g},{v.imag:.12g},{abs(v):.12g},{rr:.3g},{int(c)}")
            secs = sum(r.seconds for r in res.values())
            num = {
                kk: float(verdict[kk]) for kk in ("spectral_radius", "max_real", "continuous_stable", "euler_stable") if verdict[kk] not in (None, "unknown")
            }  # unknown values are not logged (the metric log takes finite numbers)
            run.log(step, layer=j, N=op.N, **num, seconds=secs, converged=float(all(r.converged.all() for r in res.values())))
            final[f"layer{j}"] = dict(
                N=op.N,
                **verdict,
                converged=bool(all(r.converged.all() for r in res.values())),
                n_converged={w: int(r.converged.sum()) for w, r in res.items()},
                seconds=round(secs, 3),
            )
            notes = [r.info.get("note") for r in res.values() if r.info.get("note")]
            if notes:
                final[f"layer{j}"]["note"] = notes[0]
            run.figure(_plot(j, shown, alpha, op.N, operator.value), f"eigs_layer{j}")
        if csv:
            write_text_atomic(run.path("eigs.csv"), "\n".join(rows) + "\n")
        run.last_metrics.clear()  # the per-area rows live in final["layers"]; the last one is not a run-level result
        run.finish(layers=final, **_overall(final), model_checkpoint=str(model_path))


def _overall(layers: dict[str, dict]) -> dict[str, Any]:
    """Run-level verdicts over all analysed areas: a network verdict is False if any area is
    unstable, True if every area is certified stable, else "unknown"."""

    def combine(name: str) -> Any:
        vs = [v[name] for v in layers.values()]
        return False if any(v is False for v in vs) else (True if all(v is True for v in vs) else "unknown")

    radii = [v["spectral_radius"] for v in layers.values()]
    return dict(
        continuous_stable=combine("continuous_stable"),
        euler_stable=combine("euler_stable"),
        max_spectral_radius=max(radii) if radii and None not in radii else None,
        all_converged=all(v["converged"] for v in layers.values()),
        n_layers=len(layers),
    )


def _top(r: Any, k: int) -> Any:
    """The first ``k`` values of an :class:`EigResult` (already ordered)."""
    from dataclasses import replace

    return r if len(r.values) <= k else replace(r, values=r.values[:k], residuals=r.residuals[:k], converged=r.converged[:k])


def _verdict_line(v: dict) -> str:
    """One line: radius, max Re, and the two verdicts (with the reason when unknown)."""

    def num(x: Any) -> str:
        return "unknown" if x is None else f"{x:.6g}"

    def ver(name: str) -> str:
        x = v[name]
        return f"unknown ({v['reasons'].get(name, '')})" if x == "unknown" else ("yes" if x else "NO")

    return (
        f"spectral radius {num(v['spectral_radius'])}, max Re {num(v['max_real'])}; continuous-stable {ver('continuous_stable')}; "
        f"Euler-stable {ver('euler_stable')}"
    )


def _check_eval_fits(model: Any, hp: dict[str, Any], shapes: list, batch_size: int, dtype: Any, device: str) -> None:
    """Refuse (one line, exit 2) a CordsNet or a batch that cannot fit in memory: the weights
    (counted on the meta device, nothing allocated) plus the states of one batch."""
    import torch

    from rnntk.cordsnet.model import CordsNet
    from rnntk.engine.device import resolve_device

    isz = torch.empty((), dtype=dtype).element_size()
    n_params = 0.0
    if model is None:
        with torch.device("meta"), oom_as_error("sizing the CordsNet"):
            try:
                n_params = float(sum(p.numel() for p in CordsNet(**hp).parameters()))
            except (ValueError, TypeError, RuntimeError) as e:
                raise UserError(f"bad CordsNet size {hp}: {' '.join(str(e).split())[:160]}") from None
    per_image = sum(float(c) * h * w for c, h, w in shapes)
    state = 4.0 * batch_size * per_image * isz  # states, pre-activations, drives, one step's temporaries
    check_fits(
        n_params * isz + state,
        resolve_device(device),
        f"a CordsNet with width {hp['width']:g}, {hp['classes']} classes and --batch-size {batch_size}",
        hint="use a smaller --width/--classes/--image-size/--batch-size",
    )


def _eigs_image(spec: Optional[str], model: Any, preset_name: str) -> Any:
    """One preprocessed image ``(1, C, S, S)`` for the image-driven Jacobian."""
    from rnntk.cordsnet.images import ImageError, load_digits_source

    if spec is None:
        raise UserError("--operator jacobian-image needs --image FILE (or --image digits:N)")
    try:
        if spec.startswith("digits:"):
            try:
                i = int(spec.split(":", 1)[1])
            except ValueError:
                raise UserError(f"bad --image '{spec}': use digits:N with an integer N") from None
            src = load_digits_source()
            if not 0 <= i < len(src):
                raise UserError(f"bad --image '{spec}': the digits have images 0..{len(src) - 1}")
            return src.load([i], model.image_size, _preset(preset_name, "digits", model.in_channels))
        p = Path(spec)
        if not p.is_file():
            raise UserError(f"image not found: {p}")
        from rnntk.cordsnet.images import load_image_file

        return load_image_file(p, model.image_size, _preset(preset_name, str(p), model.in_channels))
    except ImageError as e:
        raise UserError(str(e)) from None


def _plot(j: int, res: dict, alpha: float, N: int, operator: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5, 5))
    th = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(th), np.sin(th), color="0.6", lw=0.8, label="|λ| = 1")
    c, rad = 1 - 1 / alpha, 1 / alpha
    ax.plot(c + rad * np.cos(th), rad * np.sin(th), color="tab:green", lw=0.8, ls=":", label=f"Euler-stable disc (α={alpha:g})")
    ax.axvline(1.0, color="tab:red", lw=0.8, ls="--", label="Re λ = 1 (continuous stability)")
    marks = {"LM": ("o", "tab:blue"), "LR": ("s", "tab:orange")}
    for w, r in res.items():
        m, col = marks[w]
        by = "|λ|" if w == "LM" else "Re λ"
        ok = np.asarray(r.converged, bool)
        if ok.any():
            ax.scatter(r.values.real[ok], r.values.imag[ok], marker=m, color=col, s=18, label=f"top-{len(r.values)} by {by}: converged ({int(ok.sum())})")
        if (~ok).any():
            ax.scatter(
                r.values.real[~ok],
                r.values.imag[~ok],
                marker=m,
                facecolors="none",
                edgecolors=col,
                s=22,
                label=f"top-{len(r.values)} by {by}: NOT converged ({int((~ok).sum())})",
            )
    allv = np.concatenate([r.values for r in res.values()])
    allv = allv[np.isfinite(allv)] if np.isfinite(allv).any() else np.zeros(1)
    lim = max(1.2, float(np.abs(allv).max()) * 1.15)
    ax.set_xlim(min(-lim, c - rad * 0.2) if np.abs(allv).max() > 3 else -lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title(f"area {j} ({operator}, {next(iter(res.values())).method}, N = {N})")
    ax.legend(fontsize=7, loc="lower left")
    return fig


def register(app: typer.Typer) -> None:
    """Add the cordsnet commands to the ``rnntk`` app (called by :mod:`rnntk.cli`)."""
    engine_command(app, "cordsnet-eval")(cordsnet_eval)
    engine_command(app, "cordsnet-eigs")(cordsnet_eigs)
