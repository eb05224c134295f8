"""``rnntk task show NAME``: timing table (ms and s), trial-length statistics, channels, --png."""

from __future__ import annotations

import pytest
from conftest import assert_user_error, run_cli

from rnntk.analysis.task_show import task_show
from rnntk.core.task_registry import task_names


def test_every_builtin_task_is_described():
    sofo = {f"sofo-train:{t}" for t in ("double-reach", "single-reach", "kalman", "lorenz", "linreg")}
    assert set(task_names()) >= sofo | {"floss:xor", "floss:parity", "floss:copy"}
    for name in sorted(sofo) + ["floss:xor", "floss:parity", "floss:copy"]:  # every task: tests/analysis/test_task_show_all.py
        text = task_show(name, n_trials=8)
        assert f"task {name}" in text and "trial length over 8 trials" in text and "inputs (" in text


def test_double_reach_periods_in_ms_and_s(tmp_path):
    text = task_show("double-reach", tmp_path / "dr.png", n_trials=64)
    assert "reach1   700 ms = 0.7 s / 700 ms = 0.7 s / 700 ms = 0.7 s" in text  # go2 = go1 + 0.7 s
    assert (tmp_path / "dr.png").stat().st_size > 10_000


def test_neurogym_cli_with_png(tmp_path):
    pytest.importorskip("neurogym", reason="the neurogym extra is not installed")
    png = tmp_path / "pdm.png"
    r = run_cli(
        "task", "show", "neurogym:PerceptualDecisionMaking-v0", "--task-kwargs", '{"dt": 20, "timing": {"stimulus": 500}}', "--png", png, "--trials", "50"
    )
    assert r.code == 0, r.stderr
    assert "dt: 20 ms = 0.02 s" in r.stdout
    assert "stimulus  500 ms = 0.5 s / 500 ms = 0.5 s / 500 ms = 0.5 s  spec 500 ms" in r.stdout
    assert "max 700 ms = 0.7 s; padded to 700 ms = 0.7 s" in r.stdout
    assert "inputs (3): fixation, stimulus1, stimulus2" in r.stdout and "outputs (3): fixation, choice1, choice2 (class labels)" in r.stdout
    assert png.stat().st_size > 10_000


def test_bad_name_one_line():
    assert_user_error(run_cli("task", "show", "nope"), "unknown task 'nope'", engine=False)
    assert_user_error(run_cli("task", "show", "xor", "--task-kwargs", '{"dt": 20}'), "apply to neurogym", engine=False)
