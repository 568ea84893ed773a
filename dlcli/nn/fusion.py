"""The engine's fused pairs: the ONLY place that knows them.

A model runs its ops (layers and their activations) in order; :func:`plan` replaces pairs
that can run faster together by one step with the same ``forward(x, training)`` /
``backward(dy)`` contract. Each such step lists the ``ops`` it runs and ``describe()``s what
it did; :func:`notes` gathers those, so ``dlcli time`` and ``dlcli shapes`` describe the
fused pairs without knowing these classes:

* :class:`PoolThenReLU`: a ReLU directly followed by max pooling runs after it.
* :class:`ConvThenPool`: a conv2d whose output goes straight into a tiling max pooling hands
  it over in its product's layout, in training.

Both are exact: tests compare them bit for bit with the ops run one by one. The loss fused
with the output activation is :func:`dlcli.nn.losses.fuse_output`'s business.
"""

import numpy as np

from dlcli.nn.activations import Activation
from dlcli.nn.functional.conv import conv2d_backward, conv2d_forward
from dlcli.nn.functional.conv_stride1 import WideOutput, pools_in_place
from dlcli.nn.functional.pooling import maxpool2d_planes, maxpool2d_planes_backward
from dlcli.nn.layers.base import Layer


def plan(ops: list) -> list:
    """``ops`` with each ReLU that directly precedes a max pooling replaced by a
    :class:`PoolThenReLU` of the pair, and each conv2d directly followed by a tiled max
    pooling (or such a pair) by a :class:`ConvThenPool`."""
    steps = []
    for op in ops:
        if steps and PoolThenReLU.applies(steps[-1], op):
            op = PoolThenReLU(steps.pop(), op)
        if steps and ConvThenPool.applies(steps[-1], op):
            op = ConvThenPool(steps.pop(), op)
        steps.append(op)
    return steps


def notes(steps: list) -> dict:
    """``{op: description}`` for the ops of ``steps`` that ran fused in the latest forward
    pass: a max pooling that read its convolution's output in place gets
    ``{"fused_with": <conv name>}``, a ReLU that ran after its pooling
    ``{"runs_after": <pool name>}``."""
    found = {}
    for step in steps:
        if hasattr(step, "describe"):  # every fused step says what ran fused
            found.update(step.describe())
    return found


def relu_runs_pooled(op, pool, input_hw) -> bool:
    """Whether ``op`` (a ReLU) followed by ``pool`` runs after the pooling on an input of
    height-width ``input_hw``, so that its output has the pooled size."""
    return PoolThenReLU.applies(op, pool) and PoolThenReLU.covers(pool, input_hw)


def conv_hands_over(conv, input_shape, following) -> bool:
    """Whether ``conv`` (input ``input_shape``, batch axis excluded) hands its output to the
    pooling among the ops ``following`` it in its product layout in training."""
    return ConvThenPool.hands_over(conv, input_shape, following)


class PoolThenReLU:
    """A ReLU directly followed by max pooling, run in the other order.

    ``max`` commutes with ``relu(x) = max(x, 0)``: pooling the pre-activations and then
    applying the ReLU gives the same outputs, on the pooled values only (a quarter of
    them for 2x2 windows, so the ReLU's forward and backward passes cost a quarter).
    All of this holds for finite inputs; a window holding a NaN may route its gradient
    differently (training stops on non-finite values anyway).
    The gradients are the same too: where a window's maximum is positive both orders
    route ``dy`` to it; where it is <= 0 the ReLU's derivative makes it 0 either way.
    Only the recorded argmax can differ: on a window of zeros relu-then-pool picks the
    first offset (the tie rule), so ``argmax`` is set to 0 where the output is 0, and a
    linked ``maxunpool2d`` or ``indices`` sees exactly what the original order gives.

    The swap is made only for an unpadded pool whose windows cover every input pixel
    (checked per batch): a pixel no window reads would otherwise lose its ReLU mask entry,
    which the dead-unit diagnostics read. Otherwise the pair runs in its written order.
    """

    def __init__(self, relu: Activation, pool: Layer):
        self.relu, self.pool = relu, pool
        self.ops = (relu, pool)
        self.swapped = False

    def describe(self) -> dict:
        """``{relu: {"runs_after": pool name}}`` when the latest forward swapped the pair."""
        return {self.relu: {"runs_after": self.pool.name}} if self.swapped else {}

    @staticmethod
    def applies(relu, pool) -> bool:
        return (isinstance(relu, Activation) and relu.activation_name == "relu"
                and getattr(pool, "type_name", None) == "maxpool2d" and not any(pool.pads))

    @staticmethod
    def covers(pool, hw) -> bool:
        """Whether ``pool``'s windows read every pixel of an input of height-width ``hw``."""
        return all(s <= f and (n - f) % s == 0 for n, f, s in zip(hw, pool.pool, pool.strides))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.swapped = x.ndim == 4 and self.covers(self.pool, x.shape[2:])
        if not self.swapped:
            return self.pool.forward(self.relu.forward(x, training), training)
        return self.relu_after_pool(self.pool.forward(x, training), training)

    def relu_after_pool(self, pooled: np.ndarray, training: bool) -> np.ndarray:
        """The ReLU of the pooled values, with the pooling's argmax set to 0 where the
        output is 0 (what the written order's tie rule gives)."""
        self.swapped = True
        y = self.relu.forward(pooled, training)
        argmax = self.pool.argmax
        np.multiply(argmax, np.greater(y, 0), out=argmax)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        first, second = (self.relu, self.pool) if self.swapped else (self.pool, self.relu)
        dy = first.backward(dy)
        return None if dy is None else second.backward(dy)


class ConvThenPool:
    """A conv2d whose output goes straight into a max pooling with tiling windows (stride
    = pool size, no padding), directly or through a :class:`PoolThenReLU`.

    In training this step runs the two layers' kernels itself: the pooling reads its
    windows where the convolution's product left them and writes its gradient where the
    convolution's backward reads it (:class:`~dlcli.nn.functional.conv_stride1.WideOutput`),
    so the copy of the output into (N, F, H, W) and the copy of its gradient back are
    skipped. It uses the layers' parameters, gradients and workspaces and sets what the
    pooling layer shows after a forward (``argmax``, ``forward_input_hw``), so the values
    are the same ones as the layers run one by one, bit for bit; only the layout they
    travel in changes. The convolution's kernel decides per batch (its stride-1 path,
    windows that cover its output exactly); otherwise, and outside training, the ops run
    one after the other.
    """

    def __init__(self, conv: Layer, after):
        self.conv, self.after = conv, after
        self.pool = after.pool if isinstance(after, PoolThenReLU) else after
        self.ops = (conv, *after.ops) if isinstance(after, PoolThenReLU) else (conv, after)
        self.handed_over = False  # whether the latest forward pooled in place
        self._cache = None  # the convolution kernel's cache, when this step ran it
        self._wide = None

    def describe(self) -> dict:
        """``{pool: {"fused_with": conv name}}`` when the latest forward pooled in place,
        with what a :class:`PoolThenReLU` inside says."""
        found = {self.pool: {"fused_with": self.conv.name}} if self.handed_over else {}
        if isinstance(self.after, PoolThenReLU):
            found.update(self.after.describe())
        return found

    @staticmethod
    def applies(conv, op) -> bool:
        pool = op.pool if isinstance(op, PoolThenReLU) else op
        return (getattr(conv, "type_name", None) == "conv2d"
                and getattr(pool, "type_name", None) == "maxpool2d"
                and tuple(pool.strides) == tuple(pool.pool) and not any(pool.pads))

    @staticmethod
    def hands_over(conv, input_shape, following) -> bool:
        """Whether ``conv`` (input ``input_shape``, batch axis excluded) followed by the
        ops ``following`` runs fused in training: its output then only ever lives in
        its product layout (``dlcli shapes`` counts no activation for it). The pooling is
        the next op, or the one after a ReLU."""
        following = list(following)
        between = following.pop(0) if following and isinstance(following[0], Activation) \
            else None
        pool = following[0] if following else None
        if not ConvThenPool.applies(conv, pool):
            return False
        if between is not None and not PoolThenReLU.applies(between, pool):
            return False
        return pools_in_place((1, *input_shape), conv.filters, conv.kernel, conv.strides,
                              conv.padding, pool.pool)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.handed_over, self._cache, self._wide = False, None, None
        if not training:
            return self.after.forward(self.conv.forward(x, training), training)
        conv, pool = self.conv, self.pool
        y, self._cache = conv2d_forward(
            np.asarray(x, dtype=conv.dtype), conv.params["weight"], conv.params.get("bias"),
            conv.strides, conv.padding, flip_kernel=conv.flip_kernel,
            workspace=conv.workspace, wide_for=pool.pool)
        if not isinstance(y, WideOutput):
            return self.after.forward(y, training)
        self.handed_over, self._wide = True, y
        (ph, pw), (n, f, h, w) = pool.pool, y.shape  # the windows tile y exactly
        pooled, pool.argmax = maxpool2d_planes(y.pool_planes(pool.pool),
                                               (n, f, h // ph, w // pw), pool.workspace)
        pool.forward_input_hw = (h, w)
        if isinstance(self.after, PoolThenReLU):
            return self.after.relu_after_pool(pooled, training)
        return pooled

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        conv = self.conv
        if self._cache is None:  # an evaluation forward: the layers ran one by one
            dy = self.after.backward(dy)
            return None if dy is None else conv.backward(dy)
        if self.handed_over:
            if isinstance(self.after, PoolThenReLU):
                dy = self.after.relu.backward(dy)
            pool = self.pool
            maxpool2d_planes_backward(np.asarray(dy, dtype=pool.dtype), pool.argmax,
                                      self._wide.grad_planes(pool.pool), pool.workspace)
            dy = self._wide.gradient()
        else:
            dy = self.after.backward(dy)
            if dy is None:
                return None
            dy = np.asarray(dy, dtype=conv.dtype)
        dx, dweight, dbias = conv2d_backward(dy, self._cache, need_input_grad=conv.need_input_grad,
                                             workspace=conv.workspace)
        conv.set_grads(dweight, dbias)
        return dx
