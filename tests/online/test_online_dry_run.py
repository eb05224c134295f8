"""``--dry-run`` of ``online-lru-gradcheck`` and ``online-lru-memory`` (issue 17.6): the model
is built and counted and the run stops before any gradient is computed (the entry points are
replaced here by functions that raise, so a dry run that computed would fail, exit 1); nothing
is written. Oracle for the count: the same model built here from the command's options."""

from __future__ import annotations

import pytest

COMPUTE = {
    "online-lru-gradcheck": ("rnntk.online.alignment", "gradient_alignment"),
    "online-lru-memory": ("rnntk.online.memory", "rule_memory"),
}
ARGS = {
    "online-lru-gradcheck": ["--layers", "2", "--d-model", "16", "--d-hidden", "16", "--batch-size", "4", "--pattern-len", "3", "--pad-len", "2"],
    "online-lru-memory": ["--seq-lens", "8,16", "--d-model", "12"],
}


def _expected_params(name: str) -> int:
    """Parameters of the model the command analyses, built here from its config."""
    import torch

    if name == "online-lru-gradcheck":
        from rnntk.online.config import GradcheckConfig
        from rnntk.online.data import build_model, load_task

        cfg = GradcheckConfig(layers=2, d_model=16, d_hidden=16, batch_size=4, pattern_len=3, pad_len=2)
        data = load_task(cfg.task, torch.Generator(), pattern_len=3, pad_len=2, bits=cfg.bits, train_samples=4, val_samples=1, test_samples=1, limit=4)
        model = build_model(data[0], torch.Generator(), **cfg.model_options)
    else:
        from rnntk.online.config import MemoryConfig
        from rnntk.online.models.seq_model import build_seq_model

        cfg = MemoryConfig(seq_lens="8,16", d_model=12)
        model = build_seq_model(d_in=8, n_classes=2, n_out=7, generator=torch.Generator(), **cfg.model_options)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(COMPUTE))
def test_dry_run_counts_the_model_and_computes_no_gradient(name, cli_in_process, monkeypatch, tmp_path):
    import importlib

    mod, attr = COMPUTE[name]
    m = importlib.import_module(mod)

    def boom(*a, **k):
        raise AssertionError(f"--dry-run reached {mod}.{attr}")

    monkeypatch.setattr(m, attr, boom)
    monkeypatch.chdir(tmp_path)
    r = cli_in_process(name, *ARGS[name], "--dry-run")
    assert r.code == 0, f"{r.stdout}\n{r.stderr}"
    assert list(tmp_path.iterdir()) == []
    n = _expected_params(name)
    assert r.json["n_params"] == n and f"parameters: {n:,} (counted on the built model: model {n:,})" in r.stdout
    assert r.json["results_bytes_estimate"] == (3 * 8 * 3 * 5 if name == "online-lru-gradcheck" else 3 * 8 * 2 * 2)
