"""Private helpers shared by the file-based task loaders: reading JSON lines and fields.

Every error names the file, the 1-based line number and what would have been valid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from samplescale.errors import ConfigError, DataError


class Record:
    """One JSON object read from a line of a jsonl file.

    Parameters
    ----------
    path : Path
        The file the record came from.
    line : int
        The 1-based line number.
    data : dict
        The decoded JSON object.
    """

    __slots__ = ("path", "line", "data")

    def __init__(self, path: Path, line: int, data: dict[str, Any]) -> None:
        self.path = path
        self.line = line
        self.data = data

    @property
    def where(self) -> str:
        """``"path:line"``, for error messages."""
        return f"{self.path}:{self.line}"

    def text(self, field: str) -> str:
        """Return the field ``field`` as a non-empty string.

        Integers and floats are converted with ``str`` (so ``42`` becomes ``"42"``).

        Raises
        ------
        DataError
            If the field is missing, or is not a non-empty string or number.
        """
        if field not in self.data:
            present = ", ".join(repr(k) for k in self.data) or "none"
            raise DataError(f"{self.where}: missing field {field!r}; fields present: {present}")
        value = self.data[field]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            raise DataError(
                f"{self.where}: field {field!r} must be a non-empty string or a number, "
                f"got {value!r}"
            )
        return value


def check_limit(limit: int | None) -> None:
    """Raise :class:`ConfigError` unless ``limit`` is ``None`` or an integer >= 1."""
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be an integer >= 1 or None (all problems), got {limit!r}")


def read_records(path: str | Path, limit: int | None = None) -> list[Record]:
    """Read the JSON objects of a jsonl file, one per non-blank line.

    Parameters
    ----------
    path : str or Path
        The jsonl file (UTF-8).
    limit : int or None
        Stop after this many records; ``None`` reads them all.

    Returns
    -------
    list of Record
        The records in file order.

    Raises
    ------
    ConfigError
        If ``limit`` is not ``None`` or an integer >= 1.
    DataError
        If the file is missing or unreadable, a line is not valid UTF-8 or JSON, a line
        is not a JSON object, or the file holds no records at all.
    """
    check_limit(limit)
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"task file {str(path)!r} {what}; expected a .jsonl file")
    records: list[Record] = []
    for line, raw in _lines(path):
        if limit is not None and len(records) >= limit:
            break
        records.append(Record(path, line, _decode(path, line, raw)))
    if not records:
        raise DataError(f"task file {str(path)!r} is empty; expected one JSON object per line")
    return records


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each non-blank line of ``path``."""
    try:
        with path.open("rb") as fh:
            for number, raw in enumerate(fh, start=1):
                try:
                    text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"{path}:{number}: not valid UTF-8 ({exc.reason})") from exc
                if text.strip():
                    yield number, text
    except OSError as exc:
        raise DataError(f"cannot read task file {str(path)!r}: {exc.strerror or exc}") from exc


def _decode(path: Path, line: int, text: str) -> dict[str, Any]:
    """Decode one line as a JSON object."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}:{line}: invalid JSON ({exc.msg} at column {exc.colno}); "
            "expected one JSON object per line"
        ) from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}:{line}: expected a JSON object, got {type(data).__name__}")
    return data
