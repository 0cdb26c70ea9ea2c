"""The sampling and strategy flags ``eval`` and ``generate`` share, and what they build:
``SamplingParams``, the backend, and the strategy with its ``--option`` values."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from samplescale.cli_backend import add_backend_args, make_backend
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, SamplescaleError

DEFAULT_TEMPERATURE = 0.8

EXTRA_SAMPLER_FLAGS = (
    ("--typical-p", float, "locally typical sampling mass in [0, 1]; 1 = off"),
    ("--epsilon", float, "epsilon sampling threshold in [0, 1); 0 = off"),
    ("--eta", float, "eta sampling parameter in [0, 1); 0 = off"),
    ("--top-n-sigma", float, "top-n-sigma: keep logits >= max - n*std; off by default"),
    ("--repetition-penalty", float, "CTRL repetition penalty in (0, 100]; 1 = off"),
    ("--presence-penalty", float, "presence penalty in [-2, 2]; 0 = off"),
    ("--frequency-penalty", float, "frequency penalty in [-2, 2]; 0 = off"),
    ("--fire-temperature", float, "FIRE: temperature of the first --fire-tokens tokens"),
    ("--fire-tokens", int, "FIRE: length of the hot prefix in tokens (default 1)"),
    ("--kl-sigma", float, "KL-guided temperature: nats of KL that halve it (needs --grounding)"),
)


def add_task_args(p: argparse.ArgumentParser) -> None:
    """Add the task, output and error flags that ``eval`` and ``synth`` share to ``p``."""
    p.add_argument(
        "--task",
        default="arithmetic",
        help="arithmetic, gsm8k, math, jsonl, or code: humaneval, mbpp, code-jsonl "
        "(+ -completion for completion prompting) (default arithmetic)",
    )
    p.add_argument("--data", type=Path, default=None, help="data file of a file task (.jsonl[.gz])")
    p.add_argument(
        "--level", type=int, default=None, help="arithmetic task: level 1-3 (default 1)"
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="number of problems (arithmetic default 50; files: all)",
    )
    p.add_argument(
        "--output",
        type=str,
        default=None,
        help="output directory (default runs/<settings>); resumes if it holds the same run",
    )
    p.add_argument(
        "--question-field", default=None, help="jsonl task: question field (default question)"
    )
    p.add_argument(
        "--answer-field", default=None, help="jsonl task: answer field (default answer)"
    )
    p.add_argument(
        "--on-error",
        choices=("record", "stop"),
        default="record",
        help="a problem that cannot be run (longer than the context, invalid text, a "
        "verifier failure): record it as an error, counted as wrong, and go on "
        "(default), or stop the run",
    )


def add_sampling_args(p: argparse.ArgumentParser, n_flags: tuple[str, ...], n_default: int) -> None:
    """Add the sampler, budget, backend, strategy and speculative flags to ``p``."""
    p.add_argument(
        *n_flags,
        dest="n",
        type=int,
        default=n_default,
        help=f"samples per problem/prompt (default {n_default})",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=DEFAULT_TEMPERATURE,
        help="0 = greedy (default %(default)s)",
    )
    p.add_argument("--top-k", type=int, default=0, help="0 or -1 = off (default 0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus mass in [0, 1]; 1 = off")
    p.add_argument("--min-p", type=float, default=0.0, help="min-p in [0, 1]; 0 = off")
    for flag, kind, what in EXTRA_SAMPLER_FLAGS:
        p.add_argument(flag, type=kind, default=None, help=what)
    p.add_argument(
        "--decoding",
        choices=("independent", "arithmetic", "priority"),
        default=None,
        help="how the n samples relate (default independent)",
    )
    p.add_argument(
        "--sampler",
        action="append",
        default=[],
        metavar="NAME[:VALUE]",
        help="sampler by name, repeatable, e.g. top-n-sigma:1.0, fire:1.5:4, arithmetic "
        "(samplescale list shows them); applied after the other flags",
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        default=256,
        help="generated tokens per sample (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    add_backend_args(p)
    p.add_argument(
        "--strategy",
        default=None,
        help="strategy name (samplescale list shows them); generate's default is "
        "self-consistency, eval's is the pool of pass@k / maj@k; code tasks take "
        "best-of-n-public-tests, mbr-exec or filter-and-cluster",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="strategy option, repeatable (JSON value or text), e.g. beam_width=4, "
        "token_budget=2000, how=min",
    )
    p.add_argument(
        "--draft-model",
        type=Path,
        default=None,
        help="GGUF draft model for speculative sampling (same tokenizer as --model; "
        "the output is distributed exactly as the target's)",
    )
    p.add_argument(
        "--draft-k", type=int, default=4, help="draft tokens per target call, 1-32 (default 4)"
    )
    p.add_argument(
        "--drafts",
        type=int,
        default=1,
        help="draft tokens per position for multi-draft selection, 1-16 (default 1)",
    )


def sampling_params(args: argparse.Namespace) -> SamplingParams:
    """``SamplingParams`` from the sampling flags (``--sampler`` names applied last).

    Raises
    ------
    ConfigError
        If ``--draft-k`` / ``--drafts`` are given without ``--draft-model`` or out of range.
    pydantic.ValidationError
        If a sampler value is outside its valid range.
    """
    from samplescale.sampling.spec import with_samplers

    extra = {
        flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_"))
        for flag, _, _ in EXTRA_SAMPLER_FLAGS
    }
    if args.decoding is not None:
        extra["decoding"] = args.decoding
    extra = {k: v for k, v in extra.items() if v is not None}
    params = SamplingParams(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        max_tokens=args.max_tokens,
        n=args.n,
        seed=args.seed,
        **extra,
    )
    if args.draft_model is None and (args.draft_k != 4 or args.drafts != 1):
        raise ConfigError("--draft-k and --drafts need --draft-model PATH")
    from samplescale.decoders.speculative import MAX_DRAFTS, MAX_K

    for flag, value, hi in (("--draft-k", args.draft_k, MAX_K), ("--drafts", args.drafts, MAX_DRAFTS)):
        if not 1 <= value <= hi:
            raise ConfigError(f"{flag} must be in [1, {hi}], got {value}")
    return with_samplers(params, args.sampler, given=set(extra))


def checked_params(args: argparse.Namespace, command: str, does: str) -> SamplingParams:
    """``SamplingParams`` of a command that runs no strategy of its own (``synth``,
    ``reprompt``), checked before a model loads (threads, what the backend can run).

    Raises
    ------
    ConfigError
        For ``--strategy`` / ``--option`` (the message says what ``command`` ``does``
        instead), ``--kl-sigma`` (no grounding document) and what :func:`sampling_params`,
        :func:`~samplescale.cli_model.n_threads` and
        :func:`~samplescale.cli_backend.check_run` refuse.
    """
    from samplescale.cli_backend import check_run
    from samplescale.cli_model import n_threads

    if args.strategy is not None or args.option:
        raise ConfigError(f"{command} {does}; it takes no --strategy or --option")
    params = sampling_params(args)
    if params.kl_sigma is not None:
        raise ConfigError(f"--kl-sigma needs a grounding document; {command} has none")
    n_threads(args)
    check_run(args, params, None)
    return params


def backend_from_args(args: argparse.Namespace) -> Any:
    """The selected backend (``--backend``; llama.cpp's KV cache sized so N samples decode
    in one round, with one sequence more for the greedy row an eval decodes in the pool's
    call, :mod:`samplescale.evaluate_greedy`, except when it resumes a run of the
    sequential layout); with ``--draft-model``, speculative sampling over it."""
    greedy_row = getattr(args, "greedy_layout", "pool-call") == "pool-call"
    return make_backend(args, sampling_params(args), n_seq_max=min(args.n, 16) + greedy_row)


def strategy_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as strategy options (VALUE parsed as JSON, else kept as text).

    Raises
    ------
    ConfigError
        If an item has no ``=``, an empty key, or a key given twice.
    """
    options: dict[str, Any] = {}
    for item in items:
        raw_key, sep, value = item.partition("=")
        key = raw_key.strip()
        if not sep or not key:
            raise ConfigError(f"--option must look like KEY=VALUE, got {item!r}")
        if key in options:
            raise ConfigError(f"--option {key} is given twice; give each option once")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def build_strategy(name: str | None, items: list[str] | None = None) -> Any:
    """The named strategy built with ``--option`` values (a clear error for unknown ones);
    ``reprompting``'s ``recipe`` may be the path of a recipe.json (read here)."""
    from samplescale.strategies import STRATEGIES, get_strategy

    options = strategy_options(items or [])
    if name is None:
        if options:
            raise ConfigError("--option needs --strategy")
        return None
    cls = STRATEGIES.get(name)
    if cls.name == "reprompting" and isinstance(options.get("recipe"), str):
        from samplescale.cli_reprompt import read_recipe  # recipe=PATH of a recipe.json

        options["recipe"] = read_recipe(Path(options["recipe"]))
    try:
        return get_strategy(name, **options)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, SamplescaleError):
            raise
        raise ConfigError(f"strategy {name!r}: {exc}") from exc


def resolve_models(strategy: Any, args: argparse.Namespace) -> Any:
    """``strategy`` with its ``models`` option, given as model paths or names on the command
    line (``--option models='["other.gguf"]'``), loaded as backends like ``--model`` (the
    same ``--backend``, threads and sampling; ``--backend openai``: upstream model names).

    Raises
    ------
    ConfigError
        With ``--record`` / ``--replay`` or a non-local ``--executor`` (the extra models
        are loaded in this process and not recorded).
    """
    import dataclasses

    from samplescale.cli_backend import backend_name

    paths = getattr(strategy, "models", None)
    if not paths or not all(isinstance(m, str) for m in paths):
        return strategy
    if args.record is not None or args.replay is not None:
        raise ConfigError(f"strategy {strategy.name!r} with models cannot be recorded or "
                          "replayed (only --model's calls would be)")
    if getattr(args, "executor", "local") != "local":
        raise ConfigError(f"strategy {strategy.name!r} with models runs on the local executor "
                          "only (its models are loaded in this process)")
    openai = backend_name(args) == "openai"
    backends = []
    for path in paths:
        other = {"upstream_model": path} if openai else {"model": path}
        ns = argparse.Namespace(**{**vars(args), **other, "draft_model": None})
        backends.append(backend_from_args(ns))
    return dataclasses.replace(strategy, models=tuple(backends))
