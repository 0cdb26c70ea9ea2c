r"""Final-answer extraction from model completions and gold solutions.

:func:`extract_answer` reads the final answer out of a model completion (or out of a
gold solution such as GSM8K's ``... #### 72``), for self-consistency voting, best-of-N
and pass@k evaluation. After cutting a completion that runs on into a new turn, it
tries five rules in order, the first one that finds something wins: the last group of
``\boxed{...}`` (several boxes are one multi-part answer), the last ``#### X`` line,
the last "answer is X" / "answer: X" phrase, the last bold ``**X**`` with a digit, and
the last LaTeX math span or number (see :func:`extract_answer`, the one place that
documents the precedence). The answer is returned as a string; math-verify's parser
reads it into a math object when :func:`samplescale.verifiers.math.is_equivalent`
compares it.

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
from samplescale.verifiers._answer_text import (
    _QUOTES,
    _drop_hedge,
    _drop_trailing_words,
    _is_sentence,
    _last_side_if_arithmetic,
    _looks_like_answer,
    _not_the_value,
    _tidy,
    _unevaluated,
    _unquote,
)
from samplescale.verifiers._latex import (
    _BOX_JOINER_RE,
    _MINUS_SIGNS,
    _boxes,
    _last_boxed,
    _strip_text_wrapper,
)
from samplescale.verifiers._spans import cut_run_on, math_spans

__all__ = ["extract_answer", "sample_answer"]

# --------------------------------------------------------------------------------------
# extract_answer
# --------------------------------------------------------------------------------------

_HASH_RE = re.compile(r"####[ \t]*(?=[-+$.\d\u2212]|\\(?:[dt]?frac|\$))([^\n]*)")
_PHRASE_RE = re.compile(
    r"\banswer\b(?:\s*\*{1,2})?\s*(?:\bis\b\s*:?|:|=)",
    re.IGNORECASE,
)
_PHRASE_WINDOW = 2000  # characters read after an answer phrase
# the value(s) a negated or relative phrase names: "not 15", "near to 2, 5", "near to $2$"
_NAMED_VALUE = r"\d(?:[\d.,/]*\d)?%?"
_NAMED_VALUES_RE = re.compile(rf"{_NAMED_VALUE}(?:\s*,\s*-?{_NAMED_VALUE})*(?:\$|\\\)|\*\*)*")
_SENTENCE_END_RE = re.compile(r"\.(?=[\"'\u201d\u2019)\]]*(?:\s|$))")
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


@functools.lru_cache(maxsize=8)  # read by the phrase rule, then by the last-number rule
def _phrases(text: str) -> tuple[tuple[int, int, str], ...]:
    """Each "answer is X" phrase, the last first: its span (phrase and ``X``) and ``X``.
    The span of a negated or relative ``X`` (``"not 15 but 16"``, ``"near to 2, 5"``)
    ends after the value(s) it names."""
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
        start = m.end() + len(raw) - len(window)
        answer = _last_side_if_arithmetic(_drop_hedge(_drop_trailing_words(_unquote(tail))))
        named = _NAMED_VALUES_RE.search(tail) if _not_the_value(answer) else None
        yield m.start(), start + (named.end() if named else len(tail)), answer


def _rule_phrase(text: str) -> str | None:
    for _, _, answer in _phrases(text):
        # a repeated phrase; "the answer is not 15"; an echoed hint "... is near to 2"
        if re.search(r"\banswer\b", answer, re.IGNORECASE) or _not_the_value(answer):
            continue
        if _is_sentence(answer):  # "The volume of $V$ is 120" -> "120"
            answer = _stated_value(answer) or answer
        if _looks_like_answer(answer) and not _unevaluated(answer):
            return answer
    return None


def _without_non_answers(text: str) -> str:
    """``text`` with every "answer is X" whose ``X`` is uncomputed arithmetic, negated or
    relative, and every negated or relative bold ``**X**``, blanked out: the operands of a
    restated question, ``15`` in "the answer is not 15" and ``2`` in an echoed hint "the
    answer is near to 2" are not answers for the last-number rule."""
    spans = sorted(
        [(a, b) for a, b, answer in _phrases(text)
         if _unevaluated(answer) or _not_the_value(answer)]
        + [m.span() for m in _BOLD_RE.finditer(text) if _not_the_value(_unquote(m.group(1)))]
    )
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
        if answer and not _unevaluated(answer) and not _not_the_value(answer):
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


_COPULA_RE = re.compile(r"(?:\b(?:is|are|was|were|equals|be)\b\s*:?|=)\s*", re.IGNORECASE)


def _stated_value(sentence: str) -> str | None:
    """The value a sentence ends by stating: what follows its last ``is`` / ``are`` /
    ``equals`` / ``=``, if that is at most three words with a number or math span
    (``"The volume of $V$ is 120"`` gives ``120``); else None (``"followed by the
    number 5"`` states nothing)."""
    copulas = list(_COPULA_RE.finditer(sentence))
    if not copulas:
        return None
    tail = sentence[copulas[-1].end() :]
    if len(tail.split()) > 3:
        return None
    value = _math_or_number(tail)
    return _last_side_if_arithmetic(value) if value else None


def _rule_math_or_number(text: str) -> str | None:
    return _math_or_number(_without_non_answers(text))


def _states_answer(text: str) -> bool:
    return any(rule(text) for rule in _STATED_RULES)


def extract_answer(text: str, *, last_number: bool = True) -> str | None:
    r"""Extract the final answer from a model completion or a gold solution.

    This docstring is the reference for the precedence (the README's "Grading" section
    summarises it). First, a completion that runs on past its answer into a new turn is cut
    there: at a chat-template turn token (``<|im_start|>``, ``<|eot_id|>``, ``</s>``,
    ...), and at a new ``Question:`` / ``Problem:`` / ``User:`` line if the text before
    it states an answer (rules a-d): ``"#### 18\n\nQuestion: ... #### 42"`` gives
    ``18``. Then the first rule that finds something wins:

    a. the LAST group of ``\boxed{...}`` / ``\fbox{...}``, read with balanced nested
       braces (``\boxed{\frac{1}{2}}`` gives ``\frac{1}{2}``; escaped ``\{`` and
       ``\}`` do not count). A box that is never closed or is empty is skipped. The
       short form ``\boxed 5`` is read up to the next whitespace or ``$``. **Several
       boxes** separated only by punctuation (``,`` ``;``), spacing (``\quad``), math
       delimiters and ``and`` / ``or`` (bare or in ``\text{}``) are one multi-part
       answer, joined with ``", "``: ``\boxed{(1, 2)}, \boxed{(2, 1)}`` gives
       ``(1, 2), (2, 1)``; boxes separated by any other text are not
       (``\boxed{5}. Wrong; it is \boxed{7}`` gives ``7``). A ``\text{...}`` (or
       ``\textbf``, ``\mathrm``, ``\mathbf``, ``\mbox``) wrapper around the whole
       content is removed: ``\boxed{\text{E}}`` gives ``E``. Minerva's ending
       ``"The final answer is X. I hope it is correct."`` *after* the last box wins
       over it (math-verify gives both the top priority and takes the later one);
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
       fraction ``3/4`` or a closed form ``3 + 2\sqrt{2}`` is kept). Hedge and filler
       words before a number that ends ``X`` or before a worked computation are dropped
       (``"probably 12"`` gives ``12``, ``"indeed 3 + 4 = 7"`` gives ``7``); other words
       are kept (``"negative 5"``, ``"less than 5"``). A phrase that states no value is
       skipped, and the value it names is no answer for rules d and e either: a negated
       one (``"The answer is not 15."``) and a relative one (``"near to 2"``, ``"close to
       12"``), which is how a reply echoes progressive-hint's ``"(Hint: The answer is
       near to 2.)"``; it is never read as ``2``. An ``X`` that is a sentence gives the
       value it ends by stating after ``is`` / ``are`` / ``equals`` / ``=`` (at most
       three words, read by rule e): ``"The volume of $V$ is 120"`` gives ``120``;
    d. the last bold ``**X**`` whose content contains a digit, ignoring headings (bold
       text ending in ``:`` or starting with "Step", "Part", "Case", ...), uncomputed
       arithmetic and negated or relative content (``**not 15**``, ``**near to 2**``);
    e. the last LaTeX math span or the last number, whichever ends later (math-verify's
       order for matches of equal priority). Math spans are ``$...$`` (one line),
       ``$$...$$``, ``\(...\)``, ``\[...\]`` and bare ``\frac{a}{b}``; a ``$...$``
       that reads as prose lies between two currency amounts and is no span. Spans
       joined like boxes are one multi-part answer (``$1$ and $2$`` gives ``1, 2``), a
       span holding a worked computation gives its result (``$5 \times 4 = 20$`` gives
       ``20``), and a span of uncomputed arithmetic is skipped. Numbers: integers,
       decimals (``.5`` too), negatives, thousands groups (``1,234``, ``1 000``), a
       decimal comma (``2,74``, not followed by exactly three digits), a fraction
       ``2/3``; a directly attached ``%`` / ``\%`` is kept. A lone ``,`` is not a
       number, and neither is an operand of a restated question
       (``"7 + 5 = 12. The answer is 7 + 5."`` gives ``12``; ``"The answer is 0 + 5."``
       gives None) nor a value that a negated or relative phrase or bold text names
       (``"The answer is not 15."`` gives None; ``"The answer is not 15 but 16."`` gives
       ``16``). ``"After solving, we get $\frac{1}{3}$"`` gives ``\frac{1}{3}``
       and ``"Therefore $x \geq 5$ is the solution."`` gives ``x \geq 5``.

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

    None for an error sample and for a cancelled one (``finish_reason="cancelled"``: stopped
    unfinished, so it has no final answer). A sample cut by ``max_tokens`` (``finish_reason="length"``)
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
    if sample.status != "ok" or sample.finish_reason == "cancelled":
        return None
    if sample.finish_reason == "length" and extract is extract_answer:
        return extract_answer(sample.text, last_number=False)
    return extract(sample.text)
