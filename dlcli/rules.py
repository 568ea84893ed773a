"""Value rules as data, and the one checker that applies them.

Every component declares the rules of its own values: a layer, activation or optimizer
class in ``RULES`` (parameter -> rule) and ``RELATIONS`` (rules between parameters), a
schedule and a synthetic data set in the tables beside them. :func:`check` applies a
declaration to a mapping of values and returns every problem as ``(key, "expected <what>,
got <value>")``; the config layer prefixes the file and the key path
(``net.yaml: model.layers[2].units: expected a positive integer, got -3``), and a
constructor called from Python raises :class:`InvalidValues` with the same lines
(:func:`enforce`). A rule carries ``kind`` and ``spec`` (its bounds or options) so that
tests can generate the values it must refuse.

This module sits below every stage (it imports only :mod:`dlcli.errors`) so that the
engine's classes can declare their rules without importing the config layer.
"""

import difflib
import math
import numbers

import numpy as np

# The two message helpers every check shares live with the errors; re-exported here.
from dlcli.errors import _show, unknown_key_message  # noqa: F401


class Invalid(ValueError):
    """A value broke its rule; the caller adds the key path."""


class InvalidValues(Invalid):
    """Values a component was given break its declared rules: ``problems`` holds
    ``(key, message)`` pairs, one line each when shown."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(f"{key}: {message}" for key, message in self.problems))


class Rule:
    """A named check. ``expected`` completes the sentence "expected ...". ``kind`` and
    ``spec`` describe the rule (``"integer", {"minimum": 1}``) for whoever needs to reason
    about it without calling it (the tests that generate refused values)."""

    def __init__(self, expected: str, check, kind: str = "custom", **spec):
        self.expected = expected
        self._check = check
        self.kind = kind
        self.spec = spec

    def __call__(self, value):
        try:
            result = self._check(value)
        except Invalid:
            raise
        except (TypeError, ValueError):
            result = _FAIL
        if result is _FAIL:
            raise Invalid(f"expected {self.expected}, got {_show(value)}")
        return result

    def __repr__(self) -> str:
        return f"<rule: {self.expected}>"


class Relation:
    """A rule on ``key`` that depends on other values (``uses``): ``holds(values)`` is
    asked once every value has passed its own rule; ``expected(values)`` (a string or a
    function of the values) completes "expected ...". The message names ``key``."""

    def __init__(self, key: str, uses: tuple, expected, holds):
        self.key = key
        self.uses = tuple(uses)
        self.expected = expected
        self.holds = holds

    def describe(self, values) -> str:
        return self.expected(values) if callable(self.expected) else self.expected


_FAIL = object()


def check(rules: dict, values: dict, relations=()) -> tuple[dict, list[tuple[str, str]]]:
    """Check ``values`` against ``rules`` and ``relations``.

    Returns ``(clean, problems)``: ``clean`` holds every value normalized by its rule
    (values without a rule pass unchanged), ``problems`` one ``(key, message)`` per broken
    rule, in the order of ``values``. A relation is asked only when the values it reads
    passed their own rules."""
    clean, problems = {}, []
    for key, value in values.items():
        rule = rules.get(key)
        if rule is None:
            clean[key] = value
            continue
        try:
            clean[key] = rule(value)
        except Invalid as exc:
            problems.append((key, str(exc)))
    failed = {key for key, _ in problems}
    for relation in relations:
        needed = (relation.key, *relation.uses)
        if failed.intersection(needed) or not all(k in clean for k in needed):
            continue
        if not relation.holds(clean):
            problems.append((relation.key, f"expected {relation.describe(clean)}, "
                                           f"got {_show(values[relation.key])}"))
    return clean, problems


def enforce(rules: dict, values: dict, relations=()) -> dict:
    """:func:`check`, raising :class:`InvalidValues` on any problem (for constructors)."""
    clean, problems = check(rules, values, relations)
    if problems:
        raise InvalidValues(problems)
    return clean


# ---- the vocabulary ------------------------------------------------------------------------

def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def integer(minimum=None, maximum=None, what="an integer") -> Rule:
    def check_int(v):
        if not _is_int(v):
            return _FAIL
        if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
            return _FAIL
        return int(v)
    return Rule(what, check_int, "integer", minimum=minimum, maximum=maximum)


positive_int = integer(1, what="a positive integer")
nonnegative_int = integer(0, what="a non-negative integer")


def number(minimum=-math.inf, maximum=math.inf, *, min_open=False, max_open=False,
           what=None) -> Rule:
    lo = "(" if min_open else "["
    hi = ")" if max_open else "]"
    if what is None:
        if minimum == -math.inf and maximum == math.inf:
            what = "a number"
        elif maximum == math.inf:
            what = f"a number {'>' if min_open else '≥'} {minimum:g}"
        else:
            what = f"a number in {lo}{minimum:g}, {maximum:g}{hi}"

    def check_number(v):
        if isinstance(v, str):
            hint = " (write numbers without quotes)"
            raise Invalid(f"expected {what}, got the string {_show(v)}{hint}")
        if not _is_number(v) or not math.isfinite(v):
            return _FAIL
        if v < minimum or v > maximum or (min_open and v == minimum) or (max_open and v == maximum):
            return _FAIL
        return float(v)
    return Rule(what, check_number, "number", minimum=minimum, maximum=maximum,
                min_open=min_open, max_open=max_open)


fraction = number(0.0, 1.0, max_open=True)
positive_number = number(0.0, min_open=True)
nonnegative_number = number(0.0)
boolean = Rule("true or false",
               lambda v: bool(v) if isinstance(v, (bool, np.bool_)) else _FAIL, "boolean")
string = Rule("a non-empty string", lambda v: v if isinstance(v, str) and v else _FAIL, "string")
mapping = Rule("a mapping of keys to values", lambda v: v if isinstance(v, dict) else _FAIL,
               "mapping")


def choice(*options) -> Rule:
    def check_choice(v):
        if v in options and not isinstance(v, bool):
            return v
        close = difflib.get_close_matches(str(v), [str(o) for o in options], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise Invalid(f"expected one of {', '.join(map(str, options))}, got {_show(v)}{hint}")
    return Rule("one of " + ", ".join(map(str, options)), check_choice, "choice",
                options=options)


def optional(rule: Rule) -> Rule:
    return Rule(f"{rule.expected} or null", lambda v: None if v is None else rule(v),
                "optional", rule=rule)


def pair(minimum=1, what=None) -> Rule:
    """An int, or a list (or tuple) of two ints, each ≥ minimum; normalized to an int or a
    list [a, b]."""
    what = what or f"an integer ≥ {minimum} or a pair [height, width] of them"

    def check_pair(v):
        if _is_int(v) and v >= minimum:
            return int(v)
        if (isinstance(v, (list, tuple)) and len(v) == 2
                and all(_is_int(e) and e >= minimum for e in v)):
            return [int(e) for e in v]
        return _FAIL
    return Rule(what, check_pair, "pair", minimum=minimum)


def number_pair(minimum, maximum, *, max_open=False, what=None) -> Rule:
    """A list (or tuple) of two numbers, each in [minimum, maximum] (or [minimum, maximum));
    normalized to a list of floats."""
    each = number(minimum, maximum, max_open=max_open)
    what = what or f"a list of two numbers, each in {each.expected[len('a number in '):]}"

    def check_numbers(v):
        if isinstance(v, np.ndarray):
            v = v.tolist()
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            return _FAIL
        try:
            return [each(e) for e in v]
        except Invalid:
            return _FAIL
    return Rule(what, check_numbers, "number_pair", minimum=minimum, maximum=maximum,
                max_open=max_open)


def padding_rule() -> Rule:
    inner = pair(0)

    def check_padding(v):
        if isinstance(v, str):  # any case, as Keras takes it
            return v.lower() if v.lower() in ("valid", "same") else _FAIL
        return inner(v)
    return Rule("'valid', 'same', an integer ≥ 0 or a pair of them", check_padding, "padding")


def batch_size_rule() -> Rule:
    def check_batch(v):
        if v == "full":
            return v
        return positive_int(v)
    return Rule("a positive integer or 'full'", check_batch, "batch_size")


def list_of(rule: Rule, what: str, min_len=0) -> Rule:
    def check_list(v):
        if not isinstance(v, list) or len(v) < min_len:
            return _FAIL
        return [rule(e) for e in v]
    return Rule(what, check_list, "list", rule=rule, min_len=min_len)


def reshape_shape() -> Rule:
    """A non-empty list of positive ints in which one entry may be -1 (inferred)."""
    def check_shape(v):
        if (isinstance(v, (list, tuple)) and v
                and all(_is_int(e) and (e >= 1 or e == -1) for e in v)
                and list(v).count(-1) <= 1):
            return [int(e) for e in v]
        return _FAIL
    return Rule("a non-empty list of positive integers, one of which may be -1", check_shape,
                "shape")


def string_or_list(allow_empty: bool = False) -> Rule:
    def check_columns(v):
        if isinstance(v, str) and v:
            return v
        if isinstance(v, list) and (v or allow_empty) and all(isinstance(e, str) and e
                                                              for e in v):
            return list(v)
        return _FAIL
    return Rule("a column name or a list of column names", check_columns, "columns")


def registry_name(registry) -> Rule:
    def check_name(v):
        v = registry.canonical(v)  # another case or a documented alias
        if isinstance(v, str) and v in registry:
            return v
        raise Invalid(registry.unknown_message(v))
    return Rule(f"a known {registry.kind}", check_name, "registry", registry=registry)
