"""Run a task through a backend: one pool of N samples per problem, or a strategy per problem.

The evaluator yields one JSON-serialisable record per problem as soon as it is finished,
so a caller can append it to a file and an interrupted run can resume by passing the ids
already done. It does no I/O itself.

Seeding: problem ``i`` of a run with seed ``s`` is sampled with the seed derived from
``(s, problem id)``, so a resumed run draws exactly what an uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Container, Iterator
from typing import Any

from samplescale.aggregate import cluster
from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.errors import ConfigError
from samplescale.rng import derived_seed
from samplescale.strategies import Greedy, RepeatedSampling, Strategy
from samplescale.tasks.base import Problem, Task
from samplescale.tasks.code import CodeTask
from samplescale.types import Prompt, Result
from samplescale.verifiers.extract import sample_answer
from samplescale.verifiers.math import answers_equivalent, is_equivalent

Record = dict[str, Any]


def problem_seed(seed: int, problem_id: str) -> int:
    """The sampling seed of one problem: depends only on the run seed and the problem id."""
    return derived_seed(seed, zlib.crc32(problem_id.encode("utf-8")))


def _sample_rows(result: Result, gold: str) -> list[dict[str, Any]]:
    rows = []
    for s, a in zip(result.samples, result.answers):
        rows.append(
            {
                "text": s.text,
                "answer": a,
                "correct": bool(s.status == "ok" and is_equivalent(a, gold)),
                "tokens": s.num_tokens,
                "finish_reason": s.finish_reason,
                "status": s.status,
                "mean_logprob": s.mean_logprob if s.status == "ok" and s.logprobs else None,
            }
        )
    return rows


def _usage(result: Result) -> dict[str, Any]:
    return result.usage.model_dump()


def _greedy(problem: Problem, prompt: Prompt, backend: Backend, params: SamplingParams) -> Record:
    r = Greedy().run(backend, prompt, params)
    row = _sample_rows(r, problem.gold)[0]
    return {"answer": r.answer, "correct": row["correct"], "text": row["text"], "usage": _usage(r)}


def pool_record(
    problem: Problem, prompt: Prompt, backend: Backend, params: SamplingParams, seed: int
) -> Record:
    """Greedy answer plus one pool of ``params.n`` samples for one problem (given its prompt).

    The record holds every sample (text, extracted answer, correctness, tokens), the
    answer-class label of each sample (clustered by math equivalence) and the label of the
    correct class (all classes equivalent to the gold answer are merged into it), so that
    pass@k and maj@k for every k <= N are computed from this one pool. With
    ``params.decoding`` other than ``independent`` the pool is drawn jointly (arithmetic:
    marginally exact but dependent samples; priority: the most likely unique samples), so
    pass@k then describes k-subsets of such a set, not k i.i.d. samples.
    """
    greedy = _greedy(problem, prompt, backend, params)
    p = params.replace(seed=problem_seed(seed, problem.id))
    gen = generate(backend, prompt, p)
    answers = tuple(sample_answer(s) for s in gen.samples)
    pool = Result(strategy="pool", samples=gen.samples, answers=answers, usage=gen.usage)
    rows = _sample_rows(pool, problem.gold)
    labels = cluster(answers, answers_equivalent)
    correct_classes = sorted(
        {lab for lab, r in zip(labels, rows) if lab is not None and r["correct"]}
    )
    correct_label = correct_classes[0] if correct_classes else None
    labels = [correct_label if lab in correct_classes else lab for lab in labels]
    return {
        "id": problem.id,
        "question": problem.question,
        "gold": problem.gold,
        "greedy": greedy,
        "n": len(rows),
        "c": sum(r["correct"] for r in rows),
        "labels": labels,
        "correct_label": correct_label,
        "samples": rows,
        "usage": _usage(pool),
    }


def strategy_record(
    problem: Problem,
    prompt: Prompt,
    backend: Backend,
    strategy: Strategy,
    params: SamplingParams,
    seed: int,
) -> Record:
    """Greedy answer plus one run of ``strategy`` on one problem.

    ``repeated-sampling`` without an oracle gets the gold answer as its oracle, so its
    accuracy is coverage (the problem counts as solved when any of the N samples is right).
    """
    if isinstance(strategy, RepeatedSampling) and strategy.oracle is None:
        strategy = dataclasses.replace(strategy, oracle=lambda a: is_equivalent(a, problem.gold))
    greedy = _greedy(problem, prompt, backend, params)
    p = params.replace(seed=problem_seed(seed, problem.id))
    r = strategy.run(backend, prompt, p)
    return {
        "id": problem.id,
        "question": problem.question,
        "gold": problem.gold,
        "greedy": greedy,
        "strategy": strategy.name,
        "answer": r.answer,
        "correct": bool(is_equivalent(r.answer, problem.gold)),
        "vote_shares": r.vote_shares,
        "samples": _sample_rows(r, problem.gold),
        "usage": _usage(r),
    }


def evaluate(
    task: Task,
    backend: Backend,
    params: SamplingParams,
    *,
    strategy: Strategy | None = None,
    seed: int = 0,
    skip: Container[str] = (),
    on_start: Callable[[Problem], None] | None = None,
) -> Iterator[Record]:
    """Evaluate ``task`` problem by problem, yielding a record as each finishes.

    Parameters
    ----------
    task : Task
    backend : Backend
    params : SamplingParams
        Token-level parameters and N (``params.n``) samples per problem.
    strategy : Strategy, optional
        Without one, a pool of N samples is drawn per problem (for pass@k / maj@k); with
        one, the strategy runs once per problem.
    seed : int
        Run seed (per-problem seeds derive from it and the problem id).
    skip : container of str
        Problem ids already done (resume); they are not run again.
    on_start : callable, optional
        Called with each problem before it runs (progress display).

    Yields
    ------
    dict
        One JSON-serialisable record per problem, in task order.
    """
    for problem in task.problems:
        if problem.id in skip:
            continue
        if on_start is not None:
            on_start(problem)
        prompt = task.prompt(problem)
        if isinstance(task, CodeTask):  # graded by running tests, not answer equivalence
            from samplescale.evaluate_code import code_pool_record

            if strategy is not None:
                raise ConfigError("code tasks are evaluated as a pool (pass@k); omit --strategy")
            yield code_pool_record(task, problem, prompt, backend, params, seed)
        elif strategy is None:
            yield pool_record(problem, prompt, backend, params, seed)
        else:
            yield strategy_record(problem, prompt, backend, strategy, params, seed)
