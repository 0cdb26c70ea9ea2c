"""``run.json``: the settings that identify a ``samplescale eval`` run (CLI layer).

A rerun into the same directory resumes only under the same settings (:func:`check_settings`
names every difference); a run written before a sampling field existed resumes with that
field's default. Content digests stand for the data file, the model and the model files a
strategy option names (model-switch's models, reprompting's recipe), so an edited file
is another run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from samplescale.backends.llamacpp import available_cores
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.registry import canonical

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


def run_settings(
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
        # a recipe file named by reprompting's option: its content
        **_option_recipe(args),
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


def _option_recipe(args: argparse.Namespace) -> dict[str, Any]:
    """``{"option_recipe": identity}`` for the recipe.json a ``recipe`` strategy option
    names by path (an edited recipe is another run)."""
    from samplescale.cli_sampling import strategy_options

    recipe = strategy_options(getattr(args, "option", None) or []).get("recipe")
    if not isinstance(recipe, str):
        return {}
    return {"option_recipe": file_identity(Path(recipe).resolve(), "--option recipe")}


def check_settings(
    run_file: Path, settings: dict[str, Any], output: str = "results.jsonl"
) -> None:
    """Write run.json, or refuse when the directory holds results (the file ``output``
    next to it, non-empty) of a run with other settings (a run.json without results, left
    by a run that failed before its first problem, is replaced)."""
    results = run_file.parent / output
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
    old = with_new_defaults(old)
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


def with_new_defaults(old: Any) -> Any:
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
