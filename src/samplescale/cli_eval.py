"""``samplescale eval``: files, resume, progress bar and the printed table (CLI layer).

Output directory layout::

    run.json       the settings of the run (a rerun with other settings is refused)
    results.jsonl  one record per problem, appended and flushed as each finishes
    summary.json   the estimates (see samplescale.summary)
    scaling.png    pass@k and maj@k vs k and vs generated tokens (pool runs)
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from samplescale.registry import canonical
from samplescale.summary import summarize_pool, summarize_strategy
from samplescale.tasks import load_task

ARITHMETIC_DEFAULT_LIMIT = 50


def default_output(task: str, args: argparse.Namespace, settings: dict[str, Any]) -> Path:
    """``runs/<task>[-L<level>]-n<N>[-<strategy>]-seed<seed>-<hash>``.

    ``<hash>`` is the first 8 hex digits of the SHA-256 of the run's settings (task, data,
    limit, model, every sampling parameter, strategy and options), so the same command
    resumes its run and a run with any other setting gets a directory of its own.
    """
    parts = [task]
    if task == "arithmetic":
        parts.append(f"L{args.level}")
    parts.append(f"n{args.n}")
    if args.strategy:
        parts.append(canonical(args.strategy))
    parts.append(f"seed{args.seed}")
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    parts.append(digest[:8])
    return Path("runs") / "-".join(parts)


def effective_limit(task: str, limit: int | None) -> int | None:
    """``--limit`` as the run uses it: arithmetic defaults to ``ARITHMETIC_DEFAULT_LIMIT``
    problems; for data files None means all of them."""
    return ARITHMETIC_DEFAULT_LIMIT if limit is None and task == "arithmetic" else limit


def model_identity(path: Path) -> str:
    """The model as run.json records it: file name and size in bytes (the same file in
    another directory or virtual environment resumes the run), or the path if it is not a
    file (the run then fails to load it)."""
    return f"{path.name} ({path.stat().st_size} bytes)" if path.is_file() else str(path)


def _settings(
    task: str, args: argparse.Namespace, params: SamplingParams, model: str, limit: int | None
) -> dict[str, Any]:
    draft = getattr(args, "draft_model", None)
    return {
        "task": task,
        "data": str(Path(args.data).resolve()) if args.data else None,
        "level": args.level if task == "arithmetic" else None,
        "fields": [args.question_field, args.answer_field] if task == "jsonl" else None,
        "limit": limit,
        "seed": args.seed,
        "strategy": canonical(args.strategy) if args.strategy else None,
        "model": model,
        "params": params.model_dump(mode="json"),
        # strategy options only when given, so runs written before they existed resume
        **({"options": sorted(args.option)} if getattr(args, "option", None) else {}),
        # speculative sampling only when used, likewise
        **(
            {"draft": [model_identity(draft.resolve()), args.draft_k, args.drafts]}
            if draft is not None
            else {}
        ),
    }


def _check_settings(run_file: Path, settings: dict[str, Any]) -> None:
    """Write run.json, or refuse when the directory holds results of a run with other
    settings (a run.json without results, left by a run that failed before its first
    problem, is replaced)."""
    results = run_file.parent / "results.jsonl"
    if not results.exists() or not results.read_bytes().strip():
        run_file.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        return
    if not run_file.exists():
        raise ConfigError(
            f"{results} has results but {run_file.name} (their settings) is missing; "
            "use another --output"
        )
    try:
        old = json.loads(run_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{run_file} is corrupt ({exc}); use another --output") from exc
    if not isinstance(old, dict) or old != settings:
        old = old if isinstance(old, dict) else {}
        diff = []
        for k in sorted(settings):
            was, now = old.get(k), settings[k]
            if was == now:
                continue
            if isinstance(was, dict) and isinstance(now, dict):  # name the sampling fields
                diff += [
                    f"{k}.{f}: {was.get(f)!r} -> {now.get(f)!r}"
                    for f in sorted(set(was) | set(now))
                    if was.get(f) != now.get(f)
                ]
            else:
                diff.append(f"{k}: {was!r} -> {now!r}")
        raise ConfigError(
            f"{run_file.parent} holds a run with other settings ({'; '.join(diff)}); "
            "use another --output (or omit --output: every setting gets its own directory)"
        )


def _load_done(path: Path, ids: set[str]) -> list[dict[str, Any]]:
    """Records already in results.jsonl, one per problem id.

    A torn LAST line (a write cut short by an interruption) is dropped from the file; damage
    anywhere else, or a record of a problem that is not in the task, is an error (nothing
    already computed is ever deleted).
    """
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                path.write_text("".join(x + "\n" for x in lines[:-1]), encoding="utf-8")
                break
            raise ConfigError(
                f"{path}:{number} is corrupt ({exc}); repair or remove that line"
            ) from exc
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
            raise ConfigError(f"{path}:{number} is not a result record; repair or remove that line")
        if rec["id"] not in ids:
            raise ConfigError(
                f"{path}:{number} is problem {rec['id']!r}, which is not in this task"
            )
        records.setdefault(rec["id"], rec)  # a duplicated line counts once
    return list(records.values())


@contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` so two runs never append to one results file."""
    with (out / ".lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigError(f"another samplescale run is writing to {out}") from exc
        yield


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
    name = canonical(args.task)
    limit = effective_limit(name, args.limit)
    task = load_task(
        args.task,
        path=args.data,
        level=args.level,
        limit=limit,
        seed=args.seed,
        question_field=args.question_field,
        answer_field=args.answer_field,
    )
    if args.output is not None and not args.output.strip():
        raise ConfigError("--output must be a directory path, got an empty string")
    from samplescale.cli_backend import backend_identity

    model = backend_identity(args)
    settings = _settings(name, args, params, model, limit)
    out = Path(args.output) if args.output is not None else default_output(name, args, settings)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):
        _check_settings(out / "run.json", settings)
        records = _load_done(out / "results.jsonl", {p.id for p in task.problems})
        return _run(
            console, task, out, records, make_backend(args), params, strategy, args.seed, settings
        )


def _run(
    console: Console,
    task: Any,
    out: Path,
    records: list[dict[str, Any]],
    backend: Any,
    params: SamplingParams,
    strategy: Any,
    seed: int,
    settings: dict[str, Any],
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
        for rec in evaluate(task, backend, params, strategy=strategy, seed=seed, skip=done):
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            records.append(rec)
            progress.advance(bar)

    if not records:
        raise ConfigError("the task has no problems to evaluate")
    title = f"{task.name}: {len(records)} problems, N={params.n}, T={params.temperature}"
    if strategy is None:
        summary = summarize_pool(records, seed=seed)
        _print_pool(console, summary, title)
        from samplescale.plots import scaling_figure

        scaling_figure(summary, title).savefig(out / "scaling.png", dpi=120)
    else:
        summary = summarize_strategy(records, seed=seed)
        _print_strategy(console, summary, title)
    summary["settings"] = settings
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    console.print(
        f"wrote {results_file}, {out / 'summary.json'}"
        + ("" if strategy else f", {out / 'scaling.png'}")
    )
    return 0
