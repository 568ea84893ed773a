"""Learning-rate schedules: pure functions of the epoch index.

Each schedule is registered in :data:`dlcli.registry.SCHEDULES` as a function
``f(epoch, *, base_lr, **hyperparameters) -> lr`` of the **0-based** epoch index ``e`` (the
first epoch is ``e = 0``; the trainer's 1-based epoch ``k`` uses ``e = k − 1``):

  constant      lr_e = lr
  step          lr_e = lr · γ^⌊e / step_size⌋                 (torch StepLR; γ default 0.1)
  exponential   lr_e = lr · γ^e                                (torch ExponentialLR)
  cosine        lr_e = η_min + (lr − η_min)(1 + cos(π e / T_max)) / 2
                                                              (torch CosineAnnealingLR's
                                                               closed form; η_min default 0,
                                                               T_max default: the epochs
                                                               left after warm-up)

Every schedule takes an optional linear warm-up of ``W = warmup_epochs`` epochs:
``lr_e = lr · (e + 1) / W`` for ``e < W``; afterwards the schedule runs counted from the end
of the warm-up, ``lr_e = f(e − W)``. Being pure functions of ``e``, schedules need no state in
a checkpoint: a resumed run computes the same learning rate for the same epoch.

The keys each schedule accepts, with their defaults, are data (:data:`SCHEDULE_KEYS`), so the
config layer validates ``training.schedule: {type: cosine, t_max: 20, warmup_epochs: 2}``
with :func:`validate_schedule` and builds the callable with :func:`make_schedule`.
"""

import math

from dlcli import rules as r
from dlcli.registry import SCHEDULES

REQUIRED = "required"  # a key without a default

#: ``{schedule type: {key: (rule, default)}}``, the rules declared as data (:mod:`dlcli.rules`,
#: applied by :mod:`dlcli.config.schedule`). ``warmup_epochs`` is common to all.
COMMON_KEYS = {"warmup_epochs": (r.nonnegative_int, 0)}
SCHEDULE_KEYS = {
    "constant": {},
    "step": {"step_size": (r.positive_int, REQUIRED), "gamma": (r.positive_number, 0.1)},
    "exponential": {"gamma": (r.positive_number, REQUIRED)},
    "cosine": {"t_max": (r.optional(r.positive_int), None),
               "eta_min": (r.nonnegative_number, 0.0)},
}


@SCHEDULES.register("constant")
def constant(epoch: int, *, base_lr: float) -> float:
    """lr_e = lr."""
    return float(base_lr)


@SCHEDULES.register("step")
def step(epoch: int, *, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """lr_e = lr · γ^⌊e / step_size⌋ (torch.optim.lr_scheduler.StepLR)."""
    return float(base_lr * gamma ** (epoch // step_size))


@SCHEDULES.register("exponential")
def exponential(epoch: int, *, base_lr: float, gamma: float) -> float:
    """lr_e = lr · γ^e (torch.optim.lr_scheduler.ExponentialLR)."""
    return float(base_lr * gamma ** epoch)


@SCHEDULES.register("cosine")
def cosine(epoch: int, *, base_lr: float, t_max: int, eta_min: float = 0.0) -> float:
    """lr_e = η_min + (lr − η_min)(1 + cos(π e / T_max)) / 2 (CosineAnnealingLR, closed form).

    Past ``T_max`` the formula keeps going (the rate climbs back), as torch's closed form does.
    """
    return float(eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * epoch / t_max)) / 2)


def normalize_spec(spec) -> dict:
    """``None`` -> constant; ``"cosine"`` -> ``{"type": "cosine"}``; a mapping is copied."""
    if spec is None or spec is False:
        return {"type": "constant"}
    if isinstance(spec, str):
        return {"type": spec}
    return dict(spec)
