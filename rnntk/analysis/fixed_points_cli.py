"""``rnntk fixed-points RUN_DIR|MODEL.pt|run.h5``: fixed and slow points of any trained model of
the contract, with stability, to a new run folder (registered by :mod:`rnntk.analysis.cli`).

Candidates are states of the model's own trajectories: by default generated here by stepping
the model from random states (``--init-scale``) and the zero state under the input condition
(or a ``--drive`` of random inputs, to visit more of the state space); ``--traces NAME`` samples
them from a stored ``/traces/NAME`` of the run instead (it must hold the model's state, trial x
time x n: activity traces are often rates phi(x), not states). A stack of recurrent layers
(online-lru) is analysed layer by layer, each at the constant input it settles to under the
model's input condition.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rnntk.engine.errors import UserError
from rnntk.engine.limits import check_fits, nbytes_of
from rnntk.engine.options import RunOptions, require_positive

O = typer.Option
S = "Search"
C = "Candidates"


class Drive(str, Enum):
    const = "const"
    bits = "bits"
    noise = "noise"


def parse_input(text: str, n_in: int) -> list[float]:
    """``zero`` or comma-separated floats, one per model input -> the constant input."""
    import math

    t = text.strip().lower()
    if t in ("zero", "0", ""):
        return [0.0] * n_in
    try:
        vals = [float(v) for v in t.split(",")]
    except ValueError:
        raise UserError(f"bad --input '{text}': use zero or {n_in} comma-separated numbers") from None
    if len(vals) != n_in:
        raise UserError(f"bad --input '{text}': the model has {n_in} input(s), got {len(vals)} number(s)")
    if not all(math.isfinite(v) for v in vals):
        raise UserError(f"bad --input '{text}': every value must be finite")
    return vals


def read_state_traces(run_file: Path, name: str, n: int) -> Any:
    """``/traces/<name>`` of ``run_file`` as a float64 tensor ``(trial, time, n)``."""
    import h5py
    import torch

    if not run_file.is_file():
        raise UserError(f"--traces {name}: no run.h5 next to the model ({run_file})")
    try:
        with h5py.File(run_file, "r") as f:
            g: Any = f.get("traces")
            if g is None or name not in g:
                have = ", ".join(sorted(g)) if g is not None else "none"
                raise UserError(f"--traces {name}: {run_file} has no /traces/{name} (traces: {have})")
            arr = g[name][()]
    except OSError as e:
        raise UserError(f"--traces {name}: cannot read {run_file} ({e})") from None
    if arr.ndim != 3 or arr.shape[-1] != n or arr.shape[0] * arr.shape[1] == 0:
        raise UserError(f"--traces {name}: shape {tuple(arr.shape)} is not (trial, time, n = {n})")
    t = torch.as_tensor(arr, dtype=torch.float64)
    if not torch.isfinite(t).all():
        raise UserError(f"--traces {name}: holds non-finite values")
    return t


def fixed_points_cmd(
    opts: RunOptions,
    model_path: Annotated[
        Path,
        typer.Argument(
            metavar="RUN_DIR|MODEL.pt|run.h5", help="A run folder, its run.h5, or an rnntk checkpoint (model.pt, ckpt-last.pt).", show_default=False
        ),
    ],
    candidates: Annotated[int, O("--candidates", min=1, help="Candidate states, optimised as one batch.", rich_help_panel=C)] = 1024,
    noise: Annotated[float, O("--noise", min=0.0, help="Std of Gaussian noise added to the sampled states.", rich_help_panel=C)] = 0.5,
    input_text: Annotated[
        str, O("--input", help="Constant input condition: zero, or comma-separated values (one per model input).", rich_help_panel=C)
    ] = "zero",
    traces: Annotated[
        Optional[str],
        O("--traces", help="Sample candidates from this stored /traces/NAME (trial x time x n, the model's state).", rich_help_panel=C, show_default=False),
    ] = None,
    n_traj: Annotated[int, O("--n-traj", min=1, help="Generated trajectories to sample from.", rich_help_panel=C)] = 64,
    steps: Annotated[int, O("--steps", min=1, help="Steps per generated trajectory.", rich_help_panel=C)] = 200,
    drive: Annotated[
        Drive, O("--drive", help="Inputs of the generated trajectories: const (the --input condition), bits or noise.", rich_help_panel=C)
    ] = Drive.const,
    init_scale: Annotated[float, O("--init-scale", min=0.0, help="Std of the random initial states of the generated trajectories.", rich_help_panel=C)] = 1.0,
    tol_q: Annotated[float, O("--tol-q", help="q below which a point is fixed.", rich_help_panel=S)] = 1e-12,
    tol_slow: Annotated[float, O("--tol-slow", help="q up to which a point is kept as a slow point.", rich_help_panel=S)] = 1e-6,
    tol_unique: Annotated[float, O("--tol-unique", help="Distance under which two points are one.", rich_help_panel=S)] = 1e-3,
    outlier_scale: Annotated[
        float,
        O("--outlier-scale", min=0.0, help="Drop points farther than this many mean candidate distances from their centroid (0: keep all).", rich_help_panel=S),
    ] = 10.0,
    max_iters: Annotated[int, O("--max-iters", min=0, help="Adam steps before the Newton polish.", rich_help_panel=S)] = 25,
    lr: Annotated[float, O("--lr", help="Adam learning rate.", rich_help_panel=S)] = 1.0,
    newton_steps: Annotated[int, O("--newton-steps", min=0, help="Newton / Levenberg-Marquardt iterations at most.", rich_help_panel=S)] = 50,
    time: Annotated[
        Optional[str], O("--time", help="discrete (x = step(x, u)) or continuous (rhs = 0); default: the model's own.", rich_help_panel=S, show_default=False)
    ] = None,
) -> None:
    """Fixed and slow points of a trained rnntk network, with stability, to run.h5, a CSV and a PNG.

    Any model of the contract (floss, selftest, sofo-train motor and Kalman networks, each layer
    of online-lru, ode-train rate-rnn, CordsNet). Candidates are sampled from the model's own
    trajectories with noise; Adam on q = |G(x)|^2/2 (FixedPointFinder's defaults), then a
    batched Newton polish to q near machine precision (float64); eigenvalues of every point's
    Jacobian label it stable, saddle-k or unstable (rotational when the leading pair is complex).
    Example: [bold]rnntk fixed-points runs/selftest-0 --input 0.5[/bold]."""
    import math

    import torch

    from rnntk.analysis.source import load_trained
    from rnntk.core.models import as_recurrent_layers
    from rnntk.engine.device import resolve_device

    for name, v in (
        ("tol-q", tol_q),
        ("tol-slow", tol_slow),
        ("tol-unique", tol_unique),
        ("noise", noise),
        ("init-scale", init_scale),
        ("outlier-scale", outlier_scale),
    ):
        if not math.isfinite(v):
            raise UserError(f"bad --{name} {v}: must be a finite number")
    require_positive(tol_q=tol_q, tol_unique=tol_unique, lr=lr)
    if tol_slow < tol_q:
        raise UserError(f"bad --tol-slow {tol_slow:g}: must be >= --tol-q {tol_q:g}")
    if time not in (None, "discrete", "continuous"):
        raise UserError(f"bad --time '{time}': discrete or continuous")
    model, name, model_path = load_trained(model_path)
    try:
        stack = as_recurrent_layers(model)
        layers = stack.layers()
    except TypeError as e:
        raise UserError(f"{model_path} holds a {name} model, not a recurrent network rnntk can analyse ({e})") from None
    if time == "continuous" and any(m.time != "continuous" for _, m in layers):
        raise UserError(f"--time continuous: {name} is a discrete-time model (it has no rhs); use --time discrete")
    u_const = parse_input(input_text, stack.n_in)
    stacked = len(layers) > 1 or layers[0][0] != ""
    if traces is not None and stacked:
        raise UserError("--traces: a stack of layers has one state per layer; generated trajectories are used for each")
    stored = read_state_traces(model_path.parent / "run.h5", traces, layers[0][1].n) if traces is not None else None
    n_max = max(m.n for _, m in layers)
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
    with opts.open_run(config={"model_path": str(model_path)}) as run:
        model = model.to(device=run.device, dtype=torch.float64)
        stack = as_recurrent_layers(model)
        layers = stack.layers()
        gen = run.generator
        dev, f64 = run.device, torch.float64
        stop_check = lambda: run.check_interrupt(checkpoint=False)  # noqa: E731
        u_model = torch.tensor(u_const, dtype=f64, device=dev)
        with torch.no_grad():
            if drive == Drive.const:
                u_traj = u_model.expand(n_traj, steps, stack.n_in)
            elif drive == Drive.bits:
                u_traj = torch.randint(0, 2, (n_traj, steps, stack.n_in), generator=gen).to(dev, f64)
            else:
                u_traj = torch.randn(n_traj, steps, stack.n_in, generator=gen).to(dev, f64)
            traj_inputs = stack.layer_inputs(u_traj) if stacked else [u_traj]
            cond_inputs = stack.layer_inputs(u_model.expand(1, max(steps, 1), stack.n_in)) if stacked else [u_model[None, None]]
        rows: list[str] = []
        final: dict[str, Any] = {}
        plots = []
        for lname, m in layers:
            i = [ln for ln, _ in layers].index(lname)
            u_cond = cond_inputs[i][0, -1]  # the constant input this layer settles to
            if stored is not None:
                X = stored.to(dev)
            else:
                X = _trajectories(m, traj_inputs[i], init_scale, gen, stop_check)
            flat = X.reshape(-1, m.n)
            pick = torch.randint(0, flat.shape[0], (candidates,), generator=gen).to(dev)
            x0 = flat[pick]
            res = _search(m, x0, u_cond, noise, gen, stop_check, time, tol_q, tol_slow, tol_unique, outlier_scale, max_iters, lr, newton_steps)
            if res is None:
                raise UserError(f"{name}{' ' + lname if lname else ''}: the sampled states are not finite (the model's trajectories blow up)")
            fp = res
            grp = f"fixed_points/{lname}" if stacked else "fixed_points"
            _write(run, grp, fp, m)
            kinds = {k: fp.kind.count(k) for k in sorted(set(fp.kind))}
            n_stable = int((fp.is_stable & ~fp.is_slow).sum())
            info = dict(
                n=m.n,
                time=fp.time,
                n_points=len(fp),
                n_stable=n_stable,
                n_slow=int(fp.is_slow.sum()),
                kinds=kinds,
                max_q=float(fp.q.max()) if len(fp) else None,
                adam_iters=fp.stats.get("adam_iters"),
                newton_iters=fp.stats.get("newton_iters"),
            )
            final[lname or name] = info
            for j in range(len(fp)):
                lead = complex(fp.eigvals[j, 0]) if m.n else complex(0)
                row = f"{j},{fp.kind[j]},{int(fp.n_unstable[j])},{int(fp.rotational[j])},{int(fp.is_slow[j])},{float(fp.q[j]):.6e},{lead.real:.8g},{lead.imag:.8g},{abs(lead):.8g}"
                rows.append((f"{lname}," if stacked else "") + row)
            plots.append((lname, X, fp))
            summary = ", ".join(f"{v} {k}" for k, v in kinds.items()) or "none"
            print(f"{name}{' ' + lname if lname else ''}: {len(fp)} point(s) ({summary}; {info['n_slow']} slow), N = {m.n}, {fp.time} time", file=sys.stderr)
        header = ("layer," if stacked else "") + "index,kind,n_unstable,rotational,is_slow,q,lambda1_real,lambda1_imag,lambda1_abs"
        from rnntk.engine.files import write_text_atomic

        write_text_atomic(run.path("fixed_points.csv"), "\n".join([header] + rows) + "\n")
        run.figure(_figure(plots, name), "fixed_points")
        if stacked:
            run.finish(model_class=name, layers=final)
        else:
            run.finish(model_class=name, **next(iter(final.values())))


def _trajectories(m: Any, u: Any, init_scale: float, gen: Any, check: Any) -> Any:
    """States ``(n_traj, steps, n)`` of ``m`` under inputs ``u (n_traj, steps, n_in)`` from
    N(0, init_scale^2) initial states (the first trajectory from zero)."""
    import torch

    n_traj, steps = u.shape[0], u.shape[1]
    x = torch.randn(n_traj, m.n, generator=gen).to(u.device, u.dtype) * init_scale
    x[0] = 0
    xs = []
    with torch.no_grad():
        for t in range(steps):
            x = m.step(x, u[:, t])
            xs.append(x)
            if t % 100 == 0:
                check()
    return torch.stack(xs, 1)


def _search(
    m: Any,
    x0: Any,
    u: Any,
    noise: float,
    gen: Any,
    check: Any,
    time: Optional[str],
    tol_q: float,
    tol_slow: float,
    tol_unique: float,
    outlier_scale: float,
    max_iters: int,
    lr: float,
    newton_steps: int,
) -> Any:
    import torch

    from rnntk.analysis.fixed_points import fixed_points

    ok = torch.isfinite(x0).all(-1)
    if not bool(ok.any()):
        return None
    return fixed_points(
        m,
        x0[ok],
        u,
        time=time,
        noise=noise,
        tol_q=tol_q,
        tol_slow=tol_slow,
        tol_unique=tol_unique,
        outlier_distance_scale=outlier_scale,
        max_iters=max_iters,
        lr=lr,
        newton_steps=newton_steps,
        keep_jacobians=True,
        generator=gen,
        check=check,
    )


def _write(run: Any, grp: str, fp: Any, m: Any) -> None:
    """``/results/<grp>/{xstar, q, eigvals, n_unstable, kind, input, is_slow, rotational, n_iters}``."""
    import h5py
    import numpy as np

    unit = "per step (d step/dx)" if fp.time == "discrete" else "1/tau (dF/dx, tau dx/dt = F)"
    crit = "|lambda| > 1" if fp.time == "discrete" else "Re lambda > 0"
    run.result(f"{grp}/xstar", fp.xstar, description="fixed and slow points (M, n)", time=fp.time)
    run.result(f"{grp}/q", fp.q, description="q = |G(x)|^2 / 2 at each point (G = step - x discrete, rhs continuous)")
    run.result(f"{grp}/eigvals", fp.eigvals, description=f"Jacobian eigenvalues (M, n), leading first ({unit})", units=unit, time=fp.time)
    run.result(f"{grp}/n_unstable", fp.n_unstable, description=f"eigenvalues with {crit}")
    run.result(f"{grp}/kind", np.array(fp.kind, dtype=h5py.string_dtype()), description="stable, saddle-k or unstable")
    run.result(f"{grp}/input", fp.input, description="the constant input of each point (M, n_in)")
    run.result(f"{grp}/is_slow", fp.is_slow, description="q above tol_q: a slow point")
    run.result(f"{grp}/rotational", fp.rotational, description="the leading eigenvalue is complex")
    run.result(f"{grp}/n_iters", fp.n_iters, description="Adam + Newton iterations of the candidate that gave the point")


def _figure(plots: list[tuple[str, Any, Any]], name: str) -> Any:
    """Per layer: trajectories in their top-3 principal components, the points coloured by
    stability (stable black, saddle red, unstable orange; slow points hollow), unstable
    directions (real parts of the eigenvectors with unstable eigenvalues) as segments."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    fig = plt.figure(figsize=(6 * len(plots), 5.5))
    for p, (lname, X, fp) in enumerate(plots):
        Xn = X.detach().cpu().double().reshape(-1, X.shape[-1]).numpy()
        mu = Xn.mean(0)
        k = min(3, Xn.shape[1])
        _, _, Vt = np.linalg.svd(Xn[:: max(1, len(Xn) // 20000)] - mu, full_matrices=False)
        P = Vt[:k].T  # (n, k)
        ax = fig.add_subplot(1, len(plots), p + 1, projection="3d" if k == 3 else None)

        def proj(a: Any, mu: Any = mu, P: Any = P, k: int = k) -> Any:
            z = (np.asarray(a) - mu) @ P
            return np.pad(z, ((0, 0), (0, 3 - k)))

        tr = X.detach().cpu().double().numpy()
        for t in tr[: min(30, len(tr))]:
            z = proj(t)
            ax.plot(*(z.T if k == 3 else z.T[:2]), color="tab:blue", lw=0.5, alpha=0.4)
        span = float(np.ptp(proj(Xn), axis=0).max() or 1.0)
        xs = proj(fp.xstar.detach().cpu().numpy()) if len(fp) else np.zeros((0, 3))
        for j in range(len(fp)):
            nu = int(fp.n_unstable[j])
            col = "black" if nu == 0 else ("tab:orange" if nu == m_n(fp) else "tab:red")
            face = "none" if bool(fp.is_slow[j]) else col
            ax.scatter(*(xs[j : j + 1].T if k == 3 else xs[j : j + 1].T[:2]), s=30, facecolors=face, edgecolors=col, zorder=5)
            if nu and fp.jacobians is not None:
                lam, V = torch.linalg.eig(fp.jacobians[j].detach().cpu())
                unst = lam.abs() > 1 if fp.time == "discrete" else lam.real > 0
                for v in V[:, unst].T.real.numpy():
                    d = (v / (np.linalg.norm(v) or 1.0)) @ P
                    d = np.pad(d, (0, 3 - k)) * 0.15 * span
                    seg = np.stack([xs[j] - d, xs[j] + d])
                    ax.plot(*(seg.T if k == 3 else seg.T[:2]), color=col, lw=1.2)
        ax.set_title(f"{name}{' ' + lname if lname else ''}: {len(fp)} point(s)", fontsize=9)
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
        if k == 3:
            ax.set_zlabel("PC3")  # type: ignore[attr-defined]
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", ls="", color="black", label="stable"),
        Line2D([], [], marker="o", ls="", color="tab:red", label="saddle (unstable directions drawn)"),
        Line2D([], [], marker="o", ls="", color="tab:orange", label="unstable"),
        Line2D([], [], marker="o", ls="", markerfacecolor="none", color="0.3", label="slow point"),
        Line2D([], [], color="tab:blue", lw=0.8, label="trajectories"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=7)
    return fig


def m_n(fp: Any) -> int:
    """State size of the points of ``fp``."""
    return int(fp.xstar.shape[-1])
