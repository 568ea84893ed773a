"""``dlcli shapes --ranks N``: the memory of one rank, against hand counts and against the
buffers a real sharded step allocates."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from dlcli.cli import cli
from dlcli.config.resolve import resolve
from dlcli.inspect.shapes import layer_table
from dlcli.parallel import Plan
from dlcli.parallel.comm import Local
from dlcli.parallel.memory import live_buffers, per_rank_memory
from dlcli.train import session
from tests.helpers.configs import moons_mlp, write_config


def test_live_buffers_by_hand():
    # [0,4): [0,2) kept while [2,4) keeps leaf 2 while leaf 3 is computed: 3 buffers
    assert live_buffers(0, 4) == 3
    assert live_buffers(0, 1) == 1
    assert live_buffers(0, 2) == 2
    assert live_buffers(0, 8) == 4


def test_the_tree_allocates_what_shapes_counts():
    cfg = resolve(moons_mlp(parallel={"shards": 8}))
    prep = session.prepare(cfg, 1)
    optimizer, rng = session.initialize(cfg, prep.model, 1)
    trainer = Plan(Local(), 8, "tree").make_trainer(
        prep.model, prep.loss, optimizer, task=prep.task, batch_size=16, epochs=1, rng=rng,
        seed=1)
    trainer.fit(prep.splits.x_train.astype(np.float32),
                session.targets(prep.splits, prep.task, np.float32, prep.loss)[0])
    assert len(trainer._reducer.pool._free) == live_buffers(0, 8) == 4


def test_per_rank_memory_counts_one_shard_of_rows_and_the_reduction():
    cfg = resolve(moons_mlp())
    prep = session.prepare(cfg, 1)
    grad = prep.model.param_count() * 4
    one = per_rank_memory(prep.model, 16, {"type": "adam"}, shards=4, ranks=1)["memory_bytes"]
    two = per_rank_memory(prep.model, 16, {"type": "adam"}, shards=4, ranks=2)["memory_bytes"]
    rows4 = layer_table(prep.model, 4, {"type": "adam"})["memory_bytes"]
    assert one["activations"] == two["activations"] == rows4["activations"]
    assert one["reduction"] == 3 * grad  # the tree over 4 leaves, no messages
    assert two["reduction"] == 2 * grad + 2 * grad  # tree over 2 leaves + message + partner's


def test_shapes_ranks_option(tmp_path):
    path = write_config(tmp_path / "c.yaml", moons_mlp(parallel={"shards": 4}))
    result = CliRunner().invoke(cli, ["shapes", str(path), "--ranks", "2", "--json"])
    assert result.exit_code == 0, result.output
    rank = json.loads(result.output)["per_rank"]
    assert (rank["ranks"], rank["shards_per_rank"], rank["rows_per_shard"]) == (2, 2, 4)
    result = CliRunner().invoke(cli, ["shapes", str(path), "--ranks", "3"])
    assert result.exit_code == 2
    assert "training.parallel.shards: 4 shards cannot be shared evenly by 3" in result.output


@pytest.mark.parametrize("args", [["--ranks", "0"]])
def test_shapes_ranks_must_be_positive(tmp_path, args):
    path = write_config(tmp_path / "c.yaml", moons_mlp())
    assert CliRunner().invoke(cli, ["shapes", str(path), *args]).exit_code == 2
