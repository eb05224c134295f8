"""``rnntk task show`` for every task of every command (issue 18.4): each ``--task`` choice of
each command is registered, renders a table whose numbers come from the task's own generator
(sequence length, scored steps, periods) and a PNG of the expected pixel size; file tasks read
``--data-dir``; unknown, ambiguous and misplaced names are one-line exit-2 errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_user_error, run_cli
from PIL import Image

from rnntk.analysis.task_show import format_listing, task_show
from rnntk.core.task_registry import describe_task, resolve, task_listing, task_names

FILE_TASKS = {"online-lru:cifar", "online-lru:lra-listops", "online-lru:imdb"}
PNG_SIZE = (880, 715)  # figsize (8, 6.5) at dpi 110


def _task_choices() -> dict[str, list[str]]:
    """``{command: its --task values}``, from the option declarations the CLI is built from
    (the choices, or the values the metavar lists)."""
    from rnntk.cli import app  # noqa: F401 - registers every command's config
    from rnntk.engine.config_cli import CONFIG_COMMANDS, option_fields

    out = {}
    for cmd, spec in CONFIG_COMMANDS.items():
        for f, opt in option_fields(spec.config):
            if f.name == "task":
                out[cmd] = [c.value for c in opt.choices] if opt.choices else str(opt.metavar).strip("[]").split("|")
    return out


def test_every_task_choice_of_every_command_is_registered():
    choices = _task_choices()
    assert {"sofo-train", "floss", "online-lru", "ode-train"} <= set(choices)
    names = set(task_names())
    for cmd, tasks in choices.items():
        for t in tasks:
            if t.startswith("neurogym:"):
                continue
            assert {f"{cmd}:{t}", f"{cmd.removesuffix('-gradcheck')}:{t}"} & names, f"{cmd} --task {t} has no describer"
    assert "cordsnet-eval:digits" in names  # cordsnet-eval has no --task: its stimulus protocol on its demo images


def _fake_files(tmp_path, task):
    """Tiny data folders in each loader's format (as tests/online/test_online_tasks.py builds them)."""
    d = tmp_path / task.split(":")[1]
    d.mkdir()
    if task.endswith("cifar"):
        rng = np.random.default_rng(0)
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            rec = np.zeros((6, 3073), dtype=np.uint8)
            rec[:, 0] = rng.integers(0, 10, 6)
            rec[:, 1:] = rng.integers(0, 256, (6, 3072))
            rec.tofile(d / name)
    elif task.endswith("lra-listops"):
        rows = ["Source\tTarget", "( ( [MAX 2 9 ] 3 ) )\t9", "[SM 1 2 ]\t3"]
        for split in ("train", "val", "test"):
            (d / f"basic_{split}.tsv").write_text("\n".join(rows) + "\n")
    else:
        for split in ("train", "test"):
            for lab, text in (("pos", "Great film!"), ("neg", "Bad.")):
                (d / "aclImdb" / split / lab).mkdir(parents=True)
                for i in range(3):
                    (d / "aclImdb" / split / lab / f"{i}_1.txt").write_text(text * (i + 1))
    return d


def _t(steps: float, dt) -> str:
    return f"{steps:g} steps" if dt is None else f"{steps * dt * 1000:g} ms = {steps * dt:g} s"


@pytest.mark.parametrize("name", sorted(task_names()))
def test_every_task_renders_table_and_png(name, tmp_path):
    data = _fake_files(tmp_path, name) if name in FILE_TASKS else None
    png = tmp_path / "trial.png"
    text = task_show(name, png, n_trials=12, seed=3, data_dir=data)
    with Image.open(png) as im:
        assert im.size == PNG_SIZE
    assert text.startswith(f"task {name}: ")
    # the numbers are those of the task's own generator, sampled with the same seed
    spec = describe_task(name, data_dir=data)
    tb = spec.sample(12, torch.Generator().manual_seed(3))
    n = tb.batch
    assert f"trial length over {n} trials" in text
    assert f"padded to {_t(tb.steps, spec.dt)}" in text
    scored = (tb.mask.reshape(n, tb.steps, -1).amax(-1) > 0).sum(1).float()
    assert f"scored (loss mask > 0): {float(scored.min()):g} / {float(scored.mean()):g} / {float(scored.max()):g} steps" in text
    assert f"inputs ({tb.inputs.shape[-1]}): " in text and f"outputs ({len(spec.outputs)}): " in text
    for k in tb.table:
        if k.startswith("period_") and k.endswith("_start") and bool((tb.table[k] >= 0).any()):
            p = k[len("period_") : -len("_start")]
            d = (tb.table[f"period_{p}_end"] - tb.table[k])[tb.table[k] >= 0].float()
            assert f"  {p}" in text and _t(float(d.min()), spec.dt) in text


def test_numbers_follow_the_generators_options(tmp_path, monkeypatch):
    """Not constants: the table follows the options the task generators are built from."""
    from rnntk.cordsnet.config import EvalConfig
    from rnntk.online.tasks.copy import copy_length

    text = task_show("online-lru:copy", n_trials=4)
    T = copy_length(10, 7)
    assert f"padded to {T} steps" in text and f"from step {T - 10} to step {T - 1}" in text
    assert "delay    7 steps / 7 steps / 7 steps" in text and "stop     1 steps" in text
    monkeypatch.setattr(EvalConfig, "__init__", _with(EvalConfig.__init__, spont_steps=30, stim_steps=20, post_steps=5, readout="final"))
    text = task_show("cordsnet-eval:digits", tmp_path / "c.png", n_trials=4)
    assert "spontaneous  60 ms = 0.06 s" in text and "stimulus     40 ms = 0.04 s" in text and "post         10 ms = 0.01 s" in text
    assert "padded to 110 ms = 0.11 s" in text and "1 / 1 / 1 steps per trial" in text and "from step 49 to step 49" in text
    assert "outputs (1): the bit 20 steps back" in task_show("floss:copy", n_trials=2)  # floss's delay 20, one bit
    assert "outputs (1): parity (XOR) of the bits 10, 20 steps back" in task_show("xor", n_trials=2)
    text = task_show("spheres", n_trials=6)
    assert "padded to 2 steps" in text and "from step 1 to step 1" in text and "(class labels)" in text


def _with(init, **defaults):
    def patched(self, *a, **kw):
        init(self, *a, **{**defaults, **kw})

    return patched


def test_file_tasks_need_data_dir(tmp_path):
    with pytest.raises(ValueError, match="reads local files: give --data-dir"):
        task_show("cifar")
    assert_user_error(run_cli("task", "show", "online-lru:imdb"), "give --data-dir", engine=False)
    assert_user_error(run_cli("task", "show", "spheres", "--data-dir", tmp_path), "--data-dir applies to file tasks only", engine=False)
    d = _fake_files(tmp_path, "online-lru:lra-listops")
    r = run_cli("task", "show", "lra-listops", "--data-dir", d, "--png", tmp_path / "l.png")
    assert r.code == 0, r.stderr
    assert "trial length over 2 trials: mean 6.5 steps" in r.stdout and "padded to 9 steps" in r.stdout  # the two rows of the file: 9 and 4 tokens


def test_list_and_names():
    listing = format_listing()
    for row in task_listing():
        assert row["name"] in listing
    assert "online-lru:copy" in listing and "floss:copy" in listing and "cifar [--data-dir]" in listing
    assert resolve("spheres") == "ode-train:spheres" and resolve("double-reach") == "sofo-train:double-reach"
    for cli_args in (("task", "show"), ("task", "show", "--list")):
        r = run_cli(*cli_args)
        assert r.code == 0 and "cordsnet-eval:digits" in r.stdout and "ode-train:" in r.stdout, r.stderr


def test_unknown_and_ambiguous_names_one_line():
    assert_user_error(run_cli("task", "show", "nope"), "unknown task 'nope'", "--list", engine=False)
    assert_user_error(run_cli("task", "show", "copy"), "ambiguous", "floss:copy or online-lru:copy", engine=False)
    assert_user_error(run_cli("task", "show", "ode-train:copy"), "unknown task 'ode-train:copy'", engine=False)


def test_neurogym_without_decision_period_shows_all_steps_scored(tmp_path):
    pytest.importorskip("neurogym", reason="the neurogym extra is not installed")
    text = task_show("neurogym:ReadySetGo-v0", tmp_path / "rsg.png", n_trials=8)
    assert "no decision period: loss mask on every step (--loss-on all)" in text and "ready" in text
    assert "spec function (drawn per trial)" in text and "<function" not in text  # the measure period's callable spec
