"""``samplescale synth``: rejection-sampling data synthesis to a training JSONL (CLI layer).

Output directory layout (the run rules are ``eval``'s: :func:`samplescale.cli_eval.open_run`,
:func:`~samplescale.cli_settings.check_settings`, :func:`~samplescale.cli_results.load_results`)::

    run.json       the settings, eval's plus "synth" (a rerun with other settings is refused)
    results.jsonl  one pool record per problem (as ``eval`` writes), appended as each finishes
    train.jsonl    the kept samples as training rows (samplescale.synth.training_rows);
                   rebuilt from results.jsonl on resume, so it never holds a row twice
    yield.json     kept / correct / drawn per problem and in total
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from rich.console import Console
from rich.table import Table

from samplescale.cli_sampling import (
    add_sampling_args,
    add_task_args,
    backend_from_args,
    checked_params,
)
from samplescale.errors import ConfigError
from samplescale.synth import KEEP_CHOICES, Keep, problem_yield, training_rows, verifier_name

SYNTH_FORMAT = 1  # the version of train.jsonl's row layout, in run.json


def add_synth_parser(sub: Any) -> None:
    """Add the ``synth`` subcommand: eval's task, sampling and backend flags plus ``--keep``."""
    sy = sub.add_parser(
        "synth",
        help="rejection-sampling data synthesis: draw N samples per problem, keep the "
        "verified ones, write a training jsonl with provenance",
    )
    add_task_args(sy)
    add_sampling_args(sy, ("--n", "-n"), 8)
    sy.add_argument(
        "--keep",
        choices=KEEP_CHOICES,
        default="all",
        help="every correct sample of a problem, or only its shortest (fewest tokens) "
        "(default all)",
    )


def _write_rows(fh: Any, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def _print_yield(console: Console, yields: list[dict[str, Any]], title: str) -> dict[str, Any]:
    t = Table(title=title)
    for col in ("problem", "kept", "correct", "drawn", "yield"):
        t.add_column(col, justify="right")
    for y in yields:
        rate = f"{y['kept'] / y['drawn']:.2f}" if y["drawn"] else "error"
        t.add_row(y["id"], str(y["kept"]), str(y["correct"]), str(y["drawn"]), rate)
    total = {k: sum(y[k] for y in yields) for k in ("kept", "correct", "drawn")}
    total["problems"] = len(yields)
    total["problems_with_rows"] = sum(y["kept"] > 0 for y in yields)
    t.add_row(
        "total", str(total["kept"]), str(total["correct"]), str(total["drawn"]),
        f"{total['kept'] / total['drawn']:.2f}" if total["drawn"] else "-",
    )
    console.print(t)
    console.print(
        f"{total['problems_with_rows']} of {total['problems']} problems gave at least one row"
    )
    return total


def cmd_synth(args: argparse.Namespace) -> int:
    """Run (or resume) ``samplescale synth``; returns the exit status."""
    from samplescale.cli_eval import open_run
    from samplescale.cli_results import append_record, exclusive, load_results
    from samplescale.cli_settings import IN_POOL, check_settings, greedy_layout
    from samplescale.evaluate import evaluate, problem_digest

    params = checked_params(args, "synth", "draws a pool of --n samples per problem")
    keep: Keep = args.keep
    console = Console(soft_wrap=True)
    extra = {"synth": {"keep": keep, "format": SYNTH_FORMAT}}
    task, settings, out = open_run(args, params, extra, prefix="synth-")
    provenance = {
        "model": settings["model"],
        "seed": args.seed,
        "params": settings["params"],
        "task": settings["task"],
    }
    by_id = {p.id: p for p in task.problems}
    train = out / "train.jsonl"
    with exclusive(out):
        settings = {**settings, "greedy": greedy_layout(out / "run.json")}  # as eval's
        args.greedy_layout = settings["greedy"]
        check_settings(out / "run.json", settings)
        records = load_results(
            out / "results.jsonl",
            {p.id: problem_digest(task, p) for p in task.problems},
            "pool",
            notify=lambda msg: console.print(msg, markup=False),
        )
        # train.jsonl is made from the records: a resumed run rebuilds it, so rows of a
        # problem whose record was not saved are never kept twice
        tmp = train.with_name(train.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for rec in records:
                _write_rows(fh, training_rows(task, by_id[rec["id"]], rec, keep, provenance))
        tmp.replace(train)
        if records:
            console.print(f"resuming {out}: {len(records)} of {len(task.problems)} problems "
                          "already done")
        backend = backend_from_args(args)
        done = {r["id"] for r in records}
        with (out / "results.jsonl").open("a", encoding="utf-8") as res, train.open(
            "a", encoding="utf-8"
        ) as fh:
            for rec in evaluate(
                task, backend, params, seed=args.seed, skip=done, on_error=args.on_error,
                greedy_in_pool=settings["greedy"] == IN_POOL,
            ):
                rows = training_rows(task, by_id[rec["id"]], rec, keep, provenance)
                _write_rows(fh, rows)
                append_record(res, rec)
                records.append(rec)
                y = problem_yield(rec, keep)
                console.print(f"{rec['id']}: kept {y['kept']} of {y['drawn']}", markup=False)
    if not records:
        raise ConfigError("the task has no problems to run")
    order = {p.id: i for i, p in enumerate(task.problems)}
    records.sort(key=lambda r: order[r["id"]])
    yields = [problem_yield(r, keep) for r in records]
    title = f"synth {task.name}: N={params.n}, T={params.temperature}, keep {keep}"
    total = _print_yield(console, yields, title)
    summary = {"verifier": verifier_name(task), "total": total, "problems": yields,
               "settings": settings}
    (out / "yield.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {train} ({total['kept']} rows), {out / 'yield.json'}")
    return 0


