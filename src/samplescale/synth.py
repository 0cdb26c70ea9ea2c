"""Rejection-sampling data synthesis: training rows from the verified samples of a pool.

``samplescale synth`` draws a pool of N samples per problem exactly as ``samplescale eval``
does (:func:`samplescale.evaluate_records.pool_record`), keeps the samples its task's grader marks
correct (rejection sampling, as in STaR, Zelikman et al. 2022, and RFT, Yuan et al. 2023),
optionally only the shortest correct one per problem, and turns each kept sample into a
training row in the chat ``messages`` format with its provenance. This module makes the
rows from records; it does no I/O.
"""

from __future__ import annotations

from typing import Any, Literal

from samplescale.errors import ConfigError
from samplescale.evaluate_records import problem_seed
from samplescale.tasks.base import Problem, Task
from samplescale.tasks.code import CodeTask
from samplescale.types import Prompt

Keep = Literal["all", "shortest"]
KEEP_CHOICES: tuple[str, ...] = ("all", "shortest")

#: The grader behind ``correct`` in a pool record, by kind of task.
VERIFIERS = {
    "answer": "samplescale.verifiers.math.is_equivalent (extracted answer vs gold)",
    "code": "samplescale.verifiers.code (the problem's hidden tests, sandboxed)",
}


def verifier_name(task: Task) -> str:
    """The grader that decided which samples of ``task`` are correct (:data:`VERIFIERS`)."""
    return VERIFIERS["code" if isinstance(task, CodeTask) else "answer"]


def kept_indices(record: dict[str, Any], keep: Keep) -> list[int]:
    """Indices of the samples of one pool record that are kept.

    Parameters
    ----------
    record : dict
        A pool record (:mod:`samplescale.records`); an error record keeps nothing.
    keep : {"all", "shortest"}
        Every correct sample, or only the correct one with the fewest generated tokens
        (ties: the first drawn).

    Returns
    -------
    list of int
        Ascending sample indices (0-based, the order of ``record["samples"]``).

    Raises
    ------
    ConfigError
        If ``keep`` is not one of :data:`KEEP_CHOICES`.
    """
    if keep not in KEEP_CHOICES:
        raise ConfigError(f"keep must be one of {', '.join(KEEP_CHOICES)}, got {keep!r}")
    if record.get("status") != "ok":
        return []
    correct = [
        i for i, s in enumerate(record["samples"]) if s["status"] == "ok" and s["correct"]
    ]
    if keep == "shortest" and correct:
        return [min(correct, key=lambda i: (record["samples"][i]["tokens"], i))]
    return correct


def _messages(prompt: Prompt, reply: str) -> list[dict[str, str]]:
    """The prompt as chat messages (grounding merged in) plus the assistant's reply."""
    prompt = prompt.resolved()
    if prompt.messages is not None:
        msgs = [{"role": m.role, "content": m.content} for m in prompt.messages]
    else:
        msgs = [{"role": "user", "content": prompt.text or ""}]
    return [*msgs, {"role": "assistant", "content": prompt.prefix + reply}]


def training_rows(
    task: Task,
    problem: Problem,
    record: dict[str, Any],
    keep: Keep,
    provenance: dict[str, Any],
) -> list[dict[str, Any]]:
    """The training rows of one problem's pool record.

    Each row is ``{"messages": [...prompt messages, {"role": "assistant", "content":
    reply}], "provenance": {...}}``; the reply is the sample's text after the prompt's
    ``prefix`` (the whole reply the model gave). Provenance is ``provenance`` (the run's
    model identity, run seed, sampling parameters) plus the problem id, its gold answer,
    the problem's sampling seed, the sample's index in the pool (0-based), its tokens, its
    extracted answer and the verifier that accepted it (:func:`verifier_name`).

    Raises
    ------
    ConfigError
        If ``keep`` is not one of :data:`KEEP_CHOICES`, or the record is of another problem.
    """
    if record.get("id") != problem.id:
        raise ConfigError(f"record of problem {record.get('id')!r} given for {problem.id!r}")
    prompt = task.prompt(problem)
    rows: list[dict[str, Any]] = []
    for i in kept_indices(record, keep):
        s = record["samples"][i]
        rows.append(
            {
                "messages": _messages(prompt, s["text"]),
                "provenance": {
                    **provenance,
                    "problem_id": problem.id,
                    "gold": problem.gold,
                    "problem_seed": problem_seed(provenance["seed"], problem.id),
                    "sample_index": i,
                    "tokens": s["tokens"],
                    "answer": s["answer"],
                    "verifier": verifier_name(task),
                },
            }
        )
    return rows


def problem_yield(record: dict[str, Any], keep: Keep) -> dict[str, Any]:
    """``{"id", "drawn", "correct", "kept"}`` of one record (an error record: all 0 and
    ``"error"`` its reason)."""
    if record.get("status") != "ok":
        return {"id": record["id"], "drawn": 0, "correct": 0, "kept": 0,
                "error": record["error"]["message"]}
    return {
        "id": record["id"],
        "drawn": len(record["samples"]),
        "correct": int(record["c"]),
        "kept": len(kept_indices(record, keep)),
    }
