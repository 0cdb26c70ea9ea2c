"""Verifier-guided iterative refinement: score candidates, show the best with feedback, revise.

Round 0 draws ``candidates`` answers to the prompt. Every later round takes the ``width``
best-scored candidates not revised yet (over all rounds so far), shows each to the model
with the verifier's feedback (its score, and optionally more text such as a failed public
test) and asks for a revision; the round draws ``candidates`` revisions in all, spread over
the shown candidates (the best gets the remainder first). The answer is the highest-scored
sample of all rounds. This is the "deeper" move of iterative agent decoding (IAD,
Chakraborty et al. 2025, "Iterative Agent Decoding") and of AB-MCTS, with the verifier's
score as feedback as in Self-Refine (Madaan et al. 2023, "Self-Refine: Iterative Refinement
with Self-Feedback"), where the feedback is the model's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ConfigDict

from samplescale.aggregate import argmax
from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.errors import ConfigError
from samplescale.strategies.base import State, Strategy, check_callable, check_int
from samplescale.strategies.prompting import call_params
from samplescale.strategies.registry import STRATEGIES
from samplescale.strategies.step_scorer import ScorerSpec, check_scorer, resolve_scorer
from samplescale.types import Message, Prompt, Result, Sample, Usage
from samplescale.verifiers.process import ProcessScorer
from samplescale.verifiers.scorers import Scale, ScorerError

MAX_ROUNDS = 16
MAX_CANDIDATES = 256

REVISE_TEMPLATE = (
    "A verifier scored your answer {score:.3f} ({scale}; higher is better).{feedback}\n"
    "Check your answer step by step, correct any mistake and write the complete improved "
    "answer in the same format as asked before."
)
"""The feedback message of a revision: ``{score}`` (float), ``{scale}`` (words from
:data:`SCALE_WORDS`) and ``{feedback}`` (the ``feedback`` option's text after a space, or
empty)."""

SCALE_WORDS = {
    "probability": "the probability that it is correct, from 0 to 1",
    "log-probability": "a log-probability, at most 0",
    "reward": "a reward",
}

Feedback = Callable[[Prompt, str], "str | None"]


class RefineState(State):
    """:class:`~samplescale.strategies.base.State` of :class:`Refine`, plus per sample its
    score (on the scorer's scale; None for an error sample or a failed score), its round
    (0 = drawn from the prompt) and the index of the sample it revises (None in round 0);
    the indices already revised; the rounds done; the resolved scorer; and why it stopped
    early (None: it ran all rounds)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    scores: tuple[float | None, ...] = ()
    rounds_of: tuple[int, ...] = ()
    parents: tuple[int | None, ...] = ()
    revised: tuple[int, ...] = ()
    rounds_done: int = 0
    scorer: ProcessScorer | None = None
    stop_reason: str | None = None



def revision_prompt(prompt: Prompt, answer: str, message: str) -> Prompt:
    """The prompt that asks for a revision of ``answer`` (the text generated after the
    prompt's ``prefix``): the conversation so far, the answer as the assistant's turn and
    ``message`` as the next user turn; a raw text prompt gets the answer and the message
    appended, separated by blank lines. ``prefix`` and ``grounding`` are kept."""
    shown = prompt.prefix + answer
    if prompt.messages is not None:
        messages = (
            *prompt.messages,
            Message(role="assistant", content=shown),
            Message(role="user", content=message),
        )
        return prompt.model_copy(update={"messages": messages})
    return prompt.model_copy(update={"text": f"{prompt.text}{shown}\n\n{message}\n\n"})


@STRATEGIES.register("refine")
@dataclass(frozen=True)
class Refine(Strategy):
    """Verifier-guided iterative refinement (IAD, Chakraborty et al. 2025; Self-Refine,
    Madaan et al. 2023).

    Attributes
    ----------
    rounds : int
        Revision rounds after round 0, in [0, 16] (0: best-of-N by the scorer).
    candidates : int or None
        Samples per round, in [1, 256]; None: ``params.n``. In all the run draws
        ``candidates * (rounds + 1)`` samples (fewer if it stops early).
    width : int
        Best candidates shown per revision round, in [1, ``candidates``] (default 1).
    scorer : ProcessScorer, str, callable or None
        What scores a candidate (the whole answer as one step): a ProcessScorer, a
        registered process scorer name (``"p-true"``, ``"judge"``), a callable
        ``(prompt, steps) -> float`` with ``scorer_scale``, or None: the model's own P(True)
        (:func:`~samplescale.verifiers.model_scorers.self_evaluation`), which needs a
        backend with next-token logits.
    scorer_scale : {"probability", "log-probability", "reward"} or None
        The scale of a callable scorer.
    feedback : callable (Prompt, str) -> str or None, optional
        More feedback on a candidate (e.g. a failed public test), added after its score.
    template : str
        The feedback message (:data:`REVISE_TEMPLATE`).

    Result
    ------
    ``samples`` are all samples in drawing order, ``scores`` their scores on the scorer's
    scale (None: error sample or failed score), ``selected`` the best; the trace has one
    record per round (``round``, ``shown``: the revised indices with their scores,
    ``new``: the new indices, ``scores``, ``completion_tokens``, ``scorer_errors``) and a
    ``stop`` record if it stopped early (no candidate could be scored). ``usage`` counts
    every generation and scorer call (P(True) calls are model calls too).

    Raises
    ------
    ConfigError
        If an option is out of its range or of the wrong type (the message names the field
        and the range); at run time if ``scorer`` is None and the backend has no logits.
    UnknownNameError
        If ``scorer`` is a name that is not a registered process scorer.
    """

    name = "refine"
    rounds: int = 2
    candidates: int | None = None
    width: int = 1
    scorer: ScorerSpec = None
    scorer_scale: Scale | None = None
    feedback: Feedback | None = None
    template: str = REVISE_TEMPLATE

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("rounds", self.rounds, 0, MAX_ROUNDS)
        if self.candidates is not None:
            check_int("candidates", self.candidates, 1, MAX_CANDIDATES)
        check_int("width", self.width, 1, self.candidates or MAX_CANDIDATES)
        check_scorer(self.scorer, self.scorer_scale)
        check_callable("feedback", self.feedback, "(Prompt, str) -> str or None", True)
        if not isinstance(self.template, str):
            raise ConfigError(f"template must be a str, got {type(self.template).__name__}")
        try:
            self.template.format(score=0.5, scale="", feedback="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"template may use only {{score}}, {{scale}} and {{feedback}}: {exc!r}"
            ) from exc

    def per_round(self, state: State) -> int:
        """Samples per round: ``candidates``, or ``params.n`` when it is None."""
        return self.candidates or state.params.n

    def init(self, prompt: Prompt, params: SamplingParams) -> RefineState:  # type: ignore[override]
        """The initial state: nothing drawn; ``params.n`` checked when ``candidates`` is None."""
        p = self.sampling_params(params)
        if self.candidates is None:
            check_int("candidates (params.n)", p.n, 1, MAX_CANDIDATES)
            if self.width > p.n:
                raise ConfigError(f"width must be an integer in [1, {p.n}] (candidates = "
                                  f"params.n), got {self.width}")
        return RefineState(prompt=prompt, params=p)

    def done(self, state: State) -> bool:
        assert isinstance(state, RefineState)
        return state.rounds_done > self.rounds or state.stop_reason is not None

    def step(  # type: ignore[override]
        self, rng: np.random.Generator | None, state: RefineState, backend: Backend
    ) -> tuple[RefineState, dict[str, Any]]:
        """One round: round 0 samples the prompt, later rounds revise the best candidates."""
        if state.scorer is None:
            resolved = resolve_scorer(self.name, self.scorer, self.scorer_scale, backend)
            resolved.check_prompt(state.prompt)
            state = state.model_copy(update={"scorer": resolved})
        scorer = state.scorer
        assert scorer is not None
        n = self.per_round(state)
        r = state.rounds_done
        shown: list[tuple[int, float]] = []
        jobs: list[tuple[Prompt, int, int | None]] = []  # prompt, samples, parent
        if r == 0:
            jobs.append((state.prompt, n, None))
        else:
            open_ = [i for i, s in enumerate(state.scores)
                     if s is not None and i not in state.revised]
            open_.sort(key=lambda i: (-state.scores[i], i))  # type: ignore[operator]
            shown = [(i, state.scores[i]) for i in open_[: self.width]]  # type: ignore[misc]
            if not shown:
                stop = {"event": "stop", "round": r,
                        "reason": "no scored candidate is left to revise"}
                return state.model_copy(update={"stop_reason": stop["reason"],
                                                "trace": state.trace + (stop,)}), stop
            for j, (i, score) in enumerate(shown):
                k = n // len(shown) + (j < n % len(shown))
                if k:
                    message = self.feedback_message(state.prompt, state.samples[i], score,
                                                    scorer.scale)
                    jobs.append((revision_prompt(state.prompt, state.samples[i].text,
                                                 message), k, i))
        samples: list[Sample] = []
        parents: list[int | None] = []
        usage = Usage()
        for call, (prompt, k, parent) in enumerate(jobs):
            gen = generate(backend, prompt, call_params(state.params, k, r, call), rng)
            samples += gen.samples
            parents += [parent] * len(gen.samples)
            usage = usage + gen.usage
        scores: list[float | None] = []
        errors: list[str] = []
        for s in samples:
            if s.status != "ok":
                scores.append(None)
                continue
            usage = usage + Usage(scorer_calls=1)
            try:
                value, cost = scorer.measure(state.prompt, (s.text,))
            except ScorerError as exc:
                errors.append(str(exc))
                scores.append(None)
                usage = usage + exc.usage
                continue
            scores.append(value)
            usage = usage + cost
        start = len(state.samples)
        info = {
            "round": r,
            "shown": [{"index": i, "score": sc} for i, sc in shown],
            "new": list(range(start, start + len(samples))),
            "parents": parents,
            "scores": scores,
            "completion_tokens": sum(s.num_tokens for s in samples),
            "scorer_errors": errors,
        }
        new = state.model_copy(
            update={
                "samples": state.samples + tuple(samples),
                "scores": state.scores + tuple(scores),
                "rounds_of": state.rounds_of + (r,) * len(samples),
                "parents": state.parents + tuple(parents),
                "revised": state.revised + tuple(i for i, _ in shown),
                "rounds_done": r + 1,
                "usage": state.usage + usage,
                "trace": state.trace + (info,),
            }
        )
        return new, info

    def feedback_message(self, prompt: Prompt, sample: Sample, score: float, scale: str) -> str:
        """The feedback shown with a candidate: :attr:`template` filled with its score, the
        scale in words and the ``feedback`` option's text (if any)."""
        extra = self.feedback(prompt, sample.text) if self.feedback is not None else None
        if extra is not None and not isinstance(extra, str):
            raise ConfigError(f"feedback must return a str or None, got {type(extra).__name__}")
        return self.template.format(
            score=score, scale=SCALE_WORDS.get(scale, scale),
            feedback=f" {extra}" if extra else "",
        )

    def finalize(self, state: State) -> Result:
        assert isinstance(state, RefineState)
        selected = argmax(state.scores)
        answers = self.answers(state)
        scale = state.scorer.scale if state.scorer is not None else None
        return self.result(
            state,
            answers,
            scores=state.scores,
            score_scale=scale,
            selected=selected,
            answer=answers[selected] if selected is not None else None,
        )
