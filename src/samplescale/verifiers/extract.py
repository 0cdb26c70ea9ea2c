r"""Final-answer extraction from model completions and gold solutions.

:func:`extract_answer` reads the final answer out of a model completion (or out of a
gold solution such as GSM8K's ``... #### 72``), for self-consistency voting, best-of-N
and pass@k evaluation. It tries five rules in order, the first one that finds something
wins: the last ``\boxed{...}`` (balanced braces), the last ``#### X`` line, the last
"answer is X" / "answer: X" phrase, the last bold ``**X**`` with a digit, and the last
number in the text (see :func:`extract_answer` for the details of each rule).

Conventions
-----------
* For the ``####``, phrase and bold rules, surrounding markdown emphasis, math
  delimiters, ``\text{}`` wrappers and trailing punctuation are stripped, and a leading
  number followed by words is cut to the number (``"18 dollars"`` gives ``18``) unless
  the words are math (``and``, ``or``, ``pi``, ``sqrt``, ...). A boxed answer only loses
  a ``\text{}`` wrapper spanning all of it.
* Apart from that, the answer is returned as written (``"1,234"``, ``"29.00"``);
  normalisation is the job of :func:`samplescale.verifiers.math.is_equivalent`. A
  Unicode minus sign is returned as ``-``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator

from samplescale.errors import ConfigError
from samplescale.types import Sample
from samplescale.verifiers._latex import (
    _BOX_JOINER_RE,
    _MINUS_SIGNS,
    _WRAPPER_RE,
    _boxes,
    _delimiter_span,
    _last_boxed,
    _matching_braces,
    _strip_span,
    _strip_text_wrapper,
    _wrapper_span,
)
from samplescale.verifiers._spans import cut_run_on, math_spans
from samplescale.verifiers.numbers import _parse_number

__all__ = ["extract_answer", "sample_answer"]

# --------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------


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


_HEDGE_RE = re.compile(
    r"(?:(?:about|approximately|around|roughly|nearly|almost|probably|likely|maybe|exactly"
    r"|just|only|simply|actually|indeed|also|still|clearly|definitely|certainly|surely"
    r"|a\s+total\s+of|equal\s+to|the\s+number|the\s+value)\s+)+(?=[-+$\\.\d])"
)


def _drop_hedge(x: str) -> str:
    """``"probably 12"`` -> ``"12"``, ``"approximately 3.5 m"`` -> ``"3.5"``: hedge words
    (about, approximately, around, roughly, nearly, almost, probably, likely, maybe,
    exactly, just, only, simply, actually, indeed, also, still, clearly, definitely,
    certainly, surely, a total of, equal to, the number, the value) before a number that
    ends the answer (alone or followed by words) are not part of it. Any other word stays, since it can
    change the answer (``"negative 5"``, ``"not 5"``, ``"less than 5"``, ``"half of 10"``),
    and so does an expression (``"about 3 + 4"``)."""
    m = _HEDGE_RE.match(x)
    if m is None:
        return x
    rest = x[m.end() :]
    short = _drop_trailing_words(rest)
    return short if _LEADING_NUMBER_RE.fullmatch(short) and _parse_number(short) is not None else x


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


# --------------------------------------------------------------------------------------
# extract_answer
# --------------------------------------------------------------------------------------

_HASH_RE = re.compile(r"####[ \t]*(?=[-+$.\d\u2212]|\\(?:[dt]?frac|\$))([^\n]*)")
_PHRASE_RE = re.compile(
    r"\banswer\b(?:\s*\*{1,2})?\s*(?:\bis\b\s*:?|:|=)",
    re.IGNORECASE,
)
_PHRASE_WINDOW = 2000  # characters read after an answer phrase
_SENTENCE_END_RE = re.compile(r"\.(?=[\"'\u201d\u2019)\]]*(?:\s|$))")
_QUOTES = "\"'\u201c\u201d\u2018\u2019`"
_COMMA_PROSE_RE = re.compile(r",\s+(?!(?:and|or)\b)[A-Za-z]{2,}\b", re.IGNORECASE)
_CLOSING_QUOTE_RE = re.compile(r"[\"\u201d](?=\s|$)")  # 'The answer is 3," and it ...'
_BOLD_RE = re.compile(r"\*\*([^*\n]+?)\*\*")
_HEADING_RE = re.compile(r"(?:step|part|case|problem|solution|question|example)\b", re.I)
_LAST_NUMBER_RE = re.compile(
    r"(?:(?<![\w)\]}.])[-\u2212])?(?<![\w.])"
    r"(?:[1-9]\d{0,2}(?:,\d{3})+(?!\d|,\d)|[1-9]\d{0,2}(?:[ \u00a0]\d{3})+(?!\d|,\d)"
    r"|(?<![\d,])(?:0,\d+|[1-9]\d*,(?:\d{1,2}|\d{4,}))(?![\d,])|\d+)"
    r"(?:\.\d+)?(?:/[1-9]\d*(?!\d|[.,]\d))?(?!\d)(?:\\?%)?"
    r"|(?:(?<![\w)\]}.])[-\u2212])?(?<![\w.])\.\d+(?!\d)(?:\\?%)?"
)


_MINERVA_RE = re.compile(r"final\s+answer\s+is\s*:?\s*(.+?)\s*\.?\s*I\s+hope\b", re.I | re.S)


def _rule_boxed(text: str) -> str | None:
    boxes = _boxes(text)
    if not boxes:
        return None
    # Minerva's ending after the last box restates the final answer: it wins (as in
    # math-verify, where both have the top priority and the later match is taken)
    for m in reversed(list(_MINERVA_RE.finditer(text, boxes[-1][1]))):
        answer = _unquote(m.group(1).replace('\\"', '"'))
        if answer:
            return answer
    content = _last_boxed(text)
    return _strip_text_wrapper((content or "").translate(_MINUS_SIGNS)) or None


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


@functools.lru_cache(maxsize=8)  # read by the phrase rule, then by the last-number rule
def _phrases(text: str) -> tuple[tuple[int, int, str], ...]:
    """Each "answer is X" phrase, the last first: its span (phrase and ``X``) and ``X``."""
    return tuple(_read_phrases(text))


def _read_phrases(text: str) -> Iterator[tuple[int, int, str]]:
    for m in reversed(list(_PHRASE_RE.finditer(text))):
        raw = text[m.end() : m.end() + _PHRASE_WINDOW]
        window = raw.lstrip(_QUOTES + ": \t\r\n")
        tail = window.split("\n", 1)[0]
        for cut in (_SENTENCE_END_RE, _COMMA_PROSE_RE, _CLOSING_QUOTE_RE):
            end = cut.search(tail)
            if end is not None:
                tail = tail[: end.start()]
        stop = m.end() + len(raw) - len(window) + len(tail)
        answer = _drop_hedge(_drop_trailing_words(_unquote(tail)))
        yield m.start(), stop, _last_side_if_arithmetic(answer)


def _rule_phrase(text: str) -> str | None:
    for _, _, answer in _phrases(text):
        if re.search(r"\banswer\b", answer, re.IGNORECASE) or re.match(  # a repeated phrase
            r"not\b",
            answer,
            re.IGNORECASE,  # "the answer is not 15"
        ):
            continue
        if _is_sentence(answer):  # "The volume of $V$ is 120" -> "120"
            answer = _last_side_if_arithmetic(_math_or_number(answer) or answer)
        if _looks_like_answer(answer) and not _unevaluated(answer):
            return answer
    return None


def _without_restatements(text: str) -> str:
    """``text`` with every "answer is X" whose ``X`` is uncomputed arithmetic blanked out:
    the operands of a restated question are not answers for the last-number rule."""
    spans = sorted((a, b) for a, b, answer in _phrases(text) if _unevaluated(answer))
    if not spans:
        return text
    parts, at = [], 0
    for a, b in spans:  # spans may overlap (a phrase inside another's window)
        parts.append(text[at:a] if a > at else "")
        at = max(at, b)
        parts.append(" ")
    return "".join(parts) + text[at:]


def _rule_bold(text: str) -> str | None:
    for m in reversed(list(_BOLD_RE.finditer(text))):
        content = m.group(1).strip()
        if not re.search(r"\d", content) or content.endswith(":"):
            continue
        if _HEADING_RE.match(content):
            continue
        answer = _drop_trailing_words(_unquote(content))
        if answer and not _unevaluated(answer):
            return answer
    return None


def _math_or_number(text: str) -> str | None:
    """The last LaTeX math span or the last number, whichever ends later (as
    math-verify's extraction orders its matches of equal priority). Spans separated
    only by ``,``, ``;``, ``and``, ``or`` or spacing are one multi-part answer
    (``$1$ and $2$`` gives ``1, 2``), as boxes are."""
    numbers = list(_LAST_NUMBER_RE.finditer(text))
    number_end = numbers[-1].end() if numbers else -1
    spans = math_spans(text)
    while spans and spans[-1][1] >= number_end:
        group = [spans.pop()]
        while spans and _BOX_JOINER_RE.fullmatch(text, spans[-1][1], group[-1][0]):
            group.append(spans.pop())
        joined = ", ".join(content for _, _, content in reversed(group))
        answer = _last_side_if_arithmetic(_tidy(joined))
        if answer and not _unevaluated(answer):
            return answer
    return numbers[-1].group().translate(_MINUS_SIGNS) if numbers else None


def _rule_math_or_number(text: str) -> str | None:
    return _math_or_number(_without_restatements(text))


def _states_answer(text: str) -> bool:
    return any(rule(text) for rule in _STATED_RULES)


def extract_answer(text: str, *, last_number: bool = True) -> str | None:
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
       while an equation with a variable is kept whole (``"x = 5"``). Quotes around the
       phrase or the answer are dropped (``'End with "The answer is": 12'`` gives ``12``),
       and ``X`` ends at a closing double quote (``'The answer is 3," and so on'`` gives
       ``3``). A phrase is skipped when ``X`` repeats the phrase or is arithmetic on plain
       numbers left uncomputed (``"The answer is 1 + 8."`` restates the question; a
       fraction ``3/4`` or a closed form ``3 + 2\sqrt{2}`` is kept). Hedge words
       before a number that ends ``X`` are dropped (``"probably 12"`` gives ``12``); other
       words are kept (``"negative 5"``, ``"less than 5"``), and a negated phrase
       (``"The answer is not 15."``) is skipped;
    d. the last bold ``**X**`` whose content contains a digit, ignoring headings (bold
       text ending in ``:`` or starting with "Step", "Part", "Case", ...) and uncomputed
       arithmetic;
    e. the last number in the text: integers, decimals (``.5`` too), negatives, numbers
       with thousands commas (``1,234``); a directly attached ``%`` / ``\%`` is kept. A
       lone ``,`` is not a number, and neither is an operand of a restated question
       (``"7 + 5 = 12. The answer is 7 + 5."`` gives ``12``; ``"The answer is 0 + 5."``
       gives None).

    For rules b-d, a leading number followed by words is cut to the number
    (``"18 dollars"`` gives ``18``), unless the words are math (``and``, ``or``, ``pi``,
    ``sqrt``, ...). Apart from that, the answer is returned as written (``"1,234"``,
    ``"29.00"``); :func:`samplescale.verifiers.math.is_equivalent` does the normalisation. A Unicode minus sign is
    returned as ``-``.

    Parameters
    ----------
    text : str
        A model completion or a gold solution.
    last_number : bool
        Whether rule e applies. Without it only a stated answer counts (rules a-d); see
        :func:`sample_answer` for completions cut by ``max_tokens``.

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
    text = cut_run_on(text, _states_answer)
    rules = _STATED_RULES + (_rule_math_or_number,) if last_number else _STATED_RULES
    for rule in rules:
        answer = rule(text)
        if answer:
            return answer
    return None


_STATED_RULES: tuple[Callable[[str], str | None], ...] = (
    _rule_boxed,
    _rule_hash,
    _rule_phrase,
    _rule_bold,
)


def sample_answer(
    sample: Sample, extract: Callable[[str], str | None] = extract_answer
) -> str | None:
    """The final answer of one sample, as strategies and evaluations read it.

    None for an error sample. A sample cut by ``max_tokens`` (``finish_reason="length"``)
    never reached its end, so the last number of its text is an intermediate value, not
    an answer: with the default extractor only an answer it stated counts
    (``extract_answer(text, last_number=False)``). A custom ``extract`` reads every
    sample's text as it is.

    Parameters
    ----------
    sample : Sample
    extract : callable str -> str or None
        The extractor (default :func:`extract_answer`).

    Returns
    -------
    str or None
    """
    if sample.status != "ok":
        return None
    if sample.finish_reason == "length" and extract is extract_answer:
        return extract_answer(sample.text, last_number=False)
    return extract(sample.text)
