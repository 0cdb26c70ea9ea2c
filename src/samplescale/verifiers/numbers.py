r"""Plain numbers in math answers: parsing, canonical form and exact comparison.

:func:`normalize_number` writes a plain number (``"1,000"``, ``"$29.00"``,
``"\frac{1}{2}"``, ``"28\%"``) in one canonical form. The private helpers are shared with
:mod:`samplescale.verifiers.extract` and :mod:`samplescale.verifiers.math`:
:func:`_parse_number` reads a plain number as an exact :class:`~fractions.Fraction` plus
a percent flag, :func:`_split_percent` splits a trailing percent sign off an answer, and
:func:`_numbers_equal` compares two parsed numbers under the percent convention.

Conventions
-----------
* Numbers are compared *exactly* as fractions: ``"29.00" == "29"``,
  ``"0.5" == "1/2" == "\frac{1}{2}"``, but ``"0.333" != "1/3"``.
* Thousands separators: ``"1,234"`` (groups of exactly three digits) is the number 1234;
  ``"1,2"`` is not a plain number.
* Percent: a trailing ``%``, ``\%``, ``percent`` (or ``\text{\%}``, ...) is split off and
  recorded; the parsed value is the number as written, before any division by 100.
  With ``percent=True``, :func:`_numbers_equal` also lets a bare number equal its own
  percent form (``10 ~ 10%``); with ``percent=False`` a percent sign is only a factor
  1/100 (``10% ~ 0.1``). Only a percent sign at the very end of an answer is interpreted.
"""

from __future__ import annotations

import re
from fractions import Fraction

from samplescale.errors import ConfigError
from samplescale.verifiers._latex import _MINUS_SIGNS, _strip_math_delimiters, _strip_text_wrapper

__all__ = ["normalize_number"]

_PERCENT_TAIL_RE = re.compile(
    r"(?:\\%|%|\\text\s*\{\s*(?:\\%|%|percent)\s*\}|\\mbox\s*\{\s*(?:\\%|percent)\s*\}"
    r"|percent|percentage|pct)$",
    re.IGNORECASE,
)
_CURRENCY_RE = re.compile(r"^(?:\\\$|\$|€|£|¥)\s*")
_UNSIGNED = r"(?:[1-9]\d{0,2}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_DECIMAL_RE = re.compile(rf"(?P<a>{_UNSIGNED})")
_SLASH_RE = re.compile(rf"(?P<a>{_UNSIGNED})\s*/\s*(?P<b>{_UNSIGNED})")
_FRAC_RE = re.compile(
    rf"\\[dt]?frac\s*(?:\{{\s*(?P<a>-?(?:{_UNSIGNED}))\s*\}}\s*\{{\s*(?P<b>-?(?:{_UNSIGNED}))\s*\}}"
    r"|(?P<c>\d)(?P<d>\d))"
)


_MIXED_RE = re.compile(
    r"(?P<w>\d+)\s*\\[dtc]?frac\s*(?:\{\s*(?P<a>\d+)\s*\}\s*\{\s*(?P<b>\d+)\s*\}|(?P<c>\d)(?P<d>\d))"
)
_THOUSANDS_SPACE_RE = re.compile(r"(?<=\d)(?:\\[,;: !]|\\ |~|[ \u00a0\u202f])(?=\d{3}(?!\d))")

_FIVE_POW_32 = 5**32


def _split_percent(s: str) -> tuple[str, bool]:
    """``"28\\%"`` -> ``("28", True)``; a string without a trailing percent sign is kept."""
    t = s.rstrip()
    m = _PERCENT_TAIL_RE.search(t)
    if m is None:
        return s, False
    body = t[: m.start()].rstrip()
    return (body, True) if body else (s, False)


def _to_fraction(digits: str) -> Fraction:
    return Fraction(digits.replace(",", ""))


def _parse_number(s: str) -> tuple[Fraction, bool] | None:
    """Parse a plain number: ``(value, is_percent)``, or None if ``s`` is not one.

    ``value`` is the number as written, before any division by 100 for a percent.
    """
    t = _strip_text_wrapper(_strip_math_delimiters(s.strip()))
    t = t.translate(_MINUS_SIGNS).replace("\\!", "").replace("{,}", ",")
    t = _THOUSANDS_SPACE_RE.sub(",", t)  # "1 000", "1\\,000", "1~000"
    t, pct = _split_percent(t)
    t = t.strip()
    if t.endswith(".") and not t.endswith(".."):
        t = t[:-1].rstrip()
    sign = 1
    for _ in range(2):  # sign and currency in either order: "-$5", "$-5"
        if t[:1] in ("-", "+"):
            sign = -sign if t[0] == "-" else sign
            t = t[1:].lstrip()
        t = _CURRENCY_RE.sub("", t)
    t = t.strip()
    try:
        if (m := _DECIMAL_RE.fullmatch(t)) is not None:
            value = _to_fraction(m.group("a"))
        elif (m := _SLASH_RE.fullmatch(t)) is not None:
            value = _to_fraction(m.group("a")) / _to_fraction(m.group("b"))
        elif (m := _MIXED_RE.fullmatch(t)) is not None:  # "2\\frac{1}{2}" is 5/2
            num, den = (
                (m.group("a"), m.group("b")) if m.group("a") else (m.group("c"), m.group("d"))
            )
            if int(num) >= int(den):
                return None  # not a proper fraction: no mixed number
            value = int(m.group("w")) + Fraction(int(num), int(den))
        elif (m := _FRAC_RE.fullmatch(t)) is not None:
            if m.group("c") is not None:
                value = Fraction(int(m.group("c")), int(m.group("d")))
            else:
                value = _to_fraction(m.group("a")) / _to_fraction(m.group("b"))
        else:
            return None
    except (ValueError, ZeroDivisionError):  # x/0, or more digits than int() accepts
        return None
    return sign * value, pct


def _format_fraction(value: Fraction) -> str:
    """Integer, else a terminating decimal, else ``p/q``.

    Raises
    ------
    ValueError
        If the text would have more digits than Python's int-to-str conversion allows
        (``sys.get_int_max_str_digits()``): ``1/2^14000`` has a 9786-digit decimal.
    """
    num, den = value.numerator, value.denominator
    if den == 1:
        return str(num)
    twos = (den & -den).bit_length() - 1  # trailing zero bits: no loop over huge ints
    d = den >> twos
    fives = 0
    while d % _FIVE_POW_32 == 0:
        d //= _FIVE_POW_32
        fives += 32
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d != 1:
        return f"{num}/{den}"
    k = max(twos, fives)
    digits = str(abs(num) * 10**k // den).rjust(k + 1, "0")
    sign = "-" if num < 0 else ""
    return f"{sign}{digits[:-k]}.{digits[-k:].rstrip('0')}"


def normalize_number(s: str) -> str | None:
    r"""Write a plain number in canonical form, or return None if ``s`` is not one.

    Accepted, after surrounding whitespace, ``$...$`` / ``\(...\)`` delimiters and a
    ``\text{...}`` wrapper are removed:

    * an optional sign (``-``, ``+``, Unicode minus) and currency sign (``$``, ``\$``,
      ``€``, ``£``, ``¥``), in either order;
    * an integer or decimal, with optional thousands separators in groups of exactly
      three digits (``1,234``, LaTeX ``1{,}234``, ``1,\!234`` and ``1\,234``, a space
      ``1 000``); a first group starting with ``0`` is no thousands group (``0,111``);
    * a fraction of two such numbers: ``a/b``, ``\frac{a}{b}``, ``\dfrac``,
      ``\tfrac``, ``\frac12``;
    * a mixed number, an integer followed by a proper fraction: ``2\frac{1}{2}`` is
      ``5/2`` (MATH's convention; read as a product, math-verify would give ``1``);
    * an optional trailing sentence period, and an optional trailing percent sign
      (``%``, ``\%``, ``percent``, ``\text{\%}``).

    Nothing else is removed: units and words (``"18 dollars"``), scientific notation
    and expressions are not plain numbers. The canonical form is an integer
    (``"29.00"`` -> ``"29"``), else a terminating decimal (``"\frac{1}{2}"`` ->
    ``"0.5"``), else a reduced fraction (``"2/6"`` -> ``"1/3"``), followed by ``%`` if
    the input had a percent sign (``"28 percent"`` -> ``"28%"``). Two plain numbers
    are equal exactly when their canonical forms are.

    Parameters
    ----------
    s : str
        The candidate number.

    Returns
    -------
    str or None
        The canonical form, or None if ``s`` is not a plain number, has a zero
        denominator, or has more digits than Python's int conversion allows
        (``sys.get_int_max_str_digits()``, 4300 by default), in its input or in its
        canonical form (``"1/" + str(2**14000)`` is a 9786-digit decimal: None).

    Raises
    ------
    ConfigError
        If ``s`` is not a str.

    Examples
    --------
    >>> normalize_number("$1,234.50")
    '1234.5'
    >>> normalize_number("-\\frac{3}{4}")
    '-0.75'
    >>> normalize_number("1, 2") is None
    True
    """
    if not isinstance(s, str):
        raise ConfigError(f"s must be a str, got {type(s).__name__}")
    parsed = _parse_number(s)
    if parsed is None:
        return None
    value, pct = parsed
    try:
        text = _format_fraction(value)
    except ValueError:  # the canonical form has more digits than str(int) allows
        return None
    return text + ("%" if pct else "")


#: Fewest significant digits a decimal needs to stand for a value it rounds or cuts.
MIN_APPROX_DIGITS = 10
_DECIMAL_TEXT_RE = re.compile(r"[-+]?(?P<int>\d*)\.(?P<frac>\d+)")


def _rounds_to(text: str, value: Fraction) -> bool:
    """Whether the decimal ``text`` (e.g. ``"0.0833333333333333"``) is ``value`` rounded
    or cut at its last digit, with at least :data:`MIN_APPROX_DIGITS` significant
    digits: a tolerance relative to the digits written, never an absolute one
    (``"0.333"`` is not ``1/3``; ``"0.3333333333"`` is)."""
    m = _DECIMAL_TEXT_RE.fullmatch(text.strip())
    if m is None or len((m.group("int") + m.group("frac")).lstrip("0")) < MIN_APPROX_DIGITS:
        return False
    written = _parse_number(text)
    places = len(m.group("frac"))
    return written is not None and abs(written[0] - value) < Fraction(1, 10**places)


def _numbers_equal(pred: tuple[Fraction, bool], gold: tuple[Fraction, bool], percent: bool) -> bool:
    (p_raw, p_pct), (g_raw, g_pct) = pred, gold
    p_val = p_raw / 100 if p_pct else p_raw
    g_val = g_raw / 100 if g_pct else g_raw
    if p_val == g_val:
        return True
    return percent and p_pct != g_pct and p_raw == g_raw
