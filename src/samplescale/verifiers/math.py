r"""Answer equivalence for math tasks, and the public entry point of the verifiers.

Used by self-consistency voting, best-of-N and pass@k evaluation:

* :func:`is_equivalent` decides whether a predicted answer denotes the same mathematical
  answer as a gold answer; :func:`answers_equivalent` is its symmetric form, used to
  cluster sampled answers for majority voting.
* :func:`extract_answer` (defined in :mod:`samplescale.verifiers.extract`) reads the
  final answer out of a model completion or a gold solution, and
  :func:`normalize_number` (defined in :mod:`samplescale.verifiers.numbers`) writes a
  plain number (``"1,000"``, ``"$29.00"``, ``"\frac{1}{2}"``, ``"28\%"``) in one
  canonical form. Both are re-exported here, so
  ``from samplescale.verifiers.math import extract_answer, normalize_number`` works.

Equivalence in two stages
-------------------------
Equivalence is symmetric: ``is_equivalent(a, b) == is_equivalent(b, a)``, and
:func:`answers_equivalent` is the same relation with ``percent=True``.

1. *Fast path, in this process.* Both answers are first put in canonical form (the
   answer in the last group of boxes if there is one; ``$`` delimiters, ``\(``/``\)``,
   ``\text{...}`` wrappers and a trailing period removed). Identical canonical strings
   are equivalent. If both are plain numbers (see :func:`normalize_number`) they are
   compared *exactly* as fractions: ``"29.00" == "29"``, ``"1,000" == "1 000" ==
   "1000"``, ``"0.5" == "1/2" == "\frac{1}{2}"``, ``"2\frac{1}{2}" == "5/2"`` (a mixed
   number), but ``"0.333" != "1/3"``: a decimal stands for a value it rounds or cuts
   only with at least 10 significant digits (``"0.3333333333" == "1/3"``), a tolerance
   relative to the digits written, never an absolute one. A decimal comma
   (``"2,74"``, not a group of three digits) is read as a decimal point when the other
   answer is one number. This path never touches a worker process; most GSM8K answers
   end here.
2. *math-verify, in a worker process.* Anything else is read into a math object by
   math-verify's own parser (``parse("$answer$")`` with ``LatexExtractionConfig``):
   numbers, expressions, equations and relations, intervals and unions, sets, tuples,
   matrices (``pmatrix``, ``bmatrix``, ``array``), ``\text{}`` answers. The objects are
   compared by ``math_verify.verify`` in *both* orders, with the guards of
   :mod:`samplescale.verifiers._compare`: no absolute tolerance
   (``\frac{1}{2^{99}} != \frac{1}{2^{98}}``), an equation counts as its value only if
   its left side names a quantity (``x = 5``, ``|AB| = 5``), relations and intervals
   compare as sets (``0 < x < 12.5`` equals ``(0, 12.5)``). Two numbers written side
   by side (``"1 2"``) are no answer: math-verify would read their product.

Conventions
-----------
* **Multi-part answers** (several boxes, ``"1331 and 1728"``, ``"2 or 3"``,
  ``"n=2, 3, 4"``, ``"-12;-11"``) are the *set* of their parts: equal iff the same
  parts, in any order, each compared as a single answer; never any-overlap
  (``"1331 and 1728"`` vs ``"1728"`` is False). A tuple in parentheses ``(1, 2)`` is
  ordered. Named values (``"AB=4, CD=5"``) compare with a bare list of values in the
  written order (``"4, 5"`` yes, ``"5, 4"`` no); values of one name (``"x=1, x=2"``)
  as a set. ``\pm`` is two answers: ``"\pm 2021"`` is not ``"2021"``.
* Equations compare as equations (same solution set, via math-verify's relational
  comparison): ``"2x-y+1=0"`` equals ``"4x-2y+2=0"`` but ``"3x-y+13=0"`` does not equal
  ``"3x+4y+14=0"``, and ``"0"`` does not equal ``"3x+4y+14=0"``.
* Percent (``percent=True``, the default): ``"28\%"``, ``"28%"`` and ``"28 percent"``
  are the same answer, ``X%`` equals the number ``X/100`` (``"10%" == "0.1"``), and a
  bare number also equals its own percent form (``"10" == "10%"``), because models
  often drop the percent sign. With ``percent=False`` a percent sign is read literally
  as a factor 1/100: ``"10%" == "0.1"`` but ``"10%" != "10"``. Under the default the
  relation is not transitive (``10 ~ 10% ~ 0.1`` but ``10 !~ 0.1``). Only a percent
  sign at the very end of an answer is interpreted by this module.
* Thousands separators: ``"1,234"`` (groups of exactly three digits, the first not
  starting with 0) is the number 1234, never the pair {1, 234}.

Time limit
----------
math-verify can run for ever on some inputs (``2003^{2002^{2001}}``), so every
math-verify call runs in a worker process of the pool in
:mod:`samplescale.verifiers._workers`, under a hard time limit that works from any
thread; the functions here are safe to call from any thread. When ``timeout`` seconds
pass the call returns False, and the stuck worker is killed and replaced. Starting a
worker (about a second: importing sympy) and waiting for a free one are not counted
against ``timeout``. An error inside math-verify counts as "not equivalent". Results
(including time-outs) are cached per unordered pair of answers, ``percent`` and
``timeout``, so repeated votes for the same answer cost nothing. No script needs an
``if __name__ == "__main__":`` guard: workers never re-import the main module.
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

from samplescale.errors import ConfigError
from samplescale.verifiers._latex import _MINUS_SIGNS, _last_boxed, _strip_text_wrapper
from samplescale.verifiers._workers import _run_in_worker
from samplescale.verifiers.extract import extract_answer
from samplescale.verifiers.numbers import (
    _numbers_equal,
    _parse_number,
    _rounds_to,
    _split_percent,
    normalize_number,
)

__all__ = ["answers_equivalent", "extract_answer", "is_equivalent", "normalize_number"]

#: Size of the result cache of :func:`is_equivalent` / :func:`answers_equivalent`.
_CACHE_SIZE = 1 << 16

# --------------------------------------------------------------------------------------
# Canonical form and math-verify inputs
# --------------------------------------------------------------------------------------


def _canonical(s: str) -> str:
    """The answer inside ``s``: last box content, no ``$``, no text wrapper, one line."""
    t = s.strip()
    boxed = _last_boxed(t)
    if boxed is not None:
        t = boxed
    t = t.replace("\\$", "").replace("$", "")
    t = re.sub(r"\s+", " ", t).strip()
    for open_, close in (("\\(", "\\)"), ("\\[", "\\]")):
        if t.startswith(open_) and t.endswith(close) and len(t) >= 4:
            t = t[2:-2].strip()
    bare = _strip_text_wrapper(t)
    if not re.fullmatch(r"\(?[A-Za-z][A-Za-z' -]+\)?", bare):  # words keep their \text{}
        t = bare
    t = t.translate(_MINUS_SIGNS)
    if len(t) > 1 and t.endswith(".") and not t.endswith(".."):
        t = t[:-1].rstrip()
    return t


def _percent_value_latex(original: str, body: str) -> str:
    """LaTeX for the value of ``body`` percent, i.e. ``body / 100``."""
    if re.search(r"[=,;<>%]|\\(?:le|ge|lt|gt|cup|cap|pm)\b", body):
        return original  # not a single quantity: leave it to math-verify as written
    return f"\\frac{{{body}}}{{100}}"


def _verification_pairs(gold: str, pred: str, percent: bool) -> list[tuple[str, str]]:
    """The (gold, pred) LaTeX pairs to try with math-verify; any match means equivalent."""
    g_body, g_pct = _split_percent(gold)
    p_body, p_pct = _split_percent(pred)
    if not g_pct and not p_pct:
        return [(gold, pred)]
    g_val = _percent_value_latex(gold, g_body) if g_pct else gold
    p_val = _percent_value_latex(pred, p_body) if p_pct else pred
    pairs = [(g_val, p_val)]
    if percent and g_pct != p_pct:
        pairs.append((g_body, p_body))
    return pairs


# --------------------------------------------------------------------------------------
# Public equivalence API
# --------------------------------------------------------------------------------------


_DECIMAL_COMMA_RE = re.compile(r"[-+]?(?:0,\d+|[1-9]\d*,(?:\d{1,2}|\d{4,}))")
_JUXTAPOSED_RE = re.compile(r"\d\s+\.?\d|\d\s*\\[dtc]?frac\s*\{?\s*\d")


def _decimal_comma(answer: str, other: tuple[Fraction, bool] | None) -> str:
    """``"2,74"`` -> ``"2.74"`` when the other answer is one number (a European decimal
    comma: not a thousands group of three digits, and not a list, since the other
    answer is a single number); any other answer is returned unchanged."""
    if other is not None and _DECIMAL_COMMA_RE.fullmatch(answer):
        return answer.replace(",", ".")
    return answer


_TEXT_RE = re.compile(
    r"\\(?:text|textbf|textrm|textnormal|mathrm|mbox)\s*\{\s*\(?\s*(?P<a>[A-Za-z][A-Za-z' -]*[A-Za-z])"
    r"\s*\)?\s*\}|\(?(?P<b>[A-Za-z]{3,}(?: [A-Za-z]+)*)\)?"
)
_UNIT_RE = re.compile(
    r"\d\s*(?:\\[,;: ]\s*)*\\(?:text|textnormal|mathrm|mbox)\s*\{\s*(?P<u>[A-Za-z]+)\s*\}(?:\^\{?\d\}?)?$"
)


def _text_answer(answer: str) -> str | None:
    """The words of a text answer (``\\text{Evelyn}``, ``Evelyn``, ``(even)``), lower
    case, else None. math-verify reads words as products of letters, so ``Evelyn`` and
    ``Evenly`` would be equal: text answers compare as words."""
    m = _TEXT_RE.fullmatch(answer)
    if m is None:
        return None
    return " ".join((m.group("a") or m.group("b")).lower().split())


def _units_differ(a: str, b: str) -> bool:
    """Whether both answers end in a unit and the units differ (``5 \\text{ cm}`` vs
    ``5 \\text{ m}``); math-verify drops units before comparing."""
    ua, ub = _UNIT_RE.search(a), _UNIT_RE.search(b)
    return bool(
        ua and ub and ua.group("u").lower().rstrip("s") != ub.group("u").lower().rstrip("s")
    )


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _decide(a: str, b: str, percent: bool, timeout: float) -> bool:
    """Symmetric equivalence of two canonical answers (see the module docstring)."""
    if not a or not b:
        return False
    if a == b:
        return True
    a_number, b_number = _parse_number(a), _parse_number(b)
    if a_number is None or b_number is None:
        a, b = _decimal_comma(a, b_number), _decimal_comma(b, a_number)
        a_number, b_number = _parse_number(a), _parse_number(b)
    if a_number is not None and b_number is not None:
        return (
            _numbers_equal(a_number, b_number, percent)
            or (not a_number[1] and _rounds_to(b, a_number[0]))
            or (not b_number[1] and _rounds_to(a, b_number[0]))
        )
    if _JUXTAPOSED_RE.search(a) or _JUXTAPOSED_RE.search(b) or _units_differ(a, b):
        return False  # "1 2": two numbers side by side are no answer (not their product)
    a_text, b_text = _text_answer(a), _text_answer(b)
    if a_text is not None or b_text is not None:
        return a_text == b_text
    return bool(_run_in_worker(tuple(_verification_pairs(a, b, percent)), timeout))


def _check_answer(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{name} must be a str or None, got {type(value).__name__}")


def _check_timeout(timeout: object) -> float:
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ConfigError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    return float(timeout)


def is_equivalent(
    pred: str | None, gold: str | None, *, percent: bool = True, timeout: float = 5.0
) -> bool:
    r"""Whether ``pred`` denotes the same mathematical answer as ``gold``.

    Both arguments are *answers* (e.g. from :func:`extract_answer`), not whole
    completions, although an answer that still contains ``\boxed{...}`` is reduced to the
    answer in its last group of boxes. The relation is symmetric: swapping ``pred`` and
    ``gold`` never changes the result. Decision order:

    1. None or an empty answer on either side: False.
    2. Identical after canonicalisation (box content, ``$`` delimiters, ``\text{}``
       wrapper and trailing period removed, whitespace collapsed): True.
    3. Both plain numbers (:func:`normalize_number`, or one with a decimal comma):
       exact comparison as fractions, with the percent convention below; a decimal of
       10 or more significant digits also stands for a value it rounds or cuts. No
       worker process is used.
    4. Two numbers side by side (``"1 2"``, ``"2 \frac{1}{2}"`` inside an expression):
       False.
    5. Otherwise math-verify, in a worker process, under the hard time limit
       ``timeout``: both answers parsed into math objects (``parse("$answer$")``,
       LaTeX extraction) and compared by ``verify`` in both orders, without its
       absolute tolerance (:mod:`samplescale.verifiers._compare`). Multi-part answers
       compare as sets (never any-overlap), equations by their solution sets, relations
       and intervals as sets, and an equation counts as its value only if its left side
       names a quantity (``x = 5``).

    Percent convention: with ``percent=True``, ``"28\%"``, ``"28%"`` and ``"28 percent"``
    are the same answer, ``X%`` equals ``X/100``, and a bare number also equals its own
    percent form (gold ``\boxed{10\%}`` vs pred ``10`` is True). With ``percent=False``
    the percent sign is a factor 1/100 only (``10%`` vs ``10`` is False, ``10%`` vs
    ``0.1`` is True). Only a percent sign at the end of an answer is interpreted here.

    Parameters
    ----------
    pred : str or None
        The predicted answer.
    gold : str or None
        The gold answer (the order does not matter: the relation is symmetric).
    percent : bool, default True
        Whether a bare number also matches its percent form (see above).
    timeout : float, default 5.0
        Hard limit, in seconds, on the math-verify stage. When it passes the result is
        False, the worker process is killed and replaced. It works from any thread.
        Starting a worker process and waiting for a free one are not counted.

    Returns
    -------
    bool
        True iff the answers are judged equivalent. Results, time-outs included, are
        cached per unordered pair of answers, ``percent`` and ``timeout``.

    Raises
    ------
    ConfigError
        If ``pred`` or ``gold`` is neither a str nor None, ``percent`` is not a bool, or
        ``timeout`` is not a finite number > 0.
    MissingDependencyError
        If math-verify cannot be imported in the worker process.
    SamplescaleError
        If the worker process cannot be started at all.

    Examples
    --------
    >>> is_equivalent("1/2", "0.5"), is_equivalent("1,000", "1000.00")
    (True, True)
    >>> is_equivalent("10", r"\boxed{10\%}"), is_equivalent("10", "10%", percent=False)
    (True, False)
    """
    _check_answer("pred", pred)
    _check_answer("gold", gold)
    if not isinstance(percent, bool):
        raise ConfigError(f"percent must be a bool, got {type(percent).__name__}")
    limit = _check_timeout(timeout)
    if pred is None or gold is None:
        return False
    first, second = sorted((_canonical(pred), _canonical(gold)))
    return _decide(first, second, percent, limit)


def answers_equivalent(a: str | None, b: str | None, *, timeout: float = 5.0) -> bool:
    r"""Symmetric equivalence of two answers, for clustering votes.

    :func:`is_equivalent` with ``percent=True`` (which is symmetric too); one cache
    serves both. Note that the relation is not transitive (``10 ~ 10% ~ 0.1``), so
    clustering results may depend on the order of the answers.

    Parameters
    ----------
    a, b : str or None
        The two answers; None (no answer) is equivalent to nothing.
    timeout : float, default 5.0
        Hard limit in seconds on the math-verify stage, as in :func:`is_equivalent`.

    Returns
    -------
    bool
        ``answers_equivalent(a, b) == answers_equivalent(b, a)``.

    Raises
    ------
    ConfigError
        If ``a`` or ``b`` is neither a str nor None, or ``timeout`` is not a finite
        number > 0.
    MissingDependencyError, SamplescaleError
        As in :func:`is_equivalent`.
    """
    _check_answer("a", a)
    _check_answer("b", b)
    limit = _check_timeout(timeout)
    if a is None or b is None:
        return False
    first, second = sorted((_canonical(a), _canonical(b)))
    return _decide(first, second, True, limit)
