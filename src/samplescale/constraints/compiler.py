"""A :class:`~samplescale.config.Constraint` compiled into an llguidance matcher.

JSON is generated in one canonical layout (``", "`` between items, ``": "`` after keys,
no other whitespace), so a model cannot spend its tokens on endless whitespace. The
compile runs under llguidance's resource limits (grammar size, lexer states, parser work
per token), so hostile input (huge enums, deeply recursive or enormous schemas) fails with
an error in bounded time instead of exhausting the machine; a constraint whose language is
empty (an impossible schema) is refused before any token is drawn.
"""

from __future__ import annotations

import json
from typing import Any

from samplescale.config import Constraint
from samplescale.constraints.library import llguidance
from samplescale.errors import ConfigError

#: llguidance's JSON options: one layout, no free whitespace
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}

#: resource limits of one compile and one mask step (llguidance's defaults, a smaller grammar)
MAX_GRAMMAR_SIZE = 200_000
MAX_LEXER_STATES = 100_000


def _limits() -> Any:
    return llguidance().LLParserLimits(
        max_grammar_size=MAX_GRAMMAR_SIZE, max_lexer_states=MAX_LEXER_STATES, verbose_errors=False
    )


def grammar_text(constraint: Constraint) -> str:
    """llguidance's grammar for ``constraint`` (not yet checked against a vocabulary).

    Raises
    ------
    ConfigError
        If a JSON schema's source is not JSON text of an object or a boolean.
    """
    llg = llguidance()
    kind = constraint.kind
    if kind == "regex":
        return str(llg.LLMatcher.grammar_from_regex(constraint.source))
    if kind == "grammar":
        return str(llg.LLMatcher.grammar_from_lark(constraint.source))
    schema: Any = {"type": "object"}
    if kind == "json_schema":
        try:
            schema = json.loads(constraint.source)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"constraint json_schema: the schema is not valid JSON ({exc})") from None
        except RecursionError:
            raise ConfigError("constraint json_schema: the schema is nested too deeply") from None
        if not isinstance(schema, (dict, bool)):
            raise ConfigError(
                f"constraint json_schema: a schema is a JSON object or boolean, got {type(schema).__name__}"
            )
    options = {**JSON_OPTIONS, "lenient": not constraint.strict}
    return str(llg.LLMatcher.grammar_from_json_schema(schema, overrides=options))


def check_constraint(constraint: Constraint) -> None:
    """Check ``constraint`` without a vocabulary (syntax, schema keywords, satisfiability
    that the schema alone decides, resource limits): the check a server makes before it
    queues a request.

    Raises
    ------
    ConfigError
        Naming the constraint's kind and llguidance's reason.
    """
    llg = llguidance()
    message = llg.LLMatcher.validate_grammar(grammar_text(constraint), None, limits=_limits())
    if message and not message.startswith("WARNING"):
        raise ConfigError(f"constraint {constraint.kind}: {_first_line(message)}")


def compile_matcher(constraint: Constraint, tokenizer: Any) -> Any:
    """A fresh llguidance ``LLMatcher`` of ``constraint`` over ``tokenizer``'s vocabulary;
    copy it (``deep_copy``) for each sequence.

    Raises
    ------
    ConfigError
        Naming the constraint's kind and llguidance's reason, if the constraint is invalid
        (syntax, an unsupported keyword under ``strict``, a resource limit exceeded) or
        accepts no text at all.
    """
    llg = llguidance()
    grammar = grammar_text(constraint)
    limits = _limits()
    bad, messages = llg.LLMatcher.validate_grammar_with_warnings(grammar, tokenizer, limits=limits)
    if bad:
        raise ConfigError(f"constraint {constraint.kind}: {_first_line(messages[0])}")
    matcher = llg.LLMatcher(tokenizer, grammar, log_level=0, limits=limits)
    if matcher.is_error():
        raise ConfigError(f"constraint {constraint.kind}: {_first_line(matcher.get_error())}")
    probe = matcher.deep_copy()
    if not any(probe.compute_bitmask()) or probe.is_error():
        raise ConfigError(
            f"constraint {constraint.kind}: no text satisfies it over this model's vocabulary "
            "(no token can start it)"
        )
    return matcher


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "invalid"
    return line if len(line) <= 300 else line[:297] + "..."
