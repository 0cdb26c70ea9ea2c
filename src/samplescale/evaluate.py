"""Run a task through a backend: one pool of N samples per problem, or a strategy per problem.

The evaluator yields one JSON-serialisable record per problem as soon as it is finished,
so a caller can append it to a file and an interrupted run can resume by passing the ids
already done. It does no I/O itself.

Seeding: problem ``i`` of a run with seed ``s`` is sampled with the seed derived from
``(s, problem id)``, so a resumed run draws exactly what an uninterrupted run would have.

Errors: a problem that cannot be run or graded (a :class:`~samplescale.errors.ProblemError`:
a prompt longer than the context or not valid text, a verifier that fails on an answer)
becomes an error record (see :mod:`samplescale.records`) and the evaluation goes on; any
other error (the backend is down, a bad setting) stops it, since it would fail every
problem alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import zlib
from collections.abc import Callable, Container, Iterator
from typing import Any, Literal

from samplescale.aggregate import cluster
from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.errors import (
    ConfigError,
    ProblemError,
    PromptError,
    SamplescaleError,
    VerifierError,
    check_instance,
)
from samplescale.evaluate_greedy import greedy_and_pool
from samplescale.executors import Executor, LocalExecutor
from samplescale.executors.base import BackendSpec, check_backend_arg
from samplescale.rng import derived_seed
from samplescale.stopping import GROUP_WINDOW, lowest_group_confidence
from samplescale.strategies import (
    STRATEGIES,
    BatchPrompting,
    CodeSelection,
    Greedy,
    RepeatedSampling,
    Strategy,
)
from samplescale.tasks.base import Problem, Task
from samplescale.tasks.code import CodeTask
from samplescale.types import Prompt, Result, Sample
from samplescale.verifiers.extract import sample_answer
from samplescale.verifiers.math import answers_equivalent, is_equivalent

Record = dict[str, Any]


def problem_seed(seed: int, problem_id: str) -> int:
    """The sampling seed of one problem: depends only on the run seed and the problem id."""
    return derived_seed(seed, zlib.crc32(problem_id.encode("utf-8")))


def problem_digest(task: Task, problem: Problem) -> str:
    """SHA-256 (hex) of everything that decides a problem's samples and grading: its id,
    question, gold answer, metadata and the task's instruction (not ``source``)."""
    ident = {
        "id": problem.id,
        "question": problem.question,
        "gold": problem.gold,
        "metadata": problem.metadata,
        "instruction": task.instruction,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode("ascii")).hexdigest()


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


def _checked_prompt(task: Task, problem: Problem) -> Prompt:
    """The problem's prompt; PromptError if any of its text is not valid Unicode (a lone
    surrogate, which no tokenizer or wire format can carry)."""
    prompt = task.prompt(problem)
    parts = [prompt.text, prompt.prefix, prompt.grounding]
    parts += [m.content for m in prompt.messages or ()]
    for part in parts:
        try:
            (part or "").encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PromptError(
                f"the prompt is not valid Unicode text (unpaired surrogate "
                f"{part[exc.start]!r} at character {exc.start})"  # type: ignore[index]
            ) from None
    return prompt


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
    """The strategy record of ``problem`` from its greedy part and the strategy's Result."""
    return {
        **record_head(problem, greedy),
        "strategy": r.strategy,
        "answer": r.answer,
        "correct": _grade(r.answer, problem.gold),
        "vote_shares": r.vote_shares,
        "samples": _sample_rows(r, problem.gold),
        "usage": _usage(r),
    }


def error_record(problem_id: str, digest: str, exc: BaseException) -> Record:
    """The record of a problem that could not be run: its id, digest and the reason."""
    return {
        "status": "error",
        "id": problem_id,
        "problem_digest": digest,
        "error": {"type": type(exc).__name__, "message": str(exc)},
    }


def evaluate(
    task: Task,
    backend: Backend | BackendSpec,
    params: SamplingParams,
    *,
    strategy: Strategy | None = None,
    seed: int = 0,
    skip: Container[str] = (),
    on_start: Callable[[Problem], None] | None = None,
    on_error: Literal["record", "stop"] = "record",
    executor: Executor | None = None,
    greedy_in_pool: bool = True,
) -> Iterator[Record]:
    """Evaluate ``task`` problem by problem, giving a record as each finishes.

    Parameters
    ----------
    task : Task
    backend : Backend or BackendSpec
        A backend, or a backend spec: a picklable zero-argument callable that builds one
        (e.g. ``functools.partial(LlamaCppBackend, path)``), which the Ray executor needs
        (each worker builds its own backend from it).
    params : SamplingParams
        Token-level parameters and N (``params.n``) samples per problem.
    strategy : Strategy, optional
        Without one, a pool of N samples is drawn per problem (for pass@k / maj@k); with
        one, the strategy runs once per problem (``batch-prompting`` asks its
        ``batch_size`` problems at a time: :mod:`samplescale.evaluate_batch`). On a code task only the code strategies
        (:class:`~samplescale.strategies.CodeSelection`) run, and they run only there.
    seed : int
        Run seed (per-problem seeds derive from it and the problem id).
    skip : container of str
        Problem ids already done (resume); they are not run again.
    on_start : callable, optional
        Called with each problem before it runs (progress display).
    on_error : {"record", "stop"}
        What a problem that cannot be run or graded (a ProblemError) gives: an error
        record, the evaluation going on (default), or the error, raised with the problem's
        id and source.
    executor : Executor, optional
        Where the problems run: :class:`~samplescale.executors.LocalExecutor` (default:
        here, in order) or :class:`~samplescale.executors.RayExecutor` (Ray actors; records
        come in the order problems finish). Per-problem seeds make the records the same
        with either, on a deterministic backend.
    greedy_in_pool : bool
        Pool runs: decode each problem's greedy answer in the pool's call where the
        backend can (:mod:`samplescale.evaluate_greedy`; default), or in a call of its own
        first (the layout of runs written before; resuming one of those keeps it).

    Returns
    -------
    iterator of dict
        One JSON-serialisable record per problem, in task order (in finishing order with
        the Ray executor), made as it is iterated
        (schemas in :mod:`samplescale.records`); every record has ``status``, ``id`` and
        ``problem_digest`` (:func:`problem_digest`). The arguments are checked at the call.

    Raises
    ------
    ConfigError
        If an argument has the wrong type, ``on_error`` is not ``"record"`` or ``"stop"``,
        or the strategy does not fit the task (a code strategy off a code task, another
        strategy on one).
    ProblemError
        With ``on_error="stop"``, for the first problem that cannot be run or graded.
    SamplescaleError, ImportError, OSError, MemoryError
        When the grading machinery itself fails (:data:`ENVIRONMENT_ERRORS`): it would
        fail every problem alike, so it is never recorded as a problem's error.
    """
    check_instance("task", task, Task, "a Task (samplescale.tasks.load_task)")
    check_backend_arg(backend)
    check_instance("params", params, SamplingParams, "a SamplingParams")
    if strategy is not None:
        check_instance("strategy", strategy, Strategy, "a Strategy or None")
    check_instance("seed", seed, int, "an integer >= 0")
    if seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed}")
    if isinstance(skip, (str, bytes)) or not isinstance(skip, Container):
        raise ConfigError(
            f"skip must be a container of problem ids (a set or list), got "
            f"{type(skip).__name__}"
        )
    if on_start is not None and not callable(on_start):
        raise ConfigError(f"on_start must be a callable (Problem) -> None or None, got "
                          f"{type(on_start).__name__}")
    if on_error not in ("record", "stop"):
        raise ConfigError(f"on_error must be 'record' or 'stop', got {on_error!r}")
    if executor is None:
        executor = LocalExecutor()
    check_instance("executor", executor, Executor, "an Executor (LocalExecutor, RayExecutor)")
    _check_task_strategy(task, strategy)
    runner = ProblemRun(task, params, strategy, seed, on_error, bool(greedy_in_pool))
    todo = [p for p in task.problems if p.id not in skip]
    return executor.run(runner, backend, todo, on_start)


def _check_task_strategy(task: Task, strategy: Strategy | None) -> None:
    """ConfigError unless ``strategy`` can run on ``task``: code tasks take a pool or a
    code strategy (programs have no answer to vote on), code strategies need a code task."""
    code = [n for n in STRATEGIES.names() if issubclass(STRATEGIES.get(n), CodeSelection)]
    if isinstance(task, CodeTask) and strategy is not None:
        if not isinstance(strategy, CodeSelection):
            raise ConfigError(
                f"strategy {strategy.name!r} selects by answer equivalence, which programs "
                f"do not have; code tasks run a pool (no strategy: pass@k) or a code "
                f"strategy: {', '.join(code)}"
            )
    elif isinstance(strategy, CodeSelection):
        raise ConfigError(
            f"strategy {strategy.name!r} selects programs by running them; it needs a code "
            f"task (humaneval, mbpp, code-jsonl), got {task.name!r}"
        )


@dataclasses.dataclass(frozen=True)
class ProblemRun:
    """Everything :func:`evaluate` does for one problem, given a backend (picklable: the
    Ray executor sends it to its workers). ``ProblemRun(...)(backend, problem)`` is the
    problem's record, with its ``problem_digest``. ``memo`` holds the last batch of a
    batch-prompting run (:func:`samplescale.evaluate_batch.batch_record`)."""

    task: Task
    params: SamplingParams
    strategy: Strategy | None
    seed: int
    on_error: str
    greedy_in_pool: bool = True
    memo: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def __call__(self, backend: Backend, problem: Problem) -> Record:
        task, strategy, params, seed = self.task, self.strategy, self.params, self.seed
        digest = problem_digest(task, problem)
        try:
            prompt = _checked_prompt(task, problem)
            if isinstance(task, CodeTask):  # graded by running tests, not answer equivalence
                from samplescale.evaluate_code import code_pool_record, code_strategy_record

                if isinstance(strategy, CodeSelection):
                    rec = code_strategy_record(
                        task, problem, prompt, backend, strategy, params, seed
                    )
                else:
                    rec = code_pool_record(
                        task, problem, prompt, backend, params, seed, self.greedy_in_pool
                    )
            elif strategy is None:
                rec = pool_record(problem, prompt, backend, params, seed, self.greedy_in_pool)
            elif isinstance(strategy, BatchPrompting):  # problems asked batch_size at a time
                from samplescale.evaluate_batch import batch_record

                rec = batch_record(task, problem, prompt, backend, strategy, params, seed,
                                   self.memo)
            else:
                rec = strategy_record(problem, prompt, backend, strategy, params, seed)
        except ProblemError as exc:
            if self.on_error == "stop":
                where = f" ({problem.source})" if problem.source else ""
                raise type(exc)(f"problem {problem.id}{where}: {exc}") from exc
            rec = error_record(problem.id, digest, exc)
        return {**rec, "problem_digest": digest}
