"""Command-line interface: ``samplescale eval`` and ``samplescale generate``.

The only module (with the server) that touches the terminal and files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from samplescale.cli_allocate import add_allocate_parser, cmd_allocate
from samplescale.cli_backend import check_run
from samplescale.cli_compare import add_compare_parser, cmd_compare
from samplescale.cli_constraint import add_constraint_args
from samplescale.cli_executor import add_executor_args, make_executor
from samplescale.cli_generate import cmd_generate
from samplescale.cli_model import n_threads
from samplescale.cli_report import add_report_parser, cmd_report
from samplescale.cli_reprompt import add_reprompt_parser, cmd_reprompt
from samplescale.cli_sampling import (
    add_sampling_args,
    add_task_args,
    backend_from_args,
    build_strategy,
    resolve_models,
    sampling_params,
)
from samplescale.cli_serve import add_serve_parser, cmd_serve
from samplescale.cli_synth import add_synth_parser, cmd_synth
from samplescale.config import SamplingParams, valid_range
from samplescale.errors import ConfigError, SamplescaleError


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
    add_task_args(ev)
    ev.add_argument(
        "--offset",
        type=int,
        default=0,
        help="skip the task's first OFFSET problems: the run is problems OFFSET .. "
        "OFFSET + limit - 1, under their own ids and seeds, so runs over consecutive "
        "ranges add up to one run over all of them (default 0)",
    )
    ev.add_argument(
        "--price-stopping",
        action="store_true",
        help="pool runs: price the adaptive stopping rules (esc, adaptive-consistency, "
        "semantic-entropy, confidence-stop, short-m-at-k) on the pool: expected accuracy and "
        "samples / tokens used over random orderings (k-subsets) of it (summary.json 'stopping')",
    )
    add_executor_args(ev)
    add_sampling_args(ev, ("--n", "-n"), 16)

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
    add_sampling_args(gen, ("-n", "--n"), 8)
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
    add_synth_parser(sub)
    add_allocate_parser(sub)
    add_reprompt_parser(sub)
    return parser


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
    print("executors: ", "local, ray (eval --executor; ray needs the 'ray' extra)")
    print("samplers (--sampler NAME[:VALUE]; applied in the pipeline's one order):")
    for name in SAMPLERS.names():
        print(f"  {name:<20} {SAMPLERS.get(name).help}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from samplescale.cli_eval import run_eval

    params = sampling_params(args)
    if params.kl_sigma is not None:
        raise ConfigError(
            "--kl-sigma / --sampler kl:SIGMA needs a grounding document (generate "
            "--grounding FILE); eval has none"
        )
    executor = make_executor(args)  # sets a Ray worker's default --threads
    if executor.name == "local":  # Ray: checked against the nodes' CPUs, in each worker
        n_threads(args)
    strategy = build_strategy(args.strategy, args.option)
    if strategy is not None and args.price_stopping:
        raise ConfigError("--price-stopping prices stopping rules on a pool of samples: "
                          "run it without --strategy")
    check_run(args, params, strategy)
    strategy = resolve_models(strategy, args)
    return run_eval(args, params, backend_from_args, strategy, executor)


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
            "synth": cmd_synth,
            "allocate": cmd_allocate,
            "reprompt": cmd_reprompt,
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
            "synth": "finished problems are saved, rerun the same command to resume",
            "serve": "the server stopped after the requests in flight finished",
        }.get(args.command, "nothing was saved")
        print(f"samplescale: interrupted; {what}", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
