"""Value rules as data: each rule checks (and normalizes) one value or raises ``Invalid``.

Messages read ``expected <what>, got <value>`` so every config error has one shape.
"""

import difflib
import math


class Invalid(ValueError):
    """A value broke its rule; the caller adds the key path."""


def _show(value) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Rule:
    """A named check. ``expected`` completes the sentence "expected ..."."""

    def __init__(self, expected: str, check):
        self.expected = expected
        self._check = check

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


_FAIL = object()


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(minimum=None, maximum=None, what="an integer") -> Rule:
    def check(v):
        if not _is_int(v):
            return _FAIL
        if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
            return _FAIL
        return v
    return Rule(what, check)


positive_int = integer(1, what="a positive integer")
nonnegative_int = integer(0, what="a non-negative integer")


def number(minimum=-math.inf, maximum=math.inf, *, min_open=False, max_open=False,
           what=None) -> Rule:
    lo = "(" if min_open else "["
    hi = ")" if max_open else "]"
    if what is None:
        if minimum == -math.inf and maximum == math.inf:
            what = "a number"
        else:
            what = f"a number in {lo}{minimum:g}, {maximum:g}{hi}"

    def check(v):
        if isinstance(v, str):
            hint = " (write numbers without quotes)"
            raise Invalid(f"expected {what}, got the string {_show(v)}{hint}")
        if not _is_number(v) or not math.isfinite(v):
            return _FAIL
        if v < minimum or v > maximum or (min_open and v == minimum) or (max_open and v == maximum):
            return _FAIL
        return float(v)
    return Rule(what, check)


fraction = number(0.0, 1.0, max_open=True)
boolean = Rule("true or false", lambda v: v if isinstance(v, bool) else _FAIL)
string = Rule("a non-empty string", lambda v: v if isinstance(v, str) and v else _FAIL)
mapping = Rule("a mapping of keys to values", lambda v: v if isinstance(v, dict) else _FAIL)


def choice(*options) -> Rule:
    def check(v):
        if v in options and not isinstance(v, bool):
            return v
        close = difflib.get_close_matches(str(v), [str(o) for o in options], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise Invalid(f"expected one of {', '.join(map(str, options))}, got {_show(v)}{hint}")
    return Rule("one of " + ", ".join(map(str, options)), check)


def optional(rule: Rule) -> Rule:
    return Rule(f"{rule.expected} or null", lambda v: None if v is None else rule(v))


def pair(minimum=1, what=None) -> Rule:
    """An int, or a list of two ints, each ≥ minimum; normalized to an int or [a, b]."""
    what = what or f"an integer ≥ {minimum} or a pair [height, width] of them"

    def check(v):
        if _is_int(v) and v >= minimum:
            return v
        if isinstance(v, list) and len(v) == 2 and all(_is_int(e) and e >= minimum for e in v):
            return list(v)
        return _FAIL
    return Rule(what, check)


def padding_rule() -> Rule:
    inner = pair(0)

    def check(v):
        if v in ("valid", "same"):
            return v
        return inner(v)
    return Rule("'valid', 'same', an integer ≥ 0 or a pair of them", check)


def batch_size_rule() -> Rule:
    def check(v):
        if v == "full":
            return v
        return positive_int(v)
    return Rule("a positive integer or 'full'", check)


def list_of(rule: Rule, what: str, min_len=0) -> Rule:
    def check(v):
        if not isinstance(v, list) or len(v) < min_len:
            return _FAIL
        return [rule(e) for e in v]
    return Rule(what, check)


def reshape_shape() -> Rule:
    """A non-empty list of positive ints in which one entry may be -1 (inferred)."""
    def check(v):
        if (isinstance(v, list) and v and all(_is_int(e) and (e >= 1 or e == -1) for e in v)
                and v.count(-1) <= 1):
            return list(v)
        return _FAIL
    return Rule("a non-empty list of positive integers, one of which may be -1", check)


def string_or_list(allow_empty: bool = False) -> Rule:
    def check(v):
        if isinstance(v, str) and v:
            return v
        if isinstance(v, list) and (v or allow_empty) and all(isinstance(e, str) and e
                                                              for e in v):
            return list(v)
        return _FAIL
    return Rule("a column name or a list of column names", check)


def registry_name(registry) -> Rule:
    def check(v):
        v = registry.canonical(v)  # another case or a documented alias
        if isinstance(v, str) and v in registry:
            return v
        raise Invalid(registry.unknown_message(v))
    return Rule(f"a known {registry.kind}", check)


def unknown_key_message(key, known) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key{hint} (known: {', '.join(sorted(map(str, known)))})"
