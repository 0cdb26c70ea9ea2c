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
1. *Fast path, in this process.* Both answers are first put in canonical form (the
   content of a ``\boxed{}`` if there is one; ``$`` delimiters, ``\(``/``\)``,
   ``\text{...}`` wrappers and a trailing period removed). Identical canonical strings
   are equivalent. If both are plain numbers (see :func:`normalize_number`) they are
   compared *exactly* as fractions: ``"29.00" == "29"``, ``"1,000" == "1000"``,
   ``"0.5" == "1/2" == "\frac{1}{2}"``, but ``"0.333" != "1/3"``. This path never
   touches a worker process; most GSM8K answers end here.
2. *math-verify, in a worker process.* Anything else is handed to ``math_verify``:
   each side is wrapped as ``$...$`` and parsed with ``LatexExtractionConfig`` only,
   then ``verify(gold, pred)`` is called. Wrapping and the LaTeX-only config matter:
   unwrapped, ``math_verify.parse("3*x-1*y+13=0")`` falls back to plain-number
   extraction and returns ``0``, so any two equations "ending in = 0" would match,
   and ``"1331 and 1728"`` would be read as its last number ``1728``.

Conventions
-----------
* Multiple answers (``"1331 and 1728"``, ``"n=2, 3, 4"``) compare as *sets*: every
  element must match, never just one (``"1331 and 1728"`` vs ``"1728"`` is False).
* Equations compare as equations (same solution set, via math-verify's relational
  comparison): ``"2x-y+1=0"`` equals ``"4x-2y+2=0"`` but ``"3x-y+13=0"`` does not equal
  ``"3x+4y+14=0"``. An assignment ``"x=5"`` equals ``"5"``. math-verify reduces a
  *predicted* equation to its right-hand side when the gold answer is not an equation;
  the verifier allows that only when the left-hand side is a variable name (``x = 5``)
  or has no variables (``2+3 = 5``), so gold ``"0"`` does not equal ``"3x+4y+14=0"``.
* Percent (``percent=True``, the default): ``"28\%"``, ``"28%"`` and ``"28 percent"``
  are the same answer, ``X%`` equals the number ``X/100`` (``"10%" == "0.1"``), and a
  bare number also equals its own percent form (``"10" == "10%"``), because models
  often drop the percent sign. With ``percent=False`` a percent sign is read literally
  as a factor 1/100: ``"10%" == "0.1"`` but ``"10%" != "10"``. Under the default the
  relation is not transitive (``10 ~ 10% ~ 0.1`` but ``10 !~ 0.1``). Only a percent
  sign at the very end of an answer is interpreted by this module.
* Thousands separators: ``"1,234"`` (groups of exactly three digits) is the number 1234,
  never the pair {1, 234}. ``"1,2"`` is not a number and goes to math-verify (a set).

Time limit
----------
math-verify can run for ever on some inputs (``2003^{2002^{2001}}``), so every
math-verify call runs in a worker process of the pool in
:mod:`samplescale.verifiers._workers`, under a hard time limit that works from any
thread; the functions here are safe to call from any thread. When ``timeout`` seconds
pass the call returns False, and the stuck worker is killed and replaced. Starting a
worker (about a second: importing sympy) and waiting for a free one are not counted
against ``timeout``. An error inside math-verify counts as "not equivalent". Results
(including time-outs) are cached per ``(pred, gold, percent, timeout)``, so repeated
votes for the same answer cost nothing. No script needs an
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
    t = _strip_text_wrapper(t).translate(_MINUS_SIGNS)
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
    if _JUXTAPOSED_RE.search(a) or _JUXTAPOSED_RE.search(b):
        return False  # "1 2": two numbers side by side are no answer (not their product)
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
    content of its last box. Decision order:

    1. None or an empty answer on either side: False.
    2. Identical after canonicalisation (box content, ``$`` delimiters, ``\text{}``
       wrapper and trailing period removed, whitespace collapsed): True.
    3. Both plain numbers (:func:`normalize_number`): exact comparison as fractions,
       with the percent convention below. No worker process is used.
    4. Otherwise math-verify, in a worker process, under the hard time limit
       ``timeout``: ``verify(parse("$gold$"), parse("$pred$"))`` with LaTeX extraction
       only. Multi-answers compare as sets (never any-overlap), equations by their
       solution sets, and a predicted equation is reduced to its right-hand side only if
       its left-hand side is a variable name or has no variables.

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
        The gold answer. math-verify is asymmetric (e.g. ``x=2`` as gold matches ``2``,
        and gold relations may be compared with predicted intervals), so keep the order.
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
        cached per ``(pred, gold, percent, timeout)``.

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

    Same conventions as :func:`is_equivalent` with ``percent=True``; since math-verify
    is asymmetric, the answers are equivalent if either is accepted with the other one
    as gold. Both directions run in one worker call, under one ``timeout``. Note that
    the relation is not transitive (``10 ~ 10% ~ 0.1``), so clustering results may
    depend on the order of the answers.

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
