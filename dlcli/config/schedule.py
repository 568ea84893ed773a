"""Checking a ``training.schedule`` value against the keys and rules each schedule declares
as data (:data:`dlcli.nn.optim.schedules.SCHEDULE_KEYS`)."""

from dlcli import rules as r
from dlcli.nn.optim.schedules import COMMON_KEYS, REQUIRED, SCHEDULE_KEYS, normalize_spec
from dlcli.registry import SCHEDULES


def validate_schedule(spec) -> tuple[dict, list[tuple[list, str]]]:
    """Check a ``training.schedule`` value against :data:`SCHEDULE_KEYS`.

    Returns ``(resolved, errors)``: ``resolved`` has every default filled in; ``errors`` is a
    list of ``(sub-path, message)`` pairs (sub-path relative to ``training.schedule``, e.g.
    ``["gamma"]``) in the config layer's ``expected ..., got ...`` form.
    """
    if spec is not None and not isinstance(spec, (str, dict)):
        return {}, [([], f"expected a schedule name or a mapping with a type, got {r._show(spec)}")]
    spec = normalize_spec(spec)
    kind = spec.get("type", "constant")
    if not isinstance(kind, str) or kind not in SCHEDULE_KEYS:
        return spec, [(["type"], SCHEDULES.unknown_message(kind))]
    keys = {**SCHEDULE_KEYS[kind], **COMMON_KEYS}
    errors, out = [], {"type": kind}
    for key in spec:
        if key != "type" and key not in keys:
            errors.append(([key], r.unknown_key_message(key, list(keys) + ["type"])))
    given = {key: spec[key] for key in keys if key in spec}
    clean, problems = r.check({key: rule for key, (rule, _) in keys.items()}, given)
    failed = {key for key, _ in problems}
    for key, (_, default) in keys.items():
        if key in given:
            if key not in failed:
                out[key] = clean[key]
        elif default == REQUIRED:
            errors.append(([key], "required key is missing"))
        else:
            out[key] = default
    errors.extend(([key], message) for key, message in problems)
    return out, errors
