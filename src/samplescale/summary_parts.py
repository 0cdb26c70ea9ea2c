"""Usage and accuracy of each model or prompt of a run, from the strategies' traces.

``model-switch`` samples several models and ``div-sampling`` several prompts; their
strategy records keep the trace (:func:`samplescale.evaluate_records.result_record`), from
which a run's summary reports, per model (``by_model``) or per prompt (``by_prompt``), the
problems on which it was sampled, the samples it gave, how many of them are right, and what
they cost. The parts are read from the trace alone, so a strategy that records the same
events gets the same report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Record = dict[str, Any]  # one line of results.jsonl
MODEL_COST = ("completion_tokens", "wall_time_s")  # what a model-switch event records
PROMPT_COST = ("prompt_tokens", "completion_tokens", "model_calls")  # a div-sampling row


def _add(parts: dict[str, dict[str, Any]], name: str, rows: Sequence[dict[str, Any]],
         cost: dict[str, Any], keys: tuple[str, ...]) -> None:
    part = parts.setdefault(name, {"problems": 0, "samples": 0, "samples_right": 0,
                                   **dict.fromkeys(keys, 0)})
    part["problems"] += 1
    part["samples"] += len(rows)
    part["samples_right"] += sum(bool(r["correct"]) for r in rows)
    for key in keys:
        part[key] += cost[key]


def _model_parts(record: Record, parts: dict[str, dict[str, Any]]) -> None:
    """model-switch: each ``switch`` event is one model's block of consecutive samples."""
    start = 0
    for event in record["trace"]:
        if event.get("event") == "switch":
            rows = record["samples"][start:start + event["samples"]]
            start += event["samples"]
            _add(parts, event["model"], rows, event, MODEL_COST)


def _prompt_parts(record: Record, parts: dict[str, dict[str, Any]]) -> None:
    """div-sampling: a ``sample`` event names each sample's prompt and each prompt's usage
    (the rewording call is a row of its own, without samples)."""
    for event in record["trace"]:
        if event.get("event") == "sample" and "prompt_of" in event:
            for row in event["prompts"]:
                mine = [s for s, p in zip(record["samples"], event["prompt_of"])
                        if p == row["name"]]
                _add(parts, row["name"], mine, row, PROMPT_COST)


def by_part(records: Sequence[Record]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per-model and per-prompt totals of strategy records that trace them.

    Parameters
    ----------
    records : sequence of dict
        Strategy records (``status="ok"``); records without a ``trace`` (written before
        records kept it) contribute nothing.

    Returns
    -------
    dict
        ``{"by_model": {name: part}}`` and / or ``{"by_prompt": {name: part}}``, only for
        the kinds present; a part is ``{"problems", "samples", "samples_right"}`` plus
        its cost as the trace records it, summed over the records: a model's
        ``completion_tokens`` and ``wall_time_s`` (:data:`MODEL_COST`), a prompt's
        ``prompt_tokens``, ``completion_tokens`` and ``model_calls`` (:data:`PROMPT_COST`;
        the rewording call is the part ``"rephrase (rewording call)"``). Tokens are
        counts, ``wall_time_s`` seconds.
    """
    models: dict[str, dict[str, Any]] = {}
    prompts: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("trace"):
            _model_parts(record, models)
            _prompt_parts(record, prompts)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if models:
        out["by_model"] = models
    if prompts:
        out["by_prompt"] = prompts
    return out
