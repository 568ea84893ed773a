"""Sharded steps in one process: the cut, the tree, the weighting and the dropout streams,
against hand computations and plain (unsharded) runs."""

import copy

import numpy as np
import pytest

from dlcli.config.resolve import resolve
from dlcli.errors import ConfigError, TrainingError
from dlcli.parallel.shards import block, bounds, frontier, split, tree_sum
from dlcli.train import session
from tests.helpers.configs import moons_mlp


def test_bounds_cut_contiguous_shards_differing_by_at_most_one():
    for m in range(0, 40):
        for s in range(1, 9):
            cut = bounds(m, s)
            sizes = np.diff(cut)
            assert cut[0] == 0 and cut[-1] == m and np.all(sizes >= 0)
            assert sizes.max() - sizes.min() <= 1


def _tree_nodes(lo, hi):
    yield (lo, hi)
    if hi - lo > 1:
        mid = split(lo, hi)
        yield from _tree_nodes(lo, mid)
        yield from _tree_nodes(mid, hi)


@pytest.mark.parametrize("shards", range(1, 13))
def test_each_rank_block_is_covered_by_tree_nodes(shards):
    nodes = set(_tree_nodes(0, shards))
    for size in [n for n in range(1, shards + 1) if shards % n == 0]:
        for rank in range(size):
            first, last = block(rank, size, shards)
            parts = frontier(0, shards, first, last)
            assert all(p in nodes for p in parts)
            assert [k for lo, hi in parts for k in range(lo, hi)] == list(range(first, last))
            if size & (size - 1) == 0:  # a power of two: one node per rank
                assert parts == [(first, last)]


def test_tree_sum_adds_in_the_fixed_pairwise_order():
    rng = np.random.default_rng(0)
    leaves = [rng.standard_normal(5).astype(np.float32) * 10.0 ** k for k in range(6)]
    # by hand: ((0 + (1 + 2)) + (3 + (4 + 5)))
    expected = (leaves[0] + (leaves[1] + leaves[2])) + (leaves[3] + (leaves[4] + leaves[5]))
    assert np.array_equal(tree_sum(leaves), expected)


def _train(config, tmp_path, name):
    cfg = resolve(copy.deepcopy(config))
    session.train(cfg, run_dir=tmp_path / name)
    from dlcli.train.recovery import load_latest
    _, parts, _ = load_latest(tmp_path / name / "checkpoints")
    return parts


def _mlp(**training):
    config = moons_mlp(**training)
    config["dtype"] = "float64"
    config["data"]["params"]["n_samples"] = 130  # 91 training rows: a short last batch
    return config


def _cnn(**training):
    return {
        "name": "cnn", "seed": 2, "dtype": "float64",
        "data": {"source": "synthetic:images",
                 "params": {"n_samples": 60, "n_classes": 3, "height": 8, "width": 8,
                            "channels": 1}},
        "model": {"layers": [
            {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same",
             "activation": "relu"},
            {"type": "maxpool2d", "pool_size": 2},
            {"type": "dense", "units": 3, "activation": "softmax", "flatten_input": True}],
            "loss": "categorical_crossentropy"},
        "training": {"epochs": 2, "batch_size": 10, "optimizer": {"type": "sgd", "lr": 0.05},
                     **training},
    }


@pytest.mark.parametrize("make", [_mlp, _cnn], ids=["mlp", "cnn"])
@pytest.mark.parametrize("shards", [3, 4])
def test_sharded_run_agrees_with_the_unsharded_run_in_float64(tmp_path, make, shards):
    """Σ_k (m_k/m)·g_k is the global batch's mean gradient: the trajectories agree up to
    rounding (the batch of 16 with 91 rows leaves a last batch of 11: shards of 2-3)."""
    plain = _train(make(), tmp_path, "plain")
    sharded = _train(make(parallel={"shards": shards}), tmp_path, "sharded")
    keys = [k for k in plain["model"]]
    assert keys
    for key in keys:
        np.testing.assert_allclose(sharded["model"][key], plain["model"][key], rtol=0,
                                   atol=1e-6)
    assert int(sharded["trainer"]["step"]) == int(plain["trainer"]["step"])


def test_sharded_gradient_is_the_weighted_tree_sum_with_dropout_streams(tmp_path):
    """One step by hand: each shard's gradient with its own dropout generator
    [seed, 2, step, shard], weighted by its share of the batch, summed as g0 + (g1 + g2) (the tree splits [0, 3) at 1)."""
    from dlcli.parallel import Plan
    from dlcli.parallel.comm import Local

    config = _mlp()
    config["model"]["layers"].insert(1, {"type": "dropout", "rate": 0.3})
    cfg = resolve(config)
    prep = session.prepare(cfg, 1)
    optimizer, rng = session.initialize(cfg, prep.model, 1)
    x = prep.splits.x_train.astype(np.float64)
    y, _, _ = session.targets(prep.splits, prep.task, np.float64, prep.loss)
    index = np.arange(7, 18)  # 11 rows -> shards of 3, 4, 4
    start = prep.model.flat_buffers().params.copy()

    expected = []
    cut = [0, 3, 7, 11]
    for k in range(3):
        prep.model.set_rng(np.random.default_rng([1, 2, 0, k]))
        prep.model.zero_grad()
        rows = index[cut[k]:cut[k + 1]]
        logits = prep.model.forward(x[rows], training=True, logits=True)
        prep.loss.forward(logits, y[rows])
        prep.model.backward(prep.loss.backward())
        expected.append(prep.model.flat_buffers().grads * ((cut[k + 1] - cut[k]) / 11))
    expected = expected[0] + (expected[1] + expected[2])

    trainer = Plan(Local(), 3, "tree").make_trainer(
        prep.model, prep.loss, optimizer, task=prep.task, batch_size=11, epochs=1, rng=rng,
        seed=1)
    params = prep.model.parameters()
    flat = prep.model.flat_buffers()
    flat.params[...] = start
    xb, yb = trainer.batch_buffers(x, y, 11)
    trainer.batch_step(x, y, index, xb, yb, params, [g for *_, g in params], flat, 1, 1)
    assert np.array_equal(flat.grads, expected)


def _resolve_errors(training):
    config = moons_mlp(**training)
    with pytest.raises(ConfigError) as info:
        cfg = resolve(config)
        from dlcli.parallel import plan
        plan(cfg)
    return str(info.value)


@pytest.mark.parametrize("parallel, expected", [
    ({"shards": 0}, "training.parallel.shards: "),
    ({"shards": 2, "reduce": "ring"}, "training.parallel.reduce: "),
    ({"shard": 2}, "training.parallel.shard: unknown key"),
    ({}, "training.parallel.shards: required key is missing"),
    ({"shards": 17}, "training.parallel.shards: must be at most training.batch_size (16)"),
])
def test_parallel_key_is_validated_with_its_path(parallel, expected):
    assert expected in _resolve_errors({"parallel": parallel})


def test_drifted_replicas_stop_every_rank_with_the_same_error(tmp_path):
    from dlcli.parallel import Plan

    class TwoRanks:  # rank 0 of 2 whose peer reports another digest
        rank, size, name = 0, 2, "rank 0 of 2"

        def allgather_obj(self, obj):
            return [obj, "something else"]

    cfg = resolve(_mlp())
    prep = session.prepare(cfg, 1)
    optimizer, rng = session.initialize(cfg, prep.model, 1)
    trainer = Plan(TwoRanks(), 2, "tree").make_trainer(
        prep.model, prep.loss, optimizer, task=prep.task, batch_size=16, epochs=1, rng=rng,
        seed=1)
    with pytest.raises(TrainingError, match=r"rank\(s\) 1 differ from rank 0's"):
        trainer.check_replicas(1)
    assert trainer.agreed
