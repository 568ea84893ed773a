"""conv2d and conv_transpose2d against loop references written from the notes' formulas."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlcli.nn.initializers  # noqa: F401  (registers "he")
from dlcli.nn.functional import conv as F
from dlcli.nn.functional import conv_stride1 as S1
from dlcli.inspect.gradcheck import check_layer
from dlcli.nn.layers import conv as conv_layers
from dlcli.nn.layers.base import IncompatibleShape
from dlcli.nn.layers.conv import Conv2D, ConvTranspose2D
from dlcli.registry import LAYERS

TOL = 1e-6


# ---- independent references --------------------------------------------------------------
def tf_same_pads(n, f, s):
    """TensorFlow's 'same': out = ceil(n / s), odd padding pixel after."""
    out = -(-n // s)
    total = max((out - 1) * s + f - n, 0)
    return total // 2, total - total // 2


def ref_conv2d(x, weight, bias, stride, pads, flip=False):
    """Notes 3.1 with plain loops: cross-correlation, or true convolution when ``flip``."""
    n_batch, channels, h, w = x.shape
    filters, _, kh, kw = weight.shape
    sh, sw = stride
    (pt, pb), (pl, pr) = pads
    xp = np.zeros((n_batch, channels, h + pt + pb, w + pl + pr))
    xp[:, :, pt:pt + h, pl:pl + w] = x
    oh = (h + pt + pb - kh) // sh + 1
    ow = (w + pl + pr - kw) // sw + 1
    y = np.zeros((n_batch, filters, oh, ow))
    for n in range(n_batch):
        for o in range(filters):
            for i in range(oh):
                for j in range(ow):
                    total = 0.0 if bias is None else bias[o]
                    for c in range(channels):
                        for u in range(kh):
                            for v in range(kw):
                                if flip:  # CONV(x, y) = sum Image(x - i, y - j) K(i, j)
                                    pixel = xp[n, c, sh * i + kh - 1 - u, sw * j + kw - 1 - v]
                                else:  # sum Image(x + i, y + j) K(i, j)
                                    pixel = xp[n, c, sh * i + u, sw * j + v]
                                total += pixel * weight[o, c, u, v]
                    y[n, o, i, j] = total
    return y


def ref_conv_transpose2d(x, weight, bias, stride, padding, output_padding):
    """Scatter every input pixel times its kernel into the output, then crop the padding."""
    n_batch, cin, h, w = x.shape
    _, cout, kh, kw = weight.shape
    sh, sw = stride
    ph, pw = padding
    oph, opw = output_padding
    full = np.zeros((n_batch, cout, sh * (h - 1) + kh + oph, sw * (w - 1) + kw + opw))
    for n in range(n_batch):
        for c in range(cin):
            for i in range(h):
                for j in range(w):
                    full[n, :, sh * i:sh * i + kh, sw * j:sw * j + kw] += x[n, c, i, j] * weight[c]
    ho = sh * (h - 1) + kh - 2 * ph + oph
    wo = sw * (w - 1) + kw - 2 * pw + opw
    y = full[:, :, ph:ph + ho, pw:pw + wo].copy()
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def build(layer, input_shape, dtype=np.float64, seed=0, random_bias=True):
    rng = np.random.default_rng(seed)
    layer.build(input_shape, rng, dtype)
    if random_bias and "bias" in layer.params:
        layer.params["bias"][...] = rng.standard_normal(layer.params["bias"].shape)
    return layer


# ---- conv2d cases: (input C, H, W), filters, kernel, stride, padding, flip, bias ------------
CONV_CASES = [
    ((2, 5, 5), 3, 3, 1, 0, False, True),
    ((2, 6, 5), 3, (3, 2), 2, 1, False, True),
    ((1, 6, 6), 2, 3, 2, "same", False, True),
    ((3, 5, 7), 2, (2, 3), 1, "same", True, True),
    ((2, 4, 4), 2, 2, 2, "valid", False, False),
    ((2, 7, 6), 3, 3, (2, 1), (1, 2), True, True),
    ((2, 5, 4), 2, (1, 1), 1, 0, False, True),
    ((3, 6, 7), 2, 4, 3, "same", False, True),
]


def _conv_id(case):
    (c, h, w), f, k, s, p, flip, bias = case
    return f"{c}x{h}x{w}-f{f}-k{k}-s{s}-p{p}{'-flip' if flip else ''}{'' if bias else '-nobias'}"


def _expected_pads(case):
    (_, h, w), _, k, s, p, _, _ = case
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (s, s) if isinstance(s, int) else s
    if p == "same":
        return tf_same_pads(h, kh, sh), tf_same_pads(w, kw, sw)
    if p == "valid":
        return (0, 0), (0, 0)
    ph, pw = (p, p) if isinstance(p, int) else p
    return (ph, ph), (pw, pw)


def _make_conv(case):
    _, f, k, s, p, flip, bias = case
    return Conv2D(filters=f, kernel_size=k, stride=s, padding=p, flip_kernel=flip, use_bias=bias)


@pytest.mark.parametrize("case", CONV_CASES, ids=_conv_id)
def test_conv2d_forward_matches_loop_reference(case):
    shape = case[0]
    layer = build(_make_conv(case), shape)
    x = np.random.default_rng(1).standard_normal((2, *shape))
    y = layer.forward(x)
    stride = F.pair(case[3])
    expected = ref_conv2d(x, layer.params["weight"], layer.params.get("bias"), stride,
                          _expected_pads(case), flip=case[5])
    assert y.shape == (2, *layer.output_shape(shape))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES, ids=_conv_id)
def test_conv2d_gradcheck(case):
    shape = case[0]
    layer = build(_make_conv(case), shape)
    rng = np.random.default_rng(2)
    errors = check_layer(layer, rng.standard_normal((2, *shape)), rng)
    assert set(errors) == {"input", "weight"} | ({"bias"} if case[6] else set())
    assert max(errors.values()) < TOL, errors


# ---- transposed convolution: (C, H, W), filters, kernel, stride, padding, output_padding --
TRANSPOSE_CASES = [
    ((2, 3, 3), 3, 3, 1, 0, 0),
    ((2, 3, 4), 2, (3, 2), 2, 1, 0),
    ((1, 4, 3), 2, 3, 2, 1, 1),
    ((3, 2, 3), 2, (2, 3), (2, 1), (0, 1), (1, 0)),
    ((2, 4, 4), 3, 4, 2, 1, 0),
    ((2, 3, 3), 1, 1, 3, 0, 2),
]


def _transpose_id(case):
    (c, h, w), f, k, s, p, op = case
    return f"{c}x{h}x{w}-f{f}-k{k}-s{s}-p{p}-op{op}"


def _make_transpose(case, **kwargs):
    _, f, k, s, p, op = case
    return ConvTranspose2D(filters=f, kernel_size=k, stride=s, padding=p, output_padding=op, **kwargs)


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=_transpose_id)
def test_conv_transpose2d_forward_matches_scatter_reference(case):
    shape, f, k, s, p, op = case
    layer = build(_make_transpose(case), shape)
    x = np.random.default_rng(3).standard_normal((2, *shape))
    y = layer.forward(x)
    expected = ref_conv_transpose2d(x, layer.params["weight"], layer.params["bias"],
                                    F.pair(s), F.pair(p), F.pair(op))
    assert y.shape == (2, *layer.output_shape(shape))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=_transpose_id)
def test_conv_transpose2d_gradcheck(case):
    layer = build(_make_transpose(case), case[0])
    rng = np.random.default_rng(4)
    errors = check_layer(layer, rng.standard_normal((2, *case[0])), rng)
    assert set(errors) == {"input", "weight", "bias"}
    assert max(errors.values()) < TOL, errors


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 7), w=st.integers(1, 7), k=st.integers(1, 4), kw=st.integers(1, 4),
       s=st.integers(1, 3), p=st.integers(0, 2), c=st.integers(1, 3), f=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_conv_transpose_is_adjoint_of_conv(h, w, k, kw, s, p, c, f, seed):
    """<conv(x), y> == <x, conv_transpose(y)>: the transposed conv is conv's input gradient."""
    hp, wp = h + 2 * p, w + 2 * p
    if hp < k or wp < kw:
        return
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((f, c, k, kw))
    x = rng.standard_normal((2, c, h, w))
    y = F.conv2d(x, weight, None, s, p)
    dy = rng.standard_normal(y.shape)
    # The conv output size forgets h mod s; output_padding restores it.
    op = ((hp - k) % s, (wp - kw) % s)
    xt = F.conv_transpose2d(dy, weight, None, s, p, op)
    assert xt.shape == x.shape
    np.testing.assert_allclose(np.sum(y * dy), np.sum(x * xt), rtol=1e-10)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6), k=st.integers(1, 3), kw=st.integers(1, 3),
       s=st.integers(1, 3), sw=st.integers(1, 3), p=st.sampled_from([0, 1, "same"]),
       flip=st.booleans(), seed=st.integers(0, 2**16))
def test_conv2d_random_shapes_match_reference(h, w, k, kw, s, sw, p, flip, seed):
    pads = ((tf_same_pads(h, k, s), tf_same_pads(w, kw, sw)) if p == "same"
            else ((p, p), (p, p)))
    if h + sum(pads[0]) < k or w + sum(pads[1]) < kw:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, h, w))
    weight = rng.standard_normal((3, 2, k, kw))
    bias = rng.standard_normal(3)
    y = F.conv2d(x, weight, bias, (s, sw), p, flip_kernel=flip)
    np.testing.assert_allclose(y, ref_conv2d(x, weight, bias, (s, sw), pads, flip), atol=1e-12)


# ---- functional pieces -----------------------------------------------------------------------
@pytest.mark.parametrize("n, f, s, expected", [
    (5, 3, 1, (1, 1)), (6, 4, 1, (1, 2)), (5, 3, 2, (1, 1)), (6, 3, 2, (0, 1)),
    (7, 1, 3, (0, 0)), (4, 5, 1, (2, 2)), (28, 5, 1, (2, 2)),
])
def test_resolve_same_padding_follows_tensorflow(n, f, s, expected):
    assert F.resolve_padding("same", (n, n), (f, f), (s, s)) == (expected, expected)


def test_resolve_padding_forms():
    assert F.resolve_padding("valid", (5, 5), (3, 3), (1, 1)) == ((0, 0), (0, 0))
    assert F.resolve_padding(2, (5, 5), (3, 3), (1, 1)) == ((2, 2), (2, 2))
    assert F.resolve_padding([1, 0], (5, 5), (3, 3), (1, 1)) == ((1, 1), (0, 0))
    with pytest.raises(ValueError, match="padding"):
        F.resolve_padding("full", (5, 5), (3, 3), (1, 1))
    with pytest.raises(ValueError, match=">= 0"):
        F.resolve_padding(-1, (5, 5), (3, 3), (1, 1))


def test_im2col_and_col2im_are_adjoint():
    rng = np.random.default_rng(5)
    xp = rng.standard_normal((2, 3, 7, 6))
    cols = F.im2col(xp, (3, 2), (2, 2))
    assert cols.shape == (3 * 3 * 2, 2 * 3 * 3)
    # Entry (c, u, v), (n, i, j) is xp[n, c, 2i + u, 2j + v].
    assert cols[(1 * 3 + 2) * 2 + 1, (1 * 3 + 2) * 3 + 0] == xp[1, 1, 2 * 2 + 2, 0 + 1]
    other = rng.standard_normal(cols.shape)
    back = F.col2im(other, xp.shape, (3, 2), (2, 2))
    np.testing.assert_allclose(np.sum(cols * other), np.sum(xp * back), rtol=1e-12)


# ---- shapes, errors and layouts ----------------------------------------------------------------
@pytest.mark.parametrize("n, f, s, p", [(32, 5, 1, 0), (28, 3, 1, 1), (7, 3, 2, 1), (8, 2, 2, 0),
                                        (9, 4, 3, 2), (5, 5, 1, 0), (6, 1, 4, 0)])
def test_conv2d_output_shape_formula(n, f, s, p):
    layer = Conv2D(filters=4, kernel_size=f, stride=s, padding=p)
    out = (n + 2 * p - f) // s + 1  # notes 3.3
    assert layer.output_shape((3, n, n + 1)) == (4, out, (n + 1 + 2 * p - f) // s + 1)


@pytest.mark.parametrize("n, f, s", [(5, 3, 1), (6, 4, 1), (7, 3, 2), (8, 3, 2), (9, 2, 3)])
def test_conv2d_same_padding_output_is_ceil_n_over_s(n, f, s):
    assert Conv2D(2, f, stride=s, padding="same").output_shape((1, n, n)) == (2, -(-n // s), -(-n // s))


@pytest.mark.parametrize("n, f, s, p, op", [(3, 3, 1, 0, 0), (7, 4, 2, 1, 0), (7, 3, 2, 1, 1),
                                            (5, 5, 3, 2, 2)])
def test_conv_transpose2d_output_shape_formula(n, f, s, p, op):
    layer = ConvTranspose2D(filters=2, kernel_size=f, stride=s, padding=p, output_padding=op)
    out = s * (n - 1) + f - 2 * p + op  # notes 4.1.3 plus output_padding
    assert layer.output_shape((3, n, n)) == (2, out, out)


def test_notes_lenet_table_shapes_and_parameter_counts():
    """Notes 3.5: CONV1 (f=5, s=1) on 32x32x3 -> 28x28x8 with 608 parameters, CONV2 3216."""
    conv1 = Conv2D(filters=8, kernel_size=5)
    assert conv1.output_shape((3, 32, 32)) == (8, 28, 28)
    assert sum(np.prod(s) for s in conv1.param_shapes((3, 32, 32)).values()) == 608
    conv2 = Conv2D(filters=16, kernel_size=5)
    assert conv2.output_shape((8, 14, 14)) == (16, 10, 10)
    assert sum(np.prod(s) for s in conv2.param_shapes((8, 14, 14)).values()) == 3216
    assert conv1.mult_adds((3, 32, 32)) == 28 * 28 * 8 * 3 * 5 * 5


def test_conv_transpose2d_mult_adds():
    layer = ConvTranspose2D(filters=4, kernel_size=(3, 2), stride=2)
    assert layer.mult_adds((3, 5, 6)) == 5 * 6 * 3 * 4 * 3 * 2


def test_conv2d_kernel_larger_than_input_message():
    with pytest.raises(IncompatibleShape, match=re.escape(
            "kernel 5x5 is larger than the padded input 3x3 (padding 0)")):
        Conv2D(filters=2, kernel_size=5).output_shape((1, 3, 3))
    with pytest.raises(IncompatibleShape, match=re.escape(
            "kernel 2x6 is larger than the padded input 6x5 (padding 1)")):
        Conv2D(filters=2, kernel_size=(2, 6), padding=1).output_shape((1, 4, 3))


@pytest.mark.parametrize("cls", [Conv2D, ConvTranspose2D])
@pytest.mark.parametrize("shape", [(784,), (28, 28), (1, 1, 28, 28)])
def test_conv_rejects_non_image_input(cls, shape):
    with pytest.raises(IncompatibleShape, match="expects an image input"):
        cls(filters=2, kernel_size=3).output_shape(shape)


def test_conv_transpose2d_padding_larger_than_output_message():
    layer = ConvTranspose2D(filters=2, kernel_size=2, padding=1)
    with pytest.raises(IncompatibleShape, match=re.escape("crops away the whole 2x2 output")):
        layer.output_shape((1, 1, 1))


@pytest.mark.parametrize("kwargs, match", [
    ({"filters": 0, "kernel_size": 3}, "filters"),
    ({"filters": 2, "kernel_size": 0}, "kernel_size"),
    ({"filters": 2, "kernel_size": [3, 3, 3]}, "kernel_size"),
    ({"filters": 2, "kernel_size": 3, "stride": 0}, "stride"),
    ({"filters": 2, "kernel_size": 3, "padding": "full"}, "padding"),
])
def test_conv2d_rejects_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Conv2D(**kwargs)


def test_conv_transpose2d_output_padding_must_be_below_stride():
    with pytest.raises(ValueError, match="output_padding"):
        ConvTranspose2D(filters=2, kernel_size=3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="output_padding"):
        ConvTranspose2D(filters=2, kernel_size=3, output_padding=1)


def test_weight_layouts_are_pytorchs():
    conv = Conv2D(filters=5, kernel_size=(3, 2))
    assert conv.param_shapes((4, 9, 9)) == {"weight": (5, 4, 3, 2), "bias": (5,)}
    build(conv, (4, 9, 9))
    assert {k: v.shape for k, v in conv.params.items()} == {"weight": (5, 4, 3, 2), "bias": (5,)}
    tconv = ConvTranspose2D(filters=5, kernel_size=(3, 2))
    assert tconv.param_shapes((4, 9, 9)) == {"weight": (4, 5, 3, 2), "bias": (5,)}
    build(tconv, (4, 9, 9))
    assert {k: v.shape for k, v in tconv.params.items()} == {"weight": (4, 5, 3, 2), "bias": (5,)}
    assert Conv2D(filters=5, kernel_size=3, use_bias=False).param_shapes((4, 9, 9)) == {
        "weight": (5, 4, 3, 3)}


def test_initializer_gets_conv_fans(monkeypatch):
    seen = {}

    class SpyRegistry:
        @staticmethod
        def get(name):
            assert name == "spy"
            return lambda shape, fan_in, fan_out, rng: (
                seen.update(shape=shape, fan_in=fan_in, fan_out=fan_out) or np.ones(shape))

    monkeypatch.setattr(conv_layers, "INITIALIZERS", SpyRegistry)
    build(Conv2D(filters=5, kernel_size=(3, 2), initializer="spy"), (4, 8, 8), random_bias=False)
    assert seen == {"shape": (5, 4, 3, 2), "fan_in": 4 * 3 * 2, "fan_out": 5 * 3 * 2}
    build(ConvTranspose2D(filters=5, kernel_size=(3, 2), initializer="spy"), (4, 8, 8))
    assert seen == {"shape": (4, 5, 3, 2), "fan_in": 4 * 3 * 2, "fan_out": 5 * 3 * 2}


# ---- dtype, accumulation, buffers, config ---------------------------------------------------------
LAYER_FACTORIES = [
    lambda: Conv2D(filters=3, kernel_size=3, stride=2, padding="same", flip_kernel=True),
    lambda: Conv2D(filters=3, kernel_size=(2, 3), padding=1),
    lambda: ConvTranspose2D(filters=3, kernel_size=3, stride=2, padding=1, output_padding=1),
]


@pytest.mark.parametrize("factory", LAYER_FACTORIES)
def test_float32_in_float32_out(factory):
    layer = build(factory(), (2, 6, 5), dtype=np.float32)
    x = np.random.default_rng(6).standard_normal((3, 2, 6, 5)).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32
    assert all(p.dtype == np.float32 for p in layer.params.values())
    assert all(g.dtype == np.float32 for g in layer.grads.values())


@pytest.mark.parametrize("factory", LAYER_FACTORIES)
def test_a_second_backward_writes_the_same_gradients_over_stale_values(factory):
    layer = build(factory(), (2, 6, 5))
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 2, 6, 5))
    dy = rng.standard_normal(layer.forward(x).shape)
    layer.zero_grad()
    dx1 = layer.backward(dy)
    once = {k: g.copy() for k, g in layer.grads.items()}
    for g in layer.grads.values():
        g[...] = -7.0  # a previous step's values: nothing zeroes them in training
    dx2 = layer.backward(dy)
    np.testing.assert_allclose(dx1, dx2)
    for key, g in layer.grads.items():
        np.testing.assert_array_equal(g, once[key])


@pytest.mark.parametrize("factory", LAYER_FACTORIES)
def test_no_input_grad_still_fills_param_grads(factory):
    layer = build(factory(), (2, 6, 5))
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 2, 6, 5))
    dy = rng.standard_normal(layer.forward(x).shape)
    layer.backward(dy)
    full = {k: g.copy() for k, g in layer.grads.items()}
    layer.zero_grad()
    layer.need_input_grad = False
    assert layer.backward(dy) is None
    for key, g in layer.grads.items():
        np.testing.assert_allclose(g, full[key])


@pytest.mark.parametrize("factory", LAYER_FACTORIES)
def test_buffers_are_reused_and_outputs_not_clobbered(factory):
    layer = build(factory(), (2, 6, 5))
    rng = np.random.default_rng(9)
    x1, x2 = rng.standard_normal((2, 2, 2, 6, 5))
    y1 = layer.forward(x1)
    y1_copy = y1.copy()
    buffers = {k: id(v) for k, v in layer.workspace.items()}
    layer.forward(x2)
    np.testing.assert_array_equal(y1, y1_copy)
    assert {k: id(v) for k, v in layer.workspace.items()} == buffers
    # Another batch size reallocates and still computes the right thing.
    y_small = layer.forward(x1[:1])
    np.testing.assert_allclose(y_small, y1_copy[:1], atol=1e-12)


@pytest.mark.parametrize("factory", LAYER_FACTORIES + [
    lambda: Conv2D(filters=2, kernel_size=[3, 1], stride=[2, 1], padding=[1, 0], use_bias=False,
                   initializer="xavier", activation="relu", name="c1"),
])
def test_config_round_trip(factory):
    layer = factory()
    config = layer.get_config()
    rebuilt = LAYERS.get(config["type"])(**{k: v for k, v in config.items() if k != "type"})
    assert rebuilt.get_config() == config
    build(layer, (2, 6, 5), seed=3)
    build(rebuilt, (2, 6, 5), seed=3)
    x = np.random.default_rng(10).standard_normal((2, 2, 6, 5))
    np.testing.assert_allclose(layer.forward(x), rebuilt.forward(x))


def test_activation_is_kept_in_config_only():
    # the layer computes the convolution only; the model runs the activation as its own op
    layer = build(Conv2D(filters=2, kernel_size=3, activation="relu"), (1, 5, 5))
    assert layer.activation_name == "relu"
    layer.params["weight"][...] = -1.0
    layer.params["bias"][...] = 0.0
    np.testing.assert_array_equal(layer.forward(np.ones((1, 1, 5, 5))), -9.0)
    assert layer.get_config()["activation"] == "relu"
    assert "activation" not in Conv2D(filters=2, kernel_size=3).get_config()


def test_flip_kernel_is_convolution_with_rotated_kernel():
    layer = build(Conv2D(filters=2, kernel_size=(3, 2), flip_kernel=True), (2, 5, 5))
    plain = build(Conv2D(filters=2, kernel_size=(3, 2)), (2, 5, 5))
    plain.params["weight"][...] = layer.params["weight"][:, :, ::-1, ::-1]
    plain.params["bias"][...] = layer.params["bias"]
    x = np.random.default_rng(11).standard_normal((2, 2, 5, 5))
    np.testing.assert_allclose(layer.forward(x), plain.forward(x), atol=1e-12)


# ---- optional cross-check against PyTorch ---------------------------------------------------------
@pytest.mark.parametrize("case", CONV_CASES, ids=_conv_id)
def test_conv2d_matches_torch(case):
    torch = pytest.importorskip("torch")
    shape = case[0]
    layer = build(_make_conv(case), shape)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, *shape))
    dy = rng.standard_normal((2, *layer.output_shape(shape)))
    y = layer.forward(x)
    dx = layer.backward(dy)
    (pt, pb), (pl, pr) = _expected_pads(case)
    xt = torch.tensor(x, requires_grad=True)
    weight = layer.params["weight"][:, :, ::-1, ::-1] if case[5] else layer.params["weight"]
    wt = torch.tensor(weight.copy(), requires_grad=True)
    bias = layer.params.get("bias")
    bt = None if bias is None else torch.tensor(bias)
    padded = torch.nn.functional.pad(xt, (pl, pr, pt, pb))
    yt = torch.nn.functional.conv2d(padded, wt, bt, stride=F.pair(case[3]))
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-10)
    grad_w = wt.grad.numpy()[:, :, ::-1, ::-1] if case[5] else wt.grad.numpy()
    np.testing.assert_allclose(layer.grads["weight"], grad_w, atol=1e-10)


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=_transpose_id)
def test_conv_transpose2d_matches_torch(case):
    torch = pytest.importorskip("torch")
    shape, f, k, s, p, op = case
    layer = build(_make_transpose(case), shape)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, *shape))
    dy = rng.standard_normal((2, *layer.output_shape(shape)))
    y = layer.forward(x)
    dx = layer.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.params["weight"], requires_grad=True)
    yt = torch.nn.functional.conv_transpose2d(xt, wt, torch.tensor(layer.params["bias"]),
                                              stride=F.pair(s), padding=F.pair(p),
                                              output_padding=F.pair(op))
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(layer.grads["weight"], wt.grad.numpy(), atol=1e-10)


# ---- stride-1 path: row-blocked "wide" columns ------------------------------------------------
def ref_conv2d_grads(x, weight, dy, pads):
    """(dx, dweight, dbias) of a stride-1 cross-correlation, summed offset by offset."""
    n, c, h, w = x.shape
    _, _, kh, kw = weight.shape
    (pt, pb), (pl, pr) = pads
    xp = np.zeros((n, c, h + pt + pb, w + pl + pr))
    xp[:, :, pt:pt + h, pl:pl + w] = x
    oh, ow = dy.shape[2:]
    dxp, dweight = np.zeros_like(xp), np.zeros(weight.shape)
    for u in range(kh):
        for v in range(kw):
            dweight[:, :, u, v] = np.einsum("nfij,ncij->fc", dy, xp[:, :, u:u + oh, v:v + ow])
            dxp[:, :, u:u + oh, v:v + ow] += np.einsum("nfij,fc->ncij", dy, weight[:, :, u, v])
    return dxp[:, :, pt:pt + h, pl:pl + w], dweight, dy.sum(axis=(0, 2, 3))


# (batch, C, H, W), filters, kernel, padding: odd sizes, batch of 1, asymmetric "same",
# a 1x1 kernel, a kernel as tall as the padded input (one output row), LeNet's conv2.
S1_CASES = [
    ((2, 3, 9, 7), 2, 3, 0),
    ((1, 2, 6, 5), 3, (2, 3), 1),
    ((3, 1, 5, 8), 2, (4, 2), "same"),
    ((2, 2, 4, 4), 5, 1, 0),
    ((2, 3, 5, 6), 2, (5, 2), (0, 1)),
    ((1, 8, 14, 14), 16, 5, 0),
]


@pytest.mark.parametrize("rows", [None, 1, 2, 3, 4, 16])
@pytest.mark.parametrize("case", S1_CASES, ids=lambda c: f"{c[0]}-f{c[1]}-k{c[2]}-p{c[3]}")
def test_stride1_path_matches_references_for_any_row_block(case, rows, monkeypatch):
    """Forward against the loop reference, backward against offset-by-offset sums, with R
    output rows per column forced to values that do and do not divide out_h (and exceed it)."""
    if rows is not None:
        monkeypatch.setattr(S1, "_row_block", lambda filters, kh, out_h: rows)
    shape, f, k, p = case
    rng = np.random.default_rng(21)
    x = rng.standard_normal(shape)
    kh, kw = F.pair(k)
    weight = rng.standard_normal((f, shape[1], kh, kw))
    bias = rng.standard_normal(f)
    pads = F.resolve_padding(p, shape[2:], (kh, kw), (1, 1))
    for flip, b in ((False, bias), (True, None)):
        ws = {}
        y, cache = F.conv2d_forward(x, weight, b, 1, p, flip_kernel=flip, workspace=ws)
        assert "s1" in cache  # the stride-1 path ran
        np.testing.assert_allclose(y, ref_conv2d(x, weight, b, (1, 1), pads, flip), atol=1e-12)
        dy = rng.standard_normal(y.shape)
        dx, dweight, dbias = F.conv2d_backward(dy, cache, workspace=ws)
        w_eff = weight[:, :, ::-1, ::-1] if flip else weight
        ref_dx, ref_dw, ref_db = ref_conv2d_grads(x, w_eff, dy, pads)
        np.testing.assert_allclose(dx, ref_dx, atol=1e-12)
        np.testing.assert_allclose(dweight, ref_dw[:, :, ::-1, ::-1] if flip else ref_dw,
                                   atol=1e-12)
        if b is None:
            assert dbias is None
        else:
            np.testing.assert_allclose(dbias, ref_db, atol=1e-12)
        # A second batch through the same (reused) buffers gives the same answers.
        y2, cache2 = F.conv2d_forward(x, weight, b, 1, p, flip_kernel=flip, workspace=ws)
        np.testing.assert_array_equal(y2, y)
        np.testing.assert_array_equal(F.conv2d_backward(dy, cache2, workspace=ws)[0], dx)


def test_stride1_path_float32_matches_float64():
    """LeNet's conv1 shape (R = 4) in float32, against the same maths in float64."""
    rng = np.random.default_rng(22)
    x = rng.standard_normal((3, 3, 32, 32))
    weight = rng.standard_normal((8, 3, 5, 5)) * 0.2
    bias = rng.standard_normal(8)
    y64, c64 = F.conv2d_forward(x, weight, bias)
    y32, c32 = F.conv2d_forward(x.astype(np.float32), weight.astype(np.float32),
                                bias.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, atol=1e-4)
    dy = rng.standard_normal(y64.shape)
    for g64, g32 in zip(F.conv2d_backward(dy, c64), F.conv2d_backward(dy.astype(np.float32), c32)):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-3)
