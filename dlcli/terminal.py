"""Text for terminals that cannot show everything: ASCII stand-ins for the glyphs dlcli
prints when the output encoding lacks them, and lines folded between fields.

:func:`install_ascii_fallback` makes stdout and stderr replace a character their encoding
cannot carry (``PYTHONIOENCODING=cp1252``, a Windows console redirected to a file) by its
entry in :data:`ASCII`, a letter without its accent, or ``?`` — instead of ending the
command with a UnicodeEncodeError after its work is done.
"""

import codecs
import sys
import unicodedata

# Sparkline levels keep their order in ASCII: low . - = + * # % @ high.
ASCII = {
    "▁": "_", "▂": ".", "▃": "-", "▄": "=", "▅": "+", "▆": "*", "▇": "#", "█": "@",
    "²": "^2", "·": "*", "×": "x", "ŷ": "y^", "\u0302": "^", "\u0303": "~", "Δ": "d",
    "Σ": "Sigma", "γ": "gamma", "η": "eta", "λ": "lambda", "μ": "mu", "σ": "sigma",
    "ᵀ": "^T", "—": "--", "–": "-", "‖": "||", "…": "...", "←": "<-", "→": "->",
    "−": "-", "≈": "~", "≤": "<=", "≥": ">=", "⌊": "floor(", "⌋": ")", "√": "sqrt",
    "±": "+/-", "✓": "ok", "✗": "x", "•": "*", "’": "'", "‘": "'", "“": '"', "”": '"',
}

ERRORS = "dlcli-ascii"


def to_ascii(text: str) -> str:
    """``text`` with every non-ASCII character replaced as the fallback does."""
    return "".join(c if c.isascii() else _stand_in(c) for c in text)


def _stand_in(char: str) -> str:
    if char in ASCII:
        return ASCII[char]
    base = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
    return base or "?"


def _replace(exc: UnicodeEncodeError):
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    return to_ascii(exc.object[exc.start:exc.end]), exc.end


codecs.register_error(ERRORS, _replace)


def install_ascii_fallback() -> None:
    """Let stdout and stderr write any text, with ASCII stand-ins where their encoding
    has no character (a no-op for UTF-8 streams and streams that cannot be reconfigured)."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding in ("utf8", "utf16", "utf32") or not hasattr(stream, "reconfigure"):
            continue
        try:
            stream.reconfigure(errors=ERRORS)
        except (ValueError, TypeError, AttributeError, OSError):
            pass


def fold_fields(fields: list[str], width: int, sep: str = "  ", indent: str = "  ") -> list[str]:
    """Lines of at most ``width`` columns holding ``fields`` in order, broken only between
    fields (a field wider than the line gets a line of its own); continuation lines start
    with ``indent``."""
    lines, current = [], ""
    for field in fields:
        if not current:
            current = (indent if lines else "") + field
        elif len(current) + len(sep) + len(field) <= width:
            current += sep + field
        else:
            lines.append(current)
            current = indent + field
    if current:
        lines.append(current)
    return lines
