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

from dlcli.registry import SCHEDULES

REQUIRED = "required"  # a key without a default (a string so the schema stays plain data)

#: ``{schedule type: {key: (rule name, default)}}``; rule names are those of
#: :data:`_RULE_NAMES` (functions of dlcli.config.rules). ``warmup_epochs`` is common to all.
COMMON_KEYS = {"warmup_epochs": ("nonnegative_int", 0)}
SCHEDULE_KEYS = {
    "constant": {},
    "step": {"step_size": ("positive_int", REQUIRED), "gamma": ("positive_number", 0.1)},
    "exponential": {"gamma": ("positive_number", REQUIRED)},
    "cosine": {"t_max": ("optional_positive_int", None), "eta_min": ("nonnegative_number", 0.0)},
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


def _rules():
    from dlcli.config import rules as r
    return {
        "nonnegative_int": r.nonnegative_int,
        "positive_int": r.positive_int,
        "optional_positive_int": r.optional(r.positive_int),
        "positive_number": r.number(0.0, min_open=True),
        "nonnegative_number": r.number(0.0),
    }


def validate_schedule(spec) -> tuple[dict, list[tuple[list, str]]]:
    """Check a ``training.schedule`` value against :data:`SCHEDULE_KEYS`.

    Returns ``(resolved, errors)``: ``resolved`` has every default filled in; ``errors`` is a
    list of ``(sub-path, message)`` pairs (sub-path relative to ``training.schedule``, e.g.
    ``["gamma"]``) in the config layer's ``expected ..., got ...`` form.
    """
    from dlcli.config import rules as r

    if spec is not None and not isinstance(spec, (str, dict)):
        return {}, [([], f"expected a schedule name or a mapping with a type, got {r._show(spec)}")]
    spec = normalize_spec(spec)
    kind = spec.get("type", "constant")
    if not isinstance(kind, str) or kind not in SCHEDULE_KEYS:
        return spec, [(["type"], SCHEDULES.unknown_message(kind))]
    keys = {**SCHEDULE_KEYS[kind], **COMMON_KEYS}
    rules = _rules()
    errors, out = [], {"type": kind}
    for key in spec:
        if key != "type" and key not in keys:
            errors.append(([key], r.unknown_key_message(key, list(keys) + ["type"])))
    for key, (rule, default) in keys.items():
        if key not in spec:
            if default == REQUIRED:
                errors.append(([key], "required key is missing"))
            else:
                out[key] = default
            continue
        try:
            out[key] = rules[rule](spec[key])
        except r.Invalid as exc:
            errors.append(([key], str(exc)))
    return out, errors


def make_schedule(spec, base_lr: float, total_epochs: int | None = None):
    """Return ``lr(epoch) -> float`` for a (validated) schedule spec and the optimizer's lr.

    ``epoch`` is 0-based. ``total_epochs`` (``training.epochs``) fills cosine's ``t_max``
    when it is null: the epochs left after warm-up. Raises ConfigError (every problem, with
    its ``training.schedule.<key>`` path) for a spec that :func:`validate_schedule` rejects.
    """
    from dlcli.errors import ConfigError

    resolved, errors = validate_schedule(spec)
    if errors:
        raise ConfigError([(".".join(["training.schedule", *map(str, path)]), message)
                           for path, message in errors])
    params = dict(resolved)
    kind = params.pop("type")
    warmup = int(params.pop("warmup_epochs", 0))
    base_lr = float(base_lr)
    if kind == "cosine" and params.get("t_max") is None:
        if total_epochs is None:
            raise ConfigError([("training.schedule.t_max", "required key is missing (no "
                                "epoch count to default it from)")])
        params["t_max"] = max(1, int(total_epochs) - warmup)
    function = SCHEDULES.get(kind)

    def lr(epoch: int) -> float:
        epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"epoch index must be >= 0, got {epoch}")
        if epoch < warmup:
            return base_lr * (epoch + 1) / warmup
        return function(epoch - warmup, base_lr=base_lr, **params)

    return lr
