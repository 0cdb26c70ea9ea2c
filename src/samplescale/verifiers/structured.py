"""Answers of constrained (structured) samples: the parsed JSON value, or the whole text.

Self-consistency over JSON answers votes on the parsed value: ``{"a": 1, "b": 2}`` and
``{"b":2,"a":1}`` are one answer class. The answer string is the value's canonical JSON
(keys sorted, no whitespace), compared exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from samplescale.config import Constraint


def json_answer(text: str) -> str | None:
    """The canonical JSON of the value ``text`` holds, or None when it is not one JSON value.

    Examples
    --------
    >>> json_answer('{"b": 2, "a": [1, 2.0]}')
    '{"a":[1,2.0],"b":2}'
    >>> json_answer('{"a": 1') is None
    True
    """
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def text_answer(text: str) -> str | None:
    """The whole text, stripped of surrounding whitespace (None when empty)."""
    return text.strip() or None


def constrained_answer(constraint: Constraint) -> Callable[[str], str | None]:
    """The extractor for samples of ``constraint``: :func:`json_answer` for JSON kinds,
    :func:`text_answer` for regular expressions and grammars."""
    return json_answer if constraint.kind in ("json_schema", "json_object") else text_answer
