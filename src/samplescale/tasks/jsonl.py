"""A generic task loader for jsonl files, with a field mapping."""

from __future__ import annotations

from pathlib import Path

from samplescale.errors import ConfigError, DataError
from samplescale.tasks._records import read_records
from samplescale.tasks.base import Problem, Task


def jsonl_task(
    path: str | Path,
    question_field: str = "question",
    answer_field: str = "answer",
    id_field: str | None = None,
    limit: int | None = None,
    name: str = "jsonl",
) -> Task:
    """Load a task from a jsonl file with one problem per line.

    Parameters
    ----------
    path : str or Path
        The jsonl file (UTF-8, one JSON object per line; blank lines are skipped).
    question_field : str
        The field holding the question text.
    answer_field : str
        The field holding the gold answer: a string, or a JSON number kept exactly as
        written in the file (``1e20`` gives ``"1e20"``, never ``"1e+20"``).
    id_field : str or None
        The field holding each problem's id (string or number, unique in the file; a
        number is kept as written, so ``7`` gives ``"7"``).
        ``None`` numbers the problems ``"{name}-0000"``, ``"{name}-0001"``, ... in
        file order.
    limit : int or None
        Keep only the first ``limit`` problems; ``None`` keeps them all.
    name : str
        The task name.

    Returns
    -------
    Task
        Problems in file order; every other field of a line goes into its metadata
        (JSON numbers there as ``int`` or ``float``).

    Raises
    ------
    ConfigError
        If ``limit`` is below 1 or a field name or ``name`` is empty.
    DataError
        If the file is missing, empty or malformed (``NaN`` and ``Infinity`` are not
        JSON), a line lacks a mapped field, two lines share an id, or a metadata number
        does not fit an int or a finite float.
    """
    for label, value in (
        ("question_field", question_field),
        ("answer_field", answer_field),
        ("name", name),
    ):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{label} must be a non-empty string, got {value!r}")
    if id_field is not None and (not isinstance(id_field, str) or not id_field):
        raise ConfigError(f"id_field must be a non-empty string or None, got {id_field!r}")

    used = {question_field, answer_field} | ({id_field} if id_field else set())
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, record in enumerate(read_records(path, limit)):
        pid = f"{name}-{index:04d}" if id_field is None else record.text(id_field)
        if pid in seen:
            raise DataError(
                f"{record.where}: duplicate id {pid!r} in field {id_field!r} "
                f"(first seen on line {seen[pid]}); ids must be unique"
            )
        seen[pid] = record.line
        problems.append(
            Problem(
                id=pid,
                question=record.text(question_field),
                gold=record.text(answer_field).strip(),
                metadata=record.metadata(used),
                source=record.where,
            )
        )
    return Task(name=name, problems=tuple(problems))
