"""Strategy records for batch prompting: the task's problems asked ``batch_size`` at a time.

:func:`samplescale.evaluate.evaluate` hands each problem to :func:`batch_record` when the
strategy is :class:`~samplescale.strategies.BatchPrompting`. Batches are fixed by the task,
not by the run: problem ``i`` (in task order) is in batch ``i // batch_size``, whose seed is
the per-problem seed of its first problem, so a resumed run (or one on several Ray workers)
asks every batch exactly as an uninterrupted run would; the batch call is made once per
batch and kept for the batch's other problems (a worker that gets only part of a batch,
or a resume that starts inside one, makes the same seeded call again).

The record is a strategy record (:func:`samplescale.evaluate_records.strategy_record`'s keys)
whose ``samples`` are this problem's parts of the shared replies (each sample's ``text``
its own part, ``tokens`` 0: a part has no tokens of its own) and whose ``usage`` is its
share of the batch call (:func:`~samplescale.strategies.batch_prompting.share_usage`:
tokens, calls and wall time shared out evenly, so a run's usage sums to what was spent),
plus ``batch``: the batch's index and size, this problem's 1-based position, ``found``,
``saved_prompt_tokens`` (the problem's own prompt's tokens, from its greedy call, minus
its share of the batch's prompt tokens per call) and, in the record of the batch's first
problem only, ``replies``: the N whole replies, stored once per batch.
"""

from __future__ import annotations

from typing import Any

from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.strategies import BatchPrompting
from samplescale.tasks.base import Problem, Task
from samplescale.types import Prompt, Result

Record = dict[str, Any]


def batch_of(task: Task, problem: Problem, size: int) -> tuple[int, tuple[Problem, ...]]:
    """The index of ``problem``'s batch and its problems (task order, ``size`` each, the
    last possibly fewer)."""
    pos = next(i for i, p in enumerate(task.problems) if p.id == problem.id)
    g = pos // size
    return g, task.problems[g * size: (g + 1) * size]


def batch_record(
    task: Task,
    problem: Problem,
    prompt: Prompt,
    backend: Backend,
    strategy: BatchPrompting,
    params: SamplingParams,
    seed: int,
    memo: dict[str, Any],
) -> Record:
    """Greedy answer (the problem alone) plus its part of its batch's run.

    ``memo`` keeps the last batch's results (``{"batch": index, "results": ...}``) so the
    next problem of the same batch does not ask again; it is updated in place.
    """
    from samplescale.evaluate_records import _greedy, problem_seed, result_record

    g, group = batch_of(task, problem, strategy.batch_size)
    if memo.get("batch") != g:
        results = strategy.run_batch(
            backend, [p.question for p in group],
            params.replace(seed=problem_seed(seed, group[0].id)),
            instruction=task.instruction,
        )
        memo.clear()
        memo.update({"batch": g, "results": results})
    j = [p.id for p in group].index(problem.id)
    r: Result = memo["results"][j]
    greedy = _greedy(problem, prompt, backend, params)
    calls = max(r.trace[0]["batch_usage"]["model_calls"], 1)
    share = r.usage.prompt_tokens / calls
    batch: Record = {
        "index": g, "size": len(group), "position": j + 1,
        "found": r.trace[0]["found"],
        "saved_prompt_tokens": greedy["usage"]["prompt_tokens"] - share,
    }
    if j == 0:
        batch["replies"] = r.trace[0]["replies"]
    # the whole replies are kept once, in the batch's first record, not in every trace
    own = tuple({k: v for k, v in e.items() if k != "replies"} for e in r.trace)
    return {**result_record(problem, greedy, r.model_copy(update={"trace": own})), "batch": batch}
