"""Tasks: problems with gold answers, generated or read from jsonl files.

``TASKS`` maps each task name to a loader with the uniform keyword-only signature
``loader(*, path, level, limit, seed, question_field, answer_field) -> Task``;
:func:`load_task` looks the name up and calls it. The loaders for direct use are
:func:`arithmetic`, :func:`gsm8k`, :func:`math_task` and :func:`jsonl_task`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from samplescale.errors import ConfigError
from samplescale.registry import Registry
from samplescale.tasks.arithmetic import arithmetic
from samplescale.tasks.base import DEFAULT_INSTRUCTION, Problem, Task
from samplescale.tasks.code import CodeTask, code_jsonl, humaneval, mbpp
from samplescale.tasks.gsm8k import gsm8k
from samplescale.tasks.jsonl import jsonl_task
from samplescale.tasks.math import math_task

__all__ = [
    "DEFAULT_INSTRUCTION",
    "TASKS",
    "CodeTask",
    "Problem",
    "Task",
    "arithmetic",
    "code_jsonl",
    "gsm8k",
    "humaneval",
    "jsonl_task",
    "mbpp",
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
def _load_arithmetic(*, level: int, limit: int | None, seed: int, **_: object) -> Task:
    return arithmetic(
        level=level, limit=ARITHMETIC_DEFAULT_LIMIT if limit is None else limit, seed=seed
    )


@TASKS.register("gsm8k")
def _load_gsm8k(*, path: str | Path | None, limit: int | None, **_: object) -> Task:
    return gsm8k(_need_path("gsm8k", path), limit=limit)


@TASKS.register("math")
def _load_math(*, path: str | Path | None, limit: int | None, **_: object) -> Task:
    return math_task(_need_path("math", path), limit=limit)


@TASKS.register("jsonl")
def _load_jsonl(
    *,
    path: str | Path | None,
    limit: int | None,
    question_field: str,
    answer_field: str,
    **_: object,
) -> Task:
    return jsonl_task(
        _need_path("jsonl", path),
        question_field=question_field,
        answer_field=answer_field,
        limit=limit,
    )


def _load_code(
    kind: str,
    mode: str,
    *,
    path: str | Path | None,
    limit: int | None,
    question_field: str,
    answer_field: str,
    **_: object,
) -> Task:
    """Loader of the code tasks: ``kind`` is humaneval, mbpp or code-jsonl; for
    code-jsonl, --question-field names the code prompt field (default ``prompt``) and
    --answer-field the tests field (default ``test``)."""
    data = _need_path(kind if mode == "chat" else f"{kind}-completion", path)
    if kind == "humaneval":
        return humaneval(data, mode=mode, limit=limit)  # type: ignore[arg-type]
    if kind == "mbpp":
        return mbpp(data, mode=mode, limit=limit)  # type: ignore[arg-type]
    return code_jsonl(
        data,
        prompt_field="prompt" if question_field == "question" else question_field,
        test_field="test" if answer_field == "answer" else answer_field,
        mode=mode,  # type: ignore[arg-type]
        limit=limit,
    )


for _kind in ("humaneval", "mbpp", "code-jsonl"):
    for _mode, _suffix in (("chat", ""), ("completion", "-completion")):
        TASKS.register(_kind + _suffix)(functools.partial(_load_code, _kind, _mode))


def load_task(
    name: str,
    *,
    path: str | Path | None = None,
    level: int = 1,
    limit: int | None = None,
    seed: int = 0,
    question_field: str = "question",
    answer_field: str = "answer",
) -> Task:
    """Load the task registered as ``name``.

    Parameters
    ----------
    name : str
        A registered task name: ``"arithmetic"``, ``"gsm8k"``, ``"math"``, ``"jsonl"``,
        or a code task ``"humaneval"``, ``"mbpp"``, ``"code-jsonl"`` (chat prompting) and
        each with ``-completion`` (completion prompting) (snake_case and any letter case
        are accepted too).
    path : str or Path or None
        The data file; required by the file tasks (``gsm8k``, ``math``, ``jsonl``),
        ignored by ``arithmetic``.
    level : int
        The ``arithmetic`` difficulty level (1, 2 or 3); ignored by the other tasks.
    limit : int or None
        Keep at most this many problems (>= 1). ``None`` means all problems of a file,
        or 50 generated ``arithmetic`` problems.
    seed : int
        The ``arithmetic`` generator seed; ignored by the other tasks.
    question_field, answer_field : str
        The field mapping of the ``jsonl`` task; ignored by the other tasks.

    Returns
    -------
    Task
        The loaded task.

    Raises
    ------
    UnknownNameError
        If ``name`` is not registered; the message lists the registered names.
    ConfigError
        If a file task gets no ``path``, or an argument is out of range.
    DataError
        If the data file is missing or malformed.
    """
    loader = TASKS.get(name)
    return loader(
        path=path,
        level=level,
        limit=limit,
        seed=seed,
        question_field=question_field,
        answer_field=answer_field,
    )
