"""Learning-rate schedules: each epoch's rate against its formula written out here, and
(when PyTorch is installed) against torch.optim.lr_scheduler."""

import math

import pytest

from dlcli.errors import ConfigError
from dlcli.registry import SCHEDULES
from dlcli.nn.optim.schedules import SCHEDULE_KEYS, make_schedule, validate_schedule

LR = 0.1
EPOCHS = 25


def rates(spec, total=None, n=EPOCHS):
    lr = make_schedule(spec, LR, total)
    return [lr(e) for e in range(n)]


def test_registered_in_the_registry_with_a_schema():
    assert SCHEDULES.names() == ["constant", "cosine", "exponential", "step"]
    assert set(SCHEDULE_KEYS) == set(SCHEDULES.names())


def test_constant_and_none():
    assert rates({"type": "constant"}) == [LR] * EPOCHS
    assert rates(None) == [LR] * EPOCHS
    assert rates("constant") == [LR] * EPOCHS


def test_step():
    got = rates({"type": "step", "step_size": 3, "gamma": 0.5})
    want = [LR * 0.5 ** (e // 3) for e in range(EPOCHS)]
    assert got == pytest.approx(want, rel=1e-12)
    assert got[:4] == pytest.approx([0.1, 0.1, 0.1, 0.05])
    # gamma defaults to 0.1 as in torch's StepLR
    assert rates({"type": "step", "step_size": 2})[2] == pytest.approx(0.01)


def test_exponential():
    got = rates({"type": "exponential", "gamma": 0.9})
    assert got == pytest.approx([LR * 0.9 ** e for e in range(EPOCHS)], rel=1e-12)


def test_cosine():
    got = rates({"type": "cosine", "t_max": 10, "eta_min": 0.001})
    want = [0.001 + (LR - 0.001) * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(EPOCHS)]
    assert got == pytest.approx(want, rel=1e-12)
    assert got[0] == pytest.approx(LR) and got[10] == pytest.approx(0.001)
    assert got[5] == pytest.approx((LR + 0.001) / 2)


def test_cosine_t_max_defaults_to_the_epochs_after_warmup():
    got = rates({"type": "cosine", "warmup_epochs": 2}, total=12, n=12)
    assert got[:2] == pytest.approx([LR / 2, LR])
    tail = [(1 + math.cos(math.pi * e / 10)) / 2 * LR for e in range(10)]
    assert got[2:] == pytest.approx(tail, abs=1e-15)
    with pytest.raises(ConfigError, match="t_max"):
        make_schedule({"type": "cosine"}, LR)  # no epoch count to default from


@pytest.mark.parametrize("spec", [
    {"type": "step", "step_size": 4, "gamma": 0.5},
    {"type": "exponential", "gamma": 0.8},
    {"type": "cosine", "t_max": 6},
    {"type": "constant"},
])
def test_linear_warmup_then_the_schedule_from_its_start(spec):
    warm = {**spec, "warmup_epochs": 3}
    plain = rates(spec)
    got = rates(warm)
    assert got[:3] == pytest.approx([LR * 1 / 3, LR * 2 / 3, LR])
    assert got[3:] == pytest.approx(plain[:EPOCHS - 3], rel=1e-12)


def test_validation_collects_errors_with_paths():
    resolved, errors = validate_schedule({"type": "cosine", "t_max": 20, "warmup_epochs": 2})
    assert errors == []
    assert resolved == {"type": "cosine", "t_max": 20, "eta_min": 0.0, "warmup_epochs": 2}
    _, errors = validate_schedule({"type": "step", "gama": 0.5, "warmup_epochs": -1})
    paths = [p for p, _ in errors]
    assert ["gama"] in paths and ["step_size"] in paths and ["warmup_epochs"] in paths
    assert "did you mean 'gamma'" in dict((tuple(p), m) for p, m in errors)[("gama",)]
    _, errors = validate_schedule({"type": "cosin"})
    assert errors[0][0] == ["type"] and "did you mean 'cosine'" in errors[0][1]
    _, errors = validate_schedule({"type": "exponential", "gamma": "0.9"})
    assert "without quotes" in errors[0][1]
    _, errors = validate_schedule(3)
    assert errors and errors[0][0] == []
    with pytest.raises(ConfigError, match=r"training\.schedule\.gamma"):
        make_schedule({"type": "exponential", "gamma": 0}, LR)


def test_schedules_are_pure_functions_of_the_epoch():
    lr = make_schedule({"type": "step", "step_size": 2, "warmup_epochs": 1}, LR)
    forward = [lr(e) for e in range(8)]
    backward = [lr(e) for e in reversed(range(8))][::-1]
    assert forward == backward
    with pytest.raises(ValueError):
        lr(-1)


def test_against_torch():
    torch = pytest.importorskip("torch")
    from torch.optim import lr_scheduler

    cases = [
        ({"type": "step", "step_size": 3, "gamma": 0.5},
         lambda opt: lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)),
        ({"type": "exponential", "gamma": 0.9},
         lambda opt: lr_scheduler.ExponentialLR(opt, gamma=0.9)),
        ({"type": "cosine", "t_max": 7, "eta_min": 0.01},
         lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=7, eta_min=0.01)),
    ]
    for spec, build in cases:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
        scheduler = build(opt)
        want = []
        for _ in range(EPOCHS):
            want.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step()
        assert rates(spec) == pytest.approx(want, rel=1e-9, abs=1e-12), spec
