"""The public examples of a code prompt: the calls and expected values a program can be
run on without the hidden tests (:mod:`samplescale.verifiers.code_select` runs them).

Two styles are read: doctest examples (``>>> f(2)`` followed by ``4``) and HumanEval's
one-line examples (``f(2) == 4``, ``f(2) => 4``, ``f(2) -> 4``, or an arrow character)
whose arguments and value are literals. Only examples that call the entry point count.
"""

from __future__ import annotations

import ast
import doctest
import re

Example = tuple[str, str]
"""One public example: the call's source and the expected value's source."""


def public_examples(code_prompt: str, entry_point: str | None) -> list[Example]:
    """The examples of ``code_prompt`` that call ``entry_point``, as ``(call, expected)``
    source pairs: its doctest examples (``>>> f(2)`` then ``4``), then one-line examples
    ``f(2) == 4``, ``f(2) => 4``, ``f(2) -> 4`` or with an arrow character, whose
    arguments and value are literals, not already found. Examples whose call or expected
    output is not a Python expression are skipped, and so is every example when
    ``entry_point`` is None."""
    if not entry_point:
        return []
    try:
        parsed = doctest.DocTestParser().get_examples(code_prompt)
    except ValueError:  # malformed doctest (inconsistent indentation)
        return []
    calls = re.compile(rf"\b{re.escape(entry_point)}\s*\(")
    examples = []
    for ex in parsed:
        call, want = ex.source.strip(), _before_docstring_end(ex.want)
        if not calls.search(call) or not want:
            continue
        try:  # unparsed again: comments dropped (``f(x)  # note`` would break the harness)
            call, want = (ast.unparse(ast.parse(x, mode="eval")) for x in (call, want))
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        examples.append((call, want))
    return examples + [e for e in _arrow_examples(code_prompt, entry_point) if e not in examples]


_ARROWS = ("==", "=>", "->", "\u279e", "\u2192")  # ==, =>, ->, heavy and plain right arrows


def _arrow_examples(code_prompt: str, entry_point: str) -> list[Example]:
    """One-line examples ``f(x) == y`` / ``f(x) => y`` / ``f(x) -> y`` / ``f(x) \u279e y``
    (HumanEval's other example styles) whose arguments and expected value are literals."""
    pattern = re.compile(
        rf"^\s*(?:>>>\s*)?({re.escape(entry_point)}\s*\(.*\))\s*"
        rf"(?:{'|'.join(map(re.escape, _ARROWS))})\s*(.+?)\s*$"
    )
    examples = []
    for line in code_prompt.splitlines():
        m = pattern.match(line)
        if m is None:
            continue
        call, want = m.group(1), m.group(2).rstrip(".,;")
        if _literal_call(call) and _literal(want):
            examples.append((ast.unparse(ast.parse(call, mode="eval")), want))
    return examples


def _literal(source: str | ast.expr) -> bool:
    try:
        ast.literal_eval(source)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _literal_call(source: str) -> bool:
    """True if ``source`` is one call whose arguments are all literals (``f([1, 2], k=3)``,
    not ``f(n)``: prompts state definitions like ``fib(n) -> fib(n-1) + ...`` this way)."""
    try:
        node = ast.parse(source, mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return isinstance(node, ast.Call) and all(
        _literal(a) for a in [*node.args, *(k.value for k in node.keywords)]
    )


def _before_docstring_end(want: str) -> str:
    """An expected output up to the line that closes the docstring (doctest reads the
    output up to a blank line, so a docstring's closing quotes right after the last
    example's output would otherwise be part of it)."""
    lines = []
    for line in want.splitlines():
        if line.strip().startswith(('"""', "'''")):
            break
        lines.append(line)
    return "\n".join(lines).strip()


def called_function(text: str) -> str | None:
    """The name of the function called by the first doctest example of ``text`` (the
    entry point of a prompt that shows ``>>> f(...)`` examples), or None."""
    try:
        parsed = doctest.DocTestParser().get_examples(text)
    except ValueError:
        return None
    for ex in parsed:
        try:
            node = ast.parse(ex.source.strip(), mode="eval").body
        except SyntaxError:
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return node.func.id
    return None
