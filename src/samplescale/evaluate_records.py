"""One problem's evaluation record: a pool of N samples, a strategy run, or an error.

The builders of the records :func:`samplescale.evaluate.evaluate` yields (their schema is
:mod:`samplescale.records`): every sample with its extracted answer and its grade, the
answer-class labels of a pool (math equivalence, the correct classes merged), the greedy
part, and usage. Grading failures are split as the evaluator needs them: a failure of the
verifier on one answer is a :class:`~samplescale.errors.VerifierError` for that problem, a
failure of its machinery (:data:`ENVIRONMENT_ERRORS`) stops the run. No I/O.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Any

from samplescale.aggregate import cluster
from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.errors import SamplescaleError, VerifierError
from samplescale.evaluate_greedy import greedy_and_pool
from samplescale.rng import derived_seed
from samplescale.stopping import GROUP_WINDOW, lowest_group_confidence
from samplescale.strategies import Greedy, RepeatedSampling, Strategy
from samplescale.tasks.base import Problem
from samplescale.types import Prompt, Result, Sample
from samplescale.verifiers.extract import sample_answer
from samplescale.verifiers.math import answers_equivalent, is_equivalent

Record = dict[str, Any]

def problem_seed(seed: int, problem_id: str) -> int:
    """The sampling seed of one problem: depends only on the run seed and the problem id."""
    return derived_seed(seed, zlib.crc32(problem_id.encode("utf-8")))


#: Failures of the grading machinery itself (it cannot start, a dependency is missing, the
#: machine is out of memory or file handles): they would fail every problem alike, so they
#: stop the evaluation instead of becoming error records.
ENVIRONMENT_ERRORS = (SamplescaleError, ImportError, OSError, MemoryError)


def _verifier_failure(what: str, exc: Exception) -> Exception:
    """``exc`` itself if it is an environment failure (it stops the run), else a
    VerifierError for this one problem."""
    if isinstance(exc, ENVIRONMENT_ERRORS):
        return exc
    return VerifierError(f"the verifier failed on {what}: {type(exc).__name__}: {exc}")


def _grade(answer: str | None, gold: str) -> bool:
    """``is_equivalent(answer, gold)``; a failure of the verifier on this answer is a
    VerifierError (a failure of its machinery is raised as it is)."""
    try:
        return bool(is_equivalent(answer, gold))
    except Exception as exc:
        raise _verifier_failure(f"answer {answer!r:.80}", exc) from exc


def _same_class(a: str | None, b: str | None) -> bool:
    """``answers_equivalent(a, b)``, failures as in :func:`_grade`."""
    try:
        return answers_equivalent(a, b)
    except Exception as exc:
        raise _verifier_failure(f"answers {a!r:.60} and {b!r:.60}", exc) from exc


def _confidence(s: Sample) -> float | None:
    """DeepConf's lowest group confidence at :data:`~samplescale.stopping.GROUP_WINDOW`
    tokens (None without log-probabilities), for pricing ``confidence-stop`` on a pool."""
    if s.status != "ok" or not s.logprobs:
        return None
    c = lowest_group_confidence(s.logprobs, GROUP_WINDOW)
    return c if math.isfinite(c) else None


def _sample_rows(result: Result, gold: str) -> list[dict[str, Any]]:
    rows = []
    for s, a in zip(result.samples, result.answers):
        rows.append(
            {
                "text": s.text,
                "answer": a,
                "correct": s.status == "ok" and _grade(a, gold),
                "tokens": s.num_tokens,
                "finish_reason": s.finish_reason,
                "status": s.status,
                "mean_logprob": s.mean_logprob if s.status == "ok" and s.logprobs else None,
                "lowest_group_confidence": _confidence(s),
            }
        )
    return rows


def _usage(result: Result) -> dict[str, Any]:
    return result.usage.model_dump()


def _greedy(problem: Problem, prompt: Prompt, backend: Backend, params: SamplingParams) -> Record:
    return _greedy_part(problem, Greedy().run(backend, prompt, params))


def _greedy_part(problem: Problem, r: Result) -> Record:
    row = _sample_rows(r, problem.gold)[0]
    return {"answer": r.answer, "correct": row["correct"], "text": row["text"], "usage": _usage(r)}


def merge_correct_classes(
    labels: list[int | None], correct: list[bool]
) -> tuple[list[int | None], int | None]:
    """Every answer class holding a correct sample merged into one: the smallest such
    label. Returns the new labels and that label (None when no sample is correct), as pool
    records store them (maj@k counts votes for the correct class)."""
    correct_classes = sorted({lab for lab, ok in zip(labels, correct) if lab is not None and ok})
    correct_label = correct_classes[0] if correct_classes else None
    return [correct_label if lab in correct_classes else lab for lab in labels], correct_label


def record_head(problem: Problem, greedy: Record) -> Record:
    """The fields every finished record starts with: status, the problem and its greedy part."""
    return {"status": "ok", "id": problem.id, "question": problem.question,
            "gold": problem.gold, "greedy": greedy}


def pool_record(
    problem: Problem,
    prompt: Prompt,
    backend: Backend,
    params: SamplingParams,
    seed: int,
    greedy_in_pool: bool = True,
) -> Record:
    """Greedy answer plus one pool of ``params.n`` samples for one problem (given its prompt).

    The record holds every sample (text, extracted answer, correctness, tokens), the
    answer-class label of each sample (clustered by math equivalence) and the label of the
    correct class (all classes equivalent to the gold answer are merged into it), so that
    pass@k and maj@k for every k <= N are computed from this one pool. With
    ``params.decoding`` other than ``independent`` the pool is drawn jointly (arithmetic:
    marginally exact but dependent samples; priority: the most likely unique samples), so
    pass@k then describes k-subsets of such a set, not k i.i.d. samples.

    On a backend with per-row parameters the greedy answer is decoded in the same call
    and batch steps as the pool (:mod:`samplescale.evaluate_greedy`), unless
    ``greedy_in_pool`` is False (the sequential layout of runs written before it).
    """
    p = params.replace(seed=problem_seed(seed, problem.id))
    g, gen = greedy_and_pool(backend, prompt, params, p, greedy_in_pool)
    greedy = _greedy_part(problem, g)
    answers = tuple(sample_answer(s) for s in gen.samples)
    pool = Result(strategy="pool", samples=gen.samples, answers=answers, usage=gen.usage)
    rows = _sample_rows(pool, problem.gold)
    labels, correct_label = merge_correct_classes(
        cluster(answers, _same_class), [r["correct"] for r in rows]
    )
    return {
        **record_head(problem, greedy),
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
        strategy = dataclasses.replace(strategy, oracle=lambda a: _grade(a, problem.gold))
    greedy = _greedy(problem, prompt, backend, params)
    p = params.replace(seed=problem_seed(seed, problem.id))
    return result_record(problem, greedy, strategy.run(backend, prompt, p))


def result_record(problem: Problem, greedy: Record, r: Result) -> Record:
    """The strategy record of ``problem`` from its greedy part and the strategy's Result.

    ``trace`` is the strategy's trace (``Result.trace`` as JSON): its stopping decisions,
    rounds, switches and search steps, so a run's results show why it stopped where it did.
    """
    return {
        **record_head(problem, greedy),
        "strategy": r.strategy,
        "answer": r.answer,
        "correct": _grade(r.answer, problem.gold),
        "vote_shares": r.vote_shares,
        "samples": _sample_rows(r, problem.gold),
        "usage": _usage(r),
        "trace": r.model_dump(mode="json", include={"trace"})["trace"],
    }


def error_record(problem_id: str, digest: str, exc: BaseException) -> Record:
    """The record of a problem that could not be run: its id, digest and the reason."""
    return {
        "status": "error",
        "id": problem_id,
        "problem_digest": digest,
        "error": {"type": type(exc).__name__, "message": str(exc)},
    }
