"""``samplescale allocate RUN RUN ...``: learn how to spread a sample budget over sampling
configurations (OSCA) from pools already drawn, and measure it on held-out problems (CLI
layer; the numbers come from :mod:`samplescale.analysis.allocation`).

Each RUN is a pool run of ``samplescale eval`` (one configuration: a temperature, a prompt,
a model) over the same problems. The problems are split at random (``--seed``) into a
training part, where the allocation is learned, and a held-out part, where it is compared
with every single configuration and with the uniform split at the same budget.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from samplescale.analysis.allocation import (
    Allocation,
    VotePools,
    check_allocation,
    learn_allocation,
    mixed_coverage,
    mixed_majority,
    uniform_allocation,
)
from samplescale.analysis.intervals import wilson_interval
from samplescale.cli_runs import Run, load_runs
from samplescale.errors import ConfigError

CODE_TASKS = ("humaneval", "mbpp", "code-jsonl")


def add_allocate_parser(sub: Any) -> None:
    """Register ``samplescale allocate``."""
    p = sub.add_parser(
        "allocate", help="learn the split of a sample budget over sampling configurations "
        "(OSCA) from pool runs over the same problems, and test it on held-out problems",
    )
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="pool run of samplescale eval, one per configuration (at least 2)")
    p.add_argument("--budget", type=int, required=True, metavar="B",
                   help="samples per problem to allocate")
    p.add_argument("--objective", choices=("coverage", "majority"), default="majority",
                   help="what the allocation maximizes: the chance that one of the samples "
                   "is correct (exact), or that the majority vote is (Monte Carlo; default)")
    p.add_argument("--train-fraction", type=float, default=0.5, metavar="F",
                   help="share of the problems to learn on, in (0, 1) (default 0.5)")
    p.add_argument("--draws", type=int, default=200,
                   help="majority: random orderings of each pool (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the orderings")
    p.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                   help="write the allocation and the held-out table as JSON")


def _aligned(runs: list[Run]) -> list[str]:
    """The problem ids every run has ok, in the first run's order; ConfigError otherwise."""
    if len(runs) < 2:
        raise ConfigError("allocate needs at least 2 runs (one per configuration)")
    for run in runs:
        if run.kind != "pool":
            raise ConfigError(f"{run.name} is a strategy run; allocate needs pool runs "
                              "(samplescale eval without --strategy)")
    ids = [r["id"] for r in runs[0].records if r["status"] == "ok"]
    golds = {r["id"]: r["gold"] for r in runs[0].records if r["status"] == "ok"}
    for run in runs[1:]:
        mine = {r["id"]: r["gold"] for r in run.records if r["status"] == "ok"}
        if set(mine) != set(ids):
            missing = sorted(set(ids) ^ set(mine))[:3]
            raise ConfigError(f"{run.name} and {runs[0].name} do not hold the same problems "
                              f"(e.g. {missing}); allocate compares configurations on the "
                              "same problems")
        bad = [i for i in ids if mine[i] != golds[i]]
        if bad:
            raise ConfigError(f"problem {bad[0]!r} has another gold answer in {run.name}")
    return ids


def _vote_labels(samples: list[list[dict[str, Any]]]) -> tuple[list[list[int | None]], int | None]:
    """Answer classes shared across the configurations of one problem (math equivalence,
    as the pools' own labels), classes equivalent to a correct sample merged into one."""
    from samplescale.aggregate import cluster
    from samplescale.evaluate_records import merge_correct_classes
    from samplescale.verifiers.math import answers_equivalent

    flat = [s for pool in samples for s in pool]
    labels, correct = merge_correct_classes(
        cluster([s.get("answer") for s in flat], answers_equivalent),
        [bool(s.get("correct")) for s in flat],
    )
    out, at = [], 0
    for pool in samples:
        out.append(labels[at:at + len(pool)])
        at += len(pool)
    return out, correct


def _estimate(objective: str, n: np.ndarray, c: np.ndarray, votes: VotePools | None,
              rows: list[int], alloc: Allocation) -> np.ndarray:
    """Per-problem value of ``alloc`` on the problems ``rows``."""
    if objective == "coverage":
        return mixed_coverage(n[rows], c[rows], alloc)
    assert votes is not None
    sub = VotePools([votes.labels[i] for i in rows], [votes.correct_label[i] for i in rows],
                    [votes.orders[i] for i in rows])
    return mixed_majority(sub, alloc)[0]


def allocate(args: argparse.Namespace) -> dict[str, Any]:
    """Load the runs, learn the allocation on the training problems, and measure it and the
    baselines on the held-out ones; the JSON written by ``-o``."""
    if not 0 < args.train_fraction < 1:
        raise ConfigError(f"--train-fraction must be in (0, 1), got {args.train_fraction}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be an integer >= 0, got {args.seed}")
    if not 1 <= args.draws <= 100_000:  # the orderings are held in memory
        raise ConfigError(f"--draws must be an integer in [1, 100000], got {args.draws}")
    runs = load_runs(args.runs)
    ids = _aligned(runs)
    if len(ids) < 2:
        raise ConfigError(f"the runs share {len(ids)} problems; allocate needs at least 2")
    by_id = [{r["id"]: r for r in run.records} for run in runs]
    n = np.array([[by_id[c][i]["n"] for c in range(len(runs))] for i in ids])
    correct = np.array([[by_id[c][i]["c"] for c in range(len(runs))] for i in ids])
    sizes = [int(x) for x in n.min(axis=0)]
    check_allocation([0] * len(runs), sizes)
    rng = np.random.default_rng(args.seed)
    votes = None
    if args.objective == "majority":
        tasks = {str((run.settings or {}).get("task")) for run in runs}
        if tasks & set(CODE_TASKS) or any(t.endswith("-completion") for t in tasks):
            raise ConfigError("--objective majority needs answers to vote on; code runs "
                              "vote on behaviour: use --objective coverage")
        per = [_vote_labels([by_id[c][i]["samples"] for c in range(len(runs))]) for i in ids]
        votes = VotePools.with_orderings([p[0] for p in per], [p[1] for p in per],
                                         args.draws, rng)
    order = rng.permutation(len(ids))
    cut = min(max(1, round(args.train_fraction * len(ids))), len(ids) - 1)
    train, held = sorted(order[:cut].tolist()), sorted(order[cut:].tolist())

    def mean_on(rows: list[int]) -> Any:
        return lambda alloc: float(_estimate(args.objective, n, correct, votes, rows, alloc).mean())

    learned, train_value = learn_allocation(mean_on(train), sizes, args.budget)
    oracle, _ = learn_allocation(mean_on(held), sizes, args.budget)
    names = [run.name for run in runs]
    rows: list[dict[str, Any]] = []
    candidates: list[tuple[str, Allocation]] = [("learned (OSCA)", learned)]
    candidates += [("uniform", uniform_allocation(args.budget, sizes))]
    candidates += [(f"only {name}", tuple(args.budget * (c == j) for c in range(len(runs))))
                   for j, name in enumerate(names) if args.budget <= sizes[j]]
    candidates += [("best on held-out (oracle)", oracle)]
    for label, alloc in candidates:
        values = _estimate(args.objective, n, correct, votes, held, alloc)
        lo, hi = wilson_interval(float(values.sum()), len(held))
        rows.append({"allocation": label, "counts": dict(zip(names, alloc, strict=True)),
                     "held_out": {"mean": float(values.mean()), "lo": lo, "hi": hi}})
    return {
        "objective": args.objective, "budget": args.budget, "configurations": names,
        "problems": {"train": len(train), "held_out": len(held)},
        "learned": dict(zip(names, learned, strict=True)), "train_value": train_value,
        "option": _temperature_option(runs, learned), "rows": rows,
        **({"draws": args.draws} if votes is not None else {}), "seed": args.seed,
    }


def _temperature_option(runs: list[Run], alloc: Allocation) -> str | None:
    """``allocation={"T": k, ...}`` for ``--strategy osca`` when the runs' sampling
    configurations differ only in temperature (None otherwise: the allocation spans models
    or prompts). Settings that do not define a configuration (pool size, run seed, thread
    count, problem count, greedy layout) may differ; a sampling field a run predates is its
    default."""
    from samplescale.cli_settings import with_new_defaults

    def rest(run: Run) -> Any:
        s = dict(with_new_defaults(run.settings or {}))
        for key in ("threads", "limit", "greedy", "seed"):
            s.pop(key, None)
        params = dict(s.pop("params", {}))
        for key in ("temperature", "n", "seed"):
            params.pop(key, None)
        return json.dumps({**s, "params": params}, sort_keys=True)

    if any(not isinstance((run.settings or {}).get("params"), dict) for run in runs):
        return None
    if len({rest(run) for run in runs}) != 1:
        return None
    temps = [run.settings["params"].get("temperature") for run in runs if run.settings]
    if (len(set(map(str, temps))) != len(temps)
            or not all(isinstance(t, int | float) and not isinstance(t, bool) for t in temps)):
        return None
    counts = {str(t): k for t, k in zip(temps, alloc, strict=True) if k}
    return "allocation=" + json.dumps(counts, separators=(",", ":"))


def cmd_allocate(args: argparse.Namespace) -> int:
    """Print the held-out table (and write it with ``-o``)."""
    out = allocate(args)
    console = Console(soft_wrap=True, width=max(Console().width, 120))
    what = ("coverage (exact)" if out["objective"] == "coverage"
            else f"majority-vote accuracy (Monte Carlo, {out['draws']} orderings)")
    t = Table(title=f"{what} on {out['problems']['held_out']} held-out problems, budget "
              f"{out['budget']} (learned on {out['problems']['train']})",
              caption="95% Wilson interval over held-out problems; the oracle row is learned "
              "on the held-out problems themselves (an upper bound for any allocation)")
    for col in ("allocation", *out["configurations"], "held-out", "95% Wilson"):
        t.add_column(col, justify="left" if col == "allocation" else "right")
    for r in out["rows"]:
        h = r["held_out"]
        t.add_row(r["allocation"], *[str(r["counts"][c]) for c in out["configurations"]],
                  f"{h['mean']:.3f}", f"{h['lo']:.2f}-{h['hi']:.2f}")
    console.print(t)
    if out["option"]:
        console.print(f"apply it: --strategy osca --option '{out['option']}'", markup=False)
    else:
        console.print("the runs differ in more than temperature: the osca strategy applies "
                      "temperature allocations only", markup=False)
    if args.output is not None:
        args.output.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0
