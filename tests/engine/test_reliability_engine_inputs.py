"""Issue 13.6 (engine part): integers past 2**63 and mistyped TOML values are one-line
errors (exit 2) before any folder is made; inspect reads HDF5 files with array and
variable-length attributes; every JSON rnntk prints or writes is strict (NaN/inf → null)."""

import json

import h5py
import numpy as np
import pytest

from conftest import assert_user_error, run_cli
from rnntk.engine import Run
from rnntk.engine.files import dumps_strict


def strict_loads(text: str):
    def refuse(c):
        raise ValueError(f"non-strict JSON constant {c}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("args", [("--iters", str(2**64)), ("--hidden", "99999999999999999999999"), ("--log-every", str(2**63))])
def test_huge_integer_options(tmp_path, args):
    r = run_cli("selftest", *args, "--out", tmp_path / "r")
    assert_user_error(r, "2**63")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("line,needle", [
    (f"iters = {2**64}", "2**63"),
    ('quiet = "yes"', "must be a boolean"),
    ('iters = "10"', "must be an integer"),
    ("iters = 1.5", "must be an integer"),
    ("lr = true", "must be a number"),
])
def test_toml_types(tmp_path, line, needle):
    cfg = tmp_path / "c.toml"
    cfg.write_text(line + "\n")
    r = run_cli("selftest", "--config", cfg, "--out", tmp_path / "r")
    assert_user_error(r, needle)
    assert not (tmp_path / "r").exists()


def test_toml_accepts_what_rnntk_writes(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("iters = 2\nlr = 1\nseed = 4\nquiet = true\nsteps = 5\nhidden = 4\nbatch = 4\n")
    r = run_cli("selftest", "--config", cfg, "--out", tmp_path / "r")
    assert r.code == 0, r.stderr
    r = run_cli("selftest", "--config", tmp_path / "r" / "config.toml", "--out", tmp_path / "r2", "-q")
    assert r.code == 0, r.stderr


def test_inspect_array_and_vlen_attributes(tmp_path):
    p = tmp_path / "odd.h5"
    with h5py.File(p, "w") as f:
        for k in ("status", "format", "command", "error", "wall_s", "resume_count", "created"):
            f.attrs[k] = np.array([1, 2])
        f.attrs.create("vlen", data=np.array([np.array([1, 2]), np.array([3])], dtype=object), dtype=h5py.vlen_dtype(np.int32))
        f.attrs["strs"] = np.array(["a", "b"], dtype=h5py.string_dtype())
        f.attrs["nan"] = np.nan
        d = f.create_dataset("results/x", data=np.array([np.nan, np.inf]))
        d.attrs["dims"] = np.array([1, 2])
        d.attrs["dt"] = np.array([0.1, 0.2])
        d.attrs.create("vl", data=np.array([np.array([1, 2]), np.array([3])], dtype=object), dtype=h5py.vlen_dtype(np.int32))
        f.create_dataset("metrics/step", data=np.arange(3))
        f.create_dataset("metrics/loss", data=np.array([1.0, np.nan, np.inf])).attrs["units"] = np.array([1, 2])
        f.create_group("checkpoints/last").attrs["step"] = np.array([3, 4])
    r = run_cli("inspect", p)
    assert r.code == 0 and "Traceback" not in r.stderr and "x" in r.stdout, r.stderr
    r = run_cli("inspect", "--json", p)
    assert r.code == 0, r.stderr
    s = strict_loads(r.stdout)
    assert s["attrs"]["vlen"] == [[1, 2], [3]] and s["attrs"]["strs"] == ["a", "b"] and s["attrs"]["nan"] is None
    assert s["results"]["x"]["value"] == [None, None]


def test_json_outputs_are_strict(tmp_path, capsys):
    with Run.open(tmp_path / "r", command="tiny", device="cpu", progress="none") as run:
        run.log(0, loss=1.0)
        run.finish(best=float("nan"), worst=float("inf"))
    line = dumps_strict(run.outcome)
    assert strict_loads(line)["final"]["best"] is None
    assert strict_loads((tmp_path / "r" / "summary.json").read_text())["final"]["worst"] is None
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:  # run.h5 keeps the values
        assert np.isnan(json.loads(f.attrs["final"])["best"])
    from rnntk.engine.options import _emit_json

    _emit_json({"status": "completed", "final": {"x": float("-inf"), "y": np.float32("nan")}})
    assert strict_loads(capsys.readouterr().out.strip().splitlines()[-1])["final"] == {"x": None, "y": None}
