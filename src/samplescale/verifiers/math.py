r"""Final-answer extraction and answer equivalence for math tasks.

Three jobs, used by self-consistency voting, best-of-N and pass@k evaluation:

* :func:`extract_answer` reads the final answer out of a model completion (or out of a
  gold solution such as GSM8K's ``... #### 72``).
* :func:`is_equivalent` decides whether a predicted answer denotes the same mathematical
  answer as a gold answer; :func:`answers_equivalent` is its symmetric form, used to
  cluster sampled answers for majority voting.
* :func:`normalize_number` writes a plain number (``"1,000"``, ``"$29.00"``,
  ``"\frac{1}{2}"``, ``"28\%"``) in one canonical form.

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
  this module allows that only when the left-hand side is a variable name (``x = 5``)
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
math-verify can run for ever on some inputs (``2003^{2002^{2001}}``) and its own timeout
uses ``signal.alarm``, which only works on the main thread. Every math-verify call here
therefore runs in a worker process: ``python -m samplescale.verifiers._verify_worker``,
started with :mod:`subprocess` and spoken to through one JSON line per request and per
reply on its stdin/stdout. There are at most :data:`_POOL_SIZE` workers, each used by one
thread at a time, created lazily; the functions are safe to call from any thread. The
caller waits ``timeout`` seconds for the reply; when the limit passes the call returns
False, the stuck worker is killed (so it stops using CPU) and a fresh worker is started
in the background. The one-off start of a worker (about a second: importing sympy) and
any wait for a free worker when more threads than workers verify at once are not counted
against ``timeout``. An error inside math-verify counts as "not equivalent"; the worker
survives it. Results (including time-outs) are cached per ``(pred, gold, percent,
timeout)``, so repeated votes for the same answer cost nothing.

Workers are not started through :mod:`multiprocessing`, so the program's main module is
never re-imported: a script needs no ``if __name__ == "__main__":`` guard. A worker finds
packages on the same ``sys.path`` as its parent, writes nothing to the terminal, and is
killed when its parent exits (also inside a ``multiprocessing`` child); a worker whose
parent died without killing it exits by itself. A forked child starts its own workers
instead of using its parent's.
"""

from __future__ import annotations

import atexit
import functools
import io
import json
import logging
import math
import multiprocessing.util
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from typing import Any

from samplescale.errors import ConfigError, MissingDependencyError, SamplescaleError

__all__ = ["answers_equivalent", "extract_answer", "is_equivalent", "normalize_number"]

logger = logging.getLogger(__name__)

#: Number of worker processes that may verify at the same time (one per slot).
_POOL_SIZE = max(1, min(4, os.cpu_count() or 1))
#: Seconds allowed for a worker process to start and import math-verify.
_STARTUP_TIMEOUT_S = 120.0
#: Size of the result cache of :func:`is_equivalent` / :func:`answers_equivalent`.
_CACHE_SIZE = 1 << 16

# --------------------------------------------------------------------------------------
# Small text helpers
# --------------------------------------------------------------------------------------

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_SHORT_BOX_RE = re.compile(r"[ \t]+([^\s$]+)")
_WRAPPER_RE = re.compile(r"\\(?:text|textrm|textbf|mathrm|mathbf|mbox)\s*\{")
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\u2013": "-"})


def _matching_braces(text: str) -> dict[int, int]:
    """Map the index of every balanced ``{`` to its ``}``; ``\\{`` and ``\\}`` are skipped."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def _last_boxed(text: str) -> str | None:
    """Content of the last complete, non-empty ``\\boxed{...}`` / ``\\fbox{...}``, else None."""
    boxes = list(_BOX_RE.finditer(text))
    if not boxes:
        return None
    pairs = _matching_braces(text)
    for m in reversed(boxes):
        j = m.end()
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            end = pairs.get(j)
            if end is None:  # unterminated (e.g. a truncated completion)
                continue
            content = text[j + 1 : end].strip()
        else:  # short form "\boxed 5": one token, up to whitespace or "$"
            short = _SHORT_BOX_RE.match(text, m.end())
            if short is None:
                continue
            content = short.group(1)
        if content:
            return content
    return None


def _strip_text_wrapper(s: str) -> str:
    """Remove ``\\text{...}`` (``\\textbf``, ``\\mathrm``, ...) wrappers spanning all of ``s``."""
    while True:
        s = s.strip()
        m = _WRAPPER_RE.match(s)
        if m is None:
            return s
        end = _matching_braces(s).get(m.end() - 1)
        if end != len(s) - 1:
            return s
        s = s[m.end() : end]


def _strip_math_delimiters(s: str) -> str:
    """Remove math delimiters around ``s`` and a leading currency ``$``."""
    for open_, close in (("$$", "$$"), ("\\(", "\\)"), ("\\[", "\\]"), ("$", "$")):
        if s.startswith(open_) and s.endswith(close) and len(s) >= len(open_) + len(close):
            inner = s[len(open_) : len(s) - len(close)]
            if "$" not in inner:
                return inner.strip()
    if s.startswith("\\$"):
        return s[2:].strip()
    if s.startswith("$"):
        end = s.find("$", 1)
        if end == -1:  # a currency sign: "$29.00"
            return s[1:].strip()
        # "$\frac{1}{2}$ of the cake" -> "\frac{1}{2}" (only if no more math follows)
        if not re.search(r"[\d$\\]", s[end + 1 :]):
            return s[1:end].strip()
    return s


def _tidy(x: str) -> str:
    """Strip markdown emphasis, trailing punctuation, math delimiters and text wrappers."""
    prev = None
    while x != prev:
        prev = x
        x = x.translate(_MINUS_SIGNS).strip().strip("*").strip()
        x = x.rstrip(".,;:!").rstrip()
        x = _strip_math_delimiters(x)
        x = _strip_text_wrapper(x)
    return x


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


def _looks_like_answer(x: str) -> bool:
    """Reject empty tails and prose (more than four words without a digit or LaTeX)."""
    if not x:
        return False
    return bool(re.search(r"[\d\\]", x)) or len(x.split()) <= 4


# --------------------------------------------------------------------------------------
# extract_answer
# --------------------------------------------------------------------------------------

_HASH_RE = re.compile(r"####[ \t]*(?=[-+$.\d\u2212]|\\(?:[dt]?frac|\$))([^\n]*)")
_PHRASE_RE = re.compile(
    r"\banswer\b(?:\s*\*{1,2})?\s*(?:\bis\b\s*:?|:|=)",
    re.IGNORECASE,
)
_PHRASE_WINDOW = 2000  # characters read after an answer phrase
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)")
_COMMA_PROSE_RE = re.compile(r",\s+(?!(?:and|or)\b)[A-Za-z]{2,}\b", re.IGNORECASE)
_BOLD_RE = re.compile(r"\*\*([^*\n]+?)\*\*")
_HEADING_RE = re.compile(r"(?:step|part|case|problem|solution|question|example)\b", re.I)
_LAST_NUMBER_RE = re.compile(
    r"(?:(?<![\w)\]}.])[-\u2212])?(?<![\w.])"
    r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?!\d)(?:\\?%)?"
    r"|(?:(?<![\w)\]}.])[-\u2212])?(?<![\w.])\.\d+(?!\d)(?:\\?%)?"
)


def _rule_boxed(text: str) -> str | None:
    content = _last_boxed(text)
    if content is None:
        return None
    return _strip_text_wrapper(content.translate(_MINUS_SIGNS)) or None


def _rule_hash(text: str) -> str | None:
    matches = _HASH_RE.findall(text)
    if not matches:
        return None
    answer = _drop_trailing_words(_tidy(matches[-1].translate(_MINUS_SIGNS)))
    return answer or None


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


def _rule_phrase(text: str) -> str | None:
    for m in reversed(list(_PHRASE_RE.finditer(text))):
        window = text[m.end() : m.end() + _PHRASE_WINDOW].lstrip()
        tail = window.split("\n", 1)[0]
        end = _SENTENCE_END_RE.search(tail)
        if end is not None:
            tail = tail[: end.start()]
        comma = _COMMA_PROSE_RE.search(tail)
        if comma is not None:
            tail = tail[: comma.start()]
        answer = _last_side_if_arithmetic(_drop_trailing_words(_tidy(tail)))
        if _looks_like_answer(answer):
            return answer
    return None


def _rule_bold(text: str) -> str | None:
    for m in reversed(list(_BOLD_RE.finditer(text))):
        content = m.group(1).strip()
        if not re.search(r"\d", content) or content.endswith(":"):
            continue
        if _HEADING_RE.match(content):
            continue
        answer = _drop_trailing_words(_tidy(content))
        if answer:
            return answer
    return None


def _rule_last_number(text: str) -> str | None:
    matches = _LAST_NUMBER_RE.findall(text)
    return matches[-1].translate(_MINUS_SIGNS) if matches else None


def extract_answer(text: str) -> str | None:
    r"""Extract the final answer from a model completion or a gold solution.

    The first rule that finds something wins:

    a. the content of the LAST ``\boxed{...}`` or ``\fbox{...}``, read with balanced
       nested braces (``\boxed{\frac{1}{2}}`` gives ``\frac{1}{2}``; escaped ``\{``
       and ``\}`` do not count). A box that is never closed or is empty is skipped.
       The short form ``\boxed 5`` is read up to the next whitespace or ``$``. A
       ``\text{...}`` (or ``\textbf``, ``\mathrm``, ``\mathbf``, ``\mbox``) wrapper
       around the whole content is removed: ``\boxed{\text{E}}`` gives ``E``;
    b. the last ``#### X`` line (GSM8K gold format) whose ``X`` starts like a number
       (digit, sign, ``.`` or currency sign), so markdown headings such as
       ``#### Step 2`` are not answers: ``"... #### -3"`` gives ``-3``;
    c. the last "answer is X" / "answer: X" phrase, case-insensitive (covers "The answer
       is X", "The final answer is X", "Final Answer: X", "**Answer:** X"). ``X`` runs to
       the end of its sentence (a period followed by whitespace) or line, and stops at a
       comma followed by a word (``"72, in total"`` gives ``72``). Surrounding ``**``,
       ``$...$``, ``\(...\)`` and a trailing period are stripped. A phrase whose ``X``
       is empty or reads like prose (more than four words, no digit, no LaTeX) is
       skipped in favour of the previous phrase. A worked computation gives its result:
       if every side before the last ``=`` is arithmetic on numbers and the last side is
       a number, ``X`` is that number (``"The answer is: 7 + 5 = 12."`` gives ``12``),
       while an equation with a variable is kept whole (``"x = 5"``);
    d. the last bold ``**X**`` whose content contains a digit, ignoring headings (bold
       text ending in ``:`` or starting with "Step", "Part", "Case", ...);
    e. the last number in the text: integers, decimals (``.5`` too), negatives, numbers
       with thousands commas (``1,234``); a directly attached ``%`` / ``\%`` is kept. A
       lone ``,`` is not a number.

    For rules b-d, a leading number followed by words is cut to the number
    (``"18 dollars"`` gives ``18``), unless the words are math (``and``, ``or``, ``pi``,
    ``sqrt``, ...). Apart from that, the answer is returned as written (``"1,234"``,
    ``"29.00"``); :func:`is_equivalent` does the normalisation. A Unicode minus sign is
    returned as ``-``.

    Parameters
    ----------
    text : str
        A model completion or a gold solution.

    Returns
    -------
    str or None
        The extracted answer, or None when no rule finds one.

    Raises
    ------
    ConfigError
        If ``text`` is not a str.

    Examples
    --------
    >>> extract_answer(r"So \boxed{5}. Wrong; it is \boxed{7}.")
    '7'
    >>> extract_answer("First 2 then 34. Final Answer: **73**")
    '73'
    >>> extract_answer("The answer is 72, in total, so we are done.")
    '72'
    """
    if not isinstance(text, str):
        raise ConfigError(f"text must be a str, got {type(text).__name__}")
    for rule in (_rule_boxed, _rule_hash, _rule_phrase, _rule_bold, _rule_last_number):
        answer = rule(text)
        if answer:
            return answer
    return None


# --------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------

_PERCENT_TAIL_RE = re.compile(
    r"(?:\\%|%|\\text\s*\{\s*(?:\\%|%|percent)\s*\}|\\mbox\s*\{\s*(?:\\%|percent)\s*\}"
    r"|percent|percentage|pct)$",
    re.IGNORECASE,
)
_CURRENCY_RE = re.compile(r"^(?:\\\$|\$|€|£|¥)\s*")
_UNSIGNED = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_DECIMAL_RE = re.compile(rf"(?P<a>{_UNSIGNED})")
_SLASH_RE = re.compile(rf"(?P<a>{_UNSIGNED})\s*/\s*(?P<b>{_UNSIGNED})")
_FRAC_RE = re.compile(
    rf"\\[dt]?frac\s*(?:\{{\s*(?P<a>-?(?:{_UNSIGNED}))\s*\}}\s*\{{\s*(?P<b>-?(?:{_UNSIGNED}))\s*\}}"
    r"|(?P<c>\d)(?P<d>\d))"
)


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
    t = re.sub(r"(?<=\d)\\,(?=\d{3})", ",", t)
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
    """Integer, else a terminating decimal, else ``p/q``."""
    num, den = value.numerator, value.denominator
    if den == 1:
        return str(num)
    twos = fives = 0
    d = den
    while d % 2 == 0:
        d //= 2
        twos += 1
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
      three digits (``1,234``, LaTeX ``1{,}234``, ``1,\!234`` and ``1\,234``);
    * a fraction of two such numbers: ``a/b``, ``\frac{a}{b}``, ``\dfrac``,
      ``\tfrac``, ``\frac12``;
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
        The canonical form, or None if ``s`` is not a plain number (or has a zero
        denominator, or more digits than Python's int conversion allows).

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
    return _format_fraction(value) + ("%" if pct else "")


def _numbers_equal(pred: tuple[Fraction, bool], gold: tuple[Fraction, bool], percent: bool) -> bool:
    (p_raw, p_pct), (g_raw, g_pct) = pred, gold
    p_val = p_raw / 100 if p_pct else p_raw
    g_val = g_raw / 100 if g_pct else g_raw
    if p_val == g_val:
        return True
    return percent and p_pct != g_pct and p_raw == g_raw


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
# Worker processes with a hard time limit
# --------------------------------------------------------------------------------------
#
# Each worker is ``python -m samplescale.verifiers._verify_worker`` started with
# subprocess (never multiprocessing, so the user's ``__main__`` is never re-imported),
# speaking one JSON line per request and per reply on its stdin/stdout; see that module
# for the protocol. A daemon thread per worker reads its replies into a queue, so the
# caller can wait for a reply with a timeout from any thread.

_WORKER_MODULE = "samplescale.verifiers._verify_worker"
_TIMED_OUT = object()  # request() outcomes other than a reply
_DIED = object()
_NOT_SENT = object()


def _worker_command() -> list[str]:
    """The command line of a worker process."""
    return [sys.executable, "-m", _WORKER_MODULE]


def _package_root() -> str:
    """The directory holding the ``samplescale`` package that is running now."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _worker_env() -> dict[str, str]:
    """The environment of a worker: ours, plus where to find samplescale and our sys.path."""
    from samplescale.verifiers._verify_worker import SYS_PATH_ENV

    env = dict(os.environ)
    root = _package_root()
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    paths = [os.path.abspath(os.fspath(p)) for p in sys.path if isinstance(p, (str, os.PathLike))]
    env[SYS_PATH_ENV] = json.dumps(paths)
    return env


def _close_quietly(stream: Any) -> None:
    try:
        if stream is not None:
            stream.close()
    except Exception:  # e.g. a broken pipe
        pass


class _Worker:
    """One running worker process, its reply queue and the thread that fills it."""

    def __init__(self) -> None:
        if not sys.executable:
            raise SamplescaleError(
                "cannot start the math-verify worker process: sys.executable is unknown"
            )
        root = _package_root()
        self._stderr: Any = None  # start-up errors only: see _verify_worker
        try:
            self._stderr = tempfile.TemporaryFile()
        except OSError:  # no writable temporary directory: no diagnostics
            pass
        try:
            self.process = subprocess.Popen(
                _worker_command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL if self._stderr is None else self._stderr,
                bufsize=0,  # nothing buffered in this process that a fork could copy
                env=_worker_env(),
                cwd=root if os.path.isdir(root) else None,  # the user's cwd shadows nothing
                close_fds=True,
            )
        except OSError as exc:
            _close_quietly(self._stderr)
            raise SamplescaleError(
                f"could not start the math-verify worker process ({exc!r})"
            ) from exc
        self.ready = False
        self._next_id = 0
        self.replies: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        reader = threading.Thread(
            target=self._read_replies,
            args=(self.process.stdout, self.replies),
            name=f"samplescale-verify-reader-{self.process.pid}",
            daemon=True,
        )
        try:
            reader.start()
        except BaseException:  # e.g. at interpreter exit
            self.kill()
            raise

    @staticmethod
    def _read_replies(stream: Any, replies: queue.SimpleQueue[dict[str, Any] | None]) -> None:
        """Reader thread: one dict per JSON line, then None at end of output."""
        stream = io.BufferedReader(stream)  # the pipe itself is unbuffered
        try:
            for line in stream:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    replies.put(message)
        except (OSError, ValueError):  # closed under us
            pass
        finally:
            replies.put(None)
            _close_quietly(stream)

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace").strip()
        except Exception:
            return ""
        return text[-2000:]

    def wait_ready(self) -> None:
        """Wait for the ready line (not counted against any verification timeout)."""
        if self.ready:
            return
        try:
            message = self.replies.get(timeout=_STARTUP_TIMEOUT_S)
        except queue.Empty:
            message = None
            detail = f"no ready signal within {_STARTUP_TIMEOUT_S:.0f} s"
        else:
            detail = "it exited during start-up"
        if message is not None and message.get("ready") is True:
            self.ready = True
            _close_quietly(self._stderr)  # the worker now writes nothing to stderr
            return
        self.kill()
        if message is not None:
            detail = str(message.get("error", message))
            if message.get("missing"):
                raise MissingDependencyError(
                    "math-verify is not importable in the verification worker; "
                    f"install it with `pip install math-verify` ({detail})"
                )
        code = self.process.returncode
        tail = self._stderr_tail()
        _close_quietly(self._stderr)
        raise SamplescaleError(
            f"could not start the math-verify worker process ({detail}; exit code {code}; "
            f"command {_worker_command()!r})" + (f":\n{tail}" if tail else "")
        )

    def request(self, pairs: tuple[tuple[str, str], ...], timeout: float) -> Any:
        """Send one request; its reply dict, or _NOT_SENT, _TIMED_OUT or _DIED."""
        if self.process.poll() is not None:  # died while idle
            return _NOT_SENT
        self._next_id += 1
        request_id = self._next_id
        data = json.dumps({"id": request_id, "pairs": pairs}).encode("ascii") + b"\n"
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        stdin = self.process.stdin
        assert stdin is not None
        try:
            while view:  # an unbuffered pipe may take a long line in several writes
                written = stdin.write(view)
                view = view[written or 0 :]
        except (OSError, ValueError):  # broken pipe: the worker is gone
            return _NOT_SENT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _TIMED_OUT
            try:
                message = self.replies.get(timeout=remaining)
            except queue.Empty:
                return _TIMED_OUT
            if message is None:
                return _DIED
            if message.get("id") == request_id:
                return message

    def kill(self) -> None:
        """Kill the process (it may be stuck), reap it and close our ends of its pipes."""
        try:
            self.process.kill()
        except OSError:  # already gone
            pass
        try:
            self.process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not delivered yet
            logger.debug("math-verify worker %s did not exit after kill", self.process.pid)
        _close_quietly(self.process.stdin)  # stdout is closed by the reader thread


class _Slot:
    """A place for one worker process, used by one thread at a time."""

    def __init__(self) -> None:
        self._worker: _Worker | None = None

    def _start(self) -> None:
        if _exiting:
            raise SamplescaleError("the interpreter is exiting; no new math-verify worker")
        self._worker = _Worker()  # the process warms up in the background

    def _stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()

    def _ready_worker(self) -> _Worker:
        if self._worker is None:
            self._start()
        worker = self._worker
        assert worker is not None
        try:
            worker.wait_ready()
        except BaseException:
            self._worker = None  # wait_ready killed it
            raise
        return worker

    def pids(self) -> list[int]:
        worker = self._worker
        return [] if worker is None else [worker.process.pid]

    def run(self, pairs: tuple[tuple[str, str], ...], timeout: float) -> bool | None:
        """Verify ``pairs`` in the worker; None if it timed out or the worker died."""
        for _ in range(2):  # a worker that died while idle is replaced once
            reply = self._ready_worker().request(pairs, timeout)
            if reply is not _NOT_SENT:
                break
            self._stop()
        else:
            return None
        if reply is _TIMED_OUT:
            logger.warning("math-verify exceeded %.3g s; killing its worker process", timeout)
        elif reply is _DIED:
            logger.warning("the math-verify worker process died; replacing it")
        elif "error" in reply:
            logger.debug("math-verify raised in the worker: %s", reply["error"])
            return False
        else:
            return bool(reply.get("result"))
        self._stop()
        try:
            self._start()  # warm a replacement in the background
        except Exception:  # e.g. at interpreter exit; the next call starts one lazily
            logger.debug("could not start a replacement worker", exc_info=True)
        return None


_pool_lock = threading.Lock()
_free_slots: queue.LifoQueue[_Slot] | None = None
_all_slots: list[_Slot] = []
_exiting = False
_inherited_slots: list[_Slot] = []  # a forked child's copy of its parent's slots


def _slots() -> queue.LifoQueue[_Slot]:
    global _free_slots
    with _pool_lock:
        if _free_slots is None:
            free: queue.LifoQueue[_Slot] = queue.LifoQueue()
            for _ in range(_POOL_SIZE):
                slot = _Slot()
                _all_slots.append(slot)
                free.put(slot)
            _free_slots = free
            # A multiprocessing child ends with os._exit(), skipping atexit, but runs
            # multiprocessing's finalizers first.
            multiprocessing.util.Finalize(None, _shutdown_workers, exitpriority=100)
        return _free_slots


def _shutdown_workers() -> None:
    """Kill every worker process of this process (at exit)."""
    global _exiting
    _exiting = True
    for slot in list(_all_slots):
        slot._stop()


atexit.register(_shutdown_workers)


def _forget_workers_after_fork() -> None:
    """In a forked child, drop the parent's workers (they belong to the parent).

    The parent's objects are kept referenced, never closed or collected, so the child
    never touches the parent's pipes or processes.
    """
    global _pool_lock, _free_slots, _all_slots, _exiting
    _inherited_slots.extend(_all_slots)
    _pool_lock = threading.Lock()
    _free_slots = None
    _all_slots = []
    _exiting = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers_after_fork)


def _run_in_worker(pairs: tuple[tuple[str, str], ...], timeout: float) -> bool | None:
    free = _slots()
    slot = free.get()
    try:
        return slot.run(pairs, timeout)
    finally:
        free.put(slot)


def _worker_pids() -> list[int]:
    """Process ids of the running verification workers (for tests and debugging)."""
    return [pid for slot in list(_all_slots) for pid in slot.pids()]


# --------------------------------------------------------------------------------------
# Public equivalence API
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _decide(pred: str, gold: str, percent: bool, timeout: float, symmetric: bool) -> bool:
    """Equivalence of two canonical answers (see the module docstring)."""
    if not pred or not gold:
        return False
    if pred == gold:
        return True
    pred_number, gold_number = _parse_number(pred), _parse_number(gold)
    if pred_number is not None and gold_number is not None:
        return _numbers_equal(pred_number, gold_number, percent)
    pairs = _verification_pairs(gold, pred, percent)
    if symmetric:
        pairs += [p for p in _verification_pairs(pred, gold, percent) if p not in pairs]
    return bool(_run_in_worker(tuple(pairs), timeout))


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
    return _decide(_canonical(pred), _canonical(gold), percent, limit, False)


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
    return _decide(first, second, True, limit, True)
