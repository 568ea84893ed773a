"""Packed parameters: a built model keeps all parameters in one buffer and all gradients in
another (each layer holds views), and the optimizer then updates the whole buffer at once.

The reference is the per-parameter path every optimizer already has (checked against the
formulas in test_optimizers.py): the packed update must give the same bits, state
included, through learning-rate changes, checkpoints and switches between the two paths.
One exception: SGD on a model of at least ``blas.MIN_SIZE`` parameters updates the packed
buffer through BLAS (fused multiply-adds) while smaller per-parameter tensors take NumPy's
passes, so there the two agree to within rounding, not bit for bit.
"""

import numpy as np
import pytest

from dlcli.nn.layers.base import Layer
from dlcli.nn.model import Model
from dlcli.registry import OPTIMIZERS
from tests.nn.test_optimizers import ALL_CONFIGS

LAYERS = [
    {"type": "dense", "units": 5, "activation": "relu"},
    {"type": "dense", "units": 3},
]


def built(dtype=np.float32, seed=0, inputs=7):
    return Model.from_config(LAYERS, (inputs,), dtype).build(np.random.default_rng(seed))


# 7 inputs: 58 parameters; 7,000: 35,023, past blas.MIN_SIZE (the BLAS route for SGD)
INPUTS = pytest.mark.parametrize("inputs", [7, 7000], ids=["small", "blas_sized"])


def _exact(name, inputs) -> bool:
    """Whether the two paths must agree bit for bit (see the module docstring)."""
    from dlcli.nn import blas
    big = built(inputs=inputs).flat_buffers().params.size >= blas.MIN_SIZE
    return not (name in ("sgd", "momentum") and big and blas.available)


def test_parameters_and_gradients_are_views_laid_end_to_end():
    model = built()
    flat = model.flat_buffers()
    assert flat.keys == tuple(key for key, _, _ in model.parameters())
    start = 0
    for _, param, grad in model.parameters():
        assert param.base is flat.params and grad.base is flat.grads
        offset = (param.__array_interface__["data"][0]
                  - flat.params.__array_interface__["data"][0]) // param.itemsize
        assert offset == start
        start += param.size
    assert start == len(flat.params) == len(flat.grads) == 7 * 5 + 5 + 5 * 3 + 3
    # writing through a layer's array is writing into the buffer
    model.layers[0].params["weight"][0, 0] = 42.0
    assert flat.params[0] == 42.0


def test_packing_keeps_the_initial_values():
    # the same layers built without packing (layer by layer, same generator) hold the
    # same numbers as the packed model
    rng = np.random.default_rng(0)
    model = built(seed=0)
    plain = Model.from_config(LAYERS, (7,), np.float32)
    for layer, shape, _ in plain.shapes():
        layer.build(shape, rng, np.float32)
        if plain.activation_of(layer) is not None:
            plain.activation_of(layer).build(layer.output_shape(shape), rng, np.float32)
    for (k1, p1, _), (k2, p2, _) in zip(model.parameters(), plain.parameters()):
        assert k1 == k2
        np.testing.assert_array_equal(p1, p2)


def test_a_layer_rebuilt_after_the_model_is_not_packed_any_more():
    model = built()
    layer = model.layers[1]
    layer.build((5,), np.random.default_rng(1), np.float32)
    assert model.flat_buffers() is None


def _steps(opt, model, grads_per_step, packed, lrs=None):
    params = model.parameters()
    flat = model.flat_buffers() if packed else None
    for i, grads in enumerate(grads_per_step):
        for (_, _, g), value in zip(params, grads):
            g[...] = value
        if lrs is not None:
            opt.lr = lrs[i]
        opt.step(params, flat)


def _grads(model, steps, seed):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(p.shape).astype(p.dtype) for _, p, _ in model.parameters()]
            for _ in range(steps)]


def _assert_same(model_a, opt_a, model_b, opt_b, exact=True):
    for (k, a, _), (_, b, _) in zip(model_a.parameters(), model_b.parameters()):
        if exact:
            assert a.tobytes() == b.tobytes(), k
        else:  # a few float32 roundings apart after six steps, nowhere more
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=k)
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        if exact:
            assert sa[k].tobytes() == sb[k].tobytes(), k
        else:
            np.testing.assert_allclose(sa[k], sb[k], rtol=1e-6, atol=1e-6, err_msg=k)


@INPUTS
@pytest.mark.parametrize("name, options", ALL_CONFIGS, ids=str)
def test_packed_update_is_bit_identical_to_per_parameter(name, options, inputs):
    grads = None
    runs = {}
    for packed in (False, True):
        model = built(inputs=inputs)
        grads = grads or _grads(model, 6, seed=1)
        opt = OPTIMIZERS.get(name)(**options)
        lr = opt.lr
        _steps(opt, model, grads, packed, lrs=[lr, lr, lr, lr * 0.5, lr * 0.5, lr * 0.1])
        runs[packed] = (model, opt)
        assert _took_packed_path(opt, model) == packed
    _assert_same(*runs[False], *runs[True], exact=_exact(name, inputs))


def _took_packed_path(opt, model) -> bool:
    """Whether the optimizer's state lives in packed buffers (stateless SGD: its layout)."""
    if not isinstance(opt._packed, dict):
        return False
    bases = {}
    for entries in opt.state.values():
        for name, arr in entries.items():
            if name != "step":
                bases.setdefault(name, set()).add(None if arr.base is None else id(arr.base))
    return all(len(ids) == 1 and None not in ids for ids in bases.values())


@INPUTS
@pytest.mark.parametrize("name, options", ALL_CONFIGS, ids=str)
def test_switching_between_packed_and_per_parameter_steps(name, options, inputs):
    # packed, then per parameter, then packed again: each key keeps its own step count
    reference, mixed = built(inputs=inputs), built(inputs=inputs)
    grads = _grads(reference, 6, seed=2)
    opt_ref, opt_mixed = (OPTIMIZERS.get(name)(**options) for _ in range(2))
    _steps(opt_ref, reference, grads, packed=False)
    _steps(opt_mixed, mixed, grads[:2], packed=True)
    _steps(opt_mixed, mixed, grads[2:4], packed=False)
    _steps(opt_mixed, mixed, grads[4:], packed=True)
    _assert_same(reference, opt_ref, mixed, opt_mixed, exact=_exact(name, inputs))


@pytest.mark.parametrize("name, options", ALL_CONFIGS, ids=str)
def test_packed_state_round_trips_through_a_checkpoint(name, options):
    original = built()
    grads = _grads(original, 7, seed=3)
    opt = OPTIMIZERS.get(name)(**options)
    _steps(opt, original, grads[:3], packed=True)
    saved_params = original.state_dict()
    saved_params = {k: v.copy() for k, v in saved_params.items()}
    saved_state = opt.state_dict()

    resumed = built(seed=5)  # other initial weights, replaced by the checkpoint
    resumed.load_state_dict(saved_params)
    config = opt.get_config()
    opt_resumed = OPTIMIZERS.get(config.pop("type"))(**config)
    opt_resumed.load_state_dict(saved_state)
    _steps(opt, original, grads[3:], packed=True)
    _steps(opt_resumed, resumed, grads[3:], packed=True)
    _assert_same(original, opt, resumed, opt_resumed)


def test_state_with_different_step_counts_falls_back_to_per_parameter():
    # a checkpoint whose keys were stepped a different number of times cannot share one
    # step count: the packed path declines and the per-parameter one gives the reference
    model_a, model_b = built(), built()
    grads = _grads(model_a, 3, seed=4)
    state = {}
    for key, param, _ in model_a.parameters():
        state[f"{key}.step"] = np.array(2 if key.endswith("bias") else 5)
        state[f"{key}.exp_avg"] = np.full(param.shape, 0.1, np.float32)
        state[f"{key}.exp_avg_sq"] = np.full(param.shape, 0.2, np.float32)
    opt_a, opt_b = OPTIMIZERS.get("adam")(), OPTIMIZERS.get("adam")()
    opt_a.load_state_dict(state)
    opt_b.load_state_dict(state)
    _steps(opt_a, model_a, grads, packed=False)
    _steps(opt_b, model_b, grads, packed=True)
    _assert_same(model_a, opt_a, model_b, opt_b)
    assert int(opt_b.state["dense1.bias"]["step"]) == 5
    assert int(opt_b.state["dense1.weight"]["step"]) == 8




def test_a_subset_of_the_parameters_updates_only_that_subset():
    # the packed path needs exactly the buffers' parameters: a subset takes the loop
    model, reference = built(), built()
    flat = model.flat_buffers()
    params = model.parameters()[2:]  # dense2 only
    before = {k: p.copy() for k, p, _ in model.parameters()}
    for _, _, g in model.parameters():
        g[...] = 1.0
    opt = OPTIMIZERS.get("sgd")(lr=0.1)
    opt.step(params, flat)
    for key, param, _ in model.parameters():
        changed = not np.array_equal(param, before[key])
        assert changed == key.startswith("dense2"), key
    ref_params = reference.parameters()[2:]
    for _, _, g in ref_params:
        g[...] = 1.0
    OPTIMIZERS.get("sgd")(lr=0.1).step(ref_params)
    for (k, a, _), (_, b, _) in zip(params, ref_params):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_step_counts_stay_per_key_through_every_fallback():
    # packed steps share one step count; any step that cannot be packed (a subset of the
    # keys here) must give each key its own count again, as the per-parameter loop keeps
    packed, reference = built(), built()
    grads = _grads(packed, 4, seed=7)
    opt, opt_ref = OPTIMIZERS.get("adam")(), OPTIMIZERS.get("adam")()

    def run(opt, model, use_flat):
        params = model.parameters()
        flat = model.flat_buffers() if use_flat else None
        for i, step_grads in enumerate(grads):
            for (_, _, g), value in zip(params, step_grads):
                g[...] = value
            chosen = params[:2] if i == 2 else params  # step 3 updates dense1 only
            opt.step(chosen, flat)

    run(opt, packed, True)
    run(opt_ref, reference, False)
    assert {k: int(e["step"]) for k, e in opt.state.items()} == {
        "dense1.weight": 4, "dense1.bias": 4, "dense2.weight": 3, "dense2.bias": 3}
    _assert_same(reference, opt_ref, packed, opt)


def test_a_stale_flat_after_a_layer_is_rebuilt_still_updates_every_parameter():
    model = built()
    flat = model.flat_buffers()
    model.layers[1].build((5,), np.random.default_rng(1), np.float32)  # new arrays
    for _, _, g in model.parameters():
        g[...] = 1.0
    before = {k: p.copy() for k, p, _ in model.parameters()}
    OPTIMIZERS.get("adam")().step(model.parameters(), flat)
    for key, param, _ in model.parameters():
        assert not np.array_equal(param, before[key]), key


class Frozen(Layer):
    """A layer with a parameter whose backward never writes its gradient (which the layer
    contract forbids: Model.zero_grad is then the way to clear it)."""

    type_name = "frozen"

    def build(self, input_shape, rng, dtype=np.float32):
        self.params = {"w": np.ones(3, dtype)}
        self.grads = {"w": np.zeros(3, dtype)}

    def forward(self, x, training=False):
        return x

    def backward(self, dy):
        return dy


def test_model_zero_grad_clears_the_gradients_backward_does_not_reach():
    model = Model.from_config([{"type": "dense", "units": 2}], (3,), np.float32)
    frozen = Frozen("frozen")
    model.layers.append(frozen)
    model.build(np.random.default_rng(0))
    for _, _, g in model.parameters():
        g[...] = 7.0  # the previous step's gradients
    model.zero_grad()
    model.forward(np.ones((4, 3), np.float32), training=True)
    model.backward(np.ones((4, 2), np.float32))
    assert not np.any(frozen.grads["w"])  # not reached by backward: zero
    assert np.all(model.layers[0].grads["weight"] == 4.0)  # 4 samples of 1 x 1
