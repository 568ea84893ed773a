"""The benchmark harness's load accounting and flagging (benchmarks.load), on synthetic samples,
and its recording of the products a training step runs (benchmarks.gemm)."""

import numpy as np
import pytest

from benchmarks import load
from benchmarks.gemm import Product, recording

# /proc/stat with 2 CPUs; columns user nice system idle iowait irq softirq steal guest
STAT = """cpu  {u} 0 {s} {i} 0 0 0 {st} 0 0
cpu0 1 0 1 1 0 0 0 0 0 0
cpu1 1 0 1 1 0 0 0 0 0 0
intr 12345
"""


def counters(user, system, idle, steal=0, hz=100):
    return load.parse_proc_stat(STAT.format(u=user, s=system, i=idle, st=steal), hz)


def test_parse_proc_stat_counts_busy_total_and_cpus():
    c = counters(300, 100, 1600, steal=50)
    # busy = user + system + steal = 450 ticks = 4.5 s; total adds idle 1600 = 20.5 s
    assert c == (4.5, 20.5, 2)
    with pytest.raises(ValueError):
        load.parse_proc_stat("intr 1\n")


def test_others_share_subtracts_the_workers_own_cpu():
    before = counters(1000, 0, 0)
    # 2 CPUs for 2 s = 4 CPU-seconds of capacity; 300 ticks busy = 3.0 s, of which the
    # worker used 2.6 s: the others used 0.4 s, a tenth of the capacity.
    after = counters(1300, 0, 100)
    assert load.others_share(before, after, wall_s=2.0, own_cpu_s=2.6) == pytest.approx(0.1)
    # a quiet machine: all the busy time is the worker's
    assert load.others_share(before, after, wall_s=2.0, own_cpu_s=3.0) == 0.0
    # steal (another VM on the host) counts as someone else's use of the cores
    stolen = counters(1300, 0, 100, steal=200)
    assert load.others_share(before, stolen, 2.0, 2.6) == pytest.approx(0.6)
    # clipped to 1; unknown without counters or time
    assert load.others_share(before, counters(3000, 0, 0), 1.0, 0.0) == 1.0
    assert load.others_share(None, after, 2.0, 1.0) is None
    assert load.others_share(before, after, 0.0, 1.0) is None


def test_disturbed_above_the_threshold_only():
    assert not load.disturbed(load.DISTURBED_SHARE)
    assert load.disturbed(load.DISTURBED_SHARE + 0.01)
    assert not load.disturbed(None)
    assert load.disturbed(0.3, threshold=0.25) and not load.disturbed(0.2, threshold=0.25)


def test_sample_records_share_and_flag():
    before, after = counters(1000, 0, 0), counters(1300, 0, 100)
    s = load.sample(before, after, wall_s=2.0, seconds=1.9, cpu_s=1.0, load=3.5)
    # others: 3.0 - 1.0 = 2.0 CPU-seconds of 4 -> one half
    assert s == {"seconds": 1.9, "cpu_s": 1.0, "load": 3.5, "others": pytest.approx(0.5),
                 "disturbed": True}


def test_pairs_flagged_when_either_side_is_and_left_out_of_the_median():
    quiet, busy = {"disturbed": False}, {"disturbed": True}
    a = [quiet, busy, quiet, quiet]
    b = [quiet, quiet, quiet, busy]
    flags = load.pair_flags(a, b)
    assert flags == [False, True, False, True]
    # 0.49 is the contaminated pair: the median is of 0.80 and 0.90 alone
    result = load.clean_median([0.80, 0.49, 0.90, 0.30], flags)
    assert result == {"median": pytest.approx(0.85), "used": 2, "of": 4,
                      "all_disturbed": False}


def test_all_disturbed_falls_back_to_every_value_and_says_so():
    result = load.clean_median([1.0, 3.0, 2.0], [True, True, True])
    assert result == {"median": 2.0, "used": 3, "of": 3, "all_disturbed": True}
    assert load.clean_median([], [])["median"] is None


def test_recording_lists_each_product_with_its_layout_and_flops():
    a = np.ones((4, 3), np.float32)
    b = np.ones((5, 3), np.float32)
    out = np.empty((4, 5), np.float32)
    with recording() as calls:
        np.matmul(a, b.T, out=out)              # (4,3) x (3,5), B transposed, into out
        np.matmul(np.ones(4, np.float32), a)    # a row vector times a matrix
    assert np.matmul is not None and not hasattr(np.matmul, "__wrapped__")
    assert [c.shapes for c in calls] == [((4, 3), (3, 5)), ((4,), (4, 3))]
    assert calls[0].flops == 2 * 4 * 3 * 5 and calls[1].flops == 2 * 4 * 3
    assert calls[0].out_strides == (20, 4) and calls[1].out_strides is None
    # the recorded layout is rebuilt: B is a transposed (Fortran-ordered) operand
    _, rebuilt_b, _ = calls[0].operands()
    assert rebuilt_b.shape == (3, 5) and rebuilt_b.strides == b.T.strides
    assert isinstance(calls[0], Product)


def test_summarize_leaves_disturbed_pairs_out_of_the_ratio():
    from benchmarks.__main__ import summarize

    def s(seconds, cpu, disturbed):
        return {"seconds": seconds, "cpu_s": cpu, "others": 0.5 if disturbed else 0.0,
                "disturbed": disturbed}

    samples = {"dlcli": [s(1.0, 2.0, False), s(3.0, 2.0, True), s(1.2, 2.4, False)],
               "torch": [s(2.0, 4.0, False), s(2.0, 4.0, False), s(2.0, 3.0, True)]}
    out = summarize(samples)
    # dlcli's own epochs: the disturbed 3.0 is left out of its median
    assert out["dlcli"]["seconds"]["median"] == pytest.approx(1.1)
    assert out["dlcli"]["disturbed"] == 1 and out["torch"]["disturbed"] == 1
    # pairs: (1.0, 2.0) clean, (3.0, 2.0) and (1.2, 2.0) disturbed -> only 0.5 counts
    assert out["torch"]["ratio"] == pytest.approx([0.5, 1.5, 0.6])
    assert out["torch"]["ratio_flags"] == [False, True, True]
    assert out["torch"]["ratio_median"]["median"] == pytest.approx(0.5)
    # CPU ratios 0.5, 0.5, 0.8 -> median 0.5
    assert out["torch"]["cpu_ratio"] == pytest.approx(0.5)
    assert "ratio" not in out["dlcli"]


def test_recording_one_training_step_lists_the_engines_products():
    from dlcli.nn.model import Model
    from benchmarks.workloads import make_loss_named

    layers = [{"type": "dense", "name": "d1", "units": 3, "activation": "relu"},
              {"type": "dense", "name": "d2", "units": 2, "activation": "softmax"}]
    model = Model.from_config(layers, (4,)).build(np.random.default_rng(0))
    loss = make_loss_named("categorical_crossentropy", model)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    y = np.array([0, 1, 1, 0, 1])
    with recording() as calls:
        logits = model.forward(x, training=True, logits=True)
        loss.forward(logits, y)
        model.backward(loss.backward())
    shapes = [(c.where.split(":")[0], c.shapes) for c in calls]
    assert shapes == [
        ("d1", ((5, 4), (4, 3))), ("d2", ((5, 3), (3, 2))),       # forward
        ("categorical_crossentropy", ((5, 2), (2,))),             # softmax row sums
        ("d2", ((2, 5), (5, 3))), ("d2", ((5,), (5, 2))),         # d2: dW, db
        ("d2", ((5, 2), (2, 3))),                                 # d2: dx
        ("d1", ((3, 5), (5, 4))), ("d1", ((5,), (5, 3))),         # d1: dW, db; no dx
    ]
