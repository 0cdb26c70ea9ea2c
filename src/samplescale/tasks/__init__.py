"""Tasks: problems with gold answers, generated or read from jsonl files.

``TASKS`` maps each task name to a loader whose keyword-only parameters are the options
it uses (a subset of ``path, level, limit, seed, question_field, answer_field``, each with
a default); :func:`load_task` looks the name up, refuses options the task does not use,
and calls it. The loaders for direct use are
:func:`arithmetic`, :func:`gsm8k`, :func:`math_task` and :func:`jsonl_task`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from samplescale.errors import ConfigError
from samplescale.registry import Registry, canonical
from samplescale.tasks.arithmetic import arithmetic
from samplescale.tasks.base import DEFAULT_INSTRUCTION, Problem, Task
from samplescale.tasks.gsm8k import gsm8k
from samplescale.tasks.jsonl import jsonl_task
from samplescale.tasks.math import math_task

__all__ = [
    "DEFAULT_INSTRUCTION",
    "TASKS",
    "Problem",
    "Task",
    "arithmetic",
    "gsm8k",
    "jsonl_task",
    "load_task",
    "math_task",
]

TaskLoader = Callable[..., Task]

TASKS: Registry[TaskLoader] = Registry("task")

ARITHMETIC_DEFAULT_LIMIT = 50


def _need_path(name: str, path: str | Path | None) -> str | Path:
    if path is None:
        raise ConfigError(f"task {name!r} needs a data path (--data PATH)")
    return path


@TASKS.register("arithmetic")
def _load_arithmetic(*, level: int = 1, limit: int | None = None, seed: int = 0) -> Task:
    return arithmetic(
        level=level, limit=ARITHMETIC_DEFAULT_LIMIT if limit is None else limit, seed=seed
    )


@TASKS.register("gsm8k")
def _load_gsm8k(*, path: str | Path | None = None, limit: int | None = None) -> Task:
    return gsm8k(_need_path("gsm8k", path), limit=limit)


@TASKS.register("math")
def _load_math(*, path: str | Path | None = None, limit: int | None = None) -> Task:
    return math_task(_need_path("math", path), limit=limit)


@TASKS.register("jsonl")
def _load_jsonl(
    *,
    path: str | Path | None = None,
    limit: int | None = None,
    question_field: str = "question",
    answer_field: str = "answer",
) -> Task:
    return jsonl_task(
        _need_path("jsonl", path),
        question_field=question_field,
        answer_field=answer_field,
        limit=limit,
    )


#: The command-line flag of each loader option, for error messages.
OPTION_FLAGS = {
    "path": "--data",
    "level": "--level",
    "limit": "--limit",
    "question_field": "--question-field",
    "answer_field": "--answer-field",
}


def load_task(
    name: str,
    *,
    path: str | Path | None = None,
    level: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    question_field: str | None = None,
    answer_field: str | None = None,
) -> Task:
    """Load the task registered as ``name``.

    Options left at None take the task's default; an option given to a task that does not
    use it is an error (never silently ignored). ``seed`` is passed only to tasks that
    generate their problems.

    Parameters
    ----------
    name : str
        A registered task name: ``"arithmetic"``, ``"gsm8k"``, ``"math"`` or ``"jsonl"``
        (snake_case and any letter case are accepted too).
    path : str or Path or None
        The data file; required by the file tasks (``gsm8k``, ``math``, ``jsonl``).
    level : int or None
        The ``arithmetic`` difficulty level (1, 2 or 3; default 1).
    limit : int or None
        Keep at most this many problems (>= 1). ``None`` means all problems of a file,
        or 50 generated ``arithmetic`` problems.
    seed : int
        The ``arithmetic`` generator seed; not used by the file tasks.
    question_field, answer_field : str or None
        The field mapping of the ``jsonl`` task (default ``"question"``, ``"answer"``).

    Returns
    -------
    Task
        The loaded task.

    Raises
    ------
    UnknownNameError
        If ``name`` is not registered; the message lists the registered names.
    ConfigError
        If an option is given that the task does not take, a file task gets no ``path``,
        or an argument is out of range.
    DataError
        If the data file is missing or malformed.
    """
    loader = TASKS.get(name)
    takes = inspect.signature(loader).parameters
    given = {
        key: value
        for key, value in (
            ("path", path),
            ("level", level),
            ("limit", limit),
            ("question_field", question_field),
            ("answer_field", answer_field),
        )
        if value is not None
    }
    for key in given:
        if key not in takes:
            usable = ", ".join(OPTION_FLAGS[k] for k in takes if k in OPTION_FLAGS)
            raise ConfigError(
                f"task {canonical(name)!r} does not use {OPTION_FLAGS[key]} ({key}); "
                f"it takes {usable}"
            )
    if "seed" in takes:
        given["seed"] = seed
    return loader(**given)
