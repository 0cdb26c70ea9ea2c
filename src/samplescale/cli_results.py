"""``results.jsonl`` of ``samplescale eval``: read with a schema, appended safely (CLI layer).

Writing: each record is one ``write`` of its JSON text and a newline, flushed and fsync'ed,
under an exclusive lock on the run directory. An interruption can therefore leave at most
one unterminated last line, never a record merged with the next one.

Reading (on resume), nothing is ever deleted:

* an unterminated last line that is a whole valid record (only its newline was lost) is
  kept and its newline added;
* an unterminated last line that is not (a write cut short) is moved, byte for byte, to
  ``results.jsonl.torn`` beside it, and its problem runs again;
* every other line must be a valid record of this run (:mod:`samplescale.records`) of a
  problem of this task, made from the same problem (its ``problem_digest``); all lines
  that are not are reported at once, each with its number and reason, and the run stops
  with what to do.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from samplescale.errors import ConfigError
from samplescale.records import check_record
from samplescale.tasks._records import DuplicateKeyError, unique_keys

Record = dict[str, Any]
SHOWN_BAD_LINES = 10


def _parse(raw: bytes) -> tuple[Any, str | None]:
    """Decode one line: ``(value, None)``, or ``(None, reason)`` if it is not JSON text."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
    try:
        return json.loads(text, object_pairs_hook=unique_keys), None
    except DuplicateKeyError as exc:
        return None, f"invalid record (the key {exc.key!r} is given twice)"
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return None, "not a record (JSON nested too deeply)"


def _reason(
    raw: bytes, kind: Literal["pool", "strategy"], digests: Mapping[str, str]
) -> tuple[Record | None, str | None]:
    """The record on one line, or the reason it is not a valid record of this run."""
    data, reason = _parse(raw)
    if reason is None:
        reason = check_record(data, kind)
    if reason is not None:
        return None, reason
    pid, digest = data["id"], data["problem_digest"]
    if pid not in digests:
        return None, f"problem {pid!r} is not in this task"
    if digest != digests[pid]:
        return None, (
            f"problem {pid!r} has changed since this record was made (its question, gold "
            "answer, metadata or the task's instruction differ)"
        )
    return data, None


def load_results(
    path: Path,
    digests: Mapping[str, str],
    kind: Literal["pool", "strategy"],
    notify: Any = print,
) -> list[Record]:
    """The records already in ``path`` (one per problem), checked against this run.

    Parameters
    ----------
    path : Path
        The run's ``results.jsonl`` (need not exist).
    digests : mapping of str to str
        Problem id to :func:`samplescale.evaluate.problem_digest` for every problem of the
        task as it is now.
    kind : {"pool", "strategy"}
        Whether the run draws pools (no strategy) or runs a strategy.
    notify : callable
        Called with a message when a torn last line is moved aside.

    Returns
    -------
    list of dict
        The valid records in file order; a line repeated exactly counts once.

    Raises
    ------
    ConfigError
        If any line (other than a torn last one) is not a valid record of this run, or
        two different records name one problem; the message lists each line with its
        number and reason, and what to do. The file is left as it was.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        start = data.rfind(b"\n") + 1
        tail = data[start:]
        if _reason(tail, kind, digests)[1] is None:  # whole record, newline lost
            with path.open("ab") as fh:
                fh.write(b"\n")
            data += b"\n"
        else:
            torn = path.with_name(path.name + ".torn")
            with torn.open("ab") as fh:
                fh.write(tail + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            with path.open("r+b") as fh:
                fh.truncate(start)
            data = data[:start]
            notify(
                f"moved an unfinished last line of {path.name} ({len(tail)} bytes, a write "
                f"cut short) to {torn.name}; its problem runs again"
            )
    records: dict[str, tuple[int, bytes, Record]] = {}
    bad: list[str] = []
    for number, raw in enumerate(data.split(b"\n")[:-1], start=1):
        if not raw.strip():
            continue
        rec, reason = _reason(raw, kind, digests)
        if rec is None:
            bad.append(f"line {number}: {reason}")
            continue
        first = records.get(rec["id"])
        if first is None:
            records[rec["id"]] = (number, raw, rec)
        elif first[1] != raw:
            bad.append(
                f"line {number}: a second, different record of problem {rec['id']!r} "
                f"(the first is line {first[0]})"
            )
    if bad:
        shown = "\n  ".join(bad[:SHOWN_BAD_LINES])
        more = f"\n  ... and {len(bad) - SHOWN_BAD_LINES} more" if len(bad) > SHOWN_BAD_LINES else ""
        raise ConfigError(
            f"{path} has {len(bad)} line(s) that are not valid records of this run:\n  "
            f"{shown}{more}\nsamplescale never deletes results. Repair these lines, or move "
            "them to another file (their problems then run again), or start a fresh run "
            "with another --output."
        )
    return [rec for _, _, rec in records.values()]


def append_record(fh: Any, record: Record) -> None:
    """Append one record to an open results file as one line, flushed to disk."""
    fh.write(json.dumps(record) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


@contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` so two runs never append to one results file."""
    with (out / ".lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigError(f"another samplescale run is writing to {out}") from exc
        yield
