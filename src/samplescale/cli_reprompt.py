"""``samplescale reprompt``: learn a chain-of-thought recipe on training problems by
Gibbs-style sampling (Reprompting, Xu et al. 2023), to apply with ``eval --strategy
reprompting`` (CLI layer; the search is :mod:`samplescale.strategies.reprompting_search`).

The training problems are ``--limit`` problems of the task from ``--offset`` on (the
problems ``--offset`` .. ``--offset + limit - 1``); evaluate on others, e.g. the first
``--offset`` problems (``eval --limit OFFSET`` with the same ``--seed`` for a generated
task). Output directory layout::

    run.json      the settings (eval's, plus "reprompt": offset, k, iterations, ...)
    calls.jsonl   every model call of the search as it is made (the record file format of
                  :mod:`samplescale.backends.record`): a rerun of an interrupted search
                  with the same settings resumes from it (the recorded calls are served,
                  only the rest asks the model), with other settings it is refused
    recipe.json   the recipe, its provenance and the search trace; a rerun with the same
                  settings prints it again, with other settings it is refused

The search's calls always go to calls.jsonl, so ``--record`` is refused (replay that file
with ``--replay``), and so is a ``--decoding`` that draws from next-token logits (they are
not recorded).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from rich.console import Console

from samplescale.cli_sampling import (
    add_sampling_args,
    add_task_args,
    backend_from_args,
    checked_params,
)
from samplescale.errors import ConfigError

RECIPE_FORMAT = 1  # the version of recipe.json's layout
CALLS = "calls.jsonl"  # the search's model calls, as they are made (resumed from)


def add_reprompt_parser(sub: Any) -> None:
    """Add the ``reprompt`` subcommand: eval's task, sampling and backend flags plus the
    search's."""
    p = sub.add_parser(
        "reprompt",
        help="learn a chain-of-thought recipe (few-shot examples) on training problems by "
        "Gibbs sampling (Reprompting); apply it with eval --strategy reprompting",
    )
    add_task_args(p)
    add_sampling_args(p, ("--init-tries",), 4)
    p.add_argument("--offset", type=int, default=0,
                   help="first training problem, 0-based (default 0); --limit counts the "
                   "training problems from it")
    p.add_argument("--k", type=int, default=2, help="examples per prompt and in the recipe, "
                   "1-16 (default 2)")
    p.add_argument("--iterations", type=int, default=8,
                   help="Gibbs iterations T, one call each (default 8)")
    p.add_argument("--candidates", type=int, default=4,
                   help="recipes scored on the training problems at the end (default 4)")
    p.add_argument("--accept-incorrect", type=float, default=0.0,
                   help="probability in [0, 1] of accepting an incorrect proposal "
                   "(1 - the paper's p_rej; default 0)")


def read_recipe(path: Path) -> Any:
    """The ``"recipe"`` list of a recipe.json written by ``samplescale reprompt`` (or a
    JSON file holding the list itself), for ``--option recipe=PATH``.

    Raises
    ------
    ConfigError
        If the file cannot be read or is not such JSON (the list itself is checked when
        the strategy is built).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--option recipe={path}: cannot read a recipe from it ({exc}); "
                          "give the recipe.json samplescale reprompt wrote") from exc
    if isinstance(data, dict) and "recipe" not in data:
        raise ConfigError(f"--option recipe={path}: the JSON object has no \"recipe\" key "
                          f"(keys: {', '.join(map(str, list(data)[:8]))}); give the "
                          "recipe.json samplescale reprompt wrote")
    return data["recipe"] if isinstance(data, dict) else data


def _search_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"offset": args.offset, "k": args.k, "iterations": args.iterations,
            "candidates": args.candidates, "accept_incorrect": args.accept_incorrect,
            "format": RECIPE_FORMAT}


def _training(args: argparse.Namespace) -> tuple[argparse.Namespace, int | None]:
    """``args`` with ``--limit`` covering the offset, and the training problem count."""
    from samplescale.cli_settings import effective_limit
    from samplescale.registry import canonical

    if args.offset < 0:
        raise ConfigError(f"--offset must be an integer >= 0, got {args.offset}")
    if args.n < 1:
        raise ConfigError(f"--init-tries must be an integer >= 1 (zero-shot samples per "
                          f"training problem at the start), got {args.n}")
    m = effective_limit(canonical(args.task), args.limit)
    if m is not None and m < 1:
        raise ConfigError(f"--limit must be an integer >= 1 (training problems), got {m}")
    return argparse.Namespace(**{**vars(args), "limit": None if m is None else args.offset + m}), m


def _existing(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The recipe.json at ``path`` when it was made with ``settings``; None when there is
    none; ConfigError when it was made with other settings."""
    from samplescale.cli_settings import _diff

    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is corrupt ({exc}); use another --output") from exc
    was = old.get("settings") if isinstance(old, dict) else None
    settings = json.loads(json.dumps(settings))  # as JSON reads it back
    if was != settings:
        diff = "; ".join(_diff(was if isinstance(was, dict) else {}, settings))
        raise ConfigError(f"{path} holds a recipe learned with other settings ({diff}); use "
                          "another --output (or omit --output: every setting gets its own "
                          "directory)")
    return dict(old)


def cmd_reprompt(args: argparse.Namespace) -> int:
    """Run ``samplescale reprompt`` (or resume an interrupted search from its calls.jsonl,
    or print the recipe it already learned).

    Raises
    ------
    ConfigError
        For invalid flags, ``--record``, a ``--decoding`` other than independent, and an
        output directory that holds a search or recipe of other settings.
    """
    from samplescale.backends.record_resume import ResumingBackend
    from samplescale.cli_eval import open_run
    from samplescale.cli_results import exclusive
    from samplescale.cli_settings import check_settings
    from samplescale.rng import make_rng
    from samplescale.strategies.reprompting import recipe_json
    from samplescale.strategies.reprompting_search import TrainingProblem, gibbs_search
    from samplescale.tasks import CodeTask

    if args.record is not None:
        raise ConfigError(f"reprompt records every model call to {CALLS} in its output "
                          f"directory (an interrupted search resumes from it); it takes no "
                          f"--record (replay {CALLS} with --replay)")
    loaded, m = _training(args)
    params = checked_params(args, "reprompt", "learns the recipe of --strategy reprompting")
    if params.decoding != "independent":
        raise ConfigError(f"--decoding {params.decoding} draws from next-token logits, which "
                          f"reprompt's record of its calls ({CALLS}, from which an interrupted "
                          "search resumes) cannot hold; use --decoding independent")
    console = Console(soft_wrap=True)
    task, settings, out = open_run(loaded, params, {"reprompt": _search_settings(args)},
                                   prefix="reprompt-")
    if isinstance(task, CodeTask):
        raise ConfigError("reprompt grades answers; code tasks are graded by running tests")
    train = task.problems[args.offset:]
    if len(train) < args.k + 1:
        raise ConfigError(f"{len(train)} training problems from --offset {args.offset}; "
                          f"--k {args.k} needs at least {args.k + 1}")
    recipe_file = out / "recipe.json"
    with exclusive(out):
        done = _existing(recipe_file, settings)
        learned = done is None
        if done is None:
            check_settings(out / "run.json", json.loads(json.dumps(settings)), CALLS)
            backend = ResumingBackend(backend_from_args(args), out / CALLS, settings["model"])
            try:
                s = gibbs_search(
                    backend,
                    [TrainingProblem(task.prompt(p), p.gold) for p in train],
                    params, make_rng(args.seed), k=args.k, iterations=args.iterations,
                    init_tries=args.n, accept_incorrect=args.accept_incorrect,
                    candidates=args.candidates,
                )
            finally:
                backend.close()
            if backend.served:
                console.print(f"resumed the search: {backend.served} of {s.usage.model_calls} "
                              f"model calls served from {out / CALLS}", markup=False)
            done = {
                "recipe": recipe_json(s.recipe),
                "provenance": {
                    "model": settings["model"], "seed": args.seed, "task": settings["task"],
                    "training_problems": [p.id for p in train], "k": args.k,
                    "iterations": args.iterations, "accepted": s.accepted,
                    "rejected": s.rejected, "examples_from": [train[i].id for i in s.examples],
                    "train_accuracy": s.train_accuracy, "initial_correct": sum(
                        r["correct"] for r in s.trace if r["phase"] == "init"),
                    "final_correct": sum(s.correct), "candidates": list(s.candidates),
                    "usage": s.usage.model_dump(mode="json"),
                },
                "settings": settings,
                "trace": list(s.trace),
            }
            tmp = recipe_file.with_name(recipe_file.name + ".tmp")
            tmp.write_text(json.dumps(done, indent=2) + "\n", encoding="utf-8")
            tmp.replace(recipe_file)
        else:
            console.print(f"{recipe_file} already holds the recipe of these settings",
                          markup=False)
    prov = done["provenance"]
    console.print(
        f"reprompt {task.name}: {len(train)} training problems, K={args.k}, "
        f"T={args.iterations}: {prov['accepted']} proposals accepted, {prov['rejected']} "
        f"rejected; {prov['initial_correct']} -> {prov['final_correct']} correct solutions; "
        f"the recipe (examples from {', '.join(prov['examples_from'])}) scores "
        f"{prov['train_accuracy']:.3f} on the other training problems; "
        f"{prov['usage']['completion_tokens']} tokens generated", markup=False)
    held = (f" --limit {args.offset} (the problems before the training ones)" if args.offset
            else " (on problems it was not learned on)")
    console.print(f"{'wrote' if learned else 'the recipe is'} {recipe_file}; apply it: "
                  f"samplescale eval{_task_flags(args)} --strategy reprompting "
                  f"--option recipe={shlex.quote(str(recipe_file))}{held}", markup=False)
    return 0


def _task_flags(args: argparse.Namespace) -> str:
    """The task and model flags of this run, as ``eval`` takes them (the recipe is for this
    task and model)."""
    flags = [("--task", args.task), ("--level", args.level), ("--data", args.data),
             ("--question-field", args.question_field), ("--answer-field", args.answer_field),
             ("--model", getattr(args, "model", None))]
    return "".join(f" {flag} {shlex.quote(str(v))}" for flag, v in flags if v is not None)
