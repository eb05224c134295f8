"""Leading eigenvalues of conv operators: dense LAPACK vs rnntk's Arnoldi vs ARPACK, side by side.

Part 1 — N in {1000, 2048, 4096} (random 3x3 convs x2, disc-like spectra, float64): time of
dense ``eig``, Arnoldi (m=300, CGS2, f64) and ARPACK (k=10, LM and LR); error of the top-10 by
|lambda| and of max Re lambda against dense. Target: N=4096, Arnoldi's top-10 within 1e-8 of
dense at >= 10x less time.

Part 2 — the four R8 recurrent layer sizes (64x56x56 ... 512x7x7, default-init convs x2):
Arnoldi (f32 m=300, f32 m=600, f64 m=600) vs ARPACK (LR, k=10, ncv=300, tol 1e-8, f64).
Target: 512x7x7 (N=25,088), max Re within 1e-5 of ARPACK's certified value in <= 1/10 of its
time. ARPACK at N=100,352 and 200,704 takes many minutes on 2 cores: only with ``--full``.

Part 3 — a realistic operator (issue 12.13): area 7 (512x7x7, N = 25,088) of a seeded random
weight-norm R8 whose recurrent gains are U(0.5, 0.95) (``realistic_r8``): a tight rightmost
cluster. rnntk's default restarted Krylov-Schur (float64; ``--with-mixed``: also float32 + float64 polish) vs
ARPACK (LR and LM runs, default ncv), both to relative residual 1e-10. Target: the top-10 by
Re lambda and by |lambda| converged in <= 0.2x ARPACK's time (its LR + LM runs). The methods
are interleaved (``--repeats``, default 3; the order is reversed on odd repeats), each repeat's
ratio is taken within the repeat, and the medians are printed for wall time and for the CPU
time of the process (``time.process_time``: it does not count time the process waited for a
core, so it is the load-robust figure; run with ``OMP_NUM_THREADS=1`` so that it counts work,
not threads spinning). One repeat takes ~45 s of CPU on one thread (3 repeats took 16 min of
wall time at load 10-15 on 2 shared cores; use ``--repeats 1`` or 2 on a loaded machine).
Krylov-Schur runs s-step Arnoldi (32 products per block Gram-Schmidt in float64, 16 in float32)
and may stop inside a restart cycle; with that, 3 interleaved repeats (load average 1.5 -> 1.8 on
2 shared cores) printed f64 0.19x ARPACK's wall time and 0.19x its CPU time, mixed 0.19x / 0.19x
(992-1,111 f32 + 798-834 f64 products: its polish costs about what the float32 run saves): MET.

Part 4 (``--polish-study``, ~1 min) — why the float64 polish of ``--dtype mixed`` is a new float64
run from the float32 wanted subspace: the float32 wanted Schur block's float64 residual is full
rank (float32 rounding noise), so the float32 factorisation cannot be continued in float64.

Part 5 (``--lever-study``, ~2 min of CPU) — deterministic product counts of the cheap levers on the
Part 3 operator: one joint LR+LM run vs separate runs, basis size, kept fraction, float32 stop level.

Run: ``python benchmarks/conv_eigs.py [--full] [--skip-small] [--skip-r8] [--skip-realistic] [--polish-study]``. Timings are noisy on
shared machines; every ratio is measured in this one run.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from rnntk.cordsnet.eigs import ConvOperator, arnoldi, eigs_arpack, krylov_schur, leading_eigs, select


def _dist(found: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(found[:, None] - ref[None, :]).min(1).max())


def _conv(C: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    torch.manual_seed(seed)
    return (torch.nn.Conv2d(C, C, 3, padding=1, bias=False).weight.detach() * 2).to(dtype)


def small(rows: list[str]) -> dict[int, dict[str, float]]:
    out = {}
    print("\n== Part 1: dense vs arnoldi vs arpack (float64) ==")
    print(
        f"{'N':>6} {'CxHxW':>10} {'dense s':>8} {'arnoldi s':>9} {'arpack s':>8} {'dense/arn':>9} {'dense/arp':>9} "
        f"{'arn top10 err':>13} {'arn maxRe err':>13} {'arp top10 err':>13} {'arp maxRe err':>13}"
    )
    for C, H in ((10, 10), (8, 16), (16, 16)):
        N = C * H * H
        op = ConvOperator(_conv(C, N), H, H)
        t = time.perf_counter()
        ev = np.linalg.eigvals(op.to_dense().numpy())
        t_dense = time.perf_counter() - t
        top = ev[select(ev, 10, "LM")]
        maxre = ev.real.max()
        t = time.perf_counter()  # one Krylov run, top-10 by |lambda| and by Re lambda
        a = leading_eigs(op, "arnoldi", k=10, which=("LM", "LR"), krylov_m=300, generator=torch.Generator().manual_seed(0))
        t_arn = time.perf_counter() - t
        a_top = a["LM"].values
        a_err = max(_dist(a_top, ev), _dist(top, a_top))
        a_re = abs(a["LR"].values.real.max() - maxre)
        t = time.perf_counter()
        lm = eigs_arpack(op, k=10, which="LM", tol=1e-10)
        lr = eigs_arpack(op, k=10, which="LR", tol=1e-10)
        t_arp = time.perf_counter() - t
        p_err = max(_dist(lm.values, ev), _dist(top, lm.values))
        p_re = abs(lr.max_real - maxre)
        print(
            f"{N:>6} {f'{C}x{H}x{H}':>10} {t_dense:8.2f} {t_arn:9.2f} {t_arp:8.2f} {t_dense / t_arn:9.1f} {t_dense / t_arp:9.1f} "
            f"{a_err:13.1e} {a_re:13.1e} {p_err:13.1e} {p_re:13.1e}"
        )
        out[N] = dict(dense=t_dense, arnoldi=t_arn, arpack=t_arp, arn_err=a_err, arn_re=a_re)
    r = out[4096]
    ok = r["arn_err"] <= 1e-8 and r["dense"] / r["arnoldi"] >= 10
    rows.append(
        f"N=4096: Arnoldi top-10 error {r['arn_err']:.1e} (target <= 1e-8), time ratio dense/arnoldi "
        f"{r['dense'] / r['arnoldi']:.1f}x (target >= 10x): {'MET' if ok else 'MISSED'}"
    )
    return out


def r8(rows: list[str], full: bool) -> None:
    print("\n== Part 2: R8 layer sizes, arnoldi vs arpack (LR, k=10, ncv=300, tol 1e-8) ==")
    print(f"{'layer':>10} {'N':>7} {'method':>16} {'seconds':>8} {'max Re':>14} {'|diff| vs arpack':>16} {'arpack/this':>11}")
    for C, H in ((512, 7), (256, 14), (128, 28), (64, 56)):
        N = C * H * H
        w = _conv(C, N)
        op = ConvOperator(w, H, H)
        res = {}
        for name, dt, m in (("arnoldi f32 m300", torch.float32, 300), ("arnoldi f32 m600", torch.float32, 600), ("arnoldi f64 m600", torch.float64, 600)):
            if m == 600 and N > 100_000:
                continue  # a 600-vector basis of 200k doubles is 1 GB; m=300 shows the trend
            t = time.perf_counter()
            a = arnoldi(op, m=m, k=10, which="LR", dtype=dt, generator=torch.Generator().manual_seed(0))
            res[name] = (time.perf_counter() - t, a.max_real)
        ref = None
        if full or N <= 50_176:
            t = time.perf_counter()
            p = eigs_arpack(op, k=10, which="LR", ncv=300, tol=1e-8)
            ref = (time.perf_counter() - t, p.max_real)
            print(f"{f'{C}x{H}x{H}':>10} {N:>7} {'arpack':>16} {ref[0]:8.2f} {ref[1]:14.10f} {'(reference)':>16} {'':>11}")
        for name, (s, v) in res.items():
            diff = f"{abs(v - ref[1]):16.1e}" if ref else f"{'-':>16}"
            ratio = f"{ref[0] / s:11.1f}" if ref else f"{'-':>11}"
            print(f"{f'{C}x{H}x{H}':>10} {N:>7} {name:>16} {s:8.2f} {v:14.10f} {diff} {ratio}")
        if C == 512 and ref is not None:
            best = [(abs(v - ref[1]), s, name) for name, (s, v) in res.items() if abs(v - ref[1]) <= 1e-5 and s <= ref[0] / 10]
            if best:
                e, s, name = min(best, key=lambda b: b[1])
                rows.append(f"512x7x7: {name} max Re within {e:.1e} of ARPACK (target 1e-5) in 1/{ref[0] / s:.1f} of its time (target 1/10): MET")
            else:
                detail = ", ".join(f"{n}: err {abs(v - ref[1]):.1e}, 1/{ref[0] / s:.1f}" for n, (s, v) in res.items())
                rows.append(f"512x7x7: no Arnoldi setting within 1e-5 at <= 1/10 of ARPACK's time ({detail}): MISSED")


def realistic_r8(seed: int = 0) -> "torch.nn.Module":
    """A seeded random upstream-size R8 with weight-norm gains of the recurrent convs drawn
    U(0.5, 0.95) per output channel (the kind of operator a trained network has)."""
    from rnntk.cordsnet.model import CordsNet

    torch.manual_seed(seed)
    net = CordsNet(depth=8)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for j in range(8):
            p = net.area_conv[j].parametrizations.weight.original0
            p.copy_(torch.rand(p.shape, generator=g) * 0.45 + 0.5)
    return net


def _timed(fn):
    """``(result, wall seconds, CPU seconds of this process)`` of ``fn()``."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def realistic(rows: list[str], repeats: int, mixed: bool = False) -> None:
    """ARPACK and rnntk's Krylov-Schur interleaved: each repeat runs every method once, the
    order reversed on odd repeats (ARPACK first, then last), so that a change of machine load
    hits both sides; the ratio of each repeat is taken within it and the median reported, for
    wall time and for this process's CPU time (``time.process_time``, all threads)."""
    print("\n== Part 3: realistic weight-norm R8, area 7 (512x7x7, N = 25,088), top-10 by Re and |lambda| to rel. residual 1e-10 ==")
    print(f"   {repeats} repeat(s), ARPACK and ours interleaved (order reversed on odd repeats); ratios per repeat, median over repeats")
    w = realistic_r8(0).recurrent_weight(7).detach().double()
    op = ConvOperator(w, 7, 7)
    ours = [("krylov-schur f64", torch.float64, False), ("krylov-schur f32+f64", torch.float32, True)][: 2 if mixed else 1]
    print(f"{'run':>4} {'method':>26} {'wall s':>7} {'cpu s':>7} {'matvecs':>18} {'max rel res':>11} {'conv':>5} {'max Re':>13} {'radius':>13}")
    ratios: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in ours}

    def arpack():
        return eigs_arpack(op, k=10, which="LR", tol=1e-10), eigs_arpack(op, k=10, which="LM", tol=1e-10)

    for rep in range(repeats):
        runs = {}
        order = ["arpack"] + [name for name, _, _ in ours]
        for name in order if rep % 2 == 0 else order[::-1]:
            if name == "arpack":
                runs[name] = _timed(arpack)
            else:
                _, dt, pol = next(o for o in ours if o[0] == name)
                runs[name] = _timed(
                    lambda dt=dt, pol=pol, rep=rep: krylov_schur(
                        op, k=10, which=("LR", "LM"), tol=1e-10, dtype=dt, polish=pol, generator=torch.Generator().manual_seed(rep)
                    )
                )
        (lr, lm), wa, ca = runs["arpack"]
        rel = max(float((r.residuals / np.abs(r.values)).max()) for r in (lr, lm))
        ok = bool(lr.converged.all() and lm.converged.all())
        print(
            f"{rep:>4} {'arpack LR + LM (ncv 40)':>26} {wa:7.1f} {ca:7.1f} {lr.n_matvec + lm.n_matvec:>18} {rel:11.1e} {str(ok):>5} "
            f"{lr.max_real:13.10f} {lm.spectral_radius:13.10f}"
        )
        for name, _, _ in ours:
            r, ws, cs = runs[name]
            rel = max(float((x.residuals / np.abs(x.values)).max()) for x in r.values())
            ok = all(x.converged.all() for x in r.values())
            info = r["LR"].info
            mv = f"{info['n_matvec_float32']} f32 + {info['n_matvec_float64']} f64" if info["n_matvec_float32"] else f"{info['n_matvec_float64']}"
            agree = max(abs(r["LR"].max_real - lr.max_real), abs(r["LM"].spectral_radius - lm.spectral_radius))
            print(
                f"{rep:>4} {name:>26} {ws:7.1f} {cs:7.1f} {mv:>18} {rel:11.1e} {str(ok):>5} {r['LR'].max_real:13.10f} {r['LM'].spectral_radius:13.10f}"
                f"  (|diff| vs arpack {agree:.1e}; ratio wall {ws / wa:.2f}x, cpu {cs / ca:.2f}x)"
            )
            if ok:
                ratios[name].append((ws / wa, cs / ca))
    for name, _, _ in ours:
        rs = ratios[name]
        if rs:
            mw, mc = float(np.median([q[0] for q in rs])), float(np.median([q[1] for q in rs]))
            rows.append(
                f"realistic area 7: {name} converged top-10 LR+LM to 1e-10 in {mw:.2f}x ARPACK's wall time, {mc:.2f}x its CPU time "
                f"(medians of {len(rs)} interleaved repeats; target <= 0.2x): wall {'MET' if mw <= 0.2 else 'MISSED'}, cpu {'MET' if mc <= 0.2 else 'MISSED'}"
            )
        else:
            rows.append(f"realistic area 7: {name} did not converge: MISSED")


def polish_study(rows: list[str]) -> None:
    """Why ``--dtype mixed`` polishes with a new float64 Krylov-Schur run started in the float32
    wanted subspace, and not by continuing the float32 factorisation in float64: the float32
    wanted Schur block (orthonormalised in float64, exact float64 Rayleigh quotient) has a
    float64 residual block of full rank (flat singular values: float32 rounding noise), so no
    Krylov decomposition (rank-one residual) lies near it to continue from. Deterministic
    counts, seed 0, same operator as Part 3."""
    import scipy.linalg as sla
    from scipy.linalg.lapack import dtrsen

    from rnntk.analysis.eigs import _block_eigs, _ks_run, _priority, _wanted

    print("\n== Part 4: the float64 polish (realistic area 7, seed 0; matvec counts) ==")
    op64 = ConvOperator(realistic_r8(0).recurrent_weight(7).detach().double(), 7, 7)
    op32, n, which = op64.to(torch.float32), op64.N, ["LR", "LM"]
    v0 = torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r = _ks_run(op32.matvec, n, op64.device, torch.float32, 10, which, 160, 1e-6, v0, 1000, 0.5, None)
    B = r.B[: r.m, : r.m]
    T, Z = sla.schur(B, output="real")
    nw = len(_wanted(np.linalg.eigvals(B), 10, which))
    sel = np.zeros(r.m, np.int32)
    sel[np.argsort(_priority(_block_eigs(T), which), kind="stable")[:nw]] = 1
    _, Zs, _, _, p, *_ = dtrsen(sel, T, Z, job="N")
    Q = torch.linalg.qr((torch.from_numpy(np.ascontiguousarray(Zs[:, : int(p)].T)) @ r.V[: r.m].double()).T)[0].T
    AQ = op64.matvec(Q)
    S = (Q @ AQ.T).numpy()  # S[i, j] = q_i^T A q_j
    R = AQ - torch.from_numpy(S).T @ Q
    sv = torch.linalg.svdvals(R).numpy()
    th, Y = np.linalg.eig(S)
    Yt = torch.from_numpy(np.ascontiguousarray(Y.T))
    rel = (torch.linalg.vector_norm(Yt @ R.to(torch.complex128), dim=1).numpy() / np.abs(th)).max()
    print(f"float32 Krylov-Schur to 1e-6: {r.n_matvec} matvecs; its {int(p)} wanted Schur vectors in float64: Ritz residual {rel:.1e} (relative),")
    print(f"  singular values of the float64 residual block / the largest: {', '.join(f'{x:.3f}' for x in sv[:6] / sv[0])} ... {sv[-1] / sv[0]:.3f}")
    cold = krylov_schur(op64, k=10, which=which, tol=1e-10, dtype=torch.float64, polish=False, generator=torch.Generator().manual_seed(0))["LR"].info
    mixed = krylov_schur(op64, k=10, which=which, tol=1e-10, dtype=torch.float32, polish=True, generator=torch.Generator().manual_seed(0))["LR"].info
    print(f"cold float64 run: {cold['n_matvec_float64']} matvecs; mixed: {mixed['n_matvec_float32']} float32 + {mixed['n_matvec_float64']} float64 (polish)")
    rows.append(
        f"polish: {mixed['n_matvec_float64']} float64 matvecs after {mixed['n_matvec_float32']} float32 (cold float64 {cold['n_matvec_float64']}); "
        f"float32 block residual in float64 {rel:.1e}, singular values {sv[1] / sv[0]:.2f}, {sv[2] / sv[0]:.2f}, ... of the largest (full rank)"
    )


def lever_study(rows: list[str]) -> None:
    """Deterministic product counts of the cheap levers on the Part 3 operator (seed 0): one joint
    LR+LM run vs separate runs, basis size, kept fraction, and the float32 stopping level of
    ``--dtype mixed`` (float32 + float64 products). About 2 min of CPU on one thread."""
    from rnntk.analysis.eigs import _ks_ritz, _ks_run

    print("\n== Part 5: cheap levers (realistic area 7, seed 0; products to 1e-10) ==")
    op = ConvOperator(realistic_r8(0).recurrent_weight(7).detach().double(), 7, 7)
    v0 = torch.rand(op.N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = []
    for which, m, kf in (
        ("LR+LM", 160, 0.5),
        ("LR", 120, 0.5),
        ("LM", 120, 0.5),
        ("LR+LM", 200, 0.5),
        ("LR+LM", 240, 0.5),
        ("LR+LM", 160, 0.3),
        ("LR+LM", 160, 0.7),
    ):
        r, ws, cs = _timed(
            lambda w=which, m=m, kf=kf: krylov_schur(op, k=10, which=w.split("+"), m=m, keep_frac=kf, tol=1e-10, dtype=torch.float64, polish=False, v0=v0)
        )
        x = next(iter(r.values()))
        ok = all(y.converged.all() for y in r.values())
        print(f"float64 {which:>6} m={m} keep={kf}: {x.info['n_matvec_float64']} products, {cs:.1f} s CPU, converged {ok}", flush=True)
        out.append(f"{which} m{m} k{kf}: {x.info['n_matvec_float64']}")
    op32 = op.to(torch.float32)
    for f32tol in (1e-3, 1e-4, 1e-5, 1e-6):
        r = _ks_run(op32.matvec, op.N, op.device, torch.float32, 10, ["LR", "LM"], 160, f32tol, v0, 1000, 0.5, None)
        _, Y, _ = _ks_ritz(r, 10, ["LR", "LM"])
        X = torch.from_numpy(np.ascontiguousarray(Y.T))
        c = torch.rand(X.shape[0], generator=torch.Generator().manual_seed(12345), dtype=torch.float64) + 0.5
        start = (c.to(torch.complex128) @ X) @ r.V[: r.m].double().to(torch.complex128)
        r2 = _ks_run(op.matvec, op.N, op.device, torch.float64, 10, ["LR", "LM"], 160, 1e-10, start.real + start.imag, 1000, 0.5, None)
        print(f"mixed, float32 stopped at {f32tol:.0e}: {r.n_matvec} float32 + {r2.n_matvec} float64 products, converged {r2.converged}", flush=True)
        out.append(f"f32 {f32tol:.0e}: {r.n_matvec}+{r2.n_matvec}")
    rows.append("levers (products): " + "; ".join(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="ARPACK on all four R8 sizes (many minutes)")
    ap.add_argument("--skip-small", action="store_true")
    ap.add_argument("--skip-r8", action="store_true")
    ap.add_argument("--skip-realistic", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the realistic comparison (median ratios; ~1-3 min each on one thread)")
    ap.add_argument("--polish-study", action="store_true", help="Part 4: why the float64 polish restarts from the float32 subspace (~1 min)")
    ap.add_argument(
        "--lever-study",
        action="store_true",
        help="Part 5: product counts of the cheap levers (joint vs separate runs, basis, restart, float32 stop; ~2 min CPU)",
    )
    ap.add_argument("--with-mixed", action="store_true", help="also the float32 Krylov + float64 polish variant (the CLI default, --dtype mixed)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    rows: list[str] = []
    if not args.skip_small:
        small(rows)
    if not args.skip_r8:
        r8(rows, args.full)
    if not args.skip_realistic:
        realistic(rows, args.repeats, args.with_mixed)
    if args.polish_study:
        polish_study(rows)
    if args.lever_study:
        lever_study(rows)
    print(f"\n== Targets == (load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
