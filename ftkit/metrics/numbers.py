"""Numbers in answers, read as numbers: "-18.0°C" gives -18, not 0 and 18; "1,000" gives 1000; "10-4" gives 10 and 4.

Scorers that compared digits as text made near misses right: the forgetting probe's whole-word match counted
"-18.0°C" as a right answer to "0" ("0" is a word of "18 0 c"), and a classification label "1" was found in
"-1" or "1.5". Every scorer with numeric answers (``forgetting.is_correct``, ``classification.parse_label``,
``free_text`` exact match; ``structured.values_equal`` compares parsed JSON numbers) reads them through here.
No maintained library parses loose numbers out of free text (``locale.atof`` needs the whole string to be
one number), hence this small regex, tested with near misses in ``tests/test_metrics_numbers.py``.
"""
from __future__ import annotations

import re

# A number not glued to a word or another number's decimal part: optional sign (only when not after a word
# character, so "10-4" is 10 and 4), thousands groups "1,000", decimals "18.0". U+2212 is the minus sign.
_NUMBER = re.compile(r"(?<![\w.])([-+\u2212]?)(\d{1,3}(?:,\d{3})+(?![\d,])|\d+)(\.\d+)?(?![\w.]*\d)")


def numbers(text: str) -> list[float]:
    """The numbers ``text`` gives, in order.

    >>> numbers("-18.0°C"), numbers("1,000 or 2.5%"), numbers("10-4=6"), numbers("CO2 and 1, 2, 3")
    ([-18.0], [1000.0, 2.5], [10.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    >>> numbers("version 1.2.3")
    []
    """
    out = []
    for m in _NUMBER.finditer(str(text)):
        sign = -1.0 if m.group(1) in ("-", "\u2212") else 1.0
        out.append(sign * float(m.group(2).replace(",", "") + (m.group(3) or "")))
    return out


def is_numeric(text: str) -> bool:
    """Whether ``text`` is only numbers and separators (no word besides them).

    >>> is_numeric("42"), is_numeric("1, 2, 3"), is_numeric("-0.5 %"), is_numeric("CO2"), is_numeric("seven")
    (True, True, True, False, False)
    """
    found = numbers(text)
    return bool(found) and not re.search(r"\w", _NUMBER.sub(" ", str(text)))


def contains_numbers(output: str, expected: str) -> bool:
    """Whether the numbers of ``expected`` occur in ``output`` in a row, compared as numbers.

    >>> contains_numbers("Water freezes at 0 °C (32 °F).", "0"), contains_numbers("-18.0°C", "0")
    (True, False)
    >>> contains_numbers("1, 2, 3", "1 2 3"), contains_numbers("3, 1, 2", "1, 2, 3")
    (True, False)
    """
    want, got = numbers(expected), numbers(output)
    if not want:
        return False
    return any(got[i:i + len(want)] == want for i in range(len(got) - len(want) + 1))


def same_number(a: str, b: str) -> bool:
    """Both texts are only numbers, and the same ones ("42.0" and "42", "1,000" and "1000").

    >>> same_number("42.0", " 42 "), same_number("1,000", "1000"), same_number("42", "42 apples")
    (True, True, False)
    """
    return is_numeric(a) and is_numeric(b) and numbers(a) == numbers(b)
