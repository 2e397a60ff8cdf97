"""Numbers typed in a URL (a path, a query string, a bbox): ASCII digits only, read one way everywhere.

Python's `int()` and `float()` (and pydantic's lax mode) also take `1_0`, surrounding spaces, `+1`, other
scripts' digits (`١٦`, `１`) and, for floats, `inf` / `nan`: a mistyped parameter answered for something else
(fix18 for integers; the same for decimals in fix19).
"""

from __future__ import annotations

import math
import re

INT_TEXT = re.compile(r"-?[0-9]+")  # fullmatch: `$` would let a trailing newline through
INT_TEXT_MAX = 20  # characters: more than any integer we take (2⁶³−1 has 19 digits)
DECIMAL_TEXT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")
DECIMAL_TEXT_MAX = 40


def ascii_decimal(text: str) -> float:
    """`16.5446`, `-0.5`, `.5`, `1e3`: an optional `-`, ASCII digits, one `.`, an exponent; else ValueError."""
    if len(text) > DECIMAL_TEXT_MAX or not DECIMAL_TEXT.fullmatch(text):
        raise ValueError("a number is ASCII digits 0-9 with an optional leading '-' and one '.', nothing else")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value
