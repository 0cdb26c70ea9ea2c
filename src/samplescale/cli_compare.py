"""``samplescale compare RUN RUN ...``: accuracy against compute, the Pareto front and
paired tests between runs (CLI layer; the numbers come from :mod:`samplescale.comparison`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from samplescale.analysis.compute import AXES
from samplescale.cli_runs import Run, load_runs
from samplescale.errors import ConfigError

if TYPE_CHECKING:
    from samplescale.comparison import Point


def add_cost_args(p: argparse.ArgumentParser) -> None:
    """``--params``, ``--price-prompt``, ``--price-completion``, ``--axis`` and
    ``--seed`` (shared by compare and report)."""
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="run directory of samplescale eval, or a results.jsonl[.gz] file")
    p.add_argument("--params", type=float, action="append", default=None, metavar="N",
                   help="model parameter count for FLOPs (2 x params per token), once for "
                   "all runs or once per run in order, e.g. 135e6")
    p.add_argument("--price-prompt", type=float, default=None, metavar="USD",
                   help="dollars per million prompt tokens (with --price-completion)")
    p.add_argument("--price-completion", type=float, default=None, metavar="USD",
                   help="dollars per million generated tokens (with --price-prompt)")
    p.add_argument("--axis", choices=sorted(AXES), default="tokens",
                   help="compute axis of the plot and the Pareto front (default tokens)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the paired tests' posterior draws and resamples")


def add_compare_parser(sub: Any) -> None:
    """Register ``samplescale compare``."""
    p = sub.add_parser(
        "compare", help="accuracy against compute with the Pareto front, and paired tests "
        "between runs on their shared problems",
    )
    add_cost_args(p)
    p.add_argument("-o", "--output", type=Path, default=None, metavar="DIR",
                   help="write compare.png and compare.json there")


def prices_per_run(args: argparse.Namespace, count: int) -> list[dict[str, float | None]]:
    """The cost arguments of each of ``count`` runs (``--params`` once or once per run)."""
    params = args.params or [None]
    if len(params) not in (1, count):
        raise ConfigError(f"--params must be given once or once per run ({count}), "
                          f"got {len(params)} values")
    if len(params) == 1:
        params = params * count
    return [{"params": p, "price_prompt": args.price_prompt,
             "price_completion": args.price_completion} for p in params]


def compare_runs(
    args: argparse.Namespace,
) -> tuple[list[Run], list[Point], list[Point], list[tuple[str, str, Any]]]:
    """Load the runs and compute their points, Pareto front and paired tests."""
    import numpy as np

    from samplescale.comparison import pairwise, pareto_front, run_points

    runs = load_runs(args.runs)
    prices = prices_per_run(args, len(runs))
    points = [p for run, pr in zip(runs, prices)
              for p in run_points(run.name, run.records, run.kind, **pr)]
    if args.axis != "tokens" and all(p.x(args.axis) is None for p in points):
        need = "--params" if args.axis == "flops" else "--price-prompt and --price-completion"
        raise ConfigError(f"--axis {args.axis} needs {need}")
    front = pareto_front(points, args.axis)
    tests = pairwise([(r.name, r.records, r.kind) for r in runs],
                     rng=np.random.default_rng(args.seed))
    return runs, points, front, tests


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.3g}"


def cmd_compare(args: argparse.Namespace) -> int:
    """Print the comparison; with ``-o`` also write the plot and the numbers."""
    console = Console(soft_wrap=True, width=max(Console().width, 120))
    runs, points, front, tests = compare_runs(args)
    on_front = {(p.run, p.method) for p in front}
    has_flops = any(p.cost.flops is not None for p in points)
    has_dollars = any(p.cost.dollars is not None for p in points)
    t = Table(title="accuracy against compute",
              caption="acc: accuracy with its 95% problem-clustered Jeffreys interval; costs "
              f"are means per problem; * = on the Pareto front ({AXES[args.axis]})")
    cols = ["run", "method", "problems", "acc", "95% CI", "tokens"]
    cols += ["FLOPs"] * has_flops + ["$"] * has_dollars + ["s", "front"]
    for col in cols:
        t.add_column(col, justify="left" if col in ("run", "method") else "right")
    for p in points:
        row = [p.run, p.method, str(p.problems), f"{p.accuracy:.3f}", f"{p.lo:.2f}-{p.hi:.2f}",
               f"{p.cost.completion_tokens:.0f}"]
        row += [_fmt(p.cost.flops)] * has_flops + [_fmt(p.cost.dollars)] * has_dollars
        row += [f"{p.cost.wall_time_s:.2f}", "*" if (p.run, p.method) in on_front else ""]
        t.add_row(*row)
    console.print(t)
    pt = Table(title="paired tests on shared problems (B - A)",
               caption="per problem: maj@N of a pool run, correctness of a strategy run. 0/1 "
               "values: exact McNemar p, Dirichlet-posterior interval and P(B better); "
               "rates: paired permutation p and bootstrap interval")
    for col in ("A", "B", "shared", "A acc", "B acc", "B - A", "95% CI", "A>B", "B>A", "p",
                "P(B>A)"):
        pt.add_column(col, justify="left" if col in ("A", "B") else "right")
    for a, b, r in tests:
        if r is None:
            pt.add_row(a, b, "0", *[""] * 8)
            continue
        pt.add_row(a, b, str(r.problems), f"{r.mean_a:.3f}", f"{r.mean_b:.3f}",
                   f"{r.difference:+.3f}", f"{r.interval[0]:+.2f} to {r.interval[1]:+.2f}",
                   str(r.only_a), str(r.only_b), f"{r.p_value:.3g}",
                   "" if r.prob_b_better is None else f"{r.prob_b_better:.3f}")
    console.print(pt)
    if any(r is None for _, _, r in tests):
        console.print("note: some runs share no problem (other tasks or data); their points "
                      "are not comparable, and the Pareto front above mixes them")
    if args.output is not None:
        write_outputs(args.output, args.axis, points, front, tests)
        console.print(f"wrote {args.output / 'compare.png'}, {args.output / 'compare.json'}")
    return 0


def write_outputs(out: Path, axis: str, points: list[Point], front: list[Point],
                  tests: list[tuple[str, str, Any]]) -> None:
    """``compare.png`` and ``compare.json`` in ``out`` (created if missing)."""
    import dataclasses

    import matplotlib.pyplot as plt

    from samplescale.plots import compare_figure

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    fig = compare_figure(points, front, axis, AXES[axis])
    fig.savefig(out / "compare.png", dpi=120)
    plt.close(fig)
    data = {
        "axis": axis,
        "points": [{**dataclasses.asdict(p), "dollars": p.cost.dollars} for p in points],
        "pareto_front": [[p.run, p.method] for p in front],
        "paired": [{"a": a, "b": b, **(dataclasses.asdict(r) if r else {})}
                   for a, b, r in tests],
    }
    (out / "compare.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
