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
from collections.abc import Callable, Container, Iterator
from typing import Any, Literal

from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.errors import (
    ConfigError,
    ProblemError,
    PromptError,
    check_instance,
)
from samplescale.evaluate_records import (
    Record,
    error_record,
    pool_record,
    strategy_record,
)
from samplescale.executors import Executor, LocalExecutor
from samplescale.executors.base import BackendSpec, check_backend_arg
from samplescale.strategies import (
    STRATEGIES,
    BatchPrompting,
    CodeSelection,
    Strategy,
)
from samplescale.tasks.base import Problem, Task
from samplescale.tasks.code import CodeTask
from samplescale.types import Prompt


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
        When the grading machinery itself fails (:data:`~samplescale.evaluate_records.ENVIRONMENT_ERRORS`): it would
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
