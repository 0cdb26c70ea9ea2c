"""Pool records for code tasks: correctness is "the tests pass in the sandbox".

:func:`samplescale.evaluate.evaluate` hands problems of a
:class:`~samplescale.tasks.code.CodeTask` to :func:`code_pool_record`, which draws the same
pool as for math (greedy plus ``params.n`` samples, seeded by problem id) and grades every
sample with the task's grader (:meth:`CodeTask.grade`) instead of answer equivalence. The
record has the keys of :func:`samplescale.evaluate_records.pool_record` (so pass@k with intervals
is summarised exactly as for math: Chen et al., 2021's unbiased estimator), and every
sample row also carries the ``program`` that was tested, its ``test_status``
(``passed | failed | timeout | error``) and the ``test_detail`` line.

A greedy run (``n=1``, temperature 0) draws the greedy sample once and uses it as the
pool too.

maj@k for code: samples are clustered by identical program text (after stripping
trailing whitespace of each line); every class whose program passed is merged into the
correct class. That is "majority vote over identical programs", a weak baseline; the
behaviour-based selection belongs to the code strategies
(:mod:`samplescale.strategies.code_selection`), whose runs give
:func:`code_strategy_record`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.evaluate_greedy import greedy_and_pool
from samplescale.evaluate_records import Record, merge_correct_classes, problem_seed, record_head
from samplescale.strategies import CodeSelection, Greedy
from samplescale.strategies.code_selection import EVENT
from samplescale.tasks.base import Problem
from samplescale.tasks.code import CHAT_STOP, COMPLETION_STOP, CodeTask
from samplescale.types import Prompt, Result, Sample
from samplescale.verifiers._workers import CODE_SANDBOX


def code_params(task: CodeTask, params: SamplingParams) -> SamplingParams:
    """``params`` with the task's stop sequences (the closing code fence for chat, the
    Codex stop sequences for completion prompting), unless the caller set its own."""
    if params.stop:
        return params
    return params.replace(stop=COMPLETION_STOP if task.mode == "completion" else CHAT_STOP)


def _normalized(program: str | None) -> str | None:
    if program is None:
        return None
    return "\n".join(line.rstrip() for line in program.strip().splitlines())


def grade_samples(task: CodeTask, problem: Problem, samples: tuple[Sample, ...]) -> list[Record]:
    """One row per sample: text, program, test status and detail, correctness, tokens.

    Error samples (a failed model call) are not run and are never correct. Programs are
    run in parallel through the sandbox pool.
    """
    programs = [task.program(problem, s.text) if s.status == "ok" else None for s in samples]

    def grade(i: int) -> Any:
        if samples[i].status != "ok":
            return None
        return task.grade(problem, programs[i])

    with ThreadPoolExecutor(max_workers=CODE_SANDBOX.size) as pool:
        results = list(pool.map(grade, range(len(samples))))
    rows = []
    for s, program, r in zip(samples, programs, results):
        rows.append(
            {
                "text": s.text,
                "answer": _normalized(program),
                "program": program,
                "test_status": None if r is None else r.status,
                "test_detail": None if r is None else r.detail,
                "correct": bool(r is not None and r.passed),
                "tokens": s.num_tokens,
                "finish_reason": s.finish_reason,
                "status": s.status,
                "mean_logprob": s.mean_logprob if s.status == "ok" and s.logprobs else None,
            }
        )
    return rows


def _greedy(
    task: CodeTask, problem: Problem, prompt: Prompt, backend: Backend, params: SamplingParams
) -> tuple[Record, Record, Any]:
    """The greedy program's record part, its graded row and the greedy run's usage."""
    return _greedy_part(task, problem, Greedy().run(backend, prompt, params))


def _greedy_part(task: CodeTask, problem: Problem, g: Result) -> tuple[Record, Record, Any]:
    """:func:`_greedy` of a finished greedy run ``g``."""
    (row,) = grade_samples(task, problem, g.samples[:1])
    part = {
        "answer": row["answer"],
        "correct": row["correct"],
        "text": row["text"],
        "program": row["program"],
        "test_status": row["test_status"],
        "test_detail": row["test_detail"],
        "usage": g.usage.model_dump(),
    }
    return part, row, g.usage


def _pool_fields(rows: list[Record]) -> Record:
    """``n``, ``c``, the class labels (identical programs) and the correct class of a pool."""

    first: dict[str, int] = {}
    labels: list[int | None] = []
    for i, r in enumerate(rows):
        labels.append(None if r["answer"] is None else first.setdefault(r["answer"], i))
    labels, correct_label = merge_correct_classes(labels, [r["correct"] for r in rows])
    return {
        "n": len(rows),
        "c": sum(r["correct"] for r in rows),
        "labels": labels,
        "correct_label": correct_label,
    }


def code_pool_record(
    task: CodeTask,
    problem: Problem,
    prompt: Prompt,
    backend: Backend,
    params: SamplingParams,
    seed: int,
    greedy_in_pool: bool = True,
) -> Record:
    """Greedy program plus one pool of ``params.n`` programs for one problem, graded by
    tests (the greedy row in the pool's call unless ``greedy_in_pool`` is False, as in
    :func:`samplescale.evaluate_records.pool_record`)."""

    params = code_params(task, params)
    if params.n == 1 and params.temperature == 0:  # the pool IS the greedy sample
        greedy, greedy_row, greedy_usage = _greedy(task, problem, prompt, backend, params)
        rows, usage = [greedy_row], greedy_usage
    else:  # the greedy row beside the pool where the backend batches (evaluate_greedy)
        p = params.replace(seed=problem_seed(seed, problem.id))
        g, gen = greedy_and_pool(backend, prompt, params, p, greedy_in_pool)
        greedy, _, _ = _greedy_part(task, problem, g)
        rows, usage = grade_samples(task, problem, gen.samples), gen.usage
    return {
        **record_head(problem, greedy),
        **_pool_fields(rows),
        "samples": rows,
        "usage": usage.model_dump(),
    }


def code_strategy_record(
    task: CodeTask,
    problem: Problem,
    prompt: Prompt,
    backend: Backend,
    strategy: CodeSelection,
    params: SamplingParams,
    seed: int,
) -> Record:
    """Greedy program plus one run of a code strategy, every sample graded by the hidden tests.

    The strategy draws the same N samples as a pool run with the same seed (one call with
    the problem's seed), selects one by the public examples only
    (:meth:`CodeTask.public_tests`), and the hidden tests then grade every sample. The
    record is a strategy record (``strategy``, ``answer``: the selected program,
    normalised; ``correct``: its verdict) that also holds the pool fields (``n``, ``c``,
    ``labels``, ``correct_label``), so pass@k, maj@k and the coverage (pass@N, the hidden
    tests as the oracle) come from the same samples. It also has ``selected`` (the sample
    index, None when no sample holds a program), the selected ``program`` with its
    ``test_status`` and ``test_detail``, and ``selection``: the rule, the number of public
    examples and the reason in one sentence; each sample row adds ``public_passed`` (public
    examples passed) and ``behaviour_class``.
    """

    params = code_params(task, params)
    greedy, _, _ = _greedy(task, problem, prompt, backend, params)
    bound = strategy.for_problem(task.public_tests(problem))
    r = bound.run(backend, prompt, params.replace(seed=problem_seed(seed, problem.id)))
    rows = grade_samples(task, problem, r.samples)
    why = next(e for e in reversed(r.trace) if e.get("event") == EVENT)
    for row, passed, cls in zip(rows, why["passed"], why["behaviour_classes"]):
        row["public_passed"] = passed
        row["behaviour_class"] = cls
    chosen = None if r.selected is None else rows[r.selected]
    return {
        **record_head(problem, greedy),
        "strategy": strategy.name,
        "selected": r.selected,
        "answer": None if chosen is None else chosen["answer"],
        "correct": bool(chosen is not None and chosen["correct"]),
        "program": None if chosen is None else chosen["program"],
        "test_status": None if chosen is None else chosen["test_status"],
        "test_detail": None if chosen is None else chosen["test_detail"],
        "selection": {k: why[k] for k in ("rule", "examples", "reason")},
        **_pool_fields(rows),
        "samples": rows,
        "usage": r.usage.model_dump(),
    }
