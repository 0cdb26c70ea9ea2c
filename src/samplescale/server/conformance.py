"""OpenAI request fields that this server does not implement, accepted where the value sent
changes nothing and refused by name otherwise.

Clients send standard fields with their neutral values as a matter of course (langchain's
``response_format: {"type": "text"}``, ``tool_choice: "none"``, ``store: false``,
``parallel_tool_calls``, ``metadata``). Refusing those breaks clients for nothing;
ignoring a value that changes the answer (a JSON schema, tools to call, a reasoning
effort) would silently return something else than asked. So each field below has the
values that change nothing; any other value is a 400 that names the field and says it is
not supported. Sources: OpenAI's API reference for ``POST /v1/chat/completions`` and
``POST /v1/completions``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from samplescale.server.schemas import APIError


def _is(*values: Any) -> Callable[[Any], bool]:
    return lambda v: any(v == x and type(v) is type(x) for x in values)


def _empty(v: Any) -> bool:
    return v == [] or v == {}


def _strings_map(v: Any) -> bool:  # metadata: up to 16 string pairs (OpenAI's limits)
    return (
        isinstance(v, dict) and len(v) <= 16
        and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())
    )


def _string(v: Any) -> bool:
    return isinstance(v, str)


#: field -> (test of a neutral value, the neutral values in words)
NEUTRAL: dict[str, tuple[Callable[[Any], bool], str]] = {
    "response_format": (lambda v: v == {"type": "text"}, '{"type": "text"}'),
    "tool_choice": (_is("none"), '"none" (tools are not supported)'),
    "tools": (_empty, "an empty list (tools are not supported)"),
    "functions": (_empty, "an empty list (functions are not supported)"),
    "function_call": (_is("none"), '"none"'),
    "parallel_tool_calls": (_is(True, False), "true or false (no tools are called)"),
    "store": (_is(False), "false (this server stores nothing)"),
    "metadata": (_strings_map, "a map of at most 16 string keys to strings"),
    "service_tier": (_is("auto", "default"), '"auto" or "default"'),
    "modalities": (lambda v: v == ["text"], '["text"]'),
    "prompt_cache_key": (_string, "a string"),
    "safety_identifier": (_string, "a string"),
}


def check_neutral_fields(fields: dict[str, Any], sampling: set[str]) -> None:
    """Refuse every field of ``fields`` that is neither a sampling field nor neutral.

    Parameters
    ----------
    fields : dict
        The request's fields beyond those the server declares (its extra fields).
    sampling : set of str
        The sampling fields the server maps onto ``SamplingParams``.

    Raises
    ------
    APIError
        400 naming the first field whose value is not neutral (with the values accepted)
        or that the server does not know.
    """
    for name in sorted(set(fields) - sampling):
        value = fields[name]
        rule = NEUTRAL.get(name)
        if rule is None:
            raise APIError(
                400, f"{name}: unknown or unsupported field; this server does not implement it",
                param=name,
            )
        test, words = rule
        if not test(value):
            kind = value.get("type") if isinstance(value, dict) else None
            shown = f"type {kind!r}" if isinstance(kind, str) else _show(value)
            raise APIError(
                400, f"{name}: {shown} is not supported by this server; accepted: {words}",
                param=name,
            )


def _show(value: Any) -> str:
    """``repr(value)``, or its start and the count of characters cut (never mid-word)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60].rsplit(' ', 1)[0]} ... ({len(text)} chars)"

