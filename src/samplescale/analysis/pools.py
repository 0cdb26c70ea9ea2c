"""Per-problem arrays from evaluation records: the input of every analysis function.

Records are the dicts of ``results.jsonl`` (:mod:`samplescale.records`): pool records
(``n`` samples, ``c`` correct, answer-class ``labels``), strategy records (``correct``) and
error records (``status == "error"``), which count as wrong everywhere (0), as in
:mod:`samplescale.summary`. No I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from samplescale.errors import ConfigError, check_int
from samplescale.metrics import maj_at_k, pass_at_k

__all__ = ["correct_vector", "maj_matrix", "pass_matrix", "pool_size"]

Record = dict[str, Any]


def _ok(record: Record) -> bool:
    return bool(record.get("status") == "ok")


def pool_size(records: Sequence[Record]) -> int:
    """The smallest ``n`` of the pool records that ran (the largest k every problem has).

    Raises
    ------
    ConfigError
        If no record is a pool record that ran.
    """
    sizes = [r["n"] for r in records if _ok(r) and "n" in r]
    if not sizes:
        raise ConfigError("records must hold at least one pool record with status 'ok'")
    return int(min(sizes))


def _ks(records: Sequence[Record], ks: Sequence[int]) -> list[int]:
    n = pool_size(records)
    out = [check_int(k, "k") for k in ks]
    bad = [k for k in out if not 1 <= k <= n]
    if bad or not out:
        raise ConfigError(f"ks must be non-empty with every k in [1, {n}] (the pool size), "
                          f"got {list(ks)}")
    return out


def _matrix(records: Sequence[Record], ks: Sequence[int], metric: Any) -> np.ndarray:
    kk = _ks(records, ks)
    out = np.zeros((len(records), len(kk)))
    for i, r in enumerate(records):
        if _ok(r):
            out[i] = [metric(r, k) for k in kk]
    return out


def pass_matrix(records: Sequence[Record], ks: Sequence[int]) -> np.ndarray:
    """Unbiased pass@k (Chen et al. 2021) of each problem at each k.

    Parameters
    ----------
    records : sequence of dict
        Pool and error records of one run.
    ks : sequence of int
        Budgets, each in ``[1, n]`` with ``n`` from :func:`pool_size`.

    Returns
    -------
    numpy.ndarray, shape (P, K), float64
        Row ``i`` is problem ``i`` (records' order), column ``j`` is ``ks[j]``; values in
        ``[0, 1]``, 0 for an error record.
    """
    return _matrix(records, ks, lambda r, k: pass_at_k(r["n"], r["c"], k))


def maj_matrix(records: Sequence[Record], ks: Sequence[int]) -> np.ndarray:
    """Exact maj@k (:func:`samplescale.metrics.maj_at_k`) of each problem at each k.

    Same shapes and conventions as :func:`pass_matrix`.
    """
    return _matrix(records, ks, lambda r, k: maj_at_k(r["labels"], r["correct_label"], k))


def correct_vector(records: Sequence[Record], *, greedy: bool = False) -> np.ndarray:
    """0/1 correctness per problem: a strategy run's answer, or the greedy answer.

    Parameters
    ----------
    records : sequence of dict
        Strategy (or, with ``greedy=True``, any) records of one run.
    greedy : bool, default False
        Read ``record["greedy"]["correct"]`` instead of ``record["correct"]``.

    Returns
    -------
    numpy.ndarray, shape (P,), float64
        1.0 for a correct answer, 0.0 for a wrong one or an error record.

    Raises
    ------
    ConfigError
        If a record that ran lacks the field (``correct`` is only in strategy records).
    """
    out = np.zeros(len(records))
    for i, r in enumerate(records):
        if not _ok(r):
            continue
        src = r.get("greedy") if greedy else r
        if not isinstance(src, dict) or "correct" not in src:
            where = "greedy.correct" if greedy else "correct"
            raise ConfigError(f"record {r.get('id')!r} has no {where} (a pool record has no "
                              "single answer: use pass_matrix or maj_matrix)")
        out[i] = float(bool(src["correct"]))
    return out
