"""``samplescale generate``: run a strategy on one prompt and print the selected answer
(or the whole Result as JSON)."""

from __future__ import annotations

import argparse
import dataclasses
import operator
from typing import Any

from pydantic_core import to_json

from samplescale.cli_backend import check_run
from samplescale.cli_constraint import with_constraint
from samplescale.cli_model import n_threads
from samplescale.cli_sampling import (
    backend_from_args,
    build_strategy,
    resolve_models,
    sampling_params,
)
from samplescale.errors import ConfigError
from samplescale.strategies.voting import SelfConsistency
from samplescale.types import Prompt, Result
from samplescale.verifiers.structured import constrained_answer

SHOWN_SAMPLES = 8  # samples generate prints when no answer was found


def cmd_generate(args: argparse.Namespace) -> int:
    """Run ``generate``; returns the exit status."""
    params = with_constraint(sampling_params(args), args)  # validated before the model loads
    if params.constraint is not None and args.strategy is None and not args.option:
        # constrained text has no math answer to read: vote on the (parsed) text itself
        strategy = SelfConsistency(
            extract=constrained_answer(params.constraint), equivalent=operator.eq
        )
    else:
        strategy = build_strategy(
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
    backend = backend_from_args(args)
    strategy = resolve_models(strategy, args)
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
    last = result.trace[-1] if result.trace else {}
    if last.get("event") == "stopping":  # adaptive strategies: why sampling ended
        print(f"stopping: {_stopping_line(last, result, args.n)}")
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


def _stopping_line(last: dict[str, Any], result: Result, n: int) -> str:
    """Why an adaptive strategy stopped sampling, from its last stopping record."""
    if "cancelled" in last:  # short-m@k: one record for the k chains decoded together
        return (f"{last['finished']} of {last['samples']} chains finished, "
                f"{last['cancelled']} cancelled ({last['mode']}; --json shows the record)")
    why = {"stop": "the rule stopped", "budget": "the budget was spent",
           "failed": f"every sample of the last round failed ({last.get('error')})"}
    return (f"{why.get(last['decision'], last['decision'])} after "
            f"{last.get('drawn', len(result.samples))} of at most {n} samples "
            f"({len(result.trace)} rounds; --json shows each decision)")
