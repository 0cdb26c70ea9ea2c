"""``samplescale eval``: files, resume, progress bar and the printed table (CLI layer).

Output directory layout::

    run.json       the settings of the run (a rerun with other settings is refused)
    results.jsonl  one record per problem, appended and flushed as each finishes
    summary.json   the estimates (see samplescale.summary); a code strategy's run also
                   has "pool": pass@k and maj@k of the same samples by the hidden tests
    scaling.png    pass@k and maj@k vs k and vs generated tokens (pool runs)
"""

from __future__ import annotations

import argparse
import functools
import json
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

from samplescale.cli_results import append_record, exclusive, load_results
from samplescale.cli_settings import (
    IN_POOL,
    check_settings,
    default_output,
    effective_limit,
    file_identity,
    greedy_layout,
    run_settings,
)
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, DataError
from samplescale.evaluate import evaluate, problem_digest
from samplescale.executors import Executor, LocalExecutor
from samplescale.registry import canonical
from samplescale.summary import summarize_pool, summarize_strategy
from samplescale.tasks import load_task

_CAPTION = (
    "95% Wilson score intervals over problems (summary.json also has the bootstrap and the "
    "problem-clustered Jeffreys interval); tokens and seconds per problem"
)


def _ci(x: dict[str, float]) -> str:
    return f"{x['lo']:.2f}-{x['hi']:.2f}"


def _print_pool(console: Console, s: dict[str, Any], title: str) -> None:
    t = Table(title=title, caption=_CAPTION)
    for col in ("k", "pass@k", "95% Wilson", "maj@k", "95% Wilson", "tokens", "time (s)"):
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
    fit = s["fits"].get("coverage_power_law", {})
    if "a" in fit:
        far = fit["extrapolation"][-1]
        console.print(
            f"coverage fit exp(a k^b) on k = 1..{s['n']}: a = {fit['a']:.3f}, b = {fit['b']:.3f}; "
            f"pass@{far['k']} extrapolated {far['value']:.3f} (95% bootstrap "
            f"{far['lo']:.3f}-{far['hi']:.3f}, problems resampled; the form itself is assumed)"
        )


def _print_strategy(console: Console, s: dict[str, Any], title: str) -> None:
    t = Table(title=title, caption=_CAPTION)
    for col in ("method", "accuracy", "95% Wilson", "samples", "tokens", "time (s)"):
        t.add_column(col, justify="right")
    t.add_row(
        s["strategy"],
        f"{s['accuracy']['mean']:.3f}",
        _ci(s["accuracy"]),
        f"{s['samples']:.1f}",
        f"{s['tokens']:.0f}",
        f"{s['time_s']:.2f}",
    )
    g = s["greedy"]
    t.add_row("greedy", f"{g['mean']:.3f}", _ci(g), "1", f"{g['tokens']:.0f}",
              f"{g['time_s']:.2f}")
    console.print(t)


def _print_errors(console: Console, summary: dict[str, Any]) -> None:
    errors = summary["problem_errors"]
    if not errors:
        return
    console.print(
        f"{len(errors)} of {summary['problems']} problems could not be run; they count as "
        "wrong in every rate above (records with status 'error' in results.jsonl):"
    )
    for e in errors[:10]:
        console.print(f"  {e['id']}: {e['reason'][:200]}", markup=False)
    if len(errors) > 10:
        console.print(f"  ... and {len(errors) - 10} more (summary.json lists them all)")


def open_run(
    args: argparse.Namespace,
    params: SamplingParams,
    extra: dict[str, Any] | None = None,
    prefix: str = "",
    offset: int = 0,
) -> tuple[Any, dict[str, Any], Path]:
    """The task, the settings (run.json) and the output directory (made) of a run of
    ``eval`` or ``synth``. ``extra`` settings are added to the eval settings (``synth``'s
    own); ``prefix`` starts the default directory's name; ``offset`` skips the task's
    first problems (``eval --offset``: the rest keep their ids, so their seeds, and the
    setting is in run.json when it is not 0).

    Raises
    ------
    ConfigError
        If the task cannot be loaded, ``offset`` is negative or leaves no problems, the
        model or data file cannot be read, or ``--output`` is empty or not a directory.
    """
    name = canonical(args.task)
    limit = effective_limit(name, args.limit)
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ConfigError(f"--offset must be an integer >= 0, got {offset!r}")
    try:
        task = load_task(
            args.task,
            path=args.data,
            level=args.level,
            limit=None if limit is None else offset + limit,
            seed=args.seed,
            question_field=args.question_field,
            answer_field=args.answer_field,
        )
    except ConfigError as exc:
        if not offset:
            raise
        raise ConfigError(f"{exc} (the run loads --offset {offset} + --limit {limit} "
                          "problems)") from exc
    if offset:
        if offset >= len(task.problems):
            raise ConfigError(f"--offset {offset} leaves no problems: the task has "
                              f"{len(task.problems)}")
        task = task.model_copy(update={"problems": task.problems[offset:]})
    if args.output is not None and not args.output.strip():
        raise ConfigError("--output must be a directory path, got an empty string")
    from samplescale.cli_backend import backend_identity

    model = backend_identity(args)
    try:
        data = file_identity(Path(args.data), "--data") if args.data else None
    except ConfigError as exc:  # the task read it a moment ago
        raise DataError(str(exc)) from exc
    settings = {**run_settings(name, args, params, model, limit, data),
                **({"offset": offset} if offset else {}), **(extra or {})}
    out = Path(args.output) if args.output is not None else default_output(name, args, settings)
    if args.output is None and prefix:
        out = out.with_name(prefix + out.name)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    return task, settings, out


def run_eval(
    args: argparse.Namespace,
    params: SamplingParams,
    make_backend: Callable[[argparse.Namespace], Any],
    strategy: Any,
    executor: Executor | None = None,
) -> int:
    """Run (or resume) an evaluation and write its files; returns the exit status.

    ``make_backend`` must be picklable (a module-level function) for the Ray executor,
    whose workers each build the backend with ``make_backend(args)``."""
    console = Console(soft_wrap=True)
    task, settings, out = open_run(args, params, offset=args.offset)
    with exclusive(out):
        # not in the default directory's hash: a rerun of the same command finds its run
        settings = {**settings, "greedy": greedy_layout(out / "run.json")}
        args.greedy_layout = settings["greedy"]  # sizes llama.cpp's batch (backend_from_args)
        check_settings(out / "run.json", settings)
        records = load_results(
            out / "results.jsonl",
            {p.id: problem_digest(task, p) for p in task.problems},
            "pool" if strategy is None else "strategy",
            notify=lambda msg: console.print(msg, markup=False),
        )
        if executor is None or executor.name == "local":
            backend = make_backend(args)  # loads here: a bad model fails before the bar
        else:  # each worker builds its own
            backend = functools.partial(make_backend, args)
        return _run(
            console, task, out, records, backend, params, strategy, args, settings,
            executor or LocalExecutor(),
        )


def _run(
    console: Console,
    task: Any,
    out: Path,
    records: list[dict[str, Any]],
    backend: Any,
    params: SamplingParams,
    strategy: Any,
    args: argparse.Namespace,
    settings: dict[str, Any],
    executor: Executor,
) -> int:
    results_file = out / "results.jsonl"
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
        for rec in evaluate(
            task, backend, params, strategy=strategy, seed=args.seed, skip=done,
            on_error=args.on_error, executor=executor,
            greedy_in_pool=settings.get("greedy") == IN_POOL,
        ):
            try:
                append_record(fh, rec)
            except OSError as exc:
                raise ConfigError(
                    f"could not write {results_file} ({exc.strerror or exc}); the "
                    f"{len(records)} problems finished before are saved: fix the cause and "
                    "rerun the same command to resume"
                ) from exc
            records.append(rec)
            progress.advance(bar)

    if not records:
        raise ConfigError("the task has no problems to evaluate")
    order = {p.id: i for i, p in enumerate(task.problems)}  # Ray: records in finishing order
    records.sort(key=lambda r: order.get(r["id"], len(order)))
    title = f"{task.name}: {len(records)} problems, N={params.n}, T={params.temperature}"
    if strategy is None:
        summary = summarize_pool(records, seed=args.seed)
        if summary["curve"]:
            _print_pool(console, summary, title)
            import matplotlib.pyplot as plt

            from samplescale.plots import scaling_figure

            figure = scaling_figure(summary, title)
            figure.savefig(out / "scaling.png", dpi=120)
            plt.close(figure)
        if getattr(args, "price_stopping", False):
            from samplescale.analysis.stopping_records import price_records
            from samplescale.cli_stopping import print_stopping

            try:
                summary["stopping"] = price_records(records, seed=args.seed)
            except ConfigError as exc:  # no pool ran: the rest of the summary still stands
                summary["stopping"] = {"error": str(exc)}
                console.print(f"stopping rules not priced: {exc}", markup=False)
            else:
                print_stopping(console, summary["stopping"], title)
    else:
        summary = summarize_strategy(records, seed=args.seed)
        if summary["strategy"] is not None:
            _print_strategy(console, summary, title)
        ran = [r for r in records if r["status"] == "ok"]
        if ran and all("c" in r for r in ran):  # a code strategy's records are a pool too
            summary["pool"] = summarize_pool(records, seed=args.seed)
            if summary["pool"]["curve"]:
                _print_pool(
                    console, summary["pool"], f"{title}: the same samples as a pool (hidden tests)"
                )
    _print_errors(console, summary)
    summary["settings"] = settings
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    plot = out / "scaling.png"
    console.print(
        f"wrote {results_file}, {out / 'summary.json'}"
        + (f", {plot}" if strategy is None and summary["curve"] else "")
    )
    return 0
