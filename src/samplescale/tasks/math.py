"""The MATH competition task (and MATH-500 style subsets), read from jsonl."""

from __future__ import annotations

from pathlib import Path

from samplescale.errors import DataError
from samplescale.tasks._records import Record, read_records
from samplescale.tasks.base import Problem, Task

_BOX_COMMANDS = ("\\boxed", "\\fbox")


def math_task(path: str | Path, limit: int | None = None) -> Task:
    """Load a MATH-style task from a jsonl file.

    Each line has ``problem`` and either ``answer`` (used as the gold answer; a JSON
    number is kept exactly as written, ``1e20`` gives ``"1e20"``) or a
    ``solution`` containing ``\\boxed{...}``, in which case the gold answer is the
    content of the *last* ``\\boxed{...}`` (or ``\\fbox{...}``), read with balanced
    nested braces: ``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``. Escaped braces
    (``\\{``, ``\\}``) do not count towards the balance. The short form
    ``\\boxed 5`` is read up to the next ``$`` or whitespace.

    Parameters
    ----------
    path : str or Path
        The jsonl file.
    limit : int or None
        Keep only the first ``limit`` problems; ``None`` keeps them all.

    Returns
    -------
    Task
        A task named ``"math"`` with ids ``"math-0000"``, ... in line order. Every
        field other than ``problem`` and ``answer`` (``level``, ``type``, ``subject``,
        ``solution``, ``unique_id``, ...) is kept in the metadata.

    Raises
    ------
    ConfigError
        If ``limit`` is below 1.
    DataError
        If the file is missing, empty or malformed, a line lacks ``problem``, has
        neither ``answer`` nor ``solution``, or its solution has no readable
        ``\\boxed{...}`` (none at all, or unbalanced braces).
    """
    problems = [
        Problem(
            id=f"math-{index:04d}",
            question=record.text("problem"),
            gold=_gold(record),
            metadata=record.metadata(("problem", "answer")),
            source=record.where,
        )
        for index, record in enumerate(read_records(path, limit))
    ]
    return Task(name="math", problems=tuple(problems))


def _gold(record: Record) -> str:
    """The record's ``answer`` if present, else the last boxed answer of its ``solution``."""
    if "answer" in record.data:
        return record.text("answer").strip()
    if "solution" not in record.data:
        present = ", ".join(repr(k) for k in record.data) or "none"
        raise DataError(
            f"{record.where}: needs field 'answer' or a field 'solution' with \\boxed{{...}}; "
            f"fields present: {present}"
        )
    solution = record.text("solution")
    try:
        boxed = _last_boxed(solution)
    except ValueError as exc:
        raise DataError(f"{record.where}: field 'solution': {exc}") from exc
    if boxed is None:
        raise DataError(
            f"{record.where}: field 'solution' has no \\boxed{{...}} answer and there is "
            "no 'answer' field"
        )
    return boxed


def _last_boxed(text: str) -> str | None:
    """Return the content of the last ``\\boxed{...}`` / ``\\fbox{...}`` in ``text``.

    Parameters
    ----------
    text : str
        A LaTeX solution.

    Returns
    -------
    str or None
        The stripped content with nested braces kept, or ``None`` if there is no box.

    Raises
    ------
    ValueError
        If the last box's braces are not balanced, or the box is empty.
    """
    start = max(text.rfind(command) for command in _BOX_COMMANDS)
    if start < 0:
        return None
    command = next(c for c in _BOX_COMMANDS if text.startswith(c, start))
    rest = text[start + len(command) :]
    if rest.startswith("{"):
        content = _braced(rest)
        if content is None:
            raise ValueError(f"unbalanced braces in the last {command}{{...}}")
    elif rest[:1].isspace():
        words = rest.lstrip().split("$", 1)[0].split()
        content = words[0] if words else ""
    else:
        raise ValueError(f"the last {command} is not followed by '{{' or a space")
    content = content.strip()
    if not content:
        raise ValueError(f"the last {command} is empty")
    return content


def _braced(text: str) -> str | None:
    """The content of the brace group opening ``text``, or ``None`` if it never closes."""
    depth = 0
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[1:i]
        i += 1
    return None
