r"""Text clean-up of a candidate answer, shared by the rules of
:mod:`samplescale.verifiers.extract`.

Private helpers: :func:`_tidy` strips emphasis, punctuation, math delimiters and
``\\text{}`` wrappers (linear time however deep they nest); :func:`_drop_trailing_words`
cuts ``"18 dollars"`` to ``18``; :func:`_drop_hedge` drops hedge words before a number;
:func:`_not_the_value` recognises a negated or relative answer (``"near to 2"``);
:func:`_last_side_if_arithmetic` reads the result of a worked computation;
:func:`_unevaluated` recognises a restated question (``"1 + 8"``); :func:`_is_sentence`
and :func:`_looks_like_answer` tell prose from an answer; :func:`_unquote` strips quotes.
"""

from __future__ import annotations

import re

from samplescale.verifiers._latex import (
    _MINUS_SIGNS,
    _WRAPPER_RE,
    _delimiter_span,
    _matching_braces,
    _strip_span,
    _wrapper_span,
)
from samplescale.verifiers.numbers import _parse_number

_QUOTES = "\"'\u201c\u201d\u2018\u2019`"


def _tidy(x: str) -> str:
    """Strip markdown emphasis, trailing punctuation, math delimiters and text wrappers.

    Repeated until nothing changes, on index windows of one string (never copied or
    rescanned per round), so layers nested thousands deep (``\\(\\text{\\(...\\)}\\)``)
    take linear time, not quadratic.
    """
    text = x.translate(_MINUS_SIGNS)
    lo, hi = 0, len(text)
    pairs: dict[int, int] | None = None
    while True:
        before = (lo, hi)
        lo, hi = _strip_span(text, lo, hi)
        lo, hi = _strip_span(text, lo, hi, "*")
        lo, hi = _strip_span(text, lo, hi)
        lo, hi = _strip_span(text, lo, hi, ".,;:!", left=False)
        lo, hi = _strip_span(text, lo, hi, left=False)
        lo, hi = _delimiter_span(text, lo, hi)
        if pairs is None and _WRAPPER_RE.match(text, *_strip_span(text, lo, hi)):
            pairs = _matching_braces(text)  # once per call, only if a wrapper is met
        lo, hi = _wrapper_span(text, lo, hi, pairs)
        if (lo, hi) == before:
            return text[lo:hi]


_LEADING_NUMBER_RE = re.compile(
    r"(?P<num>[-+]?(?:\\?\$\s?)?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|[-+]?\.\d+)"
    r"(?P<pct>\s?(?:\\%|%|percent\b))?(?P<rest>.*)",
    re.DOTALL | re.IGNORECASE,
)
_NOT_A_UNIT_RE = re.compile(
    r"\s+(?:and|or|pi|sqrt|root|i|times|plus|minus|over|divided)\b", re.IGNORECASE
)


def _drop_trailing_words(x: str) -> str:
    """``"18 dollars"`` -> ``"18"``; ``"72, in total"`` -> ``"72"``; math is left alone.

    Applies only when ``x`` starts with a plain number followed by prose (a space and a
    letter, or a comma, a space and a letter); ``"2 and 3"``, ``"3 pi"``, ``"1/2"`` and
    ``"5 \\text{cm}"`` are kept whole.
    """
    m = _LEADING_NUMBER_RE.fullmatch(x)
    if m is None:
        return x
    rest = m.group("rest")
    keep = m.group("num") + (m.group("pct") or "")
    if not rest.strip():
        return x
    if re.match(r",?\s+[A-Za-z]", rest) and not _NOT_A_UNIT_RE.match(rest):
        return keep.strip()
    return x


_HEDGE_WORDS = (
    r"(?:about|approximately|around|roughly|nearly|almost|probably|likely|maybe|exactly"
    r"|just|only|simply|actually|indeed|also|still|clearly|definitely|certainly|surely"
    r"|obviously|evidently|really|therefore|thus|hence|so|then|now|finally"
    r"|a\s+total\s+of|equal\s+to|the\s+number|the\s+value)\s+"
)
_HEDGE_RE = re.compile(rf"(?:{_HEDGE_WORDS})+(?=[-+$\\.\d])", re.IGNORECASE)


def _drop_hedge(x: str) -> str:
    """``"probably 12"`` -> ``"12"``, ``"approximately 3.5 m"`` -> ``"3.5"``,
    ``"indeed 3 + 4 = 7"`` -> ``"3 + 4 = 7"``: hedge and filler words (about,
    approximately, around, roughly, nearly, almost, probably, likely, maybe, exactly, just,
    only, simply, actually, indeed, also, still, clearly, definitely, certainly, surely,
    obviously, evidently, really, therefore, thus, hence, so, then, now, finally, a total
    of, equal to, the number, the value; any case) before a number that ends the answer
    (alone or followed by words) or before a worked computation (see
    :func:`_last_side_if_arithmetic`) are not part of it. Any other word stays, since it
    can change the answer (``"negative 5"``, ``"not 5"``, ``"less than 5"``, ``"half of
    10"``), and so does an uncomputed expression (``"about 3 + 4"``)."""
    m = _HEDGE_RE.match(x)
    if m is None:
        return x
    rest = x[m.end() :]
    if _last_side_if_arithmetic(rest) != rest:
        return rest
    short = _drop_trailing_words(rest)
    return short if _LEADING_NUMBER_RE.fullmatch(short) and _parse_number(short) is not None else x


_NOT_THE_VALUE_RE = re.compile(
    rf"(?:{_HEDGE_WORDS})*(?:not|near(?:\s+to)?|close(?:r)?\s+to)\b", re.IGNORECASE
)


def _not_the_value(x: str) -> bool:
    """True for an answer that does not state a value: a negation (``"not 15"``) or a
    place relative to a value (``"near to 2"``, ``"close to 12"``, ``"probably near
    12"``), as a model that echoes progressive-hint's ``"(Hint: The answer is near to
    2.)"`` writes. Unlike a hedge (``"about 12"``, the model's own estimate), it names a
    reference point, not the answer."""
    return _NOT_THE_VALUE_RE.match(x) is not None


def _is_sentence(x: str) -> bool:
    """Prose: more than four words, two of them words of three or more letters (other
    than ``and``, ``or``)."""
    words = x.split()
    return len(words) > 4 and sum(bool(_WORD_RE.fullmatch(w)) for w in words) >= 2


_WORD_RE = re.compile(r"(?!(?:and|or)$)[A-Za-z]{3,}", re.IGNORECASE)


def _looks_like_answer(x: str) -> bool:
    """Reject empty tails and prose (more than four words without a digit or LaTeX)."""
    if not x:
        return False
    return bool(re.search(r"[\d\\]", x)) or len(x.split()) <= 4


_ARITHMETIC_COMMAND_RE = re.compile(r"\\(?:[dt]?frac|times|cdot|div|left|right|sqrt|[,!; %])")
_ARITHMETIC_SIDE_RE = re.compile(r"[\d\s+\-*/^().,{}\[\]%$]*")
_OTHER_RELATION_RE = re.compile(r"[<>]|\\(?:[lg]eq?|neq?|approx|sim)(?![A-Za-z])")


def _last_side_if_arithmetic(answer: str) -> str:
    """``"7 + 5 = 12"`` -> ``"12"``: the result of a worked computation.

    Applies when every side before the last ``=`` is arithmetic on numbers (digits,
    ``+ - * / ^``, parentheses, ``\\frac``, ``\\times``, ``\\cdot``, ...) and the last side
    is a plain number, possibly followed by words (``"= 12 apples"`` gives ``12``). An
    equation with a variable (``"x = 5"``, ``"2x + 3 = 5"``) or a relation other than
    ``=`` is returned unchanged.
    """
    if "=" not in answer or _OTHER_RELATION_RE.search(answer):
        return answer
    *sides, last = answer.split("=")
    for side in sides:
        bare = _ARITHMETIC_COMMAND_RE.sub(" ", side)
        if not re.search(r"\d", bare) or not _ARITHMETIC_SIDE_RE.fullmatch(bare):
            return answer
    result = _drop_trailing_words(_tidy(last))
    return result if _parse_number(result) is not None else answer


_UNEVALUATED_RE = re.compile(r"[\d)]\s*[-+*\u00d7\u00f7]\s*[\d($]")


def _unevaluated(answer: str) -> bool:
    """True for arithmetic on plain numbers left uncomputed (``"1 + 8"``, ``"12*7"``): a
    restated question, not a result. Fractions (``"3/4"``), powers, signed numbers and
    expressions with symbols (``"3 + 2\\sqrt{2}"``) are answers."""
    return bool(
        re.fullmatch(r"[\d\s.,()+\-*/^$\u00d7\u00f7]+", answer) and _UNEVALUATED_RE.search(answer)
    )


def _unquote(x: str) -> str:
    """``_tidy`` with surrounding quotes removed too (``'3"'`` -> ``3``)."""
    while True:
        before = x
        x = _tidy(x.strip().strip(_QUOTES))
        if x == before:
            return x
