"""The neurogym adapter's batch assembly (preallocated arrays, columnar table): batches bit-identical
to those of the per-trial implementation it replaced (hashes computed with that implementation,
commit 0cd999a, for a fixed seed), and one-line errors for environments it cannot train on."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from conftest import assert_user_error, run_cli

pytest.importorskip("neurogym", reason="the neurogym extra is not installed")

from rnntk.core import neurogym as ngt  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*render_modes:UserWarning")


def batch_hash(b) -> str:
    """sha256 (16 hex digits) of inputs, targets, mask (dtype, shape, bytes), every table column (sorted) and dt."""
    h = hashlib.sha256()
    for t in (b.inputs, b.targets, b.mask):
        a = t.numpy()
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    for k in sorted(b.table):
        a = np.asarray(b.table[k])
        h.update(k.encode())
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    h.update(repr(b.dt).encode())
    return h.hexdigest()[:16]


# (env, kwargs, loss_on, batch, seed) -> hashes of sample(batch, Generator(seed)) then sample(batch) (the stream continued),
# computed before the change. Covers scalar-only trial dicts, tuples (DelayComparison, DelayPairedAssociation), arrays
# (ProbabilisticReasoning, PulseDecisionMaking), strings (DelayMatchCategory), tasks without a decision period (loss_on all).
BEFORE = [
    ("PerceptualDecisionMaking-v0", {"dt": 20}, "decision", 64, 0, "ab816c2731aeae81", "9748884fdb26b89b"),
    ("PerceptualDecisionMaking-v0", {}, "decision", 16, 3, "796132c4b71cf04b", "d5b6e3453a8419e8"),
    ("PerceptualDecisionMaking-v0", {}, "all", 16, 3, "832d97d8f59ee137", "f563e9f38dd55923"),
    ("ContextDecisionMaking-v0", {}, "decision", 16, 3, "7d8d0d57cc66ccb5", "7eed1f44411a610d"),
    ("DelayComparison-v0", {}, "decision", 16, 3, "5e1388e8fa9c5322", "c815fbac4689aa1f"),
    ("DelayPairedAssociation-v0", {}, "decision", 16, 3, "24606f5621aa0bb3", "dcceeafd56336e49"),
    ("ProbabilisticReasoning-v0", {}, "decision", 16, 3, "f0aff6d12edf6512", "5617792c52d40f77"),
    ("PulseDecisionMaking-v0", {}, "decision", 16, 3, "54ddb0189bc14418", "f0a5b88c39e91be9"),
    ("DelayMatchCategory-v0", {}, "all", 16, 3, "34f558f8ef29983d", "be4e037aafa529eb"),
    ("ReadySetGo-v0", {}, "all", 16, 3, "a42b30facdafdf8c", "d0678f84ad322831"),
    ("GoNogo-v0", {}, "all", 16, 3, "e19f18d377a8d98c", "36808b01e5683d0f"),
]


@pytest.mark.parametrize("env,kw,loss_on,batch,seed,h1,h2", BEFORE, ids=[f"{r[0]}-{r[2]}-{r[3]}" for r in BEFORE])
def test_batches_bit_identical_to_before(env, kw, loss_on, batch, seed, h1, h2):
    task = ngt.NeurogymTask("neurogym:" + env, kw, loss_on=loss_on, fixation_weight=1.0 if kw else 0.5)
    assert batch_hash(task.sample(batch, torch.Generator().manual_seed(seed))) == h1
    assert batch_hash(task.sample(batch)) == h2


def test_table_columns_mixed_trial_dicts():
    """The columnar table on hand-made trial dicts: first-appearance order, tuples split, NaN where
    absent, int64 only for integral columns whose first value is an int, non-numbers skipped."""
    infos = [
        {"gt": 1, "coh": 0.5, "pair": (1, 2), "name": "a", "none": None},
        {"gt": 0, "coh": 1.0, "pair": (3, 4), "name": "b", "extra": 7},
        {"gt": np.int64(2), "coh": np.float32(0.25), "pair": [5, 6], "name": "c", "none": None},
    ]
    t = ngt._columns(infos)
    assert list(t) == ["gt", "coh", "pair_0", "pair_1", "extra"]
    np.testing.assert_array_equal(t["gt"], [1, 0, 2])
    assert t["gt"].dtype == np.int64
    assert t["coh"].dtype == np.float64 and t["coh"].tolist() == [0.5, 1.0, 0.25]
    assert t["pair_1"].tolist() == [2, 4, 6] and t["pair_1"].dtype == np.int64
    assert t["extra"].dtype == np.float64 and np.isnan(t["extra"][[0, 2]]).all() and t["extra"][1] == 7
    same = [{"a": 1, "b": 2.0}, {"a": 3, "b": 4.5}]  # one all-scalar signature: the fast path
    s = ngt._columns(same)
    assert s["a"].dtype == np.int64 and s["a"].tolist() == [1, 3] and s["b"].tolist() == [2.0, 4.5]


def test_unsupervised_and_continuous_envs_one_line(tmp_path):
    with pytest.raises(ValueError, match="builds no supervised trial"):
        ngt.NeurogymTask("neurogym:Null-v0", loss_on="all").sample(2)  # was an AttributeError (env.gt)
    with pytest.raises(ValueError, match="continuous action space"):
        ngt.NeurogymTask("neurogym:ReachingDelayResponse-v0", loss_on="all")  # was an AttributeError ('Box' .n)
    assert_user_error(run_cli("task", "show", "neurogym:SpatialSuppressMotion-v0"), "continuous action space", engine=False)


@pytest.mark.parametrize("env", ["PostDecisionWager-v0", "IntervalDiscrimination-v0"])
def test_padded_length_does_not_depend_on_the_unseeded_env_rng(env):
    """Tasks whose timing has a callable spec are padded to the longest of 2000 probe trials; neurogym
    makes every environment with an unseeded RandomState, so the probe draws with its own fixed one
    (was: 26 or 27 steps for PostDecisionWager-v0, 43 or 44 for IntervalDiscrimination-v0, by process);
    and so for its timing samplers' RandomStates (was: PostDecisionWager-v0 still 26 or 27)."""
    task = ngt.NeurogymTask("neurogym:" + env, loss_on="all")
    samplers = [v for v in task.env.timing.values() if hasattr(v, "rng")]  # TruncExp keeps its own, unseeded too
    got = set()
    for s in range(6):  # whatever state the environment's own generator and its samplers' are in
        task.env.rng = np.random.RandomState(s)
        for j, v in enumerate(samplers):
            v.rng = np.random.RandomState(100 * s + j)
        got.add(task._probe_steps())
        assert task.env.rng.randint(1 << 30) == np.random.RandomState(s).randint(1 << 30)  # left as it was
        for j, v in enumerate(samplers):
            assert v.rng.randint(1 << 30) == np.random.RandomState(100 * s + j).randint(1 << 30)
    assert got == {task.steps}
