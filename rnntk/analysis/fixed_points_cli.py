"""``rnntk fixed-points RUN_DIR|MODEL.pt|run.h5``: fixed and slow points of any trained model of
the contract, with stability, to a new run folder (registered by :mod:`rnntk.analysis.cli`;
options: :class:`rnntk.analysis.config.FixedPointsConfig`; what is written:
:mod:`rnntk.analysis.fixed_points_report`).

Candidates are states of the model's own trajectories: by default generated here by stepping
the model from random states (``--init-scale``) and the zero state under the input condition
(or a ``--drive`` of random inputs, to visit more of the state space); ``--traces NAME`` samples
them from a stored ``/traces/NAME`` of the run instead (it must hold the model's state, trial x
time x n: activity traces are often rates phi(x), not states). A stack of recurrent layers
(online-lru) is analysed layer by layer, each at the constant input it settles to under the
model's input condition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnntk.analysis.config import FixedPointsConfig
from rnntk.engine.errors import UserError
from rnntk.engine.limits import check_fits, nbytes_of
from rnntk.engine.options import RunOptions


def fixed_points_cmd(opts: RunOptions, cfg: FixedPointsConfig, model_path: Path) -> None:
    """Fixed and slow points of a trained rnntk network, with stability, to run.h5, a CSV and a PNG.

    Any model of the contract (floss, selftest, sofo-train motor and Kalman networks, each layer
    of online-lru, ode-train rate-rnn, CordsNet). Candidates are sampled from the model's own
    trajectories with noise; Adam on q = |G(x)|^2/2 (FixedPointFinder's defaults), then a
    batched Newton polish to q near machine precision (float64); eigenvalues of every point's
    Jacobian label it stable, saddle-k or unstable (rotational when the leading pair is complex).
    Example: [bold]rnntk fixed-points runs/selftest-0 --input 0.5[/bold]."""
    import torch

    from rnntk.analysis.fixed_points_report import write_figure_data, write_layer
    from rnntk.analysis.source import load_trained, make_drive, parse_input, read_state_traces, trajectories
    from rnntk.core.models import as_recurrent_layers
    from rnntk.engine.device import resolve_device
    from rnntk.engine.files import write_text_atomic

    model, name, model_path = load_trained(model_path)
    try:
        stack = as_recurrent_layers(model)
        layers = stack.layers()
    except TypeError as e:
        raise UserError(f"{model_path} holds a {name} model, not a recurrent network rnntk can analyse ({e})") from None
    if cfg.time == "continuous" and any(m.time != "continuous" for _, m in layers):
        raise UserError(f"--time continuous: {name} is a discrete-time model (it has no rhs); use --time discrete")
    u_const = parse_input(cfg.input_text, stack.n_in)
    stacked = len(layers) > 1 or layers[0][0] != ""
    if cfg.traces is not None and stacked:
        raise UserError("--traces: a stack of layers has one state per layer; generated trajectories are used for each")
    stored = read_state_traces(model_path.parent / "run.h5", cfg.traces, layers[0][1].n) if cfg.traces is not None else None
    n_max = max(m.n for _, m in layers)
    n_traj, steps, candidates = cfg.n_traj, cfg.steps, cfg.candidates
    need = (
        nbytes_of(n_traj, steps, n_max) * 2  # trajectories
        + nbytes_of(n_traj, steps, stack.n_in)
        + nbytes_of(candidates, n_max, 24)  # candidates and Adam/Newton state
        + nbytes_of(min(candidates, 4096) ** 2)  # the uniqueness rounds
        + nbytes_of(max(1, min(candidates, (1 << 28) // (32 * n_max * n_max) or 1)), n_max, n_max) * 6  # a chunk of dense Jacobians and their solves
    )
    check_fits(
        need,
        resolve_device(opts.device),
        f"--candidates {candidates} of N = {n_max} over --n-traj {n_traj} x --steps {steps}",
        hint="use fewer --candidates/--n-traj/--steps",
    )
    # what run.h5 gets per layer, at most (every candidate a distinct point): the points, their
    # q, Jacobian eigenvalues (complex), input, labels and flags; the figure's PCA projection of
    # <= 30 trajectories and the unstable directions (<= n per point)
    t_traj, t_len = (stored.shape[0], stored.shape[1]) if stored is not None else (n_traj, steps)
    results = sum(candidates * (24 * m.n + 8 * stack.n_in + 42 + 32 * m.n) + 8 * 4 * m.n + 24 * min(30, t_traj) * t_len for _, m in layers)
    with opts.open_run(config={"model_path": str(model_path)}) as run:
        run.before_compute(f"the fixed-point search ({candidates} candidates from {t_traj} trajectories of {t_len} steps)", model, results_bytes=results)
        model = model.to(device=run.device, dtype=torch.float64)
        stack = as_recurrent_layers(model)
        layers = stack.layers()
        gen = run.generator
        dev, f64 = run.device, torch.float64
        stop_check = lambda: run.check_interrupt(checkpoint=False)  # noqa: E731
        u_model = torch.tensor(u_const, dtype=f64, device=dev)
        with torch.no_grad():
            u_traj = make_drive(cfg.drive, n_traj, steps, stack.n_in, generator=gen, device=dev, dtype=f64) if cfg.drive != "const" else None
            if u_traj is None:  # --drive const: the input condition throughout
                u_traj = u_model.expand(n_traj, steps, stack.n_in)
            traj_inputs = stack.layer_inputs(u_traj) if stacked else [u_traj]
            cond_inputs = stack.layer_inputs(u_model.expand(1, max(steps, 1), stack.n_in)) if stacked else [u_model[None, None]]
        rows: list[str] = []
        final: dict[str, Any] = {}
        for i, (lname, m) in enumerate(layers):
            u_cond = cond_inputs[i][0, -1]  # the constant input this layer settles to
            X = stored.to(dev) if stored is not None else trajectories(m, traj_inputs[i], cfg.init_scale, gen, stop_check)
            flat = X.reshape(-1, m.n)
            pick = torch.randint(0, flat.shape[0], (candidates,), generator=gen).to(dev)
            fp = _search(m, flat[pick], u_cond, cfg, gen, stop_check)
            if fp is None:
                raise UserError(f"{name}{' ' + lname if lname else ''}: the sampled states are not finite (the model's trajectories blow up)")
            write_layer(run, name, lname, m, fp, stacked, rows, final)
            write_figure_data(run, f"fixed_points/{lname}" if stacked else "fixed_points", X, fp)
        header = ("layer," if stacked else "") + "index,kind,n_unstable,rotational,is_slow,q,lambda1_real,lambda1_imag,lambda1_abs"
        write_text_atomic(run.path("fixed_points.csv"), "\n".join([header] + rows) + "\n")
        run.annotate(model=name)
        run.annotate("results/fixed_points", layers=[ln for ln, _ in layers])  # what the figure maker reads
        run.figures()  # fixed_points, from run.h5 (rnntk.analysis.figures)
        if stacked:
            run.finish(model_class=name, layers=final)
        else:
            run.finish(model_class=name, **next(iter(final.values())))


def _search(m: Any, x0: Any, u: Any, cfg: FixedPointsConfig, gen: Any, check: Any) -> Any:
    """:func:`rnntk.analysis.fixed_points.fixed_points` from the finite candidates of ``x0 (c, n)``
    at the constant input ``u``; None when no candidate is finite."""
    import torch

    from rnntk.analysis.fixed_points import fixed_points

    ok = torch.isfinite(x0).all(-1)
    if not bool(ok.any()):
        return None
    return fixed_points(
        m,
        x0[ok],
        u,
        time=cfg.time,
        noise=cfg.noise,
        tol_q=cfg.tol_q,
        tol_slow=cfg.tol_slow,
        tol_unique=cfg.tol_unique,
        outlier_distance_scale=cfg.outlier_scale,
        max_iters=cfg.max_iters,
        lr=cfg.lr,
        newton_steps=cfg.newton_steps,
        keep_jacobians=True,
        generator=gen,
        check=check,
    )
