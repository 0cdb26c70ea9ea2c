"""Private helpers shared by the file-based task loaders: reading JSON lines and fields.

Every error names the file, the 1-based line number and what would have been valid.

Numbers are kept as written: a JSON number is decoded to its source text (a
:class:`NumberText`, a ``str`` subclass), so a numeric answer ``1e20`` stays ``"1e20"``
and ``12345678901234567890.5`` keeps all its digits; it is never rounded through
``float``. ``NaN`` and ``Infinity`` are not JSON and are rejected, and a line may nest
arrays and objects at most :data:`MAX_DEPTH` levels deep.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from samplescale.errors import ConfigError, DataError

#: Deepest nesting of arrays and objects accepted in one line (the line's object is 1).
MAX_DEPTH = 100


class NumberText(str):
    """The source text of a JSON number, exactly as written in the file (``"1e20"``)."""

    __slots__ = ()


class _NotJsonConstant(Exception):
    """``NaN``, ``Infinity`` or ``-Infinity`` met while decoding (not valid JSON)."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.token = token


def _reject_constant(token: str) -> Any:
    raise _NotJsonConstant(token)


class DuplicateKeyError(ValueError):
    """A JSON object names one key twice (decoders silently keep the last value)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for :func:`json.loads` that raises :class:`DuplicateKeyError`
    on a key given twice in one object."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKeyError(key)
        obj[key] = value
    return obj


class Record:
    """One JSON object read from a line of a jsonl file.

    Parameters
    ----------
    path : Path
        The file the record came from.
    line : int
        The 1-based line number.
    data : dict
        The decoded JSON object; its numbers (at any depth) are :class:`NumberText`.
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

        A JSON number gives its text exactly as written in the file (``42`` gives
        ``"42"``, ``1e20`` gives ``"1e20"``, ``0.00001`` gives ``"0.00001"``).

        Raises
        ------
        DataError
            If the field is missing, or is not a non-empty string or number.
        """
        if field not in self.data:
            present = ", ".join(repr(k) for k in self.data) or "none"
            raise DataError(f"{self.where}: missing field {field!r}; fields present: {present}")
        value = self.data[field]
        if isinstance(value, NumberText):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            raise DataError(
                f"{self.where}: field {field!r} must be a non-empty string or a number, "
                f"got {value!r}"
            )
        return value

    def metadata(self, exclude: Iterable[str]) -> dict[str, Any]:
        """The fields not in ``exclude``, as plain JSON values, in file order.

        Numbers become ``int`` (integers) or ``float`` (anything with a fraction or an
        exponent), as a JSON decoder gives them.

        Raises
        ------
        DataError
            If a number does not fit: an integer with more digits than Python converts
            (``sys.get_int_max_str_digits()``), or a number beyond the float range
            (``1e400``); write such a value as a string instead.
        """
        skip = set(exclude)
        return {
            key: _plain(value, self.where, key)
            for key, value in self.data.items()
            if key not in skip
        }


def _plain(value: Any, where: str, field: str) -> Any:
    """``value`` with every :class:`NumberText` replaced by its int or float."""
    if isinstance(value, NumberText):
        return _number(value, where, field)
    if isinstance(value, dict):
        return {k: _plain(v, where, field) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, where, field) for v in value]
    return value


def _number(text: NumberText, where: str, field: str) -> int | float:
    """The int or float value of a JSON number's text."""
    is_integer = not any(c in text for c in ".eE")
    try:
        number: int | float = int(text) if is_integer else float(text)
    except ValueError as exc:  # more digits than int() converts
        raise DataError(
            f"{where}: field {field!r} holds an integer with {len(text.lstrip('-'))} "
            f"digits, more than the {sys.get_int_max_str_digits()} Python converts; "
            "write it as a string"
        ) from exc
    if isinstance(number, float) and not math.isfinite(number):
        raise DataError(
            f"{where}: field {field!r} holds the number {str(text)!r}, outside the float "
            f"range (about +-1.8e308); write it as a string"
        )
    return number


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
        If the file is missing, not a regular file or unreadable, a line is not valid
        UTF-8 or JSON (``NaN`` and ``Infinity`` are not JSON), names one key twice, nests arrays and objects more than
        :data:`MAX_DEPTH` levels deep, is not a JSON object, or the file holds no
        records at all.
    """
    check_limit(limit)
    path = Path(path)
    if not path.is_file():
        what = (
            "is a directory, not a file" if path.is_dir()
            else "is not a regular file (a pipe, socket or device)" if path.exists()
            else "does not exist"
        )
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
    """Decode one line as a JSON object, numbers kept as :class:`NumberText`."""
    too_deep = (
        f"{path}:{line}: JSON nested too deeply; at most {MAX_DEPTH} levels of arrays "
        "and objects are allowed"
    )
    try:
        data = json.loads(
            text,
            parse_int=NumberText,
            parse_float=NumberText,
            parse_constant=_reject_constant,
            object_pairs_hook=unique_keys,
        )
    except DuplicateKeyError as exc:
        raise DataError(
            f"{path}:{line}: the JSON object names the key {exc.key!r} twice; "
            "give each field once"
        ) from None
    except _NotJsonConstant as exc:
        raise DataError(
            f"{path}:{line}: invalid JSON ({exc.token} is not a JSON value); "
            "numbers must be finite, write other values as strings"
        ) from None
    except RecursionError:
        raise DataError(too_deep) from None
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}:{line}: invalid JSON ({exc.msg} at column {exc.colno}); "
            "expected one JSON object per line"
        ) from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}:{line}: expected a JSON object, got {type(data).__name__}")
    if _depth(data) > MAX_DEPTH:
        raise DataError(too_deep)
    return data


def _depth(value: Any) -> int:
    """Nesting depth of arrays and objects in ``value`` (iterative: no recursion limit)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return deepest
