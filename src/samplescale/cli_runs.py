"""Reading finished runs of ``samplescale eval`` for ``compare`` and ``report`` (CLI layer).

A run is a directory written by ``samplescale eval`` (``run.json``, ``results.jsonl``,
perhaps ``summary.json``), or a results file itself (``results.jsonl`` or a gzipped copy
such as ``benchmarks/results/humaneval-qwen0.5b/pool8-results.jsonl.gz``, with the
``run.json`` beside it if there is one). Every line is checked against the record schema
(:mod:`samplescale.records`); the run's kind (pool or strategy) is read from its records.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from samplescale.errors import ConfigError
from samplescale.records import check_record

RESULT_NAMES = ("results.jsonl", "results.jsonl.gz")


@dataclass(frozen=True)
class Run:
    """A finished run: its name (directory or file name), path, settings (``run.json``,
    None when absent), kind and records in file order."""

    name: str
    path: Path
    settings: dict[str, Any] | None
    kind: Literal["pool", "strategy"]
    records: list[dict[str, Any]]


def _results_file(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        for name in RESULT_NAMES:
            if (path / name).is_file():
                return path / name
        raise ConfigError(f"{path} holds no results.jsonl (is it a run directory of "
                          "samplescale eval?)")
    raise ConfigError(f"{path} does not exist")


def _lines(file: Path) -> list[str]:
    try:
        raw = gzip.decompress(file.read_bytes()) if file.suffix == ".gz" else file.read_bytes()
        return raw.decode("utf-8").splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {file}: {exc}") from exc


def load_run(path: str | Path) -> Run:
    """Read and check one run.

    Raises
    ------
    ConfigError
        If the path holds no results, a line is not a valid record (its number and the
        reason are given), the file mixes pool and strategy records, or it has no record.
    """
    path = Path(path)
    file = _results_file(path)
    records: list[dict[str, Any]] = []
    for number, line in enumerate(_lines(file), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{file} line {number}: not valid JSON ({exc.msg})") from exc
    if not records:
        raise ConfigError(f"{file} has no records")
    ran = [r for r in records if isinstance(r, dict) and r.get("status") == "ok"]
    kind: Literal["pool", "strategy"] = (
        "strategy" if any("strategy" in r for r in ran) else "pool"
    )
    for number, rec in enumerate(records, start=1):
        reason = check_record(rec, kind)
        if reason is not None:
            raise ConfigError(f"{file} record {number} is not a valid {kind} record: {reason}")
    settings_file = (path if path.is_dir() else path.parent) / "run.json"
    settings = None
    if settings_file.is_file():
        try:
            settings = json.loads(settings_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{settings_file} is not valid JSON: {exc}") from exc
        if not isinstance(settings, dict):
            raise ConfigError(f"{settings_file} must hold a JSON object (the run's settings), "
                              f"got {type(settings).__name__}")
    name = path.name if path.is_dir() else file.name.removesuffix(".gz").removesuffix(".jsonl")
    if name in ("results", "") or path.is_file() and name.endswith("results"):
        name = f"{file.parent.name}/{name}"
    return Run(name, path, settings, kind, records)


def load_runs(paths: list[str]) -> list[Run]:
    """:func:`load_run` of each path; two runs may not share a name (give distinct
    directories)."""
    runs = [load_run(p) for p in paths]
    names = [r.name for r in runs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"runs must have distinct names, got {dup} more than once")
    return runs
