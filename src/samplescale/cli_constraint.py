"""``generate``'s constraint flags: ``--json-schema FILE``, ``--regex PATTERN``,
``--grammar FILE`` (at most one), read into a :class:`~samplescale.config.Constraint`."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError

from samplescale.config import Constraint, SamplingParams
from samplescale.errors import ConfigError


def add_constraint_args(parser: argparse.ArgumentParser) -> None:
    """Add the three constraint flags to ``parser``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--json-schema", type=Path, default=None, metavar="FILE",
        help="constrain every sample to a JSON value valid under the JSON Schema in FILE "
        "(extra 'constraints'; the default strategy then votes on the parsed JSON value)",
    )
    group.add_argument(
        "--regex", default=None, metavar="PATTERN",
        help="constrain every sample to a string fully matching the regular expression",
    )
    group.add_argument(
        "--grammar", type=Path, default=None, metavar="FILE",
        help="constrain every sample to the Lark grammar in FILE (rule 'start')",
    )


def _read(flag: str, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{flag} {path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{flag} {path} is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: {exc.strerror}") from None


def constraint_from_args(args: argparse.Namespace) -> Constraint | None:
    """The constraint the flags ask for, or None.

    Raises
    ------
    ConfigError
        If a file is missing or not UTF-8, or a value is empty or too long (naming the flag).
    """
    kind, flag, source = None, "", ""
    if args.json_schema is not None:
        kind, flag, source = "json_schema", "--json-schema", _read("--json-schema", args.json_schema)
    elif args.regex is not None:
        kind, flag, source = "regex", "--regex", args.regex
    elif args.grammar is not None:
        kind, flag, source = "grammar", "--grammar", _read("--grammar", args.grammar)
    if kind is None:
        return None
    if not source.strip():
        raise ConfigError(f"{flag} must not be empty")
    try:
        return Constraint.model_validate({"kind": kind, "source": source})
    except ValidationError as exc:
        raise ConfigError(f"{flag}: {exc.errors()[0]['msg']}") from None


def with_constraint(params: SamplingParams, args: argparse.Namespace) -> SamplingParams:
    """``params`` with the flags' constraint (unchanged without one)."""
    c = constraint_from_args(args)
    return params if c is None else params.replace(constraint=c)
