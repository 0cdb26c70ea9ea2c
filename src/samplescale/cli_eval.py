"""``samplescale eval``: files, resume, progress bar and the printed table (CLI layer).

Output directory layout::

    run.json       the settings of the run (a rerun with other settings is refused)
    results.jsonl  one record per problem, appended and flushed as each finishes
    summary.json   the estimates (see samplescale.summary)
    scaling.png    pass@k and maj@k vs k and vs generated tokens (pool runs)
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.evaluate import evaluate
from samplescale.summary import summarize_pool, summarize_strategy
from samplescale.tasks import load_task

ARITHMETIC_DEFAULT_LIMIT = 50


def default_output(args: argparse.Namespace) -> Path:
    """``runs/<task>[-L<level>]-n<N>[-<strategy>]-seed<seed>``."""
    parts = [args.task]
    if args.task == "arithmetic":
        parts.append(f"L{args.level}")
    parts.append(f"n{args.n}")
    if args.strategy:
        parts.append(args.strategy)
    parts.append(f"seed{args.seed}")
    return Path("runs") / "-".join(parts)


def _settings(args: argparse.Namespace, params: SamplingParams, model: str) -> dict[str, Any]:
    return {
        "task": args.task,
        "data": str(args.data) if args.data else None,
        "level": args.level if args.task == "arithmetic" else None,
        "limit": args.limit,
        "seed": args.seed,
        "strategy": args.strategy,
        "model": model,
        "params": params.model_dump(mode="json"),
    }


def _load_done(path: Path) -> list[dict[str, Any]]:
    """Records already in results.jsonl; a torn last line (interrupted write) is dropped."""
    if not path.exists():
        return []
    records, good = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
            good.append(line)
        except json.JSONDecodeError:
            break
    if len(good) != len(path.read_text(encoding="utf-8").splitlines()):
        path.write_text("".join(g + "\n" for g in good), encoding="utf-8")
    return records


def _ci(x: dict[str, float]) -> str:
    return f"{x['lo']:.2f}-{x['hi']:.2f}"


def _print_pool(console: Console, s: dict[str, Any], title: str) -> None:
    t = Table(
        title=title, caption="95% Wilson intervals over problems; tokens and seconds per problem"
    )
    for col in ("k", "pass@k", "95% CI", "maj@k", "95% CI", "tokens", "time (s)"):
        t.add_column(col, justify="right")
    for c in s["curve"]:
        t.add_row(
            str(c["k"]),
            f"{c['pass']['mean']:.3f}",
            _ci(c["pass"]),
            f"{c['maj']['mean']:.3f}",
            _ci(c["maj"]),
            f"{c['tokens']:.0f}",
            f"{c['time_s']:.2f}",
        )
    g = s["greedy"]
    t.add_row(
        "greedy", f"{g['mean']:.3f}", _ci(g), "", "", f"{g['tokens']:.0f}", f"{g['time_s']:.2f}"
    )
    console.print(t)


def _print_strategy(console: Console, s: dict[str, Any], title: str) -> None:
    t = Table(
        title=title, caption="95% Wilson intervals over problems; tokens and seconds per problem"
    )
    for col in ("method", "accuracy", "95% CI", "tokens", "time (s)"):
        t.add_column(col, justify="right")
    t.add_row(
        s["strategy"],
        f"{s['accuracy']['mean']:.3f}",
        _ci(s["accuracy"]),
        f"{s['tokens']:.0f}",
        f"{s['time_s']:.2f}",
    )
    g = s["greedy"]
    t.add_row("greedy", f"{g['mean']:.3f}", _ci(g), f"{g['tokens']:.0f}", f"{g['time_s']:.2f}")
    console.print(t)


def run_eval(
    args: argparse.Namespace,
    params: SamplingParams,
    make_backend: Callable[[argparse.Namespace], Any],
    strategy: Any,
) -> int:
    """Run (or resume) an evaluation and write its files; returns the exit status."""
    console = Console(soft_wrap=True)
    limit = (
        args.limit
        if args.limit is not None or args.task != "arithmetic"
        else ARITHMETIC_DEFAULT_LIMIT
    )
    task = load_task(
        args.task,
        path=args.data,
        level=args.level,
        limit=limit,
        seed=args.seed,
        question_field=args.question_field,
        answer_field=args.answer_field,
    )
    out = args.output or default_output(args)
    backend = make_backend(args)
    settings = _settings(args, params, str(getattr(backend, "model_path", backend.name)))
    out.mkdir(parents=True, exist_ok=True)
    run_file, results_file = out / "run.json", out / "results.jsonl"
    if run_file.exists():
        old = json.loads(run_file.read_text(encoding="utf-8"))
        if old != settings:
            diff = sorted(k for k in settings if old.get(k) != settings[k])
            raise ConfigError(
                f"{out} holds a run with other settings ({', '.join(diff)}); use another --output"
            )
    else:
        run_file.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    records = _load_done(results_file)
    done = {r["id"] for r in records}
    if done:
        console.print(f"resuming {out}: {len(done)} of {len(task.problems)} problems already done")

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with (
        Progress(*columns, console=console, transient=False) as progress,
        results_file.open("a", encoding="utf-8") as fh,
    ):
        bar = progress.add_task(
            f"{task.name} n={params.n}", total=len(task.problems), completed=len(done)
        )
        for rec in evaluate(task, backend, params, strategy=strategy, seed=args.seed, skip=done):
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            records.append(rec)
            progress.advance(bar)

    if not records:
        raise ConfigError("the task has no problems to evaluate")
    title = f"{task.name}: {len(records)} problems, N={params.n}, T={params.temperature}"
    if strategy is None:
        summary = summarize_pool(records, seed=args.seed)
        _print_pool(console, summary, title)
        from samplescale.plots import scaling_figure

        scaling_figure(summary, title).savefig(out / "scaling.png", dpi=120)
    else:
        summary = summarize_strategy(records, seed=args.seed)
        _print_strategy(console, summary, title)
    summary["settings"] = settings
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    console.print(
        f"wrote {results_file}, {out / 'summary.json'}"
        + ("" if strategy else f", {out / 'scaling.png'}")
    )
    return 0
