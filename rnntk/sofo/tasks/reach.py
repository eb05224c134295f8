"""Reaching tasks for the two-link arm: ``double-reach`` and ``single-reach`` (SOFO).

Every constant follows the upstream motor task (see the method note). Time in seconds;
event times are rounded to the nearest step (upstream truncates, e.g. 0.7 s at 2 ms → 349).

double reach, 6 input channels, T = duration/dt steps:
  go1 ~ 0.2 + U(0, 0.4) s (upstream's comment says "exponential, mean 300 ms"; its code
  draws this uniform); go2 = go1 + 0.7 s. Two targets, each central spot + r(cos φ, sin φ),
  φ ~ U(−36°, 216°), r ~ U(0.20, 0.50) m (about 13% lie beyond reach, |p| > 0.6 m: kept, and
  counted in the trial table).
  inputs: t < go1: (1, 1, t1x, t1y, t2x, t2y); go1 ≤ t < go2: (0, 1, 0, 0, 0, 0); then 0.
  targets (x, y, vx, vy): the central spot while t < go1 (weight 1); target 1 for
  go1 + 0.6 s < t ≤ go2 (weight 4); target 2 for t > go2 + 0.6 s (weight 4); weight 0
  otherwise. Velocity targets are 0.
single reach, 3 inputs: idle U(0.1, 0.5) s with input (1, central spot), preparation
  U(0.2, 0.8) s with input (1, target), then movement (input 0). Weight 1 on the central
  spot until go, 0 for 0.6 s, then 4 on the target.
Loss (upstream ``squared_loss``): L = (10/T) Σ_t (1/B) Σ_b w_tb (‖p − p*‖² + ‖ṗ‖²), i.e.
:class:`rnntk.sofo.optimizer.MSE` with scale 10/T on the 4 hand outputs.
"""

from __future__ import annotations

import torch

from rnntk.core.trials import TrialBatch
from rnntk.sofo.models import arm as _arm
from rnntk.sofo.models.arm import central_spot

REACH_MAX = 0.6  # m: L1 + L2


def _targets(batch: int, generator: torch.Generator | None, dtype: torch.dtype) -> torch.Tensor:
    cx, cy = central_spot()
    phi = torch.deg2rad(-36.0 + 252.0 * torch.rand(batch, generator=generator, dtype=torch.float64))
    r = 0.20 + 0.30 * torch.rand(batch, generator=generator, dtype=torch.float64)
    return torch.stack([cx + r * torch.cos(phi), cy + r * torch.sin(phi)], dim=-1).to(dtype)


def _steps(seconds: torch.Tensor, dt: float) -> torch.Tensor:
    return torch.round(seconds / dt).long()


def double_reach_trials(
    batch: int, *, dt: float = 0.002, duration: float = 2.0, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> TrialBatch:
    """Sample ``batch`` double-reach trials: inputs (B, T, 6), targets (B, T, 4), mask (B, T)."""
    T = int(round(duration / dt))
    go1_s = 0.2 + 0.4 * torch.rand(batch, generator=generator, dtype=torch.float64)
    go2_s = go1_s + 0.7
    tg1 = _targets(batch, generator, dtype)
    tg2 = _targets(batch, generator, dtype)
    g1, g2, hold = _steps(go1_s, dt), _steps(go2_s, dt), int(round(0.6 / dt))
    t = torch.arange(T)[None, :]
    prep = t < g1[:, None]
    mid = (t >= g1[:, None]) & (t < g2[:, None])
    u = torch.zeros(batch, T, 6, dtype=dtype)
    u[..., 0] = prep.to(dtype)
    u[..., 1] = (prep | mid).to(dtype)
    u[..., 2:] = prep[..., None].to(dtype) * torch.cat([tg1, tg2], -1)[:, None, :]
    ph1 = (t > (g1 + hold)[:, None]) & (t <= g2[:, None])
    ph2 = t > (g2 + hold)[:, None]
    reach_mask = torch.stack([ph1, ph2], 1)  # (B, 2, T): the two hold periods
    w = prep.to(dtype) + 4.0 * ph1.to(dtype) + 4.0 * ph2.to(dtype)
    cx, cy = central_spot()
    pos = torch.tensor([cx, cy], dtype=dtype).expand(batch, T, 2).clone()
    pos = torch.where(ph1[..., None], tg1[:, None, :], pos)
    pos = torch.where(ph2[..., None], tg2[:, None, :], pos)
    targets = torch.cat([pos, torch.zeros(batch, T, 2, dtype=dtype)], -1)
    table = {
        "go1_s": go1_s,
        "go2_s": go2_s,
        "target1_x": tg1[:, 0],
        "target1_y": tg1[:, 1],
        "target2_x": tg2[:, 0],
        "target2_y": tg2[:, 1],
        "unreachable1": tg1.norm(dim=-1) > REACH_MAX,
        "unreachable2": tg2.norm(dim=-1) > REACH_MAX,
    }
    extra = {"hold_masks": reach_mask, "hold_targets": torch.stack([tg1, tg2], 1)}
    return TrialBatch(u, targets, w, table, dt=dt, extra=extra)


def single_reach_trials(
    batch: int, *, dt: float = 0.002, duration: float = 2.0, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> TrialBatch:
    """Sample ``batch`` single-reach trials: inputs (B, T, 3), targets (B, T, 4), mask (B, T)."""
    T = int(round(duration / dt))
    idle_s = 0.1 + 0.4 * torch.rand(batch, generator=generator, dtype=torch.float64)
    go_s = idle_s + 0.2 + 0.6 * torch.rand(batch, generator=generator, dtype=torch.float64)
    tg = _targets(batch, generator, dtype)
    i1, go, hold = _steps(idle_s, dt), _steps(go_s, dt), int(round(0.6 / dt))
    t = torch.arange(T)[None, :]
    idle = t < i1[:, None]
    prep = (t >= i1[:, None]) & (t < go[:, None])
    cx, cy = central_spot()
    centre = torch.tensor([cx, cy], dtype=dtype)
    u = torch.zeros(batch, T, 3, dtype=dtype)
    u[..., 0] = (idle | prep).to(dtype)
    u[..., 1:] = idle[..., None].to(dtype) * centre + prep[..., None].to(dtype) * tg[:, None, :]
    move = t > (go + hold)[:, None]
    w = (t < go[:, None]).to(dtype) + 4.0 * move.to(dtype)
    pos = torch.where(move[..., None], tg[:, None, :], centre.expand(batch, T, 2))
    targets = torch.cat([pos, torch.zeros(batch, T, 2, dtype=dtype)], -1)
    table = {"idle_s": idle_s, "go_s": go_s, "target_x": tg[:, 0], "target_y": tg[:, 1], "unreachable": tg.norm(dim=-1) > REACH_MAX}
    extra = {"hold_masks": move[:, None, :], "hold_targets": tg[:, None, :]}
    return TrialBatch(u, targets, w, table, dt=dt, extra=extra)


def loss_scale(steps: int) -> float:
    """Upstream's loss scale 10/T."""
    return 10.0 / steps


SUCCESS_RADIUS = 0.02  # m: a hold counts as a success when the hand ends it this close


def reach_errors(hand: torch.Tensor, hold_masks: torch.Tensor, hold_targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Task-level error of each reach: the hand's distance to its target.

    hand: (B, T, ≥2) hand position (m) after each step; hold_masks: (B, R, T) bool, the hold
    period of reach r (loss weight 4 on target r); hold_targets: (B, R, 2) m.
    Returns per trial and reach (B, R): ``end`` (distance at the last step of the hold, m),
    ``mean`` (distance averaged over the hold, m), ``reachable`` (target within L1 + L2).
    """
    pos = hand[..., :2].to(torch.float64)
    tg = hold_targets.to(pos)
    m = hold_masks.to(pos.device)
    dist = (pos[:, None, :, :] - tg[:, :, None, :]).norm(dim=-1)  # (B, R, T)
    T = m.shape[-1]
    steps = torch.arange(T, device=m.device)
    last = torch.where(m, steps, torch.full_like(steps, -1)).amax(-1)  # (B, R) last step of each hold
    end = dist.gather(-1, last.clamp_min(0)[..., None])[..., 0]
    mf = m.to(pos)
    mean = (dist * mf).sum(-1) / mf.sum(-1).clamp_min(1.0)
    return {"end": end, "mean": mean, "reachable": tg.norm(dim=-1) <= REACH_MAX}


def reach_summary(err: dict[str, torch.Tensor]) -> dict[str, float]:
    """Medians over the reachable targets (m) of :func:`reach_errors`, per reach, and
    ``reach_success`` = fraction of reachable holds that end within 2 cm of the target.

    Keys: ``reach_error_hold{r}`` (end of hold r), ``reach_error_hold{r}_mean`` (averaged over
    the hold), for r = 1..R; ``reach_error`` (end of hold, all reaches); ``reach_success``.
    Unreachable targets (about 13%) are left out: no network can end within 2 cm of them.
    """
    out: dict[str, float] = {}
    ok = err["reachable"]
    R = ok.shape[1]
    nan = float("nan")
    for r in range(R):
        sel = ok[:, r]
        out[f"reach_error_hold{r + 1}"] = float(err["end"][sel, r].median()) if bool(sel.any()) else nan
        out[f"reach_error_hold{r + 1}_mean"] = float(err["mean"][sel, r].median()) if bool(sel.any()) else nan
    if bool(ok.any()):
        out["reach_error"] = float(err["end"][ok].median())
        out["reach_success"] = float((err["end"][ok] <= SUCCESS_RADIUS).double().mean())
    else:
        out["reach_error"], out["reach_success"] = nan, nan
    return out


def _min_jerk(s: torch.Tensor) -> torch.Tensor:
    s = s.clamp(0.0, 1.0)
    return s**3 * (10 - 15 * s + 6 * s * s)


def scripted_reach(trials: TrialBatch, move_time: float = 0.5) -> torch.Tensor:
    """Hand path (B, T, 4) of an ideal computed-torque controller on the discrete arm: the
    reference for the loss floor (what a network that reaches every reachable target scores).

    After each go cue the joint angles follow a minimum-jerk path of ``move_time`` s to the
    inverse kinematics of the next target (unreachable targets: the nearest reachable point);
    torques come from inverse dynamics so that the Euler-integrated arm tracks that path
    exactly (deadbeat: θ_{t+2} = θ_ref(t+2)). Same output convention as the network: the hand
    after each step. Float64.
    """
    assert trials.dt is not None, "reach trials carry their dt"
    dt = float(trials.dt)
    B, T = trials.batch, trials.steps
    tab = trials.table
    if "go1_s" in tab:
        gos = [_steps(tab["go1_s"], dt), _steps(tab["go2_s"], dt)]
    else:
        gos = [_steps(tab["go_s"], dt)]
    tgs = trials.extra["hold_targets"].to(torch.float64)
    theta, omega = _arm.start_state(B, torch.float64)
    way, prev = [theta], theta
    for r in range(len(gos)):
        q = _arm.inverse_kinematics(tgs[:, r])
        q = q + 2 * torch.pi * torch.round((prev - q) / (2 * torch.pi))  # the nearest equivalent angles
        way.append(q)
        prev = q
    t = torch.arange(T + 2, dtype=torch.float64)[None, :, None]
    ref = way[0][:, None, :].expand(B, T + 2, 2)
    for r, g in enumerate(gos):
        s = _min_jerk((t - 2 - g[:, None, None].to(torch.float64)) / (move_time / dt))  # still at rest after step g
        ref = ref + s * (way[r + 1] - way[r])[:, None, :]
    hands = []
    for k in range(T):
        nxt = theta + dt * omega
        want = (ref[:, k + 2] - nxt) / dt
        tq = _arm.inverse_dynamics(theta, omega, (want - omega) / dt)
        theta, omega = _arm.arm_step(theta, omega, tq, dt)
        hands.append(_arm.hand(theta, omega))
    return torch.stack(hands, 1)


def hand_figure(hand: torch.Tensor, trials: TrialBatch | torch.Tensor, err: dict[str, torch.Tensor], n_show: int = 8, title: str = "reach") -> object:
    """Matplotlib figure of the first ``n_show`` hand paths (B, T, ≥2) with each trial's
    targets (``trials``: the batch, or its hold targets [B, R, 2] in m) in its colour, numbered in reach order, each inside a 2 cm success circle (solid:
    the hold ended inside it; dashed: missed; grey cross: beyond reach). ``err`` is
    :func:`reach_errors` of the same trials; the title gives the medians over all of them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    cols = plt.cm.tab10.colors  # pyright: ignore[reportAttributeAccessIssue]  (tab10 is a ListedColormap)
    tg = (trials.extra["hold_targets"] if isinstance(trials, TrialBatch) else trials).cpu()
    end, ok = err["end"].cpu(), err["reachable"].cpu()
    R = tg.shape[1]
    cx, cy = central_spot()
    ax.add_patch(Circle((0.0, 0.0), REACH_MAX, fill=False, ls=":", lw=0.8, color="0.6"))
    ax.plot([cx], [cy], "k+", ms=8)
    for i in range(min(n_show, hand.shape[0])):
        c = cols[i % 10]
        ax.plot(hand[i, :, 0], hand[i, :, 1], color=c, lw=1.1)
        ax.plot(hand[i, -1, 0], hand[i, -1, 1], ".", color=c, ms=5)
        for r in range(R):
            x, y = float(tg[i, r, 0]), float(tg[i, r, 1])
            if not bool(ok[i, r]):
                ax.plot([x], [y], "x", color="0.5", ms=6)
            hit = bool(ok[i, r]) and float(end[i, r]) <= SUCCESS_RADIUS
            ax.add_patch(Circle((x, y), SUCCESS_RADIUS, fill=hit, alpha=0.35 if hit else 1.0, ec=c, fc=c, ls="-" if hit else "--", lw=1.0))
            if R > 1:
                ax.annotate(str(r + 1), (x, y), xytext=(4, 4), textcoords="offset points", color=c, fontsize=8, weight="bold")
    summ = reach_summary(err)
    parts = [f"hold {r + 1} {100 * summ[f'reach_error_hold{r + 1}']:.1f} cm" for r in range(R)]
    ax.set_title(
        f"{title}: median end-of-hold error {', '.join(parts)}\nsuccess (within 2 cm) {100 * summ['reach_success']:.0f}% of reachable holds; circles 2 cm",
        fontsize=8,
    )
    ax.set_aspect("equal")
    ax.set_xlim(-0.62, 0.62)
    ax.set_ylim(-0.3, 0.75)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    return fig
