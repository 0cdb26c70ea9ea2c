"""Command-line interface: ``samplescale eval`` and ``samplescale generate``.

The only module (with the server) that touches the terminal and files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import operator
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json

from samplescale.cli_backend import add_backend_args, check_run, make_backend
from samplescale.cli_compare import add_compare_parser, cmd_compare
from samplescale.cli_constraint import add_constraint_args, with_constraint
from samplescale.cli_executor import add_executor_args, make_executor
from samplescale.cli_model import n_threads
from samplescale.cli_report import add_report_parser, cmd_report
from samplescale.cli_serve import add_serve_parser, cmd_serve
from samplescale.config import SamplingParams, valid_range
from samplescale.errors import ConfigError, SamplescaleError
from samplescale.strategies.voting import SelfConsistency
from samplescale.types import Prompt
from samplescale.verifiers.structured import constrained_answer

DEFAULT_TEMPERATURE = 0.8
SHOWN_SAMPLES = 8  # samples generate prints when no answer was found

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


def _sampling_args(p: argparse.ArgumentParser, n_flags: tuple[str, ...], n_default: int) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``samplescale`` command."""
    from samplescale import __version__

    parser = argparse.ArgumentParser(
        prog="samplescale", description="Sampling-based inference with language models."
    )
    parser.add_argument("--version", action="version", version=f"samplescale {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser(
        "eval", help="evaluate on a task: pass@k and maj@k from one pool, or a strategy"
    )
    ev.add_argument(
        "--task",
        default="arithmetic",
        help="arithmetic, gsm8k, math, jsonl, or code: humaneval, mbpp, code-jsonl "
        "(+ -completion for completion prompting) (default arithmetic)",
    )
    ev.add_argument("--data", type=Path, default=None, help="data file of a file task (.jsonl[.gz])")
    ev.add_argument(
        "--level", type=int, default=None, help="arithmetic task: level 1-3 (default 1)"
    )
    ev.add_argument(
        "--limit",
        type=int,
        default=None,
        help="number of problems (arithmetic default 50; files: all)",
    )
    ev.add_argument(
        "--output",
        type=str,
        default=None,
        help="output directory (default runs/<settings>); resumes if it holds the same run",
    )
    ev.add_argument(
        "--question-field", default=None, help="jsonl task: question field (default question)"
    )
    ev.add_argument(
        "--answer-field", default=None, help="jsonl task: answer field (default answer)"
    )
    ev.add_argument(
        "--on-error",
        choices=("record", "stop"),
        default="record",
        help="a problem that cannot be run (longer than the context, invalid text, a "
        "verifier failure): record it as an error, counted as wrong, and go on "
        "(default), or stop the run",
    )
    add_executor_args(ev)
    _sampling_args(ev, ("--n", "-n"), 16)

    gen = sub.add_parser(
        "generate", help="run a strategy on one prompt and print the selected answer"
    )
    gen.add_argument("prompt", help="the user message")
    gen.add_argument(
        "--grounding",
        type=Path,
        default=None,
        help="text file with a source document the answer should be grounded in",
    )
    _sampling_args(gen, ("-n", "--n"), 8)
    add_constraint_args(gen)
    gen.add_argument(
        "--json",
        action="store_true",
        help="print the whole result as JSON (samples, scores, trace, usage; with "
        "--draft-model also the speculative counters) instead of a summary",
    )

    sub.add_parser("list", help="list registered strategies, tasks and scorers")
    add_serve_parser(sub)
    add_compare_parser(sub)
    add_report_parser(sub)
    return parser


def _params(args: argparse.Namespace) -> SamplingParams:
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


def _backend(args: argparse.Namespace) -> Any:
    """The selected backend (``--backend``; llama.cpp's KV cache sized so N samples decode
    in one round); with ``--draft-model``, speculative sampling over it."""
    return make_backend(args, _params(args), n_seq_max=min(args.n, 16))


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


def _strategy(name: str | None, items: list[str] | None = None) -> Any:
    """The named strategy built with ``--option`` values (a clear error for unknown ones)."""
    import dataclasses

    from samplescale.strategies import STRATEGIES, get_strategy

    options = strategy_options(items or [])
    if name is None:
        if options:
            raise ConfigError("--option needs --strategy")
        return None
    cls = STRATEGIES.get(name)
    valid = sorted(f.name for f in dataclasses.fields(cls) if f.init)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"strategy {name!r} has no option {unknown[0]!r}; valid: {', '.join(valid)}"
        )
    try:
        return get_strategy(name, **options)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, SamplescaleError):
            raise
        raise ConfigError(f"strategy {name!r}: {exc}") from exc


def cmd_list(args: argparse.Namespace) -> int:
    from samplescale.sampling.spec import SAMPLERS
    from samplescale.strategies import STRATEGIES
    from samplescale.tasks import TASKS
    from samplescale.verifiers.process import PROCESS_SCORERS
    from samplescale.verifiers.scorers import SCORERS

    print("strategies:", ", ".join(STRATEGIES.names()))
    print("tasks:     ", ", ".join(TASKS.names()))
    print("scorers:   ", ", ".join(SCORERS.names()), "(outcome: best-of-n, weighted-vote)")
    print("process:   ", ", ".join(PROCESS_SCORERS.names()), "(step scores: search, SMC)")
    print("samplers (--sampler NAME[:VALUE]; applied in the pipeline's one order):")
    for name in SAMPLERS.names():
        print(f"  {name:<20} {SAMPLERS.get(name).help}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:

    params = with_constraint(_params(args), args)  # validated before the model loads
    if params.constraint is not None and args.strategy is None and not args.option:
        # constrained text has no math answer to read: vote on the (parsed) text itself
        strategy = SelfConsistency(
            extract=constrained_answer(params.constraint), equivalent=operator.eq
        )
    else:
        strategy = _strategy(
            "self-consistency" if args.strategy is None else args.strategy, args.option
        )
    if not args.prompt.strip():
        raise ConfigError("prompt must not be empty")
    n_threads(args)
    try:
        grounding = args.grounding.read_text(encoding="utf-8") if args.grounding else None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--grounding {args.grounding} is not UTF-8 text ({exc.reason})") from exc
    if params.kl_sigma is not None and grounding is None:
        raise ConfigError("--kl-sigma / --sampler kl:SIGMA needs --grounding FILE")
    prompt = Prompt.user(args.prompt).model_copy(update={"grounding": grounding})
    check_run(args, params, strategy)
    backend = _backend(args)
    result = strategy.run(backend, prompt, params)
    stats = getattr(backend, "stats", None)
    if args.json:  # the Result's fields (and the speculative counters), strict JSON
        body = result.model_dump()
        if stats is not None:
            body["speculative"] = {
                **dataclasses.asdict(stats), "acceptance_rate": stats.acceptance_rate,
                "tokens_per_target_call": stats.tokens_per_target_call,
            }
        print(to_json(body, indent=2, inf_nan_mode="strings").decode())
        return 0
    selection = [e for e in result.trace if e.get("event") == "code-selection"]
    if selection and result.answer is not None:  # a program: from its own first line
        print(f"answer:\n{result.answer.rstrip()}")
    else:
        print(f"answer: {result.answer}")
    if result.vote_shares:
        shares = ", ".join(
            f"{a} {s:.0%}" for a, s in sorted(result.vote_shares.items(), key=lambda kv: -kv[1])
        )
        print(f"votes:  {shares}")
    if selection:  # a code strategy: the answer is a program; say why it was chosen
        print(f"why:    {selection[-1]['reason']}")
    if result.text is not None:
        if not selection:
            print(f"text:   {result.text.strip()}")
    elif result.answer is None:  # nothing to select from: say why, show what was drawn
        shown = [s for s in result.samples if s.status == "ok"][:SHOWN_SAMPLES]
        print(
            f"no answer found in any sample (for text, use --strategy repeated-sampling); "
            f"{len(shown)} of {len(result.samples)} samples:"
        )
        for i, s in enumerate(shown):
            print(f"  [{i}] {' '.join(s.text.split())[:200]}")
        for line in why_no_answer(result):
            print(f"why:    {line}")
    cut = sum(s.finish_reason == "length" for s in result.samples)
    if cut:
        print(
            f"note:   {cut} of {len(result.samples)} samples were cut by --max-tokens "
            f"({args.max_tokens}{' per step' if result.trace and 'policy_tokens' in result.trace[-1] else ''})"
        )
    u = result.usage
    print(
        f"usage:  {len(result.samples)} samples, {u.prompt_tokens} prompt + {u.completion_tokens} completion tokens, {u.wall_time_s:.1f} s"
    )
    if u.scorer_calls:
        print(f"scorer: {u.scorer_calls} calls")
    if stats is not None and stats.acceptance_rate is not None:
        print(
            f"speculative: acceptance rate {stats.acceptance_rate:.3f}, "
            f"{stats.tokens_per_target_call:.2f} tokens per target call"
        )
    return 0


def why_no_answer(result: Any) -> list[str]:
    """What a Result says about why it has no answer: the strategy's stop reason, failed
    samples, scorer failures, and samples without an extractable answer."""
    lines = []
    stops = [e["stop_reason"] for e in result.trace if e.get("stop_reason")]
    if stops:
        lines.append(f"the strategy stopped: {stops[-1]}")
    failed = [s for s in result.samples if s.status == "error"]
    if failed:
        lines.append(f"{len(failed)} of {len(result.samples)} samples failed: {failed[0].error}")
    scorer = [e for event in result.trace if event.get("event") == "scorer_errors"
              for e in event.get("errors", [])]
    if scorer:
        lines.append(f"the scorer failed on {len(scorer)} samples: {scorer[0]}")
    unread = sum(s.status == "ok" and a is None for s, a in zip(result.samples, result.answers))
    if unread:
        lines.append(f"{unread} samples state no final answer that could be read")
    if not result.samples:
        lines.append("no sample was drawn")
    return lines


def cmd_eval(args: argparse.Namespace) -> int:
    from samplescale.cli_eval import run_eval

    params = _params(args)
    if params.kl_sigma is not None:
        raise ConfigError(
            "--kl-sigma / --sampler kl:SIGMA needs a grounding document (generate "
            "--grounding FILE); eval has none"
        )
    executor = make_executor(args)  # sets a Ray worker's default --threads
    n_threads(args)
    strategy = _strategy(args.strategy, args.option)
    check_run(args, params, strategy)
    return run_eval(args, params, _backend, strategy, executor)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``samplescale`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        handler = {
            "eval": cmd_eval,
            "generate": cmd_generate,
            "list": cmd_list,
            "serve": cmd_serve,
            "compare": cmd_compare,
            "report": cmd_report,
        }[args.command]
        return handler(args)
    except ValidationError as exc:
        err = exc.errors()[0]
        if not err["loc"]:  # a rule across fields: its message names them
            msg = str(err["msg"]).removeprefix("Value error, ")
            print(f"samplescale: error: {msg}", file=sys.stderr)
            return 2
        field = ".".join(str(x) for x in err["loc"])
        allowed = valid_range(SamplingParams, field)
        where = f"; valid range {allowed}" if allowed else ""
        print(
            f"samplescale: error: {field}: {err['msg']} (got {err.get('input')!r}){where}",
            file=sys.stderr,
        )
    except OSError as exc:
        print(f"samplescale: error: {exc}", file=sys.stderr)
    except SamplescaleError as exc:
        print(f"samplescale: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        what = {
            "eval": "finished problems are saved, rerun the same command to resume",
            "serve": "the server stopped after the requests in flight finished",
        }.get(args.command, "nothing was saved")
        print(f"samplescale: interrupted; {what}", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
