"""`rnntk cordsnet-eval` and `rnntk cordsnet-eigs` through the real CLI, the image loaders,
and the shipped mini checkpoint."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import assert_user_error, main_in_process, run_cli

from rnntk.cordsnet.images import PRESETS, ImageError, load_folder_source, open_source, preprocess, preset_for
from rnntk.cordsnet.model import CordsNet

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "checkpoints" / "cordsnet-mini-digits.pth"
FAST = ("--spont-steps", "5", "--stim-steps", "6", "-q")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny operators run on one thread


def _tiny(tmp_path, in_channels=1, name="tiny.pth", depth=2):
    torch.manual_seed(0)
    m = CordsNet(depth, 10, in_channels, image_size=16, width=0.125)
    with torch.no_grad():
        for j in range(depth):
            m.conv_bias[j].normal_(0, 0.3)
    torch.save(m.state_dict(), tmp_path / name)  # a bare upstream-style state dict
    return m, tmp_path / name


def _png(path, arr):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _inproc(capsys, *args):
    """Run the CLI in this process (no interpreter start-up): (exit code, stderr lines); the
    parsed JSON line is in ``_inproc.last``."""
    r = main_in_process(capsys, *args)
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    _inproc.last = json.loads(lines[-1]) if lines else None
    return r.code, [ln for ln in r.stderr.splitlines() if ln.strip()]


def test_eval_random_init_writes_logits_traces_accuracy(tmp_path):
    r = run_cli("cordsnet-eval", "--init", "random", "--depth", "2", "--image-size", "16", "--width", "0.125", "--data", "digits",
                "--limit", "20", "--post-steps", "2", "--record-layers", "0,1", "--record-stride", "2", "--record-pool", "avg2",
                "--batch-size", "8", "--out", tmp_path / "e", *FAST)
    assert r.code == 0, r.stderr
    fin = r.json["final"]
    assert fin["n_images"] == 20 and 0 <= fin["top1"] <= fin["top5"] <= 1
    with h5py.File(tmp_path / "e" / "run.h5", "r") as f:
        assert f["results/logits"].shape == (20, 8, 10)  # every stimulus + post step
        assert f["traces/layer0"].shape == (20, 4, 8, 2, 2)  # (6+2)/2 steps, avg2-pooled 4x4
        assert f["traces/layer1"].attrs["dt"] == pytest.approx(0.004) and f["traces/layer1"].attrs["tau"] == pytest.approx(0.01)
        assert f["traces/layer1"].attrs["t0"] == pytest.approx(0.014)
        assert f["results/spontaneous/layer1"].shape == (2, 8, 2, 2)
        acc = f["results/accuracy_by_step"][:]
        assert acc.shape == (8,) and acc[5] == pytest.approx(fin["top1"])
        lg = f["results/logits"][:]
        assert (f["results/pred"][:] == lg[:, 5].argmax(-1)).all()
        assert (f["results/labels"][:] == np.arange(20) % 10).all()
        assert f.attrs["status"] == "completed"
    # the run's config.toml re-runs it (same seed: the same random model, the same logits)
    r = run_cli("cordsnet-eval", "--config", tmp_path / "e" / "config.toml", "--out", tmp_path / "e2")
    assert r.code == 0, r.stderr
    with h5py.File(tmp_path / "e" / "run.h5", "r") as f, h5py.File(tmp_path / "e2" / "run.h5", "r") as g:
        np.testing.assert_array_equal(f["results/logits"][:], g["results/logits"][:])


def test_eval_npz_folder_glob_match_the_api(tmp_path, capsys):
    """The three file loaders feed the same images; logits equal the Python API's."""
    m, ck = _tiny(tmp_path)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 12, 12), dtype=np.uint8)
    labels = np.array([0, 1, 0, 1, 1])
    np.savez(tmp_path / "d.npz", images=imgs, labels=labels)
    for i, (a, y) in enumerate(zip(imgs, labels)):
        _png(tmp_path / "tree" / f"c{y}" / f"{i}.png", a)
    code, err = _inproc(capsys, "cordsnet-eval", "--checkpoint", ck, "--data", f"npz:{tmp_path / 'd.npz'}", "--dataset-preset", "mnist",
                        "--readout", "final", "--record-layers", "none", "--out", tmp_path / "n", *FAST)
    assert code == 0, err
    from PIL import Image

    from rnntk.cordsnet.images import preprocess_pil

    x = torch.cat([preprocess_pil(Image.fromarray(a), 16, PRESETS["mnist"]) for a in imgs])  # upstream's uint8 Pillow path
    with torch.no_grad():
        want = m.simulate(x, spont_steps=5, stim_steps=6).logits[:, -1]
    with h5py.File(tmp_path / "n" / "run.h5", "r") as f:
        assert f["results/logits"].shape == (5, 1, 10)
        np.testing.assert_allclose(f["results/logits"][:, 0], want.numpy(), atol=1e-5)
    code, err = _inproc(capsys, "cordsnet-eval", "--checkpoint", ck, "--data", f"folder:{tmp_path / 'tree'}", "--dataset-preset", "mnist",
                        "--readout", "final", "--out", tmp_path / "t", *FAST)
    assert code == 0, err
    src = load_folder_source(tmp_path / "tree")
    assert src.classes == ["c0", "c1"]
    order = [int(Path(n).stem) for n in src.names]
    with h5py.File(tmp_path / "t" / "run.h5", "r") as f:
        np.testing.assert_allclose(f["results/logits"][:, 0], want.numpy()[order], atol=1e-5)
        assert (f["results/labels"][:] == labels[order]).all()
    code, err = _inproc(capsys, "cordsnet-eval", "--checkpoint", ck, "--data", f"images:{tmp_path / 'tree'}/*/*.png", "--dataset-preset", "mnist",
                        "--out", tmp_path / "g", *FAST)
    assert code == 0, err
    assert "top1" not in _inproc.last["final"]
    with h5py.File(tmp_path / "g" / "run.h5", "r") as f:
        assert "labels" not in f["results"] and f["results/pred"].shape == (5,)


def test_preprocessing_fixed_expectations(tmp_path):
    """Centre crop offsets and normalisation on known pixels; resize of a constant image."""
    x = torch.arange(256 * 300, dtype=torch.float32).reshape(1, 1, 256, 300) / (256 * 300)
    p = preset_for("imagenet", 3)
    out = preprocess(x, 224, p)  # shorter side already 256: no resize, crop rows 16:240, cols 38:262
    mean, std = torch.tensor(p.mean).view(1, 3, 1, 1), torch.tensor(p.std).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (x[..., 16:240, 38:262].expand(-1, 3, -1, -1) - mean) / std)
    const = preprocess(torch.full((2, 1, 8, 8), 0.5), 32, PRESETS["mnist"])
    torch.testing.assert_close(const, torch.full((2, 1, 32, 32), (0.5 - 0.1307) / 0.3081))
    # a portrait image: shorter side (width) -> 256, centre crop 224
    tall = preprocess(torch.rand(1, 3, 600, 300), 224, p)
    assert tall.shape == (1, 3, 224, 224)
    with pytest.raises(ImageError, match="unknown dataset preset"):
        preset_for("svhn", 3)
    assert len(open_source("digits")) == 1797


def test_preprocessing_equals_upstream_torchvision_exactly(tmp_path):
    """Issue 12.14: images give upstream's exact input tensor. Reference arrays
    (tests/cordsnet/data/cordsnet_preprocess_ref.npz) were made once with torchvision 0.29.1's
    Resize(round(S*256/224)) + CenterCrop(S) / Resize((S, S)) + ToTensor + Normalize on PIL
    images (S = 32 and 224), outside the repo. Files (PNG), uint8 npz arrays and the eigs image
    path all match to float32 rounding of the normalisation (<= 1e-6); the old float
    interpolation differed by up to ~1/255 / std."""
    from PIL import Image

    from rnntk.cordsnet.images import load_image_file, load_npz_source

    ref = np.load(Path(__file__).parent / "data" / "cordsnet_preprocess_ref.npz")
    inet, mnist = PRESETS["imagenet"], PRESETS["mnist"]
    worst_old = 0.0
    for i in range(4):
        a = ref[f"img{i}"]
        f = tmp_path / f"im{i}.png"
        Image.fromarray(a).save(f)
        got = load_image_file(f, 32, inet)[0].numpy()
        assert np.abs(got - ref[f"crop{i}"]).max() <= 1e-6, i
        assert np.abs(load_image_file(f, 32, mnist)[0].numpy() - ref[f"resize{i}"]).max() <= 1e-6, i
        if f"crop224_{i}" in ref:
            assert np.abs(load_image_file(f, 224, inet)[0].numpy() - ref[f"crop224_{i}"]).max() <= 1e-6, i
        # the same pixels as a uint8 npz
        np.savez(tmp_path / f"a{i}.npz", images=a[None])
        src = load_npz_source(tmp_path / f"a{i}.npz")
        assert np.abs(src.load([0], 32, inet)[0].numpy() - ref[f"crop{i}"]).max() <= 1e-6, i
        old = preprocess(torch.from_numpy(np.array(Image.fromarray(a).convert("RGB"))).permute(2, 0, 1)[None].float() / 255, 32, inet)
        worst_old = max(worst_old, float(np.abs(old[0].numpy() - ref[f"crop{i}"]).max()))
    assert worst_old > 1e-3  # the float path is not upstream's (kept for float arrays only)




def test_eval_bad_input(tmp_path, capsys):
    _, ck = _tiny(tmp_path)
    out = tmp_path / "x"
    # the four cases through the real CLI process
    assert_user_error(run_cli("cordsnet-eval", "--checkpoint", ck, "--depth", "8", "--out", out), "depth = 2, but depth = 8")
    assert_user_error(run_cli("cordsnet-eval", "--checkpoint", ck, "--data", f"folder:{tmp_path / 'nope'}", "--out", out), "image folder not found")
    (tmp_path / "bad" / "a").mkdir(parents=True)
    (tmp_path / "bad" / "a" / "x.png").write_bytes(b"not a png at all")
    assert_user_error(run_cli("cordsnet-eval", "--checkpoint", ck, "--data", f"folder:{tmp_path / 'bad'}", "--out", out), "cannot read image", "x.png")
    np.savez(tmp_path / "noimg.npz", pixels=np.zeros((2, 4, 4), np.uint8))
    assert_user_error(run_cli("cordsnet-eval", "--checkpoint", ck, "--data", f"npz:{tmp_path / 'noimg.npz'}", "--out", out), "has no 'images' array", "pixels")
    # the rest in-process
    sd = torch.load(ck, weights_only=True)
    torch.save({**sd, "prelu.weight": torch.ones(1)}, tmp_path / "stage4.pth")
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pth")
    cases = [
        (("--checkpoint", ck, "--width", "1"), "width = 0.125, but width = 1"),
        (("--data", "digits"), "--checkpoint PATH or --init random"),
        (("--checkpoint", tmp_path / "pickled.pth"), "pickled Python objects"),
        (("--checkpoint", tmp_path / "stage4.pth"), "prelu.weight"),
        (("--checkpoint", ck, "--record-layers", "5"), "areas 0..1"),
        (("--checkpoint", ck, "--alpha", "1.5"), "bad --alpha"),
        (("--init", "random", "--max-trace-gb", "0.001"), "--max-trace-gb"),
        (("--checkpoint", ck, "--data", f"npz:{tmp_path / 'none.npz'}"), "npz file not found"),
        (("--checkpoint", ck, "--data", f"images:{tmp_path / 'none'}/*.png"), "no image files match"),
        (("--checkpoint", ck, "--dataset-preset", "imagenet"), "for 3-channel images"),
    ]
    for args, needle in cases:
        code, err = _inproc(capsys, "cordsnet-eval", *args, "--out", out)
        assert code == 2 and len(err) == 1 and needle in err[0], (args, err)
    assert not out.exists()  # nothing was started


def test_unreadable_image_mid_run_keeps_written_results(tmp_path):
    """A truncated image (valid header) fails while loading its batch: exit 2, one line, the
    batches already simulated stay in run.h5."""
    _, ck = _tiny(tmp_path)
    rng = np.random.default_rng(1)
    for i in range(3):
        _png(tmp_path / "tree" / "a" / f"{i}.png", rng.integers(0, 256, (10, 10), dtype=np.uint8))
    _png(tmp_path / "tree" / "b" / "z.png", rng.integers(0, 256, (64, 64), dtype=np.uint8))
    data = (tmp_path / "tree" / "b" / "z.png").read_bytes()
    (tmp_path / "tree" / "b" / "z.png").write_bytes(data[: len(data) // 2])
    r = run_cli("cordsnet-eval", "--checkpoint", ck, "--data", f"folder:{tmp_path / 'tree'}", "--batch-size", "2", "--out", tmp_path / "r",
                "--dataset-preset", "mnist", *FAST)
    assert_user_error(r, "cannot read image", "z.png")
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        assert f["results/logits"].shape[0] == 2 and f["traces/layer1"].shape[0] == 2
        assert f.attrs["status"] == "failed"  # the engine's status for a run stopped by an error


def test_eigs_methods_agree_and_outputs(tmp_path, capsys):
    """arnoldi, arpack and dense give the same leading eigenvalues through the CLI; CSV, PNGs,
    verdicts; the Jacobian operators run; bad options exit 2."""
    _, ck = _tiny(tmp_path)
    vals = {}
    r = run_cli("cordsnet-eigs", ck, "--method", "arnoldi", "--k", "6", "--tol", "1e-12", "--out", tmp_path / "arnoldi", "-q")
    assert r.code == 0 and r.json["status"] == "completed", r.stderr
    for method in ("dense", "arnoldi", "arpack"):
        if method != "arnoldi":
            code, err = _inproc(capsys, "cordsnet-eigs", ck, "--method", method, "--k", "6", "--tol", "1e-12", "--out", tmp_path / method, "-q")
            assert code == 0, err
        with h5py.File(tmp_path / method / "run.h5", "r") as f:
            vals[method] = {j: (f[f"results/eigs/layer{j}_LM"][:], f[f"results/eigs/layer{j}_LR"][:]) for j in (0, 1)}
            assert f["results/eigs/layer0_LR"].attrs["N"] == 128 and f["results/eigs/layer1_LM_residual"].shape == (6,)
    for j in (0, 1):
        for which in (0, 1):
            d = vals["dense"][j][which]
            d = np.concatenate([d, d.conj()])  # a k-cutoff can split a conjugate pair
            for m in ("arnoldi", "arpack"):
                got = vals[m][j][which]
                assert np.abs(got[:, None] - d[None, :]).min(1).max() <= 1e-8, (m, j, which)
    fin = json.loads((tmp_path / "arnoldi" / "summary.json").read_text())["final"]["layers"]
    assert fin["layer1"]["max_real"] == pytest.approx(vals["dense"][1][1].real.max(), abs=1e-8)
    assert set(fin["layer0"]) >= {"spectral_radius", "max_real", "continuous_stable", "euler_stable", "N"}
    csv = (tmp_path / "arnoldi" / "eigs.csv").read_text().splitlines()
    assert csv[0] == "layer,N,method,rank,which,real,imag,abs,residual,converged" and len(csv) == 1 + 2 * 2 * 6
    assert (tmp_path / "arnoldi" / "eigs_layer0.png").stat().st_size > 1000
    for args in (("--method", "power", "--which", "LM", "--layers", "1"),
                 ("--operator", "jacobian-image", "--image", "digits:3", "--spont-steps", "5", "--stim-steps", "5", "--k", "4"),
                 ("--operator", "jacobian-spont", "--k", "4", "--method", "arpack")):
        code, err = _inproc(capsys, "cordsnet-eigs", ck, *args, "--out", tmp_path / args[1], "-q")
        assert code == 0, (args, err)
        assert _inproc.last["status"] == "completed"
    for args, needle in [
        (("--method", "dense", "--max-dense-n", "100"), "use --method arnoldi"),
        (("--method", "power"), "--which LM"),
        (("--layers", "0,9"), "areas 0..1"),
        (("--operator", "jacobian-image"), "needs --image"),
    ]:
        code, err = _inproc(capsys, "cordsnet-eigs", ck, *args, "--out", tmp_path / "x")
        assert code == 2 and len(err) == 1 and needle in err[0], (args, err)
    assert_user_error(run_cli("cordsnet-eigs", tmp_path / "none.pth", "--out", tmp_path / "x"), "checkpoint not found")


def test_shipped_mini_checkpoint_accuracy_and_spectra(tmp_path):
    """The shipped demo: real accuracy on digits it was not trained on, real spectra."""
    assert SHIPPED.exists() and SHIPPED.stat().st_size < 5e6
    r = run_cli("cordsnet-eval", "--checkpoint", SHIPPED, "--data", "digits", "--limit", "1797", "--readout", "final", "--record-layers", "none",
                "--batch-size", "256", "--out", tmp_path / "e", "-q", timeout=300)
    assert r.code == 0, r.stderr
    with h5py.File(tmp_path / "e" / "run.h5", "r") as f:
        pred, y = f["results/pred"][:], f["results/labels"][:]
    held_out = (pred[1500:] == y[1500:]).mean()  # trained on the first 1,500 digits
    assert held_out >= 0.78 and (pred == y).mean() >= 0.85, (held_out, (pred == y).mean())  # measured 0.801, 0.865
    r = run_cli("cordsnet-eigs", SHIPPED, "--k", "5", "--out", tmp_path / "s", "-q", timeout=300)
    assert r.code == 0, r.stderr
    layers = r.json["final"]["layers"]
    assert set(layers) == {"layer0", "layer1"} and all(v["converged"] for v in layers.values())


def _planted(tmp_path):
    """A tiny R2 (8 channels, 4x4) whose area 0 recurrent kernel is a diagonal centre tap with
    one channel at 1.1 among larger negative ones, and whose area 1 kernel is a rotation
    (a complex dominant pair 0.5 +- 0.6i, where power iteration cannot converge)."""
    m, _ = _tiny(tmp_path)
    diag = torch.tensor([1.1, -2.61, -2.8, -3.0, 0.3, -0.2, 0.1, 0.5])
    with torch.no_grad():
        p0 = m.area_conv[0].parametrizations.weight
        p0.original1.zero_()
        p0.original1[range(8), range(8), 1, 1] = torch.sign(diag)
        p0.original0.copy_(diag.abs().view(8, 1, 1, 1))
        p1 = m.area_conv[1].parametrizations.weight
        v = torch.zeros(8, 8, 3, 3)
        for b in range(4):
            v[2 * b:2 * b + 2, 2 * b:2 * b + 2, 1, 1] = torch.tensor([[0.5, -0.6], [0.6, 0.5]])
        p1.original1.copy_(v)
        p1.original0.copy_(v.flatten(1).norm(dim=1).view(8, 1, 1, 1))
    torch.save(m.state_dict(), tmp_path / "planted.pth")
    return tmp_path / "planted.pth"


def test_eigs_verdicts_unknown_unless_certified(tmp_path, capsys):
    """Issue 12.12 through the CLI: --which LM on the planted kernel no longer reports
    max Re -2.61 and 'continuous stable' (it is unknown, with the reason); --which both gives
    1.1 and unstable; an unconverged --method power certifies no radius and no verdict.
    Issue 12.17: summary.json's final has per-area entries and run-level verdicts (not the
    last area's row repeated at the top), and names the model checkpoint."""
    ck = _planted(tmp_path)
    code, err = _inproc(capsys, "cordsnet-eigs", ck, "--layers", "0", "--which", "LM", "--k", "3", "--out", tmp_path / "lm", "-q")
    assert code == 0, err
    fin = json.loads((tmp_path / "lm" / "summary.json").read_text())["final"]
    l0 = fin["layers"]["layer0"]
    assert l0["max_real"] is None and l0["continuous_stable"] == "unknown" and "LR" in l0["reasons"]["max_real"]
    assert l0["spectral_radius"] == pytest.approx(3.0, abs=1e-8) and l0["euler_stable"] == "unknown"
    assert any("max Re unknown" in ln and "continuous-stable unknown" in ln for ln in err)
    assert fin["model_checkpoint"] == str(ck) and "layer" not in fin and "N" not in fin and fin["continuous_stable"] == "unknown"
    code, err = _inproc(capsys, "cordsnet-eigs", ck, "--which", "both", "--k", "3", "--plot-k", "12", "--out", tmp_path / "both", "-q")
    assert code == 0, err
    fin = json.loads((tmp_path / "both" / "summary.json").read_text())["final"]
    l0 = fin["layers"]["layer0"]
    assert l0["max_real"] == pytest.approx(1.1, abs=1e-6) and l0["continuous_stable"] is False and l0["euler_stable"] is False
    assert fin["continuous_stable"] is False and set(fin["layers"]) == {"layer0", "layer1"}
    assert (tmp_path / "both" / "eigs_layer0.png").stat().st_size > 1000
    with h5py.File(tmp_path / "both" / "run.h5", "r") as f:
        assert f["results/eigs/layer0_LM"].shape == (3,)  # --plot-k widens the picture, not the report
    code, err = _inproc(capsys, "cordsnet-eigs", ck, "--layers", "1", "--method", "power", "--which", "LM", "--power-iters", "300",
                        "--out", tmp_path / "pw", "-q")
    assert code == 0, err
    l1 = json.loads((tmp_path / "pw" / "summary.json").read_text())["final"]["layers"]["layer1"]
    assert l1["spectral_radius"] is None and l1["continuous_stable"] == "unknown" and l1["euler_stable"] == "unknown"
    assert "power" in l1["reasons"]["spectral_radius"] and not l1["converged"]


def test_eval_figures_population_rates_and_help(tmp_path, capsys):
    """Issue 12.16/17: cordsnet-eval writes accuracy_vs_time.png and population_rate.png and
    the per-area population rates (spontaneous, then stimulus/post); --help shows the trace
    dims literally; summary.json names the model checkpoint."""
    m, ck = _tiny(tmp_path)
    code, err = _inproc(capsys, "cordsnet-eval", "--checkpoint", ck, "--data", "digits", "--limit", "12", "--batch-size", "5",
                        "--post-steps", "3", "--out", tmp_path / "e", *FAST)
    assert code == 0, err
    d = tmp_path / "e"
    assert (d / "accuracy_vs_time.png").stat().st_size > 1000 and (d / "population_rate.png").stat().st_size > 1000
    with h5py.File(d / "run.h5", "r") as f:
        pr, sp = f["results/population_rate"][:], f["results/spontaneous_population_rate"][:]
    assert pr.shape == (12, 6 + 3, 2) and sp.shape == (5, 2)
    # oracle: the same simulation through the API, mean over each area's units
    from rnntk.cordsnet.images import PRESETS as P

    x = open_source("digits").load(list(range(12)), 16, P["digits"])
    rates: list = []
    with torch.no_grad():
        m.simulate(x, 0.2, 5, 6, 3, readout="every", rates=rates)
    np.testing.assert_allclose(pr, torch.stack(rates, 1).numpy(), atol=1e-5)
    fin = json.loads((d / "summary.json").read_text())["final"]
    assert fin["model_checkpoint"] == str(ck)
    from conftest import cli_env

    res = run_cli("cordsnet-eval", "--help", env={**cli_env(), "COLUMNS": "200"})
    assert res.code == 0 and "[trial, time, C, H, W]" in res.stdout
