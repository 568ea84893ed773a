"""An evaluation forward pass over a large batch runs in slices (Model.inference_rows) and
gives every sample the output one pass would."""

import numpy as np

from dlcli.nn.model import Model

CNN = [
    {"type": "conv2d", "name": "conv", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "maxpool2d", "name": "pool", "pool_size": 2},
    {"type": "dense", "name": "out", "units": 3, "activation": "softmax",
     "flatten_input": True},
]


def _model(layers, shape):
    return Model.from_config(layers, shape).build(np.random.default_rng(0))


def test_slices_give_each_sample_its_own_output():
    model = _model(CNN, (2, 8, 8))
    x = np.random.default_rng(1).standard_normal((10, 2, 8, 8)).astype(np.float32)
    model._inference_rows = 3  # slices of 3, 3, 3 and 1 samples
    sliced = model.forward(x, training=False)
    # reference: each sample alone (a batch of one never slices)
    alone = np.concatenate([model.forward(x[i:i + 1], training=False) for i in range(10)])
    assert sliced.shape == (10, 3)
    np.testing.assert_allclose(sliced, alone, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(sliced.sum(axis=1), 1.0, rtol=1e-6)  # softmax rows
    # logits (the fused output stops before softmax) are sliced the same way
    model.fused_output = True
    z = model.forward(x, training=False, logits=True)
    np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(1, keepdims=True), sliced, rtol=1e-5)


def test_slice_size_follows_the_per_sample_working_set():
    # the conv's column matrix etc. make a LeNet-sized sample cost far more than 8 MiB / 64
    lenet = _model([{"type": "conv2d", "filters": 8, "kernel_size": 5},
                    {"type": "dense", "units": 10, "flatten_input": True}], (3, 32, 32))
    assert lenet.inference_rows() == Model.INFERENCE_MIN_ROWS
    # an MLP 784-256-128-10 keeps (784 is the input, not counted) 394 floats = 1576 bytes
    # per sample of outputs and no scratch: 8 MiB / 1576 = 5322 samples per slice
    mlp = _model([{"type": "dense", "units": 256}, {"type": "dense", "units": 128},
                  {"type": "dense", "units": 10}], (784,))
    assert mlp.inference_rows() == (8 << 20) // ((256 + 128 + 10) * 4)


def test_training_never_slices():
    model = _model(CNN, (2, 8, 8))
    model._inference_rows = 2
    x = np.zeros((6, 2, 8, 8), np.float32)
    assert model.forward(x, training=True).shape == (6, 3)
    assert model.layers[1].argmax.shape[0] == 6  # the pooling saw the whole batch at once
