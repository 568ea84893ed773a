"""maxpool2d, avgpool2d and maxunpool2d against loop references (notes 3.4.1, 3.4.2)."""

import re

import numpy as np
import pytest

from dlcli.nn.functional.conv import pair
from dlcli.inspect.gradcheck import check_layer
from dlcli.nn.layers.base import IncompatibleShape, Layer
from dlcli.nn.layers.pooling import AvgPool2D, MaxPool2D, MaxUnpool2D
from dlcli.registry import LAYERS

TOL = 1e-6


def ref_pool(x, pool, stride, padding, mode):
    """Loop reference. Max: first maximum in scan order, padding never wins, flat index
    row * W + col in the unpadded plane. Avg: padded zeros count (divisor ph * pw)."""
    n_batch, channels, h, w = x.shape
    (ph, pw), (sh, sw), (pt, pl) = pair(pool), pair(stride or pool), pair(padding)
    oh, ow = (h + 2 * pt - ph) // sh + 1, (w + 2 * pl - pw) // sw + 1
    y = np.zeros((n_batch, channels, oh, ow))
    idx = np.zeros((n_batch, channels, oh, ow), dtype=np.int64)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(oh):
                for j in range(ow):
                    best, best_at, total = -np.inf, -1, 0.0
                    for u in range(ph):
                        for v in range(pw):
                            r, q = i * sh - pt + u, j * sw - pl + v
                            if 0 <= r < h and 0 <= q < w:
                                total += x[n, c, r, q]
                                if x[n, c, r, q] > best:
                                    best, best_at = x[n, c, r, q], r * w + q
                    if mode == "max":
                        y[n, c, i, j], idx[n, c, i, j] = best, best_at
                    else:
                        y[n, c, i, j] = total / (ph * pw)
    return y, idx


def ref_unpool(values, indices, h, w):
    n_batch, channels, oh, ow = values.shape
    out = np.zeros((n_batch, channels, h * w))
    for n in range(n_batch):
        for c in range(channels):
            for i in range(oh):
                for j in range(ow):
                    out[n, c, indices[n, c, i, j]] += values[n, c, i, j]
    return out.reshape(n_batch, channels, h, w)


def distinct(shape, seed):
    """Values with no ties (steers max pooling away from its kinks), spaced by >= 0.01."""
    size = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    return (rng.permutation(size).reshape(shape) - size / 2) * 0.01 + 0.003


# (C, H, W), pool_size, stride, padding
CASES = [
    ((2, 4, 4), 2, None, 0),          # tiling fast path
    ((2, 5, 7), 2, None, 0),          # tiling fast path with floor crop
    ((3, 4, 6), (2, 1), None, 0),     # non-square tiling
    ((1, 6, 5), 3, 2, 1),             # overlapping, padded
    ((2, 5, 6), (2, 3), (1, 2), 0),   # overlapping, non-square
    ((2, 7, 7), 3, 3, 1),             # disjoint, padded (general path)
    ((2, 5, 5), 2, 1, 1),             # stride 1, padded
    ((1, 6, 7), (3, 2), 2, (1, 0)),   # stride 2, pair padding
]


def _id(case):
    shape, pool, stride, padding = case
    return f"{'x'.join(map(str, shape))}-k{pool}-s{stride}-p{padding}"


def built(layer, shape, dtype=np.float64):
    layer.build(shape, np.random.default_rng(0), dtype)
    return layer


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_maxpool_forward_and_indices_match_reference(case):
    shape, pool, stride, padding = case
    layer = built(MaxPool2D(pool, stride, padding), shape)
    x = distinct((2, *shape), 1)
    y = layer.forward(x)
    expected, expected_idx = ref_pool(x, pool, stride, padding, "max")
    assert y.shape == (2, *layer.output_shape(shape))
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(layer.indices, expected_idx)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_avgpool_forward_matches_reference(case):
    shape, pool, stride, padding = case
    layer = built(AvgPool2D(pool, stride, padding), shape)
    x = np.random.default_rng(2).standard_normal((2, *shape))
    y = layer.forward(x)
    assert y.shape == (2, *layer.output_shape(shape))
    np.testing.assert_allclose(y, ref_pool(x, pool, stride, padding, "avg")[0], atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=_id)
@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
def test_pool_gradcheck(cls, case):
    shape, pool, stride, padding = case
    layer = built(cls(pool, stride, padding), shape)
    errors = check_layer(layer, distinct((2, *shape), 3), np.random.default_rng(4))
    assert errors["input"] < TOL, errors


def test_maxpool_padding_never_wins():
    x = -1 - np.arange(16, dtype=float).reshape(1, 1, 4, 4)  # all negative
    y = built(MaxPool2D(2, stride=2, padding=1), (1, 4, 4)).forward(x)
    np.testing.assert_array_equal(y[0, 0], [[-1, -2, -4], [-5, -6, -8], [-13, -14, -16]])


def test_avgpool_counts_padded_zeros():
    x = np.ones((1, 1, 2, 2))
    y = built(AvgPool2D(2, stride=2, padding=1), (1, 2, 2)).forward(x)
    np.testing.assert_array_equal(y[0, 0], [[0.25, 0.25], [0.25, 0.25]])


def test_maxpool_gradient_goes_to_the_maximum_only():
    x = np.array([[[[1., 5., 2., 0.], [3., 4., 8., 7.], [0., 0., 1., 1.], [9., 0., 1., 2.]]]])
    layer = built(MaxPool2D(2), (1, 4, 4))
    np.testing.assert_array_equal(layer.forward(x)[0, 0], [[5, 8], [9, 2]])
    dx = layer.backward(np.array([[[[10., 20.], [30., 40.]]]]))
    expected = np.zeros((4, 4))
    expected[0, 1], expected[1, 2], expected[3, 0], expected[3, 3] = 10, 20, 30, 40
    np.testing.assert_array_equal(dx[0, 0], expected)


@pytest.mark.parametrize("n, f, s, p", [(28, 2, 2, 0), (7, 3, 2, 1), (5, 2, 2, 0), (6, 3, 1, 1),
                                        (9, 4, 3, 2)])
def test_pool_output_shape_formula(n, f, s, p):
    for cls in (MaxPool2D, AvgPool2D):
        out = (n + 2 * p - f) // s + 1  # notes 3.3
        assert cls(f, s, p).output_shape((3, n, n + 2)) == (3, out, (n + 2 + 2 * p - f) // s + 1)


def test_notes_lenet_pool_shapes():
    assert MaxPool2D(2).output_shape((8, 28, 28)) == (8, 14, 14)
    assert MaxPool2D(2).output_shape((16, 10, 10)) == (16, 5, 5)


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
def test_pool_shape_errors(cls):
    with pytest.raises(IncompatibleShape, match=re.escape(
            "pool 3x3 is larger than the padded input 2x2 (padding 0)")):
        cls(3).output_shape((1, 2, 2))
    with pytest.raises(IncompatibleShape, match="expects an image input"):
        cls(2).output_shape((16,))
    with pytest.raises(ValueError, match="half the pool size"):
        cls(2, padding=2)
    with pytest.raises(ValueError, match="pool_size"):
        cls(0)


# ---- unpooling ----------------------------------------------------------------------------------
def linked_pair(shape, pool=2, stride=None, padding=0, dtype=np.float64):
    pool_layer = built(MaxPool2D(pool, stride, padding, name="p1"), shape, dtype)
    unpool = MaxUnpool2D("p1")
    unpool.link({"p1": pool_layer, "other": Layer(name="other")})
    unpool.build(pool_layer.output_shape(shape), np.random.default_rng(0), dtype)
    return pool_layer, unpool


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_unpool_forward_matches_reference(case):
    shape, pool, stride, padding = case
    pool_layer, unpool = linked_pair(shape, pool, stride, padding)
    x = distinct((2, *shape), 5)
    pooled = pool_layer.forward(x)
    values = np.random.default_rng(6).standard_normal(pooled.shape)
    y = unpool.forward(values)
    assert unpool.output_shape(pool_layer.output_shape(shape)) == shape
    np.testing.assert_allclose(y, ref_unpool(values, pool_layer.indices, *shape[1:]), atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_unpool_gradcheck_given_fixed_pool_forward(case):
    shape, pool, stride, padding = case
    pool_layer, unpool = linked_pair(shape, pool, stride, padding)
    pooled = pool_layer.forward(distinct((2, *shape), 7))
    rng = np.random.default_rng(8)
    errors = check_layer(unpool, rng.standard_normal(pooled.shape), rng)
    assert errors["input"] < TOL, errors


def test_unpool_of_pool_keeps_window_maxima_in_place():
    """Notes figure 3.4: maxpool + unpool leaves each maximum where it was, zeros elsewhere."""
    pool_layer, unpool = linked_pair((1, 4, 4))
    x = np.array([[[[1., 5., 2., 0.], [3., 4., 8., 7.], [0., 0., 1., 1.], [9., 0., 1., 2.]]]])
    y = unpool.forward(pool_layer.forward(x))
    expected = np.zeros((4, 4))
    expected[0, 1], expected[1, 2], expected[3, 0], expected[3, 3] = 5, 8, 9, 2
    np.testing.assert_array_equal(y[0, 0], expected)


def test_unpool_link_errors_name_the_pool():
    unpool = MaxUnpool2D("p9")
    with pytest.raises(IncompatibleShape, match="'p9' is not the name of a layer; maxpool2d layers: p1"):
        unpool.link({"p1": MaxPool2D(2, name="p1")})
    with pytest.raises(IncompatibleShape, match="'p9' is a avgpool2d layer, not a maxpool2d"):
        unpool.link({"p9": AvgPool2D(2, name="p9")})
    with pytest.raises(IncompatibleShape, match="not linked"):
        MaxUnpool2D("p1").output_shape((1, 2, 2))
    with pytest.raises(ValueError, match="pool"):
        MaxUnpool2D("")


def test_unpool_output_shape_checks_its_input():
    pool_layer = MaxPool2D(2, name="p1")
    unpool = MaxUnpool2D("p1")
    unpool.link({"p1": pool_layer})
    with pytest.raises(IncompatibleShape, match="must come before"):
        unpool.output_shape((3, 2, 2))
    assert pool_layer.output_shape((3, 5, 4)) == (3, 2, 2)
    assert unpool.output_shape((3, 2, 2)) == (3, 5, 4)  # floor-mode input size restored
    with pytest.raises(IncompatibleShape, match=re.escape(
            "expects the output shape of pool 'p1', (2, 2, 3); got (3, 3, 2)")):
        unpool.output_shape((2, 3, 3))


# ---- dtype, statelessness, config ---------------------------------------------------------------
@pytest.mark.parametrize("case", CASES[:5], ids=_id)
def test_float32_stays_float32(case):
    shape, pool, stride, padding = case
    x = distinct((2, *shape), 9).astype(np.float32)
    for layer in (built(MaxPool2D(pool, stride, padding), shape, np.float32),
                  built(AvgPool2D(pool, stride, padding), shape, np.float32)):
        y = layer.forward(x)
        assert y.dtype == np.float32
        assert layer.backward(np.ones_like(y)).dtype == np.float32
    pool_layer, unpool = linked_pair(shape, pool, stride, padding, np.float32)
    pooled = pool_layer.forward(x)
    y = unpool.forward(pooled)
    assert y.dtype == np.float32
    assert unpool.backward(np.ones_like(y)).dtype == np.float32


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
def test_pool_backward_twice_and_no_input_grad(cls):
    layer = built(cls(3, 2, 1), (2, 5, 6))
    x = distinct((2, 2, 5, 6), 10)
    dy = np.random.default_rng(11).standard_normal(layer.forward(x).shape)
    np.testing.assert_array_equal(layer.backward(dy), layer.backward(dy))
    layer.need_input_grad = False
    assert layer.backward(dy) is None


@pytest.mark.parametrize("layer", [
    MaxPool2D(2), MaxPool2D([3, 2], stride=[2, 1], padding=[1, 0], name="p"),
    AvgPool2D(3, stride=2, padding=1), MaxUnpool2D("p1", name="u1"),
])
def test_pool_config_round_trip(layer):
    config = layer.get_config()
    rebuilt = LAYERS.get(config["type"])(**{k: v for k, v in config.items() if k != "type"})
    assert rebuilt.get_config() == config


def test_pools_have_no_params():
    for layer in (MaxPool2D(2), AvgPool2D(2)):
        assert layer.param_shapes((1, 4, 4)) == {}
        assert built(layer, (1, 4, 4)).params == {}


# ---- optional cross-check against PyTorch ---------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_pools_match_torch(case):
    torch = pytest.importorskip("torch")
    shape, pool, stride, padding = case
    x = distinct((2, *shape), 12)
    kwargs = {"kernel_size": pair(pool), "stride": pair(stride or pool), "padding": pair(padding)}
    layer = built(MaxPool2D(pool, stride, padding), shape)
    yt, it = torch.nn.functional.max_pool2d(torch.tensor(x), return_indices=True, **kwargs)
    np.testing.assert_array_equal(layer.forward(x), yt.numpy())
    np.testing.assert_array_equal(layer.indices, it.numpy())
    avg = built(AvgPool2D(pool, stride, padding), shape)
    expected = torch.nn.functional.avg_pool2d(torch.tensor(x), count_include_pad=True, **kwargs)
    np.testing.assert_allclose(avg.forward(x), expected.numpy(), atol=1e-12)


def test_large_window_argmax_beyond_uint8():
    """A 16x17 window has 272 offsets: the argmax must not wrap around a uint8."""
    x = distinct((1, 2, 17, 18), 14)
    layer = built(MaxPool2D((16, 17), stride=1), (2, 17, 18))
    y = layer.forward(x)
    expected, expected_idx = ref_pool(x, (16, 17), 1, 0, "max")
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(layer.indices, expected_idx)
    assert check_layer(layer, x, np.random.default_rng(15))["input"] < TOL


# ---- tiling windows (stride = pool, no padding): the contiguous-planes path ------------------
@pytest.mark.parametrize("pool", [2, (2, 1), (1, 3), 3])
@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (2, 3, 7, 5), (3, 2, 6, 9)])
def test_tiled_maxpool_with_ties_matches_reference(shape, pool):
    """Small integers make many ties (whole windows equal, ties across rows and columns):
    the first maximum in scan order must win, in the forward's argmax and in the backward."""
    from dlcli.nn.functional import pooling as P

    rng = np.random.default_rng(16)
    x = rng.integers(0, 3, shape).astype(np.float32)
    x[0, 0, :2, :2] = [[0, 2], [2, 1]]  # a tie between row 0 and row 1 (2x2: b beats c)
    h, w = shape[2:]
    ws = {}
    for _ in range(2):  # the second pass reuses the workspace buffers
        y, argmax = P.maxpool2d_forward(x, pool, workspace=ws)
        expected, expected_idx = ref_pool(x.astype(np.float64), pool, None, 0, "max")
        np.testing.assert_array_equal(y, expected)
        np.testing.assert_array_equal(P.argmax_to_indices(argmax, (h, w), pool), expected_idx)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = P.maxpool2d_backward(dy, argmax, (h, w), pool, workspace=ws)
        assert dx.dtype == np.float32
        np.testing.assert_array_equal(dx, ref_unpool(dy, expected_idx, h, w))
    assert set(P.maxpool2d_forward(x, pool)[1].ravel()) <= set(range(np.prod(pair(pool))))


def test_tiled_maxpool_layer_feeds_unpool_and_torch_on_ties():
    x = np.zeros((2, 3, 6, 6), np.float32)  # all ties: every window picks offset 0
    x[1, 2, 3, 4] = 1.0
    pool_layer, unpool = linked_pair((3, 6, 6), 2, None, 0, np.float32)
    y = unpool.forward(pool_layer.forward(x))
    np.testing.assert_array_equal(y, x)  # zeros at offset 0, the single 1 in place
    assert (pool_layer.argmax[0] == 0).all()
    torch = pytest.importorskip("torch")
    _, it = torch.nn.functional.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(pool_layer.indices, it.numpy())
