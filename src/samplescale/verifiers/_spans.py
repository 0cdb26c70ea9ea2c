r"""Where a final answer can be in a completion: run-on cuts and LaTeX math spans.

Private helpers of :mod:`samplescale.verifiers.extract`; they locate text and never
interpret LaTeX (math-verify's parser does that, in the worker process):

* :func:`cut_run_on` cuts a completion where it runs on into a new turn (a chat
  template's turn token, or a new ``Question:`` / ``User:`` line after a stated
  answer): the answer is the one given before the run-on. Source: Math-Verify's regression tests
  (``tests/test_all.py::test_math_extraction_edge_cases``, outputs ending in
  ``<|im_start|>user``) and GSM8K few-shot completions that go on with a new
  ``Question: ... #### N``.
* :func:`math_spans` lists the LaTeX math spans ``$...$`` (one line), ``$$...$$``,
  ``\(...\)`` and ``\[...\]``, and bare fractions ``\frac{10}{9}``, the spans
  math-verify's LaTeX extraction reads (``math_verify.parser.make_latex_env_pattern``),
  skipping spans that are prose between two currency signs (``$5 each and $``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["cut_run_on", "math_spans"]

_TURN_RE = re.compile(
    r"<\|(?:im_start|im_end|endoftext|eot_id|start_header_id|end_of_text|user|assistant)\|>"
    r"|</s>|<end_of_turn>|<start_of_turn>"
)
_NEW_QUESTION_RE = re.compile(
    r"\n[ \t]*(?:#{1,4}[ \t]*)?(?:Question|Problem|User|Human|Q)[ \t]*\d*[ \t]*:"
)


def cut_run_on(text: str, states_answer: Callable[[str], bool]) -> str:
    """``text`` without what follows its answer into a new turn.

    The text is cut at the first chat-template turn token (``<|im_start|>``,
    ``<|eot_id|>``, ``</s>``, ...) that follows some content, and then at the first new
    ``Question:`` / ``Problem:`` / ``User:`` line if the text before it
    ``states_answer`` (so a completion that restates the problem mid-way is kept whole).
    """
    for m in _TURN_RE.finditer(text):
        if text[: m.start()].strip():
            text = text[: m.start()]
            break
    for m in _NEW_QUESTION_RE.finditer(text):
        if states_answer(text[: m.start()]):
            return text[: m.start()]
    return text


_SPAN_RE = re.compile(
    r"(?<!\\)\$\$(?P<a>(?:[^$]|\$(?!\$))+?)(?<!\\)\$\$"
    r"|(?<!\\)\\\[(?P<b>(?:[^\\]|\\(?![\[\]]))+?)\\\]"
    r"|(?<![\\\d$])\$(?P<c>(?:\\\$|[^\n$])+?)(?<!\\)\$"
    r"|(?<!\\)\\\((?P<d>(?:[^\\]|\\(?![()]))+?)\\\)"
    r"|(?P<e>-?\\[dtc]?frac\{-?\d+(?:\.\d+)?\}\{-?\d+(?:\.\d+)?\})",
)
_TEXT_COMMAND_RE = re.compile(r"\\(?:text\w*|mathrm|mbox|operatorname)\s*\{[^{}]*\}")
_PROSE_RE = re.compile(r"[A-Za-z]{3,}[\s,.]+[A-Za-z]{3,}")


def math_spans(text: str) -> list[tuple[int, int, str]]:
    """The LaTeX math spans of ``text``, in order: (start, end, content stripped).

    A ``$...$`` span whose content reads as prose (two words of three or more letters in
    a row outside ``\\text{}``) lies between two currency amounts and is skipped.
    """
    spans = []
    for m in _SPAN_RE.finditer(text):
        content = next(g for g in m.groups() if g is not None).strip()
        if not content:
            continue
        if m.group("c") is not None and _PROSE_RE.search(_TEXT_COMMAND_RE.sub(" ", content)):
            continue
        spans.append((m.start(), m.end(), content))
    return spans
