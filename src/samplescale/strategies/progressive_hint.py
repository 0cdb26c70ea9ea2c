"""Progressive-hint prompting with hint marginalization: earlier answers as hints, by rounds.

Progressive-Hint Prompting (PHP; Zheng et al. 2023, "Progressive-Hint Prompting Improves
Reasoning in Large Language Models") asks the question again with the answers given so far
as a hint ("(Hint: The answer is near to 12, 14.)"). Hint marginalization (Pal et al. 2024,
"Hint Marginalization for Improved Reasoning in Large Language Models") makes this a Monte
Carlo estimate of the answer distribution: with ``p_0`` the answer distribution of round 0
(samples of the plain prompt), round ``r`` draws, for each of its samples, hints ``h`` from
``p_{r-1}`` and a reply ``y ~ LLM(x, h)``, so the empirical distribution of round ``r``'s
answers estimates ``p_r(y) = sum_h p(y | x, h) p_{r-1}(h)``. The answer is the mode of the
last round's estimate (or of all rounds pooled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ConfigDict

from samplescale.aggregate import vote
from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.errors import ConfigError
from samplescale.rng import derived_seed, make_rng
from samplescale.strategies.base import State, Strategy, check_int
from samplescale.strategies.prompting import call_params, with_note
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Prompt, Result, Sample, Usage

MAX_ROUNDS = 16
MAX_PER_ROUND = 256
MAX_HINTS = 8

HINT_TEMPLATE = "(Hint: The answer is near to {hints}.)"
"""PHP's hint (Zheng et al. 2023), added after the question: ``{hints}`` is the hinted
answers joined by ", "."""


class HintState(State):
    """:class:`~samplescale.strategies.base.State` plus the round of each sample and the
    rounds done."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rounds_of: tuple[int, ...] = ()
    rounds_done: int = 0
    stopped: bool = False



def draw_hints(
    rng: np.random.Generator, classes: list[tuple[str, int]], size: int
) -> tuple[str, ...]:
    """Hints for one sample: ``min(size, len(classes))`` distinct answers drawn without
    replacement, each with probability proportional to its count in ``classes`` (answer
    representative, votes), listed in ``classes``' order."""
    k = min(size, len(classes))
    counts = np.array([c for _, c in classes], dtype=float)
    picked = rng.choice(len(classes), size=k, replace=False, p=counts / counts.sum())
    return tuple(classes[i][0] for i in sorted(int(i) for i in picked))


@STRATEGIES.register("progressive-hint")
@dataclass(frozen=True)
class ProgressiveHint(Strategy):
    """Progressive-hint prompting with hint marginalization (PHP, Zheng et al. 2023; Pal et
    al. 2024).

    Attributes
    ----------
    rounds : int
        Hint rounds after round 0, in [0, 16] (0: self-consistency).
    per_round : int or None
        Samples per round, in [1, 256]; None: ``params.n``. The run draws
        ``per_round * (rounds + 1)`` samples (fewer if it stops early).
    hints : int
        Answers in each hint, in [1, 8] (default 1: one hint per sample drawn from the
        previous round's distribution, as in hint marginalization; 2 gives PHP's "near to
        X, Y"). Fewer when the previous round has fewer distinct answers.
    vote_over : {"last", "all"}
        The distribution whose mode is returned: the last round's answers (default; the
        Monte Carlo estimate of ``p_R``), or every round's pooled.
    template : str
        The hint added after the question (:data:`HINT_TEMPLATE`; ``{hints}`` only).

    Result
    ------
    ``samples`` in round order; ``answer`` / ``selected`` / ``vote_shares`` from the vote
    over ``vote_over`` (an earlier round's sample is never selected with ``"last"``). The
    trace has one record per round: ``round``, ``distribution`` (the previous round's
    answer classes and votes the hints were drawn from; empty in round 0), ``calls``
    (per distinct hint: the hinted answers, samples drawn, prompt / completion tokens),
    ``new`` (sample indices) and ``answers``; or a ``stop`` record when the previous
    round gave no answer to hint with. Hints are drawn with ``params.seed`` (per round)
    when the run is seeded, else with ``rng``.

    Raises
    ------
    ConfigError
        If an option is out of its range or of the wrong type (the message names it).
    """

    name = "progressive-hint"
    rounds: int = 2
    per_round: int | None = None
    hints: int = 1
    vote_over: str = "last"
    template: str = HINT_TEMPLATE

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("rounds", self.rounds, 0, MAX_ROUNDS)
        if self.per_round is not None:
            check_int("per_round", self.per_round, 1, MAX_PER_ROUND)
        check_int("hints", self.hints, 1, MAX_HINTS)
        if self.vote_over not in ("last", "all"):
            raise ConfigError(f"vote_over must be 'last' or 'all', got {self.vote_over!r:.40}")
        if not isinstance(self.template, str):
            raise ConfigError(f"template must be a str, got {type(self.template).__name__}")
        try:
            self.template.format(hints="1")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"template may use only {{hints}}: {exc!r}") from exc

    def init(self, prompt: Prompt, params: SamplingParams) -> HintState:  # type: ignore[override]
        p = self.sampling_params(params)
        if self.per_round is None:
            check_int("per_round (params.n)", p.n, 1, MAX_PER_ROUND)
        return HintState(prompt=prompt, params=p)

    def done(self, state: State) -> bool:
        assert isinstance(state, HintState)
        return state.rounds_done > self.rounds or state.stopped

    def hint_prompt(self, prompt: Prompt, hints: tuple[str, ...]) -> Prompt:
        """``prompt`` with the hint naming ``hints`` added after its question."""
        return with_note(prompt, self.template.format(hints=", ".join(hints)))

    def step(  # type: ignore[override]
        self, rng: np.random.Generator | None, state: HintState, backend: Backend
    ) -> tuple[HintState, dict[str, Any]]:
        """One round: round 0 samples the prompt, later rounds sample with drawn hints."""
        r = state.rounds_done
        n = self.per_round or state.params.n
        classes: list[tuple[str, int]] = []
        jobs: list[tuple[tuple[str, ...], int]] = []  # hints, samples
        if r == 0:
            jobs.append(((), n))
        else:
            last = [i for i, rr in enumerate(state.rounds_of) if rr == r - 1]
            answers = self.answers(state)
            v = vote([answers[i] for i in last], None, self.equivalent)
            counts: dict[int, int] = {}
            for lab in v.labels:
                if lab is not None:
                    counts[lab] = counts.get(lab, 0) + 1
            reps = {lab: answers[last[v.labels.index(lab)]] for lab in counts}
            classes = [(str(reps[lab]), c) for lab, c in counts.items()]
            if not classes:
                stop = {"event": "stop", "round": r,
                        "reason": "the previous round gave no answer to hint with"}
                return state.model_copy(update={"stopped": True,
                                                "trace": state.trace + (stop,)}), stop
            seed = state.params.seed
            hint_rng = make_rng(derived_seed(seed, r, 10**6) if seed is not None else rng)
            drawn = [draw_hints(hint_rng, classes, self.hints) for _ in range(n)]
            for h in dict.fromkeys(drawn):  # one call per distinct hint, first-drawn order
                jobs.append((h, drawn.count(h)))
        samples: list[Sample] = []
        calls: list[dict[str, Any]] = []
        usage = Usage()
        for c, (hints, k) in enumerate(jobs):
            prompt = self.hint_prompt(state.prompt, hints) if hints else state.prompt
            gen = generate(backend, prompt, call_params(state.params, k, r, c), rng)
            samples += gen.samples
            usage = usage + gen.usage
            calls.append({"hints": list(hints), "samples": len(gen.samples),
                          "prompt_tokens": gen.usage.prompt_tokens,
                          "completion_tokens": gen.usage.completion_tokens})
        start = len(state.samples)
        new = state.model_copy(update={
            "samples": state.samples + tuple(samples),
            "rounds_of": state.rounds_of + (r,) * len(samples),
            "rounds_done": r + 1,
            "usage": state.usage + usage,
        })
        info: dict[str, Any] = {
            "round": r,
            "distribution": [{"answer": a, "votes": c} for a, c in classes],
            "calls": calls,
            "new": list(range(start, start + len(samples))),
            "answers": list(self.answers(new)[start:]),
        }
        return new.model_copy(update={"trace": state.trace + (info,)}), info

    def finalize(self, state: State) -> Result:
        assert isinstance(state, HintState)
        answers = self.answers(state)
        last = max(state.rounds_of, default=0)
        voting = answers if self.vote_over == "all" else tuple(
            a if r == last else None for a, r in zip(answers, state.rounds_of))
        v = vote(voting, None, self.equivalent)
        return self.result(state, answers, selected=v.winner, answer=v.answer,
                           vote_shares=v.shares)
