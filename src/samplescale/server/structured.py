"""Structured outputs: a chat request's ``response_format`` as a constraint.

``{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}, "strict": true}}``
constrains every sample to a JSON value valid under the schema (a token mask, so every
complete reply parses and validates); ``strict: true`` makes a schema keyword that cannot
be enforced a 400 (OpenAI's guarantee), ``strict`` false or absent ignores such keywords.
``{"type": "json_object"}`` constrains to any JSON object; ``{"type": "text"}`` to nothing.
A strategy's answers are then the parsed JSON values, so self-consistency votes on values,
not on the way they are written.
"""

from __future__ import annotations

import dataclasses
import json
import operator

from samplescale.config import Constraint
from samplescale.constraints.compiler import check_constraint
from samplescale.errors import ConfigError, MissingDependencyError
from samplescale.server.schemas import APIError, ResponseFormat
from samplescale.strategies.base import Strategy
from samplescale.verifiers.extract import extract_answer
from samplescale.verifiers.structured import constrained_answer

FIELD = "response_format"


def constraint_of(fmt: ResponseFormat) -> Constraint | None:
    """The constraint ``fmt`` asks for (None for ``text``), checked.

    Raises
    ------
    APIError
        400 naming ``response_format`` (or its ``json_schema.schema``) when the schema is
        missing, invalid, unsatisfiable, uses a keyword that cannot be enforced under
        ``strict``, exceeds the compile limits, or when this server has no llguidance.
    """
    if fmt.type == "text":
        return None
    if fmt.type == "json_object":
        constraint = Constraint(kind="json_object")
    else:
        spec = fmt.json_schema
        if spec is None or spec.schema_ is None:
            field = f"{FIELD}.json_schema" + ("" if spec is None else ".schema")
            raise APIError(400, f"{field}: required for type json_schema", param=field)
        constraint = Constraint(
            kind="json_schema", source=json.dumps(spec.schema_), strict=bool(spec.strict)
        )
    try:
        check_constraint(constraint)
    except MissingDependencyError as exc:
        raise APIError(400, f"{FIELD}: not available on this server ({exc})", param=FIELD) from exc
    except ConfigError as exc:
        raise APIError(400, f"{FIELD}: {exc}", param=FIELD) from exc
    return constraint


def for_constraint(strategy: Strategy, constraint: Constraint) -> Strategy:
    """``strategy`` reading answers as the constraint's values (parsed JSON, compared
    exactly) when it uses the default math answer extraction; otherwise unchanged."""
    if strategy.extract is not extract_answer:
        return strategy
    return dataclasses.replace(
        strategy, extract=constrained_answer(constraint), equivalent=operator.eq
    )
