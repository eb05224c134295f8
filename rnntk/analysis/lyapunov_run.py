"""``rnntk lyapunov MODEL``: the Lyapunov spectrum of a trained model of the contract (registered by
:mod:`rnntk.analysis.cli`; options: :class:`rnntk.analysis.config.LyapunovConfig`; results,
CSV rows and figure: :mod:`rnntk.analysis.lyapunov_report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnntk.analysis.config import LyapunovConfig
from rnntk.engine.errors import NonFiniteError, UserError
from rnntk.engine.limits import check_fits, nbytes_of
from rnntk.engine.options import RunOptions


def lyapunov_cmd(opts: RunOptions, cfg: LyapunovConfig, model_path: Path) -> None:
    """Lyapunov spectrum of a trained rnntk recurrent network, to run.h5, a CSV and a PNG.

    Any model of the contract: VanillaRNN (floss), LeakyRNN (selftest), the network part of the
    motor RNN and the Kalman RNN (sofo-train), each recurrent layer of an online-lru stack (LRU,
    linear RNN, GRU), the rate-RNN field (ode-train --task rate-rnn), CordsNet. Tangents: the
    model's analytic one where it has one, else forward-mode autograd batched over the k
    directions. Continuous-time models run by their Euler step (dt): exponents per step and per
    second."""
    import torch

    from rnntk.analysis.lyapunov_report import finish, write_layer
    from rnntk.analysis.source import load_trained, make_drive
    from rnntk.core.models import as_recurrent_layers
    from rnntk.engine.device import resolve_device, resolve_dtype

    model, name, model_path = load_trained(model_path)
    try:
        layers = as_recurrent_layers(model).layers()
    except TypeError as e:
        raise UserError(f"{model_path} holds a {name} model, not a recurrent rate network rnntk can analyse ({e})") from None
    hs = cfg.horizon_list
    dt_ = resolve_dtype(cfg.dtype)
    stacked = len(layers) > 1 or layers[0][0] != ""
    Ns = [m.n for _, m in layers]
    if cfg.k > max(Ns):
        raise UserError(f"bad --k {cfg.k}: the network has N = {max(Ns)} units" + (" in its largest layer" if stacked else ""))
    ks = [min(cfg.k, n) if cfg.k else n for n in Ns]
    n_traj, steps = cfg.n_traj, cfg.steps
    isz = torch.empty((), dtype=dt_).element_size()
    n_win = (steps - cfg.warmup) / cfg.t_ons + 2
    n_in = as_recurrent_layers(model).n_in
    need = nbytes_of(n_traj, steps, n_in, itemsize=isz) * (cfg.input_kind != "none" or stacked)  # the inputs
    for (_, m), kk in zip(layers, ks):
        need += (
            nbytes_of(n_traj, steps, m.n_in, itemsize=isz) * stacked  # a layer's inputs
            + nbytes_of(n_win, n_traj, kk, itemsize=isz) * 2  # log|R_ii| of every QR window, and their logs
            + nbytes_of(n_traj, m.n, kk, itemsize=isz) * 4
            + nbytes_of(m.n, m.n, len(hs) + 2, itemsize=8)  # bases, T_{t,0}, singular values
        )
    check_fits(
        need,
        resolve_device(opts.device),
        f"a spectrum of --k {max(ks)} over --steps {steps} for --n-traj {n_traj}",
        hint="use fewer --steps, a larger --tons, a smaller --k or --n-traj",
    )
    # what run.h5 gets per layer: exponents per trajectory, their mean and s.e.m. (twice for a
    # continuous model), the running estimate per QR window, the singular values at --horizons
    n_windows = (steps - cfg.warmup) // cfg.t_ons + 1
    results = sum(isz * kk * (n_traj + n_windows + 2 + 2 * (m.time == "continuous")) + 8 * len(hs) * (m.n + 1) for (_, m), kk in zip(layers, ks))
    with opts.open_run(config={"model_path": str(model_path)}) as run:
        run.before_compute(f"the Lyapunov spectrum (--k {max(ks)}, {n_traj} trajectories of {steps} steps)", model, results_bytes=results)
        model = model.to(device=run.device, dtype=dt_)
        stack = as_recurrent_layers(model)
        layers = stack.layers()
        gen = run.generator
        u = make_drive(cfg.input_kind, n_traj, steps, stack.n_in, generator=gen, device=run.device, dtype=dt_, zeros_for_none=stacked)
        stop_check = lambda: run.check_interrupt(checkpoint=False)  # noqa: E731  # a signal stops the spectrum within one step
        rows: list[str] = []
        final: dict[str, Any] = {}
        with torch.no_grad():
            inputs = stack.layer_inputs(u) if u is not None else [None] * len(layers)
            layers64, inputs64 = layers, inputs
            if hs:  # the long-term Jacobian in float64 (small singular values underflow in float32)
                import copy

                stack64 = as_recurrent_layers(copy.deepcopy(model).double())
                layers64 = stack64.layers()
                inputs64 = stack64.layer_inputs(u.double()) if u is not None else [None] * len(layers)
            for i, ((lname, m), kk) in enumerate(zip(layers, ks)):
                x0 = torch.randn(n_traj, m.n, generator=gen).to(run.device, dt_) * 0.1
                res, sv = _layer_spectrum(cfg, m, layers64[i][1], inputs[i], inputs64[i], kk, x0, hs, gen, stop_check, lname)
                write_layer(run, cfg, name, lname, m, res, sv, hs, kk, stacked, rows, final)
        finish(run, name, stacked, rows, final)


def _layer_spectrum(
    cfg: LyapunovConfig, m: Any, m64: Any, ul: Any, u64: Any, kk: int, x0: Any, hs: list[int], gen: Any, stop_check: Any, lname: str
) -> tuple[Any, Any]:
    """The spectrum of one layer (``res`` of :func:`lyapunov_spectrum`) and the singular values
    of its long-term Jacobian at ``hs`` (float64 copy ``m64``; None without horizons)."""
    import torch

    from rnntk.analysis.lyapunov import long_term_jacobian_singular_values, lyapunov_spectrum
    from rnntk.core.models import tangent

    def tan(x: Any, Q: Any, v: Any, m: Any = m) -> Any:
        return tangent(m, x, Q, v)

    res = lyapunov_spectrum(m.step, ul, kk, x0=x0, steps=cfg.steps, warmup=cfg.warmup, t_ons=cfg.t_ons, generator=gen, check=stop_check, tangent=tan)
    if not torch.isfinite(res.exponents).all():
        raise NonFiniteError(res.steps, "lyapunov_exponent", float("nan"), note="the dynamics exploded" + (f" in {lname}" if lname else ""))
    sv = None
    if hs:

        def tan64(x: Any, Q: Any, v: Any, m: Any = m64) -> Any:
            return tangent(m, x, Q, v)

        sv = long_term_jacobian_singular_values(m64.step, None if u64 is None else u64[:1], hs, x0=x0[:1], tangent=tan64, check=stop_check)
        if not torch.isfinite(sv).all():
            raise NonFiniteError(max(hs), "jac_singular_value", float("nan"), note="the long-term Jacobian overflowed")
    return res, sv
