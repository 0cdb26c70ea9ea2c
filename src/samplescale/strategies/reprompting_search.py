"""The Gibbs-style search of Reprompting over training problems (no I/O).

Xu et al. 2023, "Reprompting: Automated Chain-of-Thought Prompt Inference Through Gibbs
Sampling" (ICML 2024). Each training problem ``x_j`` (gold answer ``y_j``) holds a
chain-of-thought solution ``z_j``; the solutions are the state of a Gibbs-like sampler
whose conditional for ``z_j`` is the model prompted with ``K`` other problems' current
``(x_i, z_i)`` as examples. What is implemented (:func:`gibbs_search`):

1. **Initialisation.** For every training problem, one zero-shot call of ``init_tries``
   samples; ``z_j`` is the first sample (in sample order) whose answer the grader accepts,
   else the first sample that is not an error (an incorrect initial solution: the paper
   also starts from zero-shot solutions that may be wrong), else none (every sample
   failed: the problem is not used as an example until it gets a solution).
2. **Gibbs iterations** ``t = 1 .. T``: a problem ``j`` uniformly at random; ``K``
   examples uniformly without replacement among the *other* problems that hold a solution
   (all of them when fewer than ``K`` do), in the drawn order; one sample ``z_j'`` of the
   few-shot prompt. A correct ``z_j'`` replaces ``z_j``; an incorrect one replaces it with
   probability ``accept_incorrect`` (the paper rejects an incorrect sample with
   probability ``p_rej``, so ``accept_incorrect = 1 - p_rej``; default 0: never). An
   error sample is never accepted.
3. **Choosing the recipe.** ``candidates`` recipes of ``K`` examples from the final state
   (drawn uniformly among the problems whose solution is correct, or among all with a
   solution when fewer than ``K`` are correct), each scored by the accuracy of one sample
   of its few-shot prompt on every training problem it does not contain (the paper keeps
   the recipe combination with the best training accuracy). The best wins (ties to the
   first drawn).

Randomness: choices come from ``rng``; each model call gets its own seed stream
(:func:`~samplescale.strategies.prompting.call_params`, keyed by phase and index) when
``params.seed`` is set, so the same seed and ``rng`` seed give the same search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.errors import ConfigError
from samplescale.strategies.base import check_int, check_number
from samplescale.strategies.prompting import call_params, question_of, with_examples
from samplescale.strategies.reprompting import MAX_EXAMPLES, Recipe
from samplescale.types import Prompt, Sample, Usage
from samplescale.verifiers.extract import sample_answer
from samplescale.verifiers.math import extract_answer, is_equivalent

MAX_ITERATIONS = 100_000
MAX_TRIES = 64
MAX_CANDIDATES = 64
_INIT, _GIBBS, _SCORE = 0, 1, 2  # seed-stream keys of the three phases


@dataclass(frozen=True)
class TrainingProblem:
    """One training problem of the search: its zero-shot ``prompt`` and ``gold`` answer."""

    prompt: Prompt
    gold: str


@dataclass(frozen=True)
class RecipeSearch:
    """What :func:`gibbs_search` found.

    Attributes
    ----------
    recipe : tuple of (str, str)
        The chosen recipe, ``K`` ``(question, solution)`` pairs in prompt order.
    examples : tuple of int
        The training problems (indices) the recipe's examples come from.
    train_accuracy : float
        Accuracy in [0, 1] of the chosen recipe on the training problems it does not
        contain (one sample each).
    solutions : tuple of (str or None)
        The final solution ``z_j`` of every training problem (None: none found).
    correct : tuple of bool
        Whether each final solution's answer is graded correct.
    accepted, rejected : int
        Gibbs proposals that replaced a solution / were dropped.
    candidates : tuple of dict
        Each scored candidate: ``examples`` (indices), ``correct``, ``scored``, ``accuracy``.
    trace : tuple of dict
        One record per model call: ``phase`` (``"init"``, ``"gibbs"`` or ``"score"``),
        ``problem`` (index), ``answer`` (the extracted answer; init: of the kept sample),
        ``correct``; init adds ``tries``; gibbs adds ``iteration``, ``examples`` and
        ``accepted``; score adds ``candidate``.
    usage : Usage
        Everything the search spent (all calls of all phases).
    """

    recipe: Recipe
    examples: tuple[int, ...]
    train_accuracy: float
    solutions: tuple[str | None, ...]
    correct: tuple[bool, ...]
    accepted: int
    rejected: int
    candidates: tuple[dict[str, Any], ...]
    trace: tuple[dict[str, Any], ...] = field(default=())
    usage: Usage = field(default=Usage())


def _check(problems: Sequence[TrainingProblem], k: int, iterations: int, init_tries: int,
           accept_incorrect: float, candidates: int) -> None:
    check_int("k", k, 1, MAX_EXAMPLES)
    check_int("iterations", iterations, 0, MAX_ITERATIONS)
    check_int("init_tries", init_tries, 1, MAX_TRIES)
    check_int("candidates", candidates, 1, MAX_CANDIDATES)
    check_number("accept_incorrect", accept_incorrect, lambda p: 0.0 <= p <= 1.0, "[0, 1]")
    if len(problems) < k + 1:
        raise ConfigError(f"reprompting needs at least k + 1 = {k + 1} training problems "
                          f"(each problem's examples are k others), got {len(problems)}")
    for i, p in enumerate(problems):
        if not isinstance(p, TrainingProblem):
            raise ConfigError(f"problems[{i}] must be a TrainingProblem, got {type(p).__name__}")


def gibbs_search(
    backend: Backend,
    problems: Sequence[TrainingProblem],
    params: SamplingParams,
    rng: np.random.Generator,
    *,
    k: int = 2,
    iterations: int = 8,
    init_tries: int = 4,
    accept_incorrect: float = 0.0,
    candidates: int = 4,
    grade: Callable[[str | None, str], bool] = is_equivalent,
    extract: Callable[[str], str | None] = extract_answer,
) -> RecipeSearch:
    """Learn a chain-of-thought recipe on ``problems`` by Gibbs-style sampling (module
    docstring: the three phases, as implemented).

    Parameters
    ----------
    backend : Backend
    problems : sequence of TrainingProblem, length M >= k + 1
        The training problems (only these are ever prompted).
    params : SamplingParams
        Sampling parameters of every call (``n`` is set per call: ``init_tries``, then 1).
    rng : numpy.random.Generator
        The problem and example choices (and the samples when ``params.seed`` is None).
    k : int
        Examples per prompt and in the recipe, in [1, 16].
    iterations : int
        Gibbs iterations T (one call each), in [0, 100000].
    init_tries : int
        Zero-shot samples per problem at initialisation, in [1, 64].
    accept_incorrect : float
        Probability in [0, 1] that an incorrect proposal is accepted (``1 - p_rej``).
    candidates : int
        Recipes scored at the end, in [1, 64] (``M - k`` calls each).
    grade : callable (answer or None, gold) -> bool
        Whether an answer is correct (default math equivalence).
    extract : callable str -> str or None
        Final-answer extraction.

    Returns
    -------
    RecipeSearch

    Raises
    ------
    ConfigError
        Naming the argument and its range for an invalid one; when no training problem
        got a solution at all (every sample an error), or fewer than ``k`` did.
    """
    _check(problems, k, iterations, init_tries, accept_incorrect, candidates)
    m = len(problems)
    questions = [question_of(p.prompt) for p in problems]
    trace: list[dict[str, Any]] = []
    usage = Usage()

    def ask(prompt: Prompt, n: int, *key: int) -> list[Sample]:
        nonlocal usage
        gen = generate(backend, prompt, call_params(params, n, *key), rng)
        usage = usage + gen.usage
        return list(gen.samples)

    def judge(s: Sample, j: int) -> tuple[str | None, bool]:
        a = sample_answer(s, extract)
        return a, s.status == "ok" and bool(grade(a, problems[j].gold))

    solutions: list[str | None] = [None] * m
    correct = [False] * m
    for j, p in enumerate(problems):
        judged = [(s, *judge(s, j)) for s in ask(p.prompt, init_tries, _INIT, j)]
        pick = next((x for x in judged if x[2]), None) or next(
            (x for x in judged if x[0].status == "ok"), None)
        if pick is not None:
            solutions[j], correct[j] = pick[0].text, pick[2]
        trace.append({"phase": "init", "problem": j, "tries": len(judged),
                      "answer": pick[1] if pick else None, "correct": correct[j]})

    def shots(chosen: Sequence[int]) -> Recipe:
        return tuple((questions[i], solutions[i] or "") for i in chosen)

    accepted = rejected = 0
    for t in range(iterations):
        j = int(rng.integers(m))
        others = [i for i in range(m) if i != j and solutions[i] is not None]
        chosen = [others[i] for i in rng.permutation(len(others))[:k]]
        samples = ask(with_examples(problems[j].prompt, shots(chosen)), 1, _GIBBS, t)
        answer, ok = judge(samples[0], j) if samples else (None, False)
        take = bool(samples) and samples[0].status == "ok" and (
            ok or (accept_incorrect > 0 and rng.random() < accept_incorrect))
        if take:
            solutions[j], correct[j] = samples[0].text, ok
        accepted, rejected = accepted + take, rejected + (not take)
        trace.append({"phase": "gibbs", "iteration": t, "problem": j, "examples": chosen,
                      "answer": answer, "correct": ok, "accepted": take})

    pool = [i for i in range(m) if correct[i]]
    if len(pool) < k:
        pool = [i for i in range(m) if solutions[i] is not None]
    if len(pool) < k:
        raise ConfigError(f"only {len(pool)} of {m} training problems got a solution (every "
                          f"sample of the others failed); a recipe needs k = {k}")
    scored: list[dict[str, Any]] = []
    for c in range(candidates):
        chosen = [pool[i] for i in rng.permutation(len(pool))[:k]]
        hits = 0
        rest = [j for j in range(m) if j not in chosen]
        for j in rest:
            samples = ask(with_examples(problems[j].prompt, shots(chosen)), 1, _SCORE, c, j)
            answer, ok = judge(samples[0], j) if samples else (None, False)
            hits += ok
            trace.append({"phase": "score", "candidate": c, "problem": j, "answer": answer,
                          "correct": ok})
        scored.append({"examples": chosen, "correct": hits, "scored": len(rest),
                       "accuracy": hits / len(rest)})
    best = max(range(candidates), key=lambda c: (scored[c]["accuracy"], -c))
    chosen = scored[best]["examples"]
    return RecipeSearch(
        recipe=shots(chosen), examples=tuple(chosen),
        train_accuracy=scored[best]["accuracy"], solutions=tuple(solutions),
        correct=tuple(correct), accepted=accepted, rejected=rejected,
        candidates=tuple(scored), trace=tuple(trace), usage=usage,
    )
