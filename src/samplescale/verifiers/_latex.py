r"""LaTeX text helpers shared by answer extraction, number parsing and equivalence.

Low-level string operations on answers written in LaTeX or markdown, used by
:mod:`samplescale.verifiers.extract`, :mod:`samplescale.verifiers.numbers` and
:mod:`samplescale.verifiers.math`:

* :func:`_matching_braces` pairs balanced ``{``/``}``; escaped ``\{`` and ``\}`` do not
  count;
* :func:`_last_boxed` reads the answer in the last group of complete, non-empty
  ``\boxed{...}`` / ``\fbox{...}`` (or the short form ``\boxed 5``): boxes separated
  only by punctuation, spacing and ``and`` / ``or`` form one multi-part answer;
* :func:`_strip_text_wrapper` removes ``\text{...}`` (``\textrm``, ``\textbf``,
  ``\mathrm``, ``\mathbf``, ``\mbox``) wrappers spanning a whole answer;
* :func:`_strip_math_delimiters` removes ``$...$``, ``$$...$$``, ``\(...\)``,
  ``\[...\]`` around an answer and a leading currency ``$``;
* :func:`_strip_span`, :func:`_wrapper_span` and :func:`_delimiter_span` are the same
  operations on a window ``text[lo:hi]`` given by indices, so that a caller repeating
  them (:func:`samplescale.verifiers.extract._tidy`) never copies or rescans the text;
* :data:`_MINUS_SIGNS` is a :meth:`str.translate` table mapping the Unicode minus sign
  and the en dash to ``-``.

All names are private to :mod:`samplescale.verifiers`; none of them raises on any str,
and each runs in time linear in the length of its input, however deeply wrappers nest
(``\text{\text{...}}`` is matched once, not rescanned per level).
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


_BOX_JOINER_RE = re.compile(
    r"(?:\s|[$,;&~]|\\[()\[\],;:!~ ]|\\\\|\\q?quad\b|\b(?:and|or)\b"
    r"|\b[A-Za-z](?:_\{?\w+\}?)?\s*="
    r"|\\(?:text|textrm|mbox|mathrm)\s*\{\s*,?\s*(?:and|or)?\s*,?\s*\})*"
)


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """Every complete, non-empty ``\\boxed{...}`` / ``\\fbox{...}``: (start, end, content)."""
    found: list[tuple[int, int, str]] = []
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return found
    pairs = _matching_braces(text)
    for m in matches:
        j = m.end()
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            end = pairs.get(j)
            if end is None:  # unterminated (e.g. a truncated completion)
                continue
            content, stop = text[j + 1 : end].strip(), end + 1
        else:  # short form "\boxed 5": one token, up to whitespace or "$"
            short = _SHORT_BOX_RE.match(text, m.end())
            if short is None or _BOX_RE.match(short.group(1)):
                continue
            content, stop = short.group(1), short.end()
        if content and not (found and m.start() < found[-1][1]):  # a box inside a box
            found.append((m.start(), stop, content))
        elif content and found and _BOX_RE.match(found[-1][2]) is not None:
            found[-1] = (found[-1][0], found[-1][1], content)  # "\boxed{\boxed{9}}"
    return found


def _last_boxed(text: str) -> str | None:
    """The answer in the last group of boxes, or None if there is no complete box.

    A group is a run of boxes separated only by whitespace, punctuation (``,`` ``;``),
    math delimiters, spacing commands (``\\quad``, ``\\,``), the words ``and`` /
    ``or`` (bare or in ``\\text{}``) and a variable name with ``=`` (``x = \\boxed{2}
    \\text{ or } x = \\boxed{3}``): ``\\boxed{(1, 2)}, \\boxed{(2, 1)}`` gives
    ``(1, 2), (2, 1)``, while ``\\boxed{5}. Wrong; it is \\boxed{7}`` gives ``7``. The
    contents of a group are joined with ``", "``: several boxes are one multi-part answer.
    """
    boxes = _boxes(text)
    if not boxes:
        return None
    group = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        if _BOX_JOINER_RE.fullmatch(text, box[1], group[-1][0]) is None:
            break
        group.append(box)
    return ", ".join(content for _, _, content in reversed(group))


def _strip_span(
    text: str, lo: int, hi: int, chars: str | None = None, *, left: bool = True
) -> tuple[int, int]:
    """The window of ``text[lo:hi].strip(chars)`` (whitespace if ``chars`` is None).

    With ``left=False`` only the right end is stripped, as :meth:`str.rstrip`.
    """
    if chars is None:
        while left and lo < hi and text[lo].isspace():
            lo += 1
        while hi > lo and text[hi - 1].isspace():
            hi -= 1
    else:
        while left and lo < hi and text[lo] in chars:
            lo += 1
        while hi > lo and text[hi - 1] in chars:
            hi -= 1
    return lo, hi


def _wrapper_span(
    text: str, lo: int, hi: int, pairs: dict[int, int] | None = None
) -> tuple[int, int]:
    """The window of :func:`_strip_text_wrapper` applied to ``text[lo:hi]``.

    ``pairs`` is ``_matching_braces(text)`` if the caller has it (computed here, once,
    otherwise). It is valid for any window that starts where the scan of ``text`` from
    index 0 is not inside an escape (``\\{``), which holds for every window the helpers
    of this module produce: a brace opened inside the window is matched inside it
    exactly when its match in ``text`` lies before ``hi``.
    """
    while True:
        lo, hi = _strip_span(text, lo, hi)
        m = _WRAPPER_RE.match(text, lo, hi)
        if m is None:
            return lo, hi
        if pairs is None:
            pairs = _matching_braces(text)
        end = pairs.get(m.end() - 1)
        if end != hi - 1:
            return lo, hi
        lo, hi = m.end(), end


def _strip_text_wrapper(s: str) -> str:
    """Remove ``\\text{...}`` (``\\textbf``, ``\\mathrm``, ...) wrappers spanning all of ``s``.

    Nested wrappers are all removed (``\\text{\\textbf{5}}`` gives ``5``), in one scan of
    ``s``: linear time however deep the nesting.
    """
    lo, hi = _wrapper_span(s, 0, len(s))
    return s[lo:hi]


_MATH_AFTER_RE = re.compile(r"[\d$\\]")


def _delimiter_span(text: str, lo: int, hi: int) -> tuple[int, int]:
    """The window of :func:`_strip_math_delimiters` applied to ``text[lo:hi]``."""
    for open_, close in (("$$", "$$"), ("\\(", "\\)"), ("\\[", "\\]"), ("$", "$")):
        if (
            text.startswith(open_, lo, hi)
            and text.endswith(close, lo, hi)
            and hi - lo >= len(open_) + len(close)
        ):
            inner_lo, inner_hi = lo + len(open_), hi - len(close)
            if text.find("$", inner_lo, inner_hi) == -1:
                return _strip_span(text, inner_lo, inner_hi)
    if text.startswith("\\$", lo, hi):
        return _strip_span(text, lo + 2, hi)
    if text.startswith("$", lo, hi):
        end = text.find("$", lo + 1, hi)
        if end == -1:  # a currency sign: "$29.00"
            return _strip_span(text, lo + 1, hi)
        # "$\frac{1}{2}$ of the cake" -> "\frac{1}{2}" (only if no more math follows)
        if _MATH_AFTER_RE.search(text, end + 1, hi) is None:
            return _strip_span(text, lo + 1, end)
    return lo, hi


def _strip_math_delimiters(s: str) -> str:
    """Remove math delimiters around ``s`` and a leading currency ``$``."""
    lo, hi = _delimiter_span(s, 0, len(s))
    return s if (lo, hi) == (0, len(s)) else s[lo:hi]
