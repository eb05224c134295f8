"""sofo-train's data streams (issue 12.4): training trials and noise come from their own streams
derived from the run seed, so runs that differ only in optimizer, K or tangent kind see identical
trials; resume restores those streams."""

import pytest
import torch

from rnntk.engine import Run
from rnntk.sofo.problems import make_problem
from rnntk.sofo.train import TrainConfig, train


def batches_seen(path, seed=5, **cfg):
    """Every training batch (inputs, targets, noise) a 3-iteration double-reach run draws."""
    prob = make_problem("double-reach", hidden=6, dt=0.02, duration=0.6, noise=True)
    seen = []
    orig = prob.sample

    def sample(batch, generator):
        b = orig(batch, generator)
        seen.append((b.trials.inputs.clone(), b.trials.targets.clone(), b.noise.clone()))
        return b

    prob.sample = sample
    with Run.open(path, command="sofo-train", seed=seed, device="cpu", progress="none") as run:
        train(prob, TrainConfig(iters=3, batch=4, eval_batch=4, eval_every=10, save_traces=1, **cfg), run)
    return seen[1:]  # seen[0] is the fixed validation batch


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_runs_differing_in_optimizer_k_or_tangents_see_the_same_trials(tmp_path):
    """Regression: the training batches were drawn from the tangents' generator, so a SOFO run
    and an Adam run (or K = 8 and K = 4) with the same seed trained on different trials."""
    ref = batches_seen(tmp_path / "a", optimizer="sofo", n_tangents=8, tangents="orthonormal")
    assert len(ref) == 3 and not torch.equal(ref[0][0], ref[1][0])
    for i, cfg in enumerate([dict(optimizer="adam"), dict(optimizer="sofo", n_tangents=4, tangents="normalized"),
                             dict(optimizer="both", n_tangents=16, tangents="rank1")]):
        other = batches_seen(tmp_path / f"b{i}", **cfg)
        for (xa, ya, na), (xb, yb, nb) in zip(ref, other, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(na, nb), cfg
    different_seed = batches_seen(tmp_path / "c", seed=6, optimizer="sofo", n_tangents=8)
    assert not torch.equal(ref[0][0], different_seed[0][0])
