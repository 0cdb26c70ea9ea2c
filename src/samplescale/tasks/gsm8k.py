"""The GSM8K grade-school math task, read from its standard jsonl release."""

from __future__ import annotations

import re
from pathlib import Path

from samplescale.errors import DataError
from samplescale.tasks._records import Record, read_records
from samplescale.tasks.base import Problem, Task

# An optional sign, an integer whose commas (if any) separate thousands groups of exactly
# three digits ("1,000", "1,234,567"), and an optional decimal part.
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def gsm8k(path: str | Path, limit: int | None = None) -> Task:
    """Load GSM8K from a jsonl file with fields ``question`` and ``answer``.

    Each ``answer`` is a worked solution whose final line is ``#### N``. The gold answer
    is ``N`` with thousands separators removed and its sign kept (``#### 1,000`` gives
    ``"1000"``, ``#### -3`` gives ``"-3"``, a leading ``+`` is dropped); the whole
    solution text is kept in ``metadata["solution"]``. ``N`` must be one number: commas
    are accepted only between thousands groups of exactly three digits (``1,234,567``),
    so ``#### 3,4``, ``#### 12,34,5`` and ``#### 1 2`` are errors, never rewritten to
    ``34``, ``12345`` or ``12``.

    Parameters
    ----------
    path : str or Path
        The jsonl file, e.g. the ``test.jsonl`` of the GSM8K release.
    limit : int or None
        Keep only the first ``limit`` problems; ``None`` keeps them all.

    Returns
    -------
    Task
        A task named ``"gsm8k"`` with ids ``"gsm8k-0000"``, ``"gsm8k-0001"``, ... in
        line order.

    Raises
    ------
    ConfigError
        If ``limit`` is below 1.
    DataError
        If the file is missing, empty or malformed, a line lacks ``question`` or
        ``answer``, or an answer has no ``#### N`` line with a number ``N`` (one
        integer or decimal, commas only as thousands separators).
    """
    problems = [
        Problem(
            id=f"gsm8k-{index:04d}",
            question=record.text("question"),
            gold=_final_answer(record),
            metadata={"solution": record.text("answer")},
            source=record.where,
        )
        for index, record in enumerate(read_records(path, limit))
    ]
    return Task(name="gsm8k", problems=tuple(problems))


def _final_answer(record: Record) -> str:
    """The number after the last ``####`` of the record's ``answer``, commas removed."""
    solution = record.text("answer")
    if "####" not in solution:
        raise DataError(
            f"{record.where}: field 'answer' has no final '#### N' line; "
            "GSM8K answers end with a line like '#### 42'"
        )
    raw = solution.rsplit("####", 1)[1].strip()
    if not _NUMBER.fullmatch(raw):
        raise DataError(
            f"{record.where}: final answer {raw!r} after '####' is not a number; "
            "expected one integer or decimal such as '18', '-3', '2.5' or '1,000' "
            "(commas only between thousands groups of three digits, no inner spaces)"
        )
    return raw.replace(",", "").lstrip("+")
