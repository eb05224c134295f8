"""``rnntk online-lru``, ``online-lru-gradcheck`` and ``online-lru-memory`` through the real CLI."""

import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import typer
from conftest import assert_user_error, run_cli

ROOT = Path(__file__).resolve().parents[2]
TINY = ("--task", "copy", "--pattern-len", "2", "--pad-len", "1", "--layers", "2", "--d-model", "6", "--d-hidden", "6",
        "--train-samples", "8", "--val-samples", "4", "--test-samples", "4", "--batch-size", "4", "--epochs", "1", "-q")
FITS = {"lru": ("bptt", "online_full", "online_snap", "online_truncated", "online_spat"),
        "rnn": ("bptt", "online_snap", "online_truncated", "online_spat"),
        "gru": ("bptt", "online_snap", "online_truncated", "online_spat")}


@pytest.fixture
def cli(cli_in_process, monkeypatch):
    """The real CLI entry point run in this process (no interpreter start-up per call)."""
    monkeypatch.setenv("NO_COLOR", "1")
    for k in ("RNNTK_SEED", "RNNTK_DEVICE"):
        monkeypatch.delenv(k, raising=False)

    return cli_in_process


@pytest.mark.parametrize("arch", list(FITS))
def test_every_rule_runs_on_every_architecture_it_fits(tmp_path, arch, cli):
    for i, rule in enumerate(FITS[arch]):
        ex = "streaming" if (rule != "bptt" and i % 2) else "sequence"
        r = cli("online-lru", *TINY, "--arch", arch, "--rule", rule, "--exec", ex, "--out", tmp_path / rule)
        assert r.code == 0, (rule, r.stderr)
        fin = r.json["final"]
        assert 0 <= fin["test_acc"] <= 1 and np.isfinite(fin["test_loss"])
        with h5py.File(tmp_path / rule / "run.h5", "r") as f:
            assert f.attrs["rule"] == ("online_full" if (arch, rule) == ("lru", "online_snap") else rule)
            assert f["metrics/train_loss"].shape == (2,) and "val_acc" in f["metrics"] and "test_loss" in f["metrics"]
            assert f["traces/hidden"].shape == (4, 6, 6)
            if arch == "lru":
                assert f["results/lambda"].dtype == np.complex128 and f["results/lambda"].shape == (2, 6)
                assert f["traces/trace_norm"].shape == (4, 6, 2) and "lambda_abs_max" in f["metrics"]


def test_lru_run_records_alignment_traces_and_model(tmp_path, cli):
    r = cli("online-lru", *TINY, "--rule", "online_1truncated", "--grad-check-batches", "1", "--out", tmp_path / "a")
    assert r.code == 0, r.stderr
    d = tmp_path / "a"
    with h5py.File(d / "run.h5", "r") as f:
        m = f["metrics"]
        for rule in ("online_full", "online_truncated", "online_spat"):
            for grp in ("encoder", "layer_0", "layer_1", "decoder", "all"):
                assert f"grad_cos_{rule}_{grp}" in m and f"grad_relnorm_{rule}_{grp}" in m
        assert m["grad_cos_online_full_decoder"][-1] == pytest.approx(1.0, abs=1e-5)  # O3 on the CLI
        assert f["results/test_loss_per_step"].shape == (6,)
        per = f["results/test_loss_per_step"][:]
        assert np.all(np.isnan(per[:4])) and np.all(np.isfinite(per[4:]))  # only the output window is scored
        assert f["traces/hidden_phase"].shape == (4, 6, 6)
    ck = torch.load(d / "model.pt", weights_only=True)
    assert ck["model"] == "SeqModel" and ck["hparams"]["arch"] == "lru"


def test_streaming_updates_every_k_steps_and_other_tasks(tmp_path, cli):
    r = cli("online-lru", *TINY, "--exec", "streaming", "--update-every", "2", "--out", tmp_path / "s")
    assert r.code == 0, r.stderr
    r = cli("online-lru", "--task", "digits", "--digits-order", "row", "--layers", "1", "--d-model", "8", "--d-hidden", "8",
                "--steps", "2", "--batch-size", "8", "--eval-samples", "16", "--exec", "streaming", "-q", "--out", tmp_path / "d")
    assert r.code == 0, r.stderr
    with h5py.File(tmp_path / "d" / "run.h5", "r") as f:
        assert f.attrs["seq_len"] == 8 and f["results/test_loss_per_step"].shape == (8,)
    r = cli("online-lru", "--task", "listops-synth", "--max-len", "20", "--train-samples", "8", "--val-samples", "4",
                "--test-samples", "4", "--layers", "1", "--d-model", "8", "--d-hidden", "8", "--epochs", "1", "--batch-size", "4",
                "--arch", "gru", "--rule", "online_snap", "-q", "--out", tmp_path / "l")
    assert r.code == 0, r.stderr


def test_bad_input_one_line_exit_2(tmp_path, cli):
    o = ("--out", tmp_path / "x")
    run_cli = cli  # noqa: F811 - in-process; the subprocess path is checked by the non-finite test
    assert_user_error(run_cli("online-lru", *TINY, "--rule", "rtrl", *o), "unknown rule 'rtrl'")
    assert_user_error(run_cli("online-lru", *TINY, "--arch", "gru", "--rule", "online_full", *o), "does not apply to --arch gru", "lru: bptt, online_full")
    assert_user_error(run_cli("online-lru", *TINY, "--rule", "bptt", "--exec", "streaming", *o), "bptt needs the whole sequence")
    assert_user_error(run_cli("online-lru", *TINY, "--arch", "gru", "--d-hidden", "5", *o), "must equal --d-model")
    assert_user_error(run_cli("online-lru", "--task", "cifar", *o), "give --data-dir")
    assert_user_error(run_cli("online-lru", "--task", "cifar", "--data-dir", tmp_path / "nope", *o), "no such data folder")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "data_batch_1.bin").write_bytes(b"\x01" * 10)
    assert_user_error(run_cli("online-lru", "--task", "cifar", "--data-dir", tmp_path / "c", *o), "malformed CIFAR-10 binary file")
    assert_user_error(run_cli("online-lru", *TINY, "--r-min", "0.9", "--r-max", "0.5", *o), "bad --r-min/--r-max")
    assert_user_error(run_cli("online-lru-memory", "--seq-lens", "8,x", *o), "bad --seq-lens")


def test_non_finite_loss_stops_with_exit_3(tmp_path):
    r = run_cli("online-lru", *TINY, "--lr", "1e15", "--epochs", "3", "--schedule", "constant", "--rule", "bptt", "--out", tmp_path / "n")
    assert_user_error(r, "non-finite", code=3)
    assert (tmp_path / "n" / "ckpt-last.pt").exists()
    with h5py.File(tmp_path / "n" / "run.h5", "r") as f:
        assert f.attrs["status"] == "nonfinite"


def test_gradcheck_and_memory_commands(tmp_path, cli):
    r = cli("online-lru-gradcheck", "--layers", "2", "--d-model", "8", "--d-hidden", "8", "--pattern-len", "3", "--batch-size", "4",
                "-q", "--out", tmp_path / "g")
    assert r.code == 0, r.stderr
    rows = (tmp_path / "g" / "gradcheck.csv").read_text().splitlines()
    assert rows[0] == "rule,group,cos,relnorm,rel_err" and len(rows) == 1 + 3 * 5
    with h5py.File(tmp_path / "g" / "run.h5", "r") as f:
        cos = f["results/grad_cos"][:]
        assert cos.shape == (3, 5) and cos[0, 3] == pytest.approx(1.0, abs=1e-12)  # online_full, decoder
        assert cos[2, 1] < cos[0, 1]  # spat further from BPTT than full on layer 0
    assert "online_spat" in r.stderr and "layer_0" in r.stderr
    groups = ("encoder", "layer_0", "layer_1", "decoder", "all")  # per group by default (issue 12.7)
    assert set(r.json["final"]) == {f"cos_{g}_{rule}" for g in groups for rule in ("online_full", "online_truncated", "online_spat")}
    assert r.json["final"]["cos_all_online_full"] == pytest.approx(cos[0, 4], abs=1e-12)
    r = cli("online-lru-memory", "--seq-lens", "8,64", "--rules", "bptt,online_full", "--modes", "sequence,streaming",
                "--d-model", "8", "--d-hidden", "8", "-q", "--out", tmp_path / "m")
    assert r.code == 0, r.stderr
    fin = r.json["final"]
    assert fin["growth_online_full_streaming"] == pytest.approx(1.0, abs=0.02)
    assert fin["growth_bptt_sequence"] > 5 and fin["growth_online_full_sequence"] > 5


@pytest.mark.parametrize("path", sorted((ROOT / "tasks").glob("online-lru-*.toml")), ids=lambda p: p.name)
def test_presets_resolve_with_the_real_parser(path):
    from rnntk.cli import app

    cmd = typer.main.get_command(app).commands["online-lru"]
    ctx = cmd.make_context("online-lru", ["--config", str(path)])
    for key, value in tomllib.loads(path.read_text()).items():
        got = ctx.params[key.replace("-", "_")]
        assert getattr(got, "value", got) == value, (path.name, key)
