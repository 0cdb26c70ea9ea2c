"""Sample-set aggregation by the model: N candidates in one prompt, the model writes the answer.

Round 1 draws ``candidates`` answers to the prompt; round 2 puts the ones that did not fail
into one prompt ("Solution 1: ... Solution 2: ...") and asks the same model for one final
solution, which may differ from every candidate. Prompt-only, in the spirit of the Sample
Set Aggregator (Qi et al. 2025, "Learning to Reason Across Parallel Samples for LLM
Reasoning") and the CoT-based Synthesizer (Zhang et al. 2025, "CoT-based Synthesizer:
Enhancing LLM Performance through Answer Synthesis"), without their trained aggregators.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.errors import ConfigError
from samplescale.strategies.base import State, Strategy
from samplescale.strategies.prompting import call_params, question_of, with_question
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Prompt, Result

MAX_CANDIDATES = 64
MAX_TEMPERATURE = 100.0  # SamplingParams.temperature's range

AGGREGATE_TEMPLATE = (
    "{question}\n\n"
    "Here are {n} candidate solutions to this problem; some of them may be wrong.\n\n"
    "{candidates}\n\n"
    "Compare them, find any mistake, and write one final correct solution (it may differ "
    "from every candidate) in the format asked above."
)
"""The aggregation prompt: ``{question}`` (the last user message, or the raw text prompt),
``{n}`` (candidates shown) and ``{candidates}`` ("Solution i:" and its text, blank-line
separated)."""


def aggregation_prompt(prompt: Prompt, texts: list[str], template: str) -> Prompt:
    """The prompt of the aggregation call: ``template`` filled with the question and the
    candidate ``texts`` (each after the prompt's ``prefix``). A chat prompt's last user
    message is replaced by it (earlier messages kept); a raw text prompt becomes it followed
    by a blank line. ``prefix`` and ``grounding`` are kept."""
    shown = "\n\n".join(
        f"Solution {i}:\n{prompt.prefix}{t.strip()}" for i, t in enumerate(texts, start=1)
    )
    question = question_of(prompt)
    if prompt.messages is not None:
        body = template.format(question=question, n=len(texts), candidates=shown).strip()
        return with_question(prompt, body)
    body = template.format(question=question.strip(), n=len(texts), candidates=shown)
    return with_question(prompt, body + "\n\n")


@STRATEGIES.register("aggregate")
@dataclass(frozen=True)
class Aggregate(Strategy):
    """Sample-set aggregation by the model (prompt-only Sample Set Aggregator / CoT-based
    Synthesizer).

    Attributes
    ----------
    candidates : int or None
        Candidates drawn and shown, in [1, 64]; None: ``params.n`` (then checked against
        the same range when the run starts).
    temperature : float or None
        Temperature of the aggregation call, in [0, 100] (default 0: greedy); None: the
        run's ``params.temperature``.
    template : str
        The aggregation prompt (:data:`AGGREGATE_TEMPLATE`).

    Result
    ------
    ``samples`` are the candidates and, last, the aggregator's reply, which is ``selected``
    (None when it failed, or when every candidate failed and no aggregation call was made);
    ``answer`` is extracted from it. The trace has the drawing record and an ``aggregate``
    record (``shown``: candidate indices, ``prompt_chars``, ``completion_tokens``), or a
    ``stop`` record when no candidate could be shown. ``usage`` counts both calls.

    Raises
    ------
    ConfigError
        If an option is out of its range or of the wrong type (the message names the field
        and the range).
    """

    name = "aggregate"
    candidates: int | None = None
    temperature: float | None = 0.0
    template: str = AGGREGATE_TEMPLATE

    def __post_init__(self) -> None:
        super().__post_init__()
        c = self.candidates
        if c is not None and (isinstance(c, bool) or not isinstance(c, int)
                              or not 1 <= c <= MAX_CANDIDATES):
            raise ConfigError(f"candidates must be an integer in [1, {MAX_CANDIDATES}] or "
                              f"None, got {c!r:.40}")
        t = self.temperature
        if t is not None and (isinstance(t, bool) or not isinstance(t, numbers.Real)
                              or not 0.0 <= float(t) <= MAX_TEMPERATURE):
            raise ConfigError(f"temperature must be a number in [0, {MAX_TEMPERATURE:g}] or "
                              f"None, got {t!r:.40}")
        if not isinstance(self.template, str):
            raise ConfigError(f"template must be a str, got {type(self.template).__name__}")
        try:
            self.template.format(question="", n=1, candidates="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"template may use only {{question}}, {{n}} and {{candidates}}: {exc!r}"
            ) from exc

    def init(self, prompt: Prompt, params: SamplingParams) -> State:
        """The initial state; ``params.n`` checked when ``candidates`` is None."""
        p = self.sampling_params(params)
        if self.candidates is None and not 1 <= p.n <= MAX_CANDIDATES:
            raise ConfigError(f"candidates (params.n) must be an integer in "
                              f"[1, {MAX_CANDIDATES}], got {p.n}")
        return State(prompt=prompt, params=p)

    def done(self, state: State) -> bool:
        return len(state.trace) >= 2

    def step(
        self, rng: np.random.Generator | None, state: State, backend: Backend
    ) -> tuple[State, dict[str, Any]]:
        """Step 1 draws the candidates (one call); step 2 is the aggregation call."""
        if not state.trace:
            return self.draw(rng, state, backend, self.candidates or state.params.n)
        shown = [i for i, s in enumerate(state.samples) if s.status == "ok"]
        if not shown:
            info: dict[str, Any] = {"event": "stop", "reason": "every candidate failed"}
            return state.model_copy(update={"trace": state.trace + (info,)}), info
        prompt = aggregation_prompt(
            state.prompt, [state.samples[i].text for i in shown], self.template
        )
        temperature = state.params.temperature if self.temperature is None else self.temperature
        params = call_params(state.params, 1, 1, temperature=float(temperature))
        gen = generate(backend, prompt, params, rng)
        info = {
            "event": "aggregate",
            "shown": shown,
            "prompt_chars": sum(len(m.content) for m in prompt.messages or ())
            + len(prompt.text or ""),
            "completion_tokens": gen.usage.completion_tokens,
            "status": gen.samples[0].status,
        }
        new = state.model_copy(update={
            "samples": state.samples + gen.samples,
            "usage": state.usage + gen.usage,
            "trace": state.trace + (info,),
        })
        return new, info

    def finalize(self, state: State) -> Result:
        answers = self.answers(state)
        last = state.trace[-1] if state.trace else {}
        selected = None
        if last.get("event") == "aggregate" and state.samples[-1].status == "ok":
            selected = len(state.samples) - 1
        return self.result(
            state, answers, selected=selected,
            answer=answers[selected] if selected is not None else None,
        )
