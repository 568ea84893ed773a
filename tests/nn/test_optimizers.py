"""Tests for dlcli.nn.optim.

Every update is checked against a scalar reference written straight from the formula
(one Python float per parameter element), first steps are also expanded by hand in
comments, and short golden trajectories on a quadratic are written out as numbers.
"""

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlcli.nn import optim as O
from dlcli.registry import OPTIMIZERS

THETA0 = [0.5, -1.5, 2.0]
GRADS = [
    [0.1, -0.2, 0.3],
    [0.4, 0.1, -0.5],
    [-0.3, 0.2, 0.0],
    [0.2, -0.6, 0.1],
]


def run(opt, theta0=THETA0, grads=GRADS, dtype=np.float64, key="dense1.weight"):
    """Step ``opt`` through ``grads``; return the parameter after each step."""
    param = np.array(theta0, dtype=dtype)
    trajectory = []
    for g in grads:
        opt.step([(key, param, np.array(g, dtype=dtype))])
        trajectory.append(param.copy())
    return np.array(trajectory)


def per_element(reference, theta0=THETA0, grads=GRADS, **hyper):
    """Apply a scalar reference to each element; returns (steps, elements)."""
    columns = [reference(theta0[i], [g[i] for g in grads], **hyper) for i in range(len(theta0))]
    return np.array(columns).T


# ---- scalar references, written from the formulas ------------------------------------------


def ref_sgd(theta, grads, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
            maximize=False, lrs=None):
    out, buf = [], None
    for t, grad in enumerate(grads):
        lr_t = lrs[t] if lrs else lr
        g = -grad if maximize else grad
        g = g + weight_decay * theta
        if momentum != 0:
            buf = g if buf is None else momentum * buf + (1 - dampening) * g
            d = g + momentum * buf if nesterov else buf
        else:
            d = g
        theta = theta - lr_t * d
        out.append(theta)
    return out


def ref_notes_momentum(theta, grads, alpha, rho, alphas=None):
    """The notes: v_t = ρ v_{t-1} + α ∇J, θ -= v_t."""
    out, v = [], 0.0
    for t, grad in enumerate(grads):
        v = rho * v + (alphas[t] if alphas else alpha) * grad
        theta = theta - v
        out.append(theta)
    return out


def ref_rmsprop(theta, grads, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                maximize=False):
    out, v, m, b = [], 0.0, 0.0, 0.0
    for grad in grads:
        g = -grad if maximize else grad
        g = g + weight_decay * theta
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            m = alpha * m + (1 - alpha) * g
            s = math.sqrt(v - m * m) + eps
        else:
            s = math.sqrt(v) + eps
        if momentum > 0:
            b = momentum * b + g / s
            theta = theta - lr * b
        else:
            theta = theta - lr * g / s
        out.append(theta)
    return out


def ref_adam(theta, grads, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False,
             maximize=False, decoupled=False, pseudocode_amsgrad=False):
    """The notes' (= torch docs') pseudocode; amsgrad as torch's code unless pseudocode_amsgrad."""
    out, m, v, vmax, vhat_max = [], 0.0, 0.0, 0.0, 0.0
    for t, grad in enumerate(grads, start=1):
        g = -grad if maximize else grad
        if decoupled:
            theta = theta * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        if amsgrad and pseudocode_amsgrad:
            vhat_max = max(vhat_max, v_hat)
            theta = theta - lr * m_hat / (math.sqrt(vhat_max) + eps)
        elif amsgrad:
            vmax = max(vmax, v)
            theta = theta - lr * m_hat / (math.sqrt(vmax / (1 - beta2**t)) + eps)
        else:
            theta = theta - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(theta)
    return out


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-15)


# ---- first steps by hand -------------------------------------------------------------------


def test_sgd_first_step_by_hand():
    # θ -= lr·g = [0.5, -1.5, 2.0] - 0.1·[0.1, -0.2, 0.3]
    close(run(O.SGD(lr=0.1))[0], [0.49, -1.48, 1.97])


def test_sgd_weight_decay_and_maximize_first_step_by_hand():
    # g = -∇ + 0.1·θ = [-0.1 + 0.05, 0.2 - 0.15, -0.3 + 0.2] = [-0.05, 0.05, -0.1]; θ -= 0.1·g
    close(run(O.SGD(lr=0.1, weight_decay=0.1, maximize=True))[0], [0.505, -1.505, 2.01])


def test_sgd_momentum_two_steps_by_hand():
    traj = run(O.SGD(lr=0.1, momentum=0.9, dampening=0.5))
    # step 1: the buffer starts as g itself (no dampening on the first step), so plain SGD
    close(traj[0], [0.49, -1.48, 1.97])
    # step 2: b = 0.9·[0.1, -0.2, 0.3] + 0.5·[0.4, 0.1, -0.5] = [0.29, -0.13, 0.02]; θ -= 0.1·b
    close(traj[1], [0.461, -1.467, 1.968])


def test_sgd_nesterov_first_step_by_hand():
    # b = g; d = g + 0.9·b = 1.9·g; θ -= 0.1·1.9·g = 0.19·[0.1, -0.2, 0.3]
    close(run(O.SGD(lr=0.1, momentum=0.9, nesterov=True))[0], [0.481, -1.462, 1.943])


def test_rmsprop_first_step_by_hand():
    # v = 0.01·g², so √v + eps = 0.1·|g| + 1e-8 and θ -= 0.01·g/(0.1·|g| + 1e-8) ≈ θ - 0.1·sign(g)
    first = run(O.RMSprop(lr=0.01))[0]
    close(first, [0.5 - 0.001 / 0.01000001, -1.5 + 0.002 / 0.02000001, 2.0 - 0.003 / 0.03000001])
    np.testing.assert_allclose(first, [0.4, -1.4, 1.9], atol=1e-6)


def test_rmsprop_centered_first_step_by_hand():
    # v = 0.01·g², m = 0.01·g, v - m² = 0.0099·g², so θ -= 0.01·sign(g)/√0.0099 ≈ 0.100504·sign(g)
    first = run(O.RMSprop(lr=0.01, centered=True, eps=0.0))[0]
    step = 0.01 / math.sqrt(0.0099)
    close(first, [0.5 - step, -1.5 + step, 2.0 - step])


def test_adam_first_step_by_hand():
    # m = 0.1·g, v = 0.001·g², m̂ = g, v̂ = g²: θ -= lr·g/(|g| + eps) ≈ θ - lr·sign(g)
    first = run(O.Adam(lr=0.001))[0]
    close(first, [0.5 - 0.001 * 0.1 / (0.1 + 1e-8), -1.5 + 0.001 * 0.2 / (0.2 + 1e-8),
                  2.0 - 0.001 * 0.3 / (0.3 + 1e-8)])
    np.testing.assert_allclose(first, [0.499, -1.499, 1.999], atol=1e-8)


def test_adamw_first_step_by_hand():
    # θ *= 1 - lr·wd = 1 - 0.1·0.5 = 0.95 first, then the Adam step of ≈ lr·sign(g)
    first = run(O.AdamW(lr=0.1, weight_decay=0.5))[0]
    close(first, [0.475 - 0.1 * 0.1 / (0.1 + 1e-8), -1.425 + 0.1 * 0.2 / (0.2 + 1e-8),
                  1.9 - 0.1 * 0.3 / (0.3 + 1e-8)])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3).filter(lambda x: abs(x) > 1e-3), min_size=1, max_size=5),
       st.floats(1e-4, 1.0))
def test_adam_first_step_moves_by_lr_times_sign(grad, lr):
    param = np.zeros(len(grad))
    O.Adam(lr=lr).step([("w", param, np.array(grad))])
    np.testing.assert_allclose(param, -lr * np.sign(grad), rtol=1e-4)


# ---- several steps against the references --------------------------------------------------

SGD_OPTIONS = [
    {},
    {"momentum": 0.9},
    {"momentum": 0.9, "dampening": 0.5},
    {"momentum": 0.9, "nesterov": True},
    {"weight_decay": 0.1},
    {"maximize": True},
    {"momentum": 0.5, "nesterov": True, "weight_decay": 0.01, "maximize": True},
    {"momentum": 1.2, "dampening": 1.0},  # legal in torch, if unwise
]


@pytest.fixture(params=["blas", "numpy"])
def sgd_path(request, monkeypatch):
    """SGD's two update routes: BLAS axpby/axpy (dlcli.nn.blas) and plain NumPy passes."""
    from dlcli.nn import blas
    if request.param == "blas" and not blas.available:
        pytest.skip("no OpenBLAS bundled with NumPy here: SGD always takes the NumPy route")
    if request.param == "numpy":
        monkeypatch.setattr(blas, "_FUNCS", {})
    return request.param


@pytest.mark.parametrize("options", SGD_OPTIONS, ids=str)
def test_sgd_matches_reference(options, sgd_path):
    close(run(O.SGD(lr=0.1, **options)), per_element(ref_sgd, lr=0.1, **options))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{"momentum": 0.9}, {"momentum": 0.5, "dampening": 0.3},
                                     {"momentum": 0.9, "nesterov": True}, {}])
def test_sgd_on_a_large_buffer_matches_the_formula(options, dtype, sgd_path):
    # 50,000 values: past OpenBLAS's threading threshold (10,000), in the dtype of a model;
    # the reference is the formula in float64 over the whole array
    rng = np.random.default_rng(3)
    theta = rng.standard_normal(50_000).astype(dtype)
    grads = [rng.standard_normal(theta.size).astype(dtype) for _ in range(3)]
    opt = O.SGD(lr=0.05, **options)
    param = theta.copy()
    want = theta.astype(np.float64)
    buf = None
    mu, damp = options.get("momentum", 0.0), options.get("dampening", 0.0)
    for g in grads:
        opt.step([("w", param, g)])
        g = g.astype(np.float64)
        if mu:
            buf = g.copy() if buf is None else mu * buf + (1 - damp) * g
            d = g + mu * buf if options.get("nesterov") else buf
        else:
            d = g
        want = want - 0.05 * d
    np.testing.assert_allclose(param, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-14)
    assert param.dtype == dtype


RMSPROP_OPTIONS = [
    {},
    {"alpha": 0.9},
    {"centered": True},
    {"momentum": 0.9},
    {"momentum": 0.9, "centered": True},
    {"weight_decay": 0.1},
    {"maximize": True},
    {"eps": 1e-5, "alpha": 0.5, "weight_decay": 0.01, "momentum": 0.3, "centered": True, "maximize": True},
]


@pytest.mark.parametrize("options", RMSPROP_OPTIONS, ids=str)
def test_rmsprop_matches_reference(options):
    close(run(O.RMSprop(lr=0.01, **options)), per_element(ref_rmsprop, lr=0.01, **options))


ADAM_OPTIONS = [
    {},
    {"betas": [0.5, 0.9]},
    {"amsgrad": True},
    {"weight_decay": 0.1},
    {"maximize": True},
    {"eps": 1e-3, "betas": (0.8, 0.99), "weight_decay": 0.05, "amsgrad": True, "maximize": True},
]


def _adam_ref_options(options):
    ref = dict(options)
    if "betas" in ref:
        ref["beta1"], ref["beta2"] = ref.pop("betas")
    return ref


@pytest.mark.parametrize("options", ADAM_OPTIONS, ids=str)
def test_adam_matches_reference(options):
    close(run(O.Adam(lr=0.01, **options)), per_element(ref_adam, lr=0.01, **_adam_ref_options(options)))


@pytest.mark.parametrize("options", [{}, *ADAM_OPTIONS[1:]], ids=str)
def test_adamw_matches_reference(options):
    options = {"weight_decay": 0.01, **options}
    close(run(O.AdamW(lr=0.01, **options)),
          per_element(ref_adam, lr=0.01, decoupled=True, **_adam_ref_options(options)))


def test_adam_amsgrad_follows_torch_code_not_docs_pseudocode():
    # β = (0.5, 0.5), eps = 0, lr = 0.1, θ0 = 0, grads 1 then 0.
    # step 1: m = v = 0.5, m̂ = v̂ = 1: θ = -0.1.
    # step 2: m = v = 0.25, bias corrections 0.75: m̂ = v̂ = 1/3.
    #   torch's code: u = max(0.5, 0.25) = 0.5, θ -= 0.1·(1/3)/√(0.5/0.75) → -0.1408248...
    #   the pseudocode: v̂max = max(1, 1/3) = 1,  θ -= 0.1·(1/3)/1           → -0.1333333...
    traj = run(O.Adam(lr=0.1, betas=[0.5, 0.5], eps=0.0, amsgrad=True), theta0=[0.0], grads=[[1.0], [0.0]])
    close(traj[:, 0], [-0.1, -0.1 - 0.1 / 3 / math.sqrt(0.5 / 0.75)])
    pseudocode = ref_adam(0.0, [1.0, 0.0], lr=0.1, beta1=0.5, beta2=0.5, eps=0.0, amsgrad=True,
                          pseudocode_amsgrad=True)
    close(pseudocode, [-0.1, -0.1 - 0.1 / 3])
    assert abs(traj[1, 0] - pseudocode[1]) > 1e-3


# ---- the notes' formulas ---------------------------------------------------------------------


def test_momentum_is_notes_sgd_with_momentum_for_constant_lr():
    opt = OPTIMIZERS.get("momentum")(lr=0.1)
    assert opt.momentum == 0.9  # the notes' default ρ
    np.testing.assert_allclose(run(opt), per_element(ref_notes_momentum, alpha=0.1, rho=0.9), rtol=1e-12)


def test_momentum_follows_torch_not_notes_when_lr_changes():
    lrs = [0.1, 0.1, 0.01, 0.01]
    opt = O.Momentum(lr=0.1)
    param = np.array(THETA0)
    trajectory = []
    for lr, g in zip(lrs, GRADS):
        opt.lr = lr
        opt.step([("w", param, np.array(g))])
        trajectory.append(param.copy())
    close(trajectory, per_element(ref_sgd, lr=None, momentum=0.9, lrs=lrs))
    notes = per_element(ref_notes_momentum, alpha=None, rho=0.9, alphas=lrs)
    assert np.abs(np.array(trajectory)[2:] - notes[2:]).max() > 1e-3


def test_rmsprop_with_eps_1e5_is_the_notes_rmsprop():
    # notes: g_t = α g_{t-1} + (1-α)∇J², θ -= ε/(√g_t + 1e-5)·∇J, with α = 0.9, ε = 0.01
    def notes(theta, grads):
        out, gain = [], 0.0
        for grad in grads:
            gain = 0.9 * gain + 0.1 * grad**2
            theta -= 0.01 / (math.sqrt(gain) + 1e-5) * grad
            out.append(theta)
        return out

    close(run(O.RMSprop(lr=0.01, alpha=0.9, eps=1e-5)), per_element(notes))


# ---- golden trajectories on f(θ) = ½·a·(θ - c)² ------------------------------------------------


def quadratic_trajectory(opt, theta0, a, c, steps):
    param = np.array(theta0, dtype=np.float64)
    a, c = np.asarray(a, dtype=np.float64), np.asarray(c, dtype=np.float64)
    out = []
    for _ in range(steps):
        opt.step([("w", param, a * (param - c))])
        out.append(param.copy())
    return np.array(out)


def test_golden_sgd_on_quadratic():
    # ∇ = θ, lr = 0.1: θ_t = 0.9ᵗ
    traj = quadratic_trajectory(O.SGD(lr=0.1), [1.0], 1.0, 0.0, 5)
    close(traj[:, 0], [0.9, 0.81, 0.729, 0.6561, 0.59049])


def test_golden_momentum_on_quadratic():
    # ∇ = θ, lr = 0.1, μ = 0.9: b = 1, 1.8, 2.34, 2.592, 2.5596; θ -= 0.1·b
    traj = quadratic_trajectory(O.Momentum(lr=0.1), [1.0], 1.0, 0.0, 5)
    close(traj[:, 0], [0.9, 0.72, 0.486, 0.2268, -0.02916])


def test_golden_rmsprop_on_quadratic():
    # ∇ = θ, lr = 0.1, α = 0.5, eps = 0: v = 0.5·1 = 0.5, θ1 = 1 - 0.1/√0.5;
    # v2 = 0.25 + 0.5·θ1², θ2 = θ1 - 0.1·θ1/√v2
    traj = quadratic_trajectory(O.RMSprop(lr=0.1, alpha=0.5, eps=0.0), [1.0], 1.0, 0.0, 2)
    theta1 = 1 - 0.1 / math.sqrt(0.5)
    close(traj[:, 0], [theta1, theta1 - 0.1 * theta1 / math.sqrt(0.25 + 0.5 * theta1**2)])
    np.testing.assert_allclose(traj[:, 0], [0.8585786438, 0.7494138445], rtol=1e-9)


def test_golden_adam_on_quadratic():
    # ∇ = θ, lr = 0.1: step 1 is ≈ lr (θ1 = 0.9); step 2: g = 0.9, m̂ = 0.18/0.19 = 0.947368,
    # v̂ = 0.001809/0.001999 = 0.904952, θ2 = 0.9 - 0.1·0.947368/√0.904952 = 0.800412...
    traj = quadratic_trajectory(O.Adam(lr=0.1), [1.0], 1.0, 0.0, 5)
    np.testing.assert_allclose(
        traj[:, 0], [0.9000000010, 0.8004122297, 0.7015862745, 0.6039390627, 0.5079636619], rtol=1e-9
    )


CONVERGENCE = [
    ("sgd", {"lr": 0.05}),
    ("sgd", {"lr": 0.02, "momentum": 0.9, "nesterov": True}),
    ("momentum", {"lr": 0.02}),
    ("rmsprop", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "centered": True, "momentum": 0.5}),
    ("adam", {"lr": 0.05}),
    ("adam", {"lr": 0.05, "amsgrad": True}),
    ("adamw", {"lr": 0.05, "weight_decay": 0.0}),
]


@pytest.mark.parametrize("name, options", CONVERGENCE, ids=str)
def test_minimizes_ill_conditioned_quadratic(name, options):
    a, c = np.array([1.0, 20.0]), np.array([3.0, -2.0])
    traj = quadratic_trajectory(OPTIMIZERS.get(name)(**options), [0.0, 0.0], a, c, 1000)
    np.testing.assert_allclose(traj[-1], c, atol=2e-2)


def test_maximize_climbs():
    # maximizing -½θ² (gradient -θ) is minimizing ½θ²
    traj = quadratic_trajectory(O.Adam(lr=0.05, maximize=True), [1.0, -2.0], -1.0, 0.0, 500)
    np.testing.assert_allclose(traj[-1], [0.0, 0.0], atol=2e-2)


# ---- engine contract: in place, dtypes, lazy state, checkpoints ------------------------------

ALL_CONFIGS = [
    ("sgd", {}),
    ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("sgd", {"momentum": 0.9, "dampening": 0.3, "maximize": True}),
    ("momentum", {"lr": 0.05}),
    ("rmsprop", {}),
    ("rmsprop", {"momentum": 0.9, "centered": True, "weight_decay": 0.01, "maximize": True}),
    ("adam", {}),
    ("adam", {"amsgrad": True, "weight_decay": 0.01, "maximize": True}),
    ("adamw", {}),
    ("adamw", {"amsgrad": True, "betas": [0.8, 0.99]}),
]


def make(name, options):
    return OPTIMIZERS.get(name)(**options)


def two_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {"dense1.weight": rng.standard_normal((4, 3)).astype(dtype),
            "dense1.bias": rng.standard_normal(4).astype(dtype)}


def random_grads(params, rng, dtype=None):
    return {k: rng.standard_normal(p.shape).astype(dtype or p.dtype) for k, p in params.items()}


def step_all(opt, params, grads):
    opt.step([(k, params[k], grads[k]) for k in params])


@pytest.mark.parametrize("name, options", ALL_CONFIGS, ids=str)
def test_updates_in_place(name, options):
    opt = make(name, options)
    params = two_params(np.float64)
    ids = {k: id(p) for k, p in params.items()}
    views = {k: p.reshape(-1) for k, p in params.items()}  # share the parameters' memory
    before = {k: p.copy() for k, p in params.items()}
    rng = np.random.default_rng(1)
    for _ in range(3):
        step_all(opt, params, random_grads(params, rng))
    for k, p in params.items():
        assert id(p) == ids[k]
        assert not np.array_equal(p, before[k])
        np.testing.assert_array_equal(views[k], p.reshape(-1))


@pytest.mark.parametrize("name, options", ALL_CONFIGS, ids=str)
def test_gradients_are_not_modified(name, options):
    opt = make(name, options)
    params = two_params(np.float64)
    grads = random_grads(params, np.random.default_rng(2))
    kept = {k: g.copy() for k, g in grads.items()}
    for _ in range(2):
        step_all(opt, params, grads)
    for k in grads:
        np.testing.assert_array_equal(grads[k], kept[k])


@pytest.mark.parametrize("grad_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, options", ALL_CONFIGS, ids=str)
def test_float32_stays_float32(name, options, grad_dtype):
    params32, params64 = two_params(np.float32), two_params(np.float64)
    for k in params64:  # same starting values in both precisions
        params64[k] = params32[k].astype(np.float64)
    opt32, opt64 = make(name, options), make(name, options)
    rng = np.random.default_rng(3)
    for _ in range(4):
        grads = random_grads(params64, rng)
        step_all(opt32, params32, {k: g.astype(grad_dtype) for k, g in grads.items()})
        step_all(opt64, params64, grads)
        for k in params32:
            assert params32[k].dtype == np.float32
            for entry, arr in opt32.state[k].items():  # after every step, the first included
                assert arr.dtype == (np.int64 if entry == "step" else np.float32), entry
    for k in params32:
        np.testing.assert_allclose(params32[k], params64[k], rtol=1e-4, atol=1e-5)
    for flat_key, arr in opt32.state_dict().items():
        expected = np.int64 if flat_key.endswith(".step") else np.float32
        assert arr.dtype == expected, flat_key


@pytest.mark.parametrize("name, options", ALL_CONFIGS, ids=str)
def test_steps_after_the_first_allocate_nothing_large(name, options):
    opt = make(name, options)
    param, grad = np.ones(250_000, np.float32), np.full(250_000, 0.5, np.float32)  # 1 MB each
    opt.step([("w", param, grad)])  # state and scratch buffers are allocated here
    tracemalloc.start()
    try:
        opt.step([("w", param, grad)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000


def test_state_dict_names_and_step_counts():
    params = {"dense1.weight": np.ones((2, 2)), "dense1.bias": np.ones(2)}
    grads = {k: np.full_like(p, 0.5) for k, p in params.items()}
    expect = {
        ("sgd", ()): set(),
        ("sgd", (("momentum", 0.9),)): {"momentum_buffer"},
        ("rmsprop", ()): {"step", "square_avg"},
        ("rmsprop", (("centered", True), ("momentum", 0.9))): {"step", "square_avg", "grad_avg",
                                                               "momentum_buffer"},
        ("adam", ()): {"step", "exp_avg", "exp_avg_sq"},
        ("adam", (("amsgrad", True),)): {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
        ("adamw", ()): {"step", "exp_avg", "exp_avg_sq"},
    }
    for (name, options), entries in expect.items():
        opt = make(name, dict(options))
        assert opt.state_dict() == {}
        step_all(opt, params, grads)
        step_all(opt, params, grads)
        sd = opt.state_dict()
        assert set(sd) == {f"{k}.{e}" for k in params for e in entries}, name
        if "step" in entries:
            assert sd["dense1.weight.step"].dtype == np.int64
            assert sd["dense1.weight.step"].shape == ()
            assert int(sd["dense1.weight.step"]) == 2


def test_state_is_created_lazily_per_key():
    opt = O.Adam(lr=0.01)
    w, b = np.zeros(3), np.zeros(2)
    opt.step([("w", w, np.ones(3))])
    assert set(opt.state) == {"w"}
    opt.step([("w", w, np.ones(3)), ("b", b, np.ones(2))])
    assert int(opt.state["w"]["step"]) == 2 and int(opt.state["b"]["step"]) == 1
    # b's first step is a fresh first step: ≈ -lr·sign(g)
    np.testing.assert_allclose(b, [-0.01 / (1 + 1e-8)] * 2, rtol=1e-12)


def test_state_dict_is_a_copy():
    opt = O.SGD(lr=0.1, momentum=0.9)
    w = np.zeros(3)
    opt.step([("w", w, np.ones(3))])
    sd = opt.state_dict()
    sd["w.momentum_buffer"][...] = 100.0
    np.testing.assert_array_equal(opt.state["w"]["momentum_buffer"], np.ones(3))
    opt.load_state_dict(sd)
    sd["w.momentum_buffer"][...] = -7.0
    np.testing.assert_array_equal(opt.state["w"]["momentum_buffer"], np.full(3, 100.0))


@pytest.mark.parametrize("name, options", ALL_CONFIGS, ids=str)
def test_checkpoint_round_trip_is_bit_identical(name, options, tmp_path):
    rng = np.random.default_rng(4)
    params = two_params(np.float32)
    grads = [random_grads(params, rng) for _ in range(7)]
    original = make(name, options)
    for g in grads[:3]:
        step_all(original, params, g)

    np.savez(tmp_path / "opt.npz", **original.state_dict())
    with np.load(tmp_path / "opt.npz") as f:
        loaded = {k: f[k] for k in f.files}
    config = original.get_config()
    resumed = OPTIMIZERS.get(config.pop("type"))(**config)
    resumed.load_state_dict(loaded)
    fresh = make(name, options)  # without the state: must NOT continue identically

    runs = {"original": original, "resumed": resumed, "fresh": fresh}
    ps = {which: {k: p.copy() for k, p in params.items()} for which in runs}
    for i, g in enumerate(grads[3:]):
        for which, opt in runs.items():
            opt.lr = opt.lr * 0.5 if i == 2 else opt.lr  # a schedule acting mid-way
            step_all(opt, ps[which], g)
    for k in params:
        assert ps["resumed"][k].dtype == np.float32
        assert ps["resumed"][k].tobytes() == ps["original"][k].tobytes()
    sd_o, sd_r = original.state_dict(), resumed.state_dict()
    assert sd_o.keys() == sd_r.keys()
    for k in sd_o:
        assert sd_o[k].dtype == sd_r[k].dtype and sd_o[k].tobytes() == sd_r[k].tobytes()
    if original.state_dict():  # stateful: skipping the load must change the result
        assert any(not np.array_equal(ps["fresh"][k], ps["original"][k]) for k in params)


def test_load_state_dict_replaces_the_whole_state():
    opt = O.Adam()
    opt.step([("old", np.zeros(2), np.ones(2))])
    opt.load_state_dict({"w.step": np.array(3), "w.exp_avg": np.zeros(2), "w.exp_avg_sq": np.zeros(2)})
    assert set(opt.state) == {"w"}
    assert opt.state["w"]["step"].dtype == np.int64 and int(opt.state["w"]["step"]) == 3


def test_load_state_dict_rejects_bad_entries():
    with pytest.raises(ValueError, match="exp_avg"):
        O.SGD(momentum=0.9).load_state_dict({"w.exp_avg": np.zeros(2)})
    with pytest.raises(ValueError, match="unknown"):
        O.Adam().load_state_dict({"nodot": np.zeros(2)})
    with pytest.raises(ValueError, match="lacks exp_avg_sq"):
        O.Adam().load_state_dict({"w.step": np.array(1), "w.exp_avg": np.zeros(2)})
    with pytest.raises(ValueError, match="max_exp_avg_sq"):
        O.Adam(amsgrad=True).load_state_dict(
            {"w.step": np.array(1), "w.exp_avg": np.zeros(2), "w.exp_avg_sq": np.zeros(2)})
    with pytest.raises(ValueError, match="step"):
        O.RMSprop().load_state_dict({"w.step": np.array(1.5), "w.square_avg": np.zeros(2)})


def test_loaded_state_of_wrong_shape_is_reported_at_step():
    opt = O.Adam()
    opt.load_state_dict({"w.step": np.array(1), "w.exp_avg": np.zeros(3), "w.exp_avg_sq": np.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        opt.step([("w", np.zeros(2), np.ones(2))])


def test_gradient_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        O.SGD().step([("w", np.zeros(3), np.ones(2))])


def test_lr_attribute_drives_the_step():
    opt = O.SGD(lr=0.1)
    w = np.zeros(2)
    opt.step([("w", w, np.ones(2))])
    opt.lr = 0.5
    opt.step([("w", w, np.ones(2))])
    close(w, [-0.6, -0.6])
    opt.lr = -1.0
    with pytest.raises(ValueError, match="lr"):
        opt.step([("w", w, np.ones(2))])


def test_functional_api_without_scratch():
    param, state = np.array([1.0, -1.0]), {}
    O.adam_update(param, np.array([0.5, 0.5]), state, lr=0.1)
    close(param, [1.0 - 0.05 / (0.5 + 1e-8), -1.0 - 0.05 / (0.5 + 1e-8)])
    assert set(state) == {"step", "exp_avg", "exp_avg_sq"} and int(state["step"]) == 1
    param, state = np.array([1.0]), {}
    O.sgd_update(param, np.array([2.0]), state, lr=0.1, momentum=0.9)
    close(param, [0.8])
    close(state["momentum_buffer"], [2.0])
    param, state = np.array([1.0]), {}
    O.rmsprop_update(param, np.array([2.0]), state, lr=0.1, alpha=0.75, eps=0.0)
    close(param, [1.0 - 0.1 * 2.0 / math.sqrt(0.25 * 4.0)])
    param, state = np.array([1.0]), {}
    O.adamw_update(param, np.array([2.0]), state, lr=0.1, weight_decay=0.5, eps=0.0)
    close(param, [0.95 - 0.1])


# ---- configuration ---------------------------------------------------------------------------


def test_registered_names():
    assert {"sgd", "momentum", "rmsprop", "adam", "adamw"} <= set(OPTIMIZERS.names())
    assert OPTIMIZERS.get("adam") is O.Adam


def test_hyperparameters_and_defaults():
    assert O.SGD.hyperparameters() == {"lr": 0.01, "momentum": 0.0, "dampening": 0.0, "nesterov": False,
                                       "weight_decay": 0.0, "maximize": False}
    assert O.Momentum.hyperparameters() == {**O.SGD.hyperparameters(), "momentum": 0.9}
    assert O.RMSprop.hyperparameters() == {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0,
                                           "momentum": 0.0, "centered": False, "maximize": False}
    assert O.Adam.hyperparameters() == {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-8,
                                        "weight_decay": 0.0, "amsgrad": False, "maximize": False}
    assert O.AdamW.hyperparameters() == {**O.Adam.hyperparameters(), "weight_decay": 0.01}


@pytest.mark.parametrize("name, options", ALL_CONFIGS, ids=str)
def test_get_config_round_trips(name, options):
    opt = make(name, options)
    config = opt.get_config()
    assert config["type"] == name
    assert set(config) == {"type", *type(opt).hyperparameters()}
    for key, value in options.items():
        assert config[key] == value
    rebuilt_config = dict(config)
    rebuilt = OPTIMIZERS.get(rebuilt_config.pop("type"))(**rebuilt_config)
    assert rebuilt.get_config() == config


def test_betas_accepts_list_or_tuple_and_config_gives_a_list():
    assert O.Adam(betas=[0.8, 0.9]).betas == (0.8, 0.9)
    assert O.Adam(betas=(0.8, 0.9)).get_config()["betas"] == [0.8, 0.9]


INVALID = [
    ("sgd", {"lr": -0.1}, "lr"),
    ("sgd", {"lr": "1e-3"}, "lr: expected a number ≥ 0, got the string '1e-3'"),
    ("sgd", {"lr": True}, "lr: expected a number ≥ 0, got True"),
    ("sgd", {"lr": float("nan")}, "lr: expected a number ≥ 0, got nan"),
    ("sgd", {"momentum": -0.5}, "momentum"),
    ("sgd", {"dampening": 1.5}, "dampening"),
    ("sgd", {"weight_decay": -1e-4}, "weight_decay"),
    ("sgd", {"nesterov": True}, "nesterov: expected false unless momentum > 0"),
    ("sgd", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "dampening = 0"),
    ("sgd", {"maximize": "yes"}, "maximize: expected true or false, got 'yes'"),
    ("momentum", {"lr": -1}, "lr"),
    ("rmsprop", {"alpha": 1.5}, "alpha"),
    ("rmsprop", {"alpha": -0.1}, "alpha"),
    ("rmsprop", {"eps": -1e-8}, "eps"),
    ("rmsprop", {"momentum": -0.9}, "momentum"),
    ("rmsprop", {"centered": 1}, "centered"),
    ("adam", {"betas": [0.9, 1.0]}, r"betas: expected a list of two numbers, each in \[0, 1\), got \[0.9, 1.0\]"),
    ("adam", {"betas": [-0.1, 0.999]}, r"betas: expected a list of two numbers"),
    ("adam", {"betas": [0.9]}, r"betas: expected a list of two numbers, each in \[0, 1\), got \[0.9\]"),
    ("adam", {"betas": 0.9}, "betas: expected a list of two numbers"),
    ("adam", {"eps": -1.0}, "eps"),
    ("adam", {"weight_decay": -0.1}, "weight_decay"),
    ("adam", {"amsgrad": "no"}, "amsgrad"),
    ("adamw", {"weight_decay": -0.01}, "weight_decay"),
]


@pytest.mark.parametrize("name, options, message", INVALID, ids=str)
def test_invalid_hyperparameters_raise_value_error(name, options, message):
    with pytest.raises(ValueError, match=message):
        make(name, options)


def test_boundary_values_are_valid():
    O.SGD(lr=0.0)
    O.Adam(betas=[0.0, 0.0], eps=0.0)
    O.RMSprop(alpha=0.0)
    O.RMSprop(alpha=1.0)


# ---- cross-check with torch.optim --------------------------------------------------------------

TORCH_CONFIGS = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True}),
    ("momentum", {"lr": 0.05}),
    ("rmsprop", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 0.01,
                 "maximize": True}),
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.01, "betas": [0.8, 0.99], "amsgrad": True, "weight_decay": 0.01, "maximize": True}),
    ("adamw", {"lr": 0.01}),
    ("adamw", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
]


@pytest.mark.parametrize("name, options", TORCH_CONFIGS, ids=str)
def test_matches_torch_optim(name, options):
    torch = pytest.importorskip("torch")
    torch_class = {"sgd": torch.optim.SGD, "momentum": torch.optim.SGD, "rmsprop": torch.optim.RMSprop,
                   "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    torch_options = dict(options)
    if name == "momentum":
        torch_options["momentum"] = 0.9
    if "betas" in torch_options:
        torch_options["betas"] = tuple(torch_options["betas"])

    rng = np.random.default_rng(5)
    params = two_params(np.float64, seed=6)
    tensors = {k: torch.tensor(p.copy(), requires_grad=True) for k, p in params.items()}
    ours = make(name, options)
    theirs = torch_class(list(tensors.values()), foreach=False, **torch_options)
    for i in range(10):
        if i == 6:  # a schedule changing lr
            ours.lr *= 0.3
            for group in theirs.param_groups:
                group["lr"] *= 0.3
        grads = random_grads(params, rng)
        step_all(ours, params, grads)
        for k, t in tensors.items():
            t.grad = torch.tensor(grads[k])
        theirs.step()
    for k in params:
        np.testing.assert_allclose(params[k], tensors[k].detach().numpy(), rtol=1e-10, atol=1e-12)
