r"""LaTeX text helpers shared by answer extraction, number parsing and equivalence.

Low-level string operations on answers written in LaTeX or markdown, used by
:mod:`samplescale.verifiers.extract`, :mod:`samplescale.verifiers.numbers` and
:mod:`samplescale.verifiers.math`:

* :func:`_matching_braces` pairs balanced ``{``/``}``; escaped ``\{`` and ``\}`` do not
  count;
* :func:`_last_boxed` reads the content of the last complete, non-empty ``\boxed{...}``
  or ``\fbox{...}`` (or the short form ``\boxed 5``);
* :func:`_strip_text_wrapper` removes ``\text{...}`` (``\textrm``, ``\textbf``,
  ``\mathrm``, ``\mathbf``, ``\mbox``) wrappers spanning a whole answer;
* :func:`_strip_math_delimiters` removes ``$...$``, ``$$...$$``, ``\(...\)``,
  ``\[...\]`` around an answer and a leading currency ``$``;
* :data:`_MINUS_SIGNS` is a :meth:`str.translate` table mapping the Unicode minus sign
  and the en dash to ``-``.

All names are private to :mod:`samplescale.verifiers`; none of them raises on any str.
"""

from __future__ import annotations

import re

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
