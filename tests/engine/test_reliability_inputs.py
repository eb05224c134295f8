"""Bad inputs of the method commands (issue 13, item 6): sizes that cannot fit, values that
were accepted silently, bad checkpoints, overflowing values. Each is one line on stderr, a
JSON line, exit 2 (bad input) or 3 (non-finite: the last good checkpoint is kept); never 0 or 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_user_error, run_cli

MINI = Path(__file__).resolve().parents[2] / "checkpoints" / "cordsnet-mini-digits.pth"
FLOSS = ["--n-units", "8", "--floss-k", "2", "--delay", "4", "--trial-len", "20", "--le-len", "20", "--eval-batch", "4", "--batch", "2",
         "--floss-len", "30", "-q"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Checkpoints and npz files with one defect each."""
    from rnntk.engine import save_checkpoint
    from rnntk.core.leaky_rnn import LeakyRNN
    from rnntk.core.vanilla_rnn import VanillaRNN

    d = tmp_path_factory.mktemp("bad")
    out: dict[str, Path] = {}
    m = LeakyRNN(1, 6, 1)
    good = m.hparams()
    for name, hp in {"neg_size": {**good, "n_hidden": -3}, "nan_dt": {**good, "dt": float("nan")}, "tau0": {**good, "tau": 0.0},
                     "activation": {**good, "activation": "swish"}}.items():
        save_checkpoint(d / f"{name}.pt", model=m, hparams=hp)
        out[name] = d / f"{name}.pt"
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    sd["W"] = sd["W"].to(torch.complex64)
    save_checkpoint(d / "complex.pt", state_dict=sd, model_class="LeakyRNN", hparams=good)
    out["complex"] = d / "complex.pt"
    v = VanillaRNN(8, 1, 1, batch=1)
    with torch.no_grad():
        v.J.fill_(float("nan"))
    save_checkpoint(d / "nan.pt", model=v, hparams=v.hparams())
    out["nan_weights"] = d / "nan.pt"
    np.savez(d / "float255.npz", images=np.random.default_rng(0).random((3, 16, 16)) * 255, labels=np.array([0, 1, 2]))
    np.savez(d / "empty.npz", images=np.zeros((0, 16, 16), np.uint8))
    np.savez(d / "neg_label.npz", images=np.zeros((3, 16, 16), np.uint8), labels=np.array([0, -1, 2]))
    np.savez(d / "big_label.npz", images=np.zeros((3, 16, 16), np.uint8), labels=np.array([0, 1, 99]))
    for k in ("float255", "empty", "neg_label", "big_label"):
        out[k] = d / f"{k}.npz"
    return out


# (args, needle in the error line, exit code); "{name}" is replaced by the file of that name
CASES = {
    # sizes that cannot fit: refused before allocating
    "floss-n-units": (["floss", "--n-units", "10000000", "--epochs", "1"], "would need", 2),
    "floss-batch": (["floss", *FLOSS, "--batch", "1000000000", "--epochs", "1"], "would need", 2),
    "lyapunov-steps": (["lyapunov", "{nan_weights}", "--steps", "100000000000", "--warmup", "5"], "would need", 2),
    "cordsnet-classes": (["cordsnet-eval", "--init", "random", "--data", "digits", "--classes", "1000000000000"], "would need", 2),
    "cordsnet-width": (["cordsnet-eval", "--init", "random", "--data", "digits", "--width", "1000", "--record-layers", "none"], "would need", 2),
    "online-lru-memory-seq-lens": (["online-lru-memory", "--seq-lens", "1000000000"], "would need", 2),
    "online-lru-gradcheck-long": (["online-lru-gradcheck", "--pattern-len", "100000"], "would need", 2),
    "online-lru-train-samples": (["online-lru", "--train-samples", "100000000000", "--steps", "1"], "would need", 2),
    "sofo-hidden": (["sofo-train", "--hidden", "10000000", "--iters", "1"], "would need", 2),
    "sofo-batch": (["sofo-train", "--batch", "1000000000", "--iters", "1"], "would need", 2),
    "ode-width": (["ode-train", "--width", "10000000", "--epochs", "1"], "would need", 2),
    "ode-batch": (["ode-train", "--batch", "1000000000", "--epochs", "1"], "would need", 2),
    "sofo-duration-inf": (["sofo-train", "--duration", "inf", "--iters", "1"], "--duration", 2),
    # values that were accepted silently
    "floss-len-below-warmup": (["floss", *FLOSS, "--floss-len", "5", "--epochs", "1"], "--floss-len 5", 2),
    "lyapunov-empty-horizon": (["lyapunov", "{nan_weights}", "--horizons", "1,,2", "--steps", "50", "--warmup", "5"], "--horizons", 2),
    "online-lru-memory-no-rules": (["online-lru-memory", "--rules", ""], "--rules", 2),
    "online-lru-weight-decay-inf": (["online-lru", "--weight-decay", "inf", "--steps", "1", "--layers", "1", "--d-model", "8", "--d-hidden", "8",
                                     "--train-samples", "4"], "--weight-decay", 2),
    "cordsnet-float-images-0-255": (["cordsnet-eval", "--checkpoint", MINI, "--data", "npz:{float255}"], "[0, 1]", 2),
    "cordsnet-no-images": (["cordsnet-eval", "--checkpoint", MINI, "--data", "npz:{empty}"], "no image", 2),
    "cordsnet-negative-label": (["cordsnet-eval", "--checkpoint", MINI, "--data", "npz:{neg_label}"], "labels", 2),
    "cordsnet-label-out-of-range": (["cordsnet-eval", "--checkpoint", MINI, "--data", "npz:{big_label}"], "labels", 2),
    # checkpoints with bad hyper-parameters
    "ckpt-negative-size": (["lyapunov", "{neg_size}"], "n_hidden", 2),
    "ckpt-nan-dt": (["lyapunov", "{nan_dt}"], "dt", 2),
    "ckpt-tau-0": (["lyapunov", "{tau0}"], "tau", 2),
    "ckpt-unknown-activation": (["lyapunov", "{activation}"], "activation", 2),
    "ckpt-complex-weights": (["lyapunov", "{complex}"], "complex", 2),
    "ckpt-nan-weights": (["lyapunov", "{nan_weights}", "--steps", "50", "--warmup", "5"], "non-finite", 3),
    # overflowing values: the non-finite guard (exit 3), not an internal error
    "floss-lr-1e38": (["floss", *FLOSS, "--lr", "1e38", "--epochs", "3", "--no-floss"], "non-finite", 3),
    "floss-floss-lr-1e38": (["floss", *FLOSS, "--floss-lr", "1e38", "--epochs", "3", "--floss-before", "3"], "non-finite", 3),
    "floss-g-1e39": (["floss", *FLOSS, "--g", "1e39", "--epochs", "3", "--floss-before", "3"], "non-finite", 3),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line(case, files, tmp_path):
    args, needle, code = CASES[case]
    args = [str(a).format(**{k: str(v) for k, v in files.items()}) for a in args]
    r = run_cli(*args, "--out", tmp_path / "run")
    assert_user_error(r, needle, code=code)
    if code == 3:
        assert r.json["status"] == "nonfinite"


def _nan_cordsnet(tmp_path: Path) -> Path:
    ck = torch.load(MINI, weights_only=True)
    sd = dict(ck["state_dict"])
    for k, v in list(sd.items()):  # the recurrent (area_area) and feed-forward (area_conv) weights
        if k.startswith(("area_area.", "area_conv.")) and k.endswith("original1"):
            sd[k] = torch.full_like(v, float("nan"))
    ck["state_dict"] = sd
    p = tmp_path / "nan.pth"
    torch.save(ck, p)
    return p


@pytest.mark.parametrize("method", ["arpack", "dense", "arnoldi"])
def test_cordsnet_eigs_nan_weights_exit_3(method, tmp_path):
    """NaN weights reach LAPACK/ARPACK as an error before: now the non-finite guard (exit 3)."""
    p = _nan_cordsnet(tmp_path)
    r = run_cli("cordsnet-eigs", p, "--method", method, "--k", "4", "--layers", "0", "--out", tmp_path / "run", "-q")
    assert_user_error(r, "non-finite", code=3)


def test_limits_helpers():
    """check_fits refuses what the machine cannot hold; allocation failures and overflowing
    optimizer updates become the engine's one-line errors (exit 2 and 3)."""
    import math

    from rnntk.engine.errors import NonFiniteError, UserError
    from rnntk.engine.limits import (
        available_bytes,
        check_fits,
        nbytes_of,
        oom_as_error,
        overflow_as_nonfinite,
    )

    free = available_bytes("cpu")
    assert 0 < free
    check_fits(1e3, "cpu", "a tiny tensor")  # fits
    with pytest.raises(UserError, match="would need"):
        check_fits(nbytes_of(1e7, 1e7), "cpu", "--hidden 10000000")
    with pytest.raises(UserError, match="more memory than any machine"):
        check_fits(math.inf, "cpu", "an infinite size")
    with pytest.raises(UserError, match="out of memory while testing"), oom_as_error("testing"):
        raise MemoryError()
    with pytest.raises(ValueError):  # anything else passes through
        with oom_as_error("testing"):
            raise ValueError("not an allocation")
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=1e38)
    p.grad = torch.ones(3)
    with pytest.raises(NonFiniteError), overflow_as_nonfinite(7, "update"):
        opt.step()


# ---- issue 13 item 6, the cases left: paths the filesystem refuses, allocation failures, selftest values
def test_out_and_resume_paths_too_long_exit_2(tmp_path):
    """A name > NAME_MAX bytes or a path >= PATH_MAX bytes was an internal error (exit 1)."""
    long_name = tmp_path / ("a" * 300)
    deep = tmp_path.joinpath(*["b" * 200] * 25)
    for opt, path, needle in (("--out", long_name, "300 bytes"), ("--out", deep, "paths shorter than"),
                              ("--resume", long_name, "300 bytes"), ("--resume", deep, "paths shorter than")):
        r = run_cli("selftest", "--iters", "2", "-q", opt, str(path), cwd=tmp_path)
        assert_user_error(r, f"bad {opt}", needle)
        assert len(r.stderr_lines[0]) < 200
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, needle", [(["--sleep", "inf"], "--sleep"), (["--sleep", "1e300"], "--sleep"),
                                          (["--hidden", "10000000"], "--hidden 10000000")])
def test_selftest_bad_values_exit_2(args, needle, tmp_path):
    r = run_cli("selftest", "--iters", "2", "-q", "--out", tmp_path / "r", *args)
    assert_user_error(r, needle)
    assert not (tmp_path / "r").exists()  # refused before the folder was made


def test_selftest_lr_overflow_is_nonfinite_exit_3(tmp_path):
    r = run_cli("selftest", "--iters", "20", "-q", "--lr", "1e38", "--out", tmp_path / "r")
    assert_user_error(r, "non-finite", "adam_update", code=3)
    assert r.json["status"] == "nonfinite"
    assert (tmp_path / "r" / "ckpt-last.pt").is_file()


def _in_process(args: list[str], capsys) -> tuple[int, list[str], dict]:
    """Run ``rnntk ARGS`` in this process (so a test can monkeypatch inside a command)."""
    import json
    import signal

    import typer

    from rnntk.cli import app

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = typer.main.get_command(app).main(args=args, prog_name="rnntk", standalone_mode=False)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    out, err = capsys.readouterr()
    return int(code or 0), [ln for ln in err.splitlines() if ln.strip()], json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("exc, needle", [(MemoryError(), "out of memory"),
                                         (RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
                                                       "you tried to allocate 400000000000000 bytes."), "out of memory"),
                                         (OSError(36, "File name too long", "x" * 400), "File name too long")])
def test_allocation_failure_anywhere_is_exit_2(exc, needle, tmp_path, monkeypatch, capsys):
    """An allocation failure (or ENAMETOOLONG) in the middle of a command's loop: one line,
    exit 2, status failed, and the steps already logged are kept in run.h5."""
    import h5py

    from rnntk.selftest import integrate

    real, calls = integrate.integration_trials, []

    def failing(*a, **k):
        calls.append(1)
        if len(calls) == 5:  # the validation set, then training steps 0..2 succeed
            raise exc
        return real(*a, **k)

    monkeypatch.setattr(integrate, "integration_trials", failing)
    code, err, out = _in_process(["selftest", "--iters", "10", "--log-every", "1", "-q", "--out", str(tmp_path / "r")], capsys)
    assert code == 2, (code, err, out)
    assert len(err) == 1 and err[0].startswith("rnntk: error: ") and needle in err[0], err
    assert len(err[0]) < 400
    assert out["status"] == "failed" and needle in out["error"]
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        names: list[str] = []
        f.visit(names.append)
        steps = [n for n in names if n.endswith("step")]
        assert steps and max(len(f[n]) for n in steps) >= 3, names
