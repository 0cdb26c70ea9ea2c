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
import hashlib
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

from samplescale.backends.llamacpp import available_cores
from samplescale.cli_results import append_record, exclusive, load_results
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, DataError
from samplescale.evaluate import evaluate, problem_digest
from samplescale.executors import Executor, LocalExecutor
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
        parts.append(f"L{settings['level']}")
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


def file_identity(path: Path, what: str) -> dict[str, Any]:
    """A file as run.json records it: name, size in bytes and the SHA-256 of its content,
    after following links (an edited file is another run; the model file in another
    directory or virtual environment is the same model; the data file's resolved path is
    recorded beside this, so a copy of the data elsewhere is another run).

    Raises
    ------
    ConfigError
        If ``path`` is not a readable regular file (``what`` names the flag).
    """
    if not path.is_file():
        kind = "does not exist" if not path.exists() else "is not a regular file"
        raise ConfigError(f"{what} {path} {kind}")
    path = path.resolve()
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _settings(
    task: str,
    args: argparse.Namespace,
    params: SamplingParams,
    model: Any,
    limit: int | None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    draft = getattr(args, "draft_model", None)
    return {
        "task": task,
        "data": {"path": str(Path(args.data).resolve()), **(data or {})} if args.data else None,
        "level": (args.level or 1) if task == "arithmetic" else None,
        "fields": (
            [args.question_field or "question", args.answer_field or "answer"]
            if task == "jsonl"
            else [args.question_field or "prompt", args.answer_field or "test"]
            if task.startswith("code-jsonl")
            else None
        ),
        "limit": limit,
        "seed": args.seed,
        "strategy": canonical(args.strategy) if args.strategy else None,
        "model": model,
        # llama.cpp's floating-point sums, and so the samples, depend on the thread count
        "threads": args.threads or available_cores(),
        "params": params.model_dump(mode="json"),
        # strategy options only when given
        **({"options": sorted(args.option)} if getattr(args, "option", None) else {}),
        # model files named by a strategy option (model-switch): their content, like --model
        **_option_models(args),
        # speculative sampling only when used, likewise
        **(
            {
                "draft": [
                    file_identity(draft.resolve(), "--draft-model"), args.draft_k, args.drafts
                ]
            }
            if draft is not None
            else {}
        ),
    }


def _option_models(args: argparse.Namespace) -> dict[str, Any]:
    """``{"option_models": [identity, ...]}`` for the model files a ``models`` strategy
    option names (a name that is not a file, e.g. an upstream model, is kept as given)."""
    from samplescale.cli_sampling import strategy_options

    models = strategy_options(getattr(args, "option", None) or []).get("models")
    if not isinstance(models, list) or not models:
        return {}
    return {"option_models": [
        file_identity(Path(m).resolve(), "models") if isinstance(m, str) and Path(m).is_file()
        else m for m in models
    ]}


def check_settings(run_file: Path, settings: dict[str, Any]) -> None:
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
    old = _with_new_defaults(old)
    if isinstance(old, dict) and "greedy" in settings:  # written before the setting existed
        old = {"greedy": SEQUENTIAL, **old}
    if not isinstance(old, dict) or old != settings:
        old = old if isinstance(old, dict) else {}
        raise ConfigError(
            f"{run_file.parent} holds a run with other settings ({'; '.join(_diff(old, settings))}); "
            "use another --output (or omit --output: every setting gets its own directory)"
        )


_ABSENT = "(absent)"
#: The ``greedy`` setting of a pool run: the greedy answer decoded in the pool's call
#: (:mod:`samplescale.evaluate_greedy`), or in a call of its own first (runs written before).
IN_POOL, SEQUENTIAL = "pool-call", "sequential"


def greedy_layout(run_file: Path) -> str:
    """:data:`SEQUENTIAL` for a run with results whose ``run.json`` predates the ``greedy``
    setting (it resumes in the layout that wrote it, so its samples stay what they would
    have been), the setting of a run that has it, else :data:`IN_POOL`."""
    results = run_file.parent / "results.jsonl"
    if run_file.is_file() and results.is_file() and results.read_bytes().strip():
        try:
            old = json.loads(run_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return IN_POOL  # check_settings reports the corrupt file
        if isinstance(old, dict):
            return str(old.get("greedy", SEQUENTIAL))
    return IN_POOL


def _with_new_defaults(old: Any) -> Any:
    """A run written before a sampling field existed ran with that field's default: fill
    the fields it lacks with their defaults so that it resumes under the same settings."""
    if isinstance(old, dict) and isinstance(old.get("params"), dict):
        defaults = SamplingParams().model_dump(mode="json")
        old = {**old, "params": {**defaults, **old["params"]}}
    return old


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every setting that differs, nested one level (sampling
    fields by name); a key on one side only shows as ``(absent)`` on the other."""
    out = []
    for k in sorted(set(old) | set(new)):
        was, now = old.get(k, _ABSENT), new.get(k, _ABSENT)
        if was == now:
            continue
        if isinstance(was, dict) and isinstance(now, dict):
            out += [
                f"{k}.{f}: {was.get(f, _ABSENT)!r} -> {now.get(f, _ABSENT)!r}"
                for f in sorted(set(was) | set(now))
                if was.get(f, _ABSENT) != now.get(f, _ABSENT)
            ]
        else:
            out.append(f"{k}: {was!r} -> {now!r}")
    return out


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
    for col in ("method", "accuracy", "95% Wilson", "tokens", "time (s)"):
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
) -> tuple[Any, dict[str, Any], Path]:
    """The task, the settings (run.json) and the output directory (made) of a run of
    ``eval`` or ``synth``. ``extra`` settings are added to the eval settings (``synth``'s
    own); ``prefix`` starts the default directory's name.

    Raises
    ------
    ConfigError
        If the task cannot be loaded, the model or data file cannot be read, or
        ``--output`` is empty or not a directory.
    """
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
    try:
        data = file_identity(Path(args.data), "--data") if args.data else None
    except ConfigError as exc:  # the task read it a moment ago
        raise DataError(str(exc)) from exc
    settings = {**_settings(name, args, params, model, limit, data), **(extra or {})}
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
    task, settings, out = open_run(args, params)
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

            summary["stopping"] = price_records(records, seed=args.seed)
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
