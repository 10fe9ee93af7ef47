"""Roman numerals: integers 1..3999 to standard Roman numerals and back."""

from __future__ import annotations

import re

SYMBOLS = (
    (1000, "M"),
    (900, "CM"),
    (500, "D"),
    (400, "CD"),
    (100, "C"),
    (90, "XC"),
    (50, "L"),
    (40, "XL"),
    (10, "X"),
    (9, "IX"),
    (5, "V"),
    (4, "IV"),
    (1, "I"),
)
VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
STANDARD = re.compile(r"M{0,3}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})")


def to_roman(n: int) -> str:
    """The standard Roman numeral of ``n`` (1..3999), in upper case."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"expected an integer, got {type(n).__name__}")
    if not 1 <= n <= 3999:
        raise ValueError(f"{n} is outside 1..3999")
    parts = []
    for value, symbol in SYMBOLS:
        count, n = divmod(n, value)
        parts.append(symbol * count)
    return "".join(parts)


def from_roman(text: str) -> int:
    """The integer a standard Roman numeral stands for; any letter case is accepted."""
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}")
    numeral = text.upper()
    if not numeral or not STANDARD.fullmatch(numeral):
        raise ValueError(f"{text!r} is not a standard Roman numeral")
    total = 0
    for symbol, following in zip(numeral, [*numeral[1:], None], strict=True):
        value = VALUES[symbol]
        total += -value if following is not None and VALUES[following] > value else value
    return total
