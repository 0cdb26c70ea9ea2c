"""DivSampling: samples spread over perturbed prompts, then one majority vote over all.

Sampling one prompt many times gives samples that repeat each other; perturbing the prompt
makes them more diverse, which raises pass@k and the vote's accuracy at the same N (Wang et
al. 2025, "Diversified Sampling Improves Scaling LLM Inference", DivSampling). Two kinds of
perturbation are used:

* task-agnostic ones, a fixed documented text each (:data:`PERTURBATIONS`): a *role* (a
  system message), an *instruction* (how to go about it) and a *style* (how to write it);
* a task-specific one, ``rephrase``: the model itself first rewrites the question (one greedy
  call, :data:`REPHRASE_TEMPLATE`, cut at :data:`REPHRASE_STOP`), and that rewording is
  added to the question.

``original`` is the unperturbed prompt. Sample ``i`` is drawn from prompt ``i mod P`` (round
robin over the ``P`` prompts, in the order given); each prompt's samples come from one
backend call, and the result lists the samples in round-robin order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.aggregate import vote
from samplescale.backends.base import Backend
from samplescale.decoders import generate
from samplescale.errors import ConfigError
from samplescale.strategies.base import State, Strategy, check_int
from samplescale.strategies.prompting import (
    call_params,
    question_of,
    with_note,
    with_question,
    with_system,
)
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Prompt, Result, Sample, Usage
from samplescale.verifiers.extract import extract_answer

PERTURBATIONS: dict[str, tuple[str, str]] = {
    "role": ("system", "You are a meticulous expert problem solver who checks every step."),
    "instruction": (
        "note",
        "Before answering, decide which method fits this problem, then apply it step by step.",
    ),
    "style": ("note", "Write your solution as a short list of numbered steps."),
}
"""The task-agnostic perturbations: name -> (where, text). ``system``: the text is said first
(:func:`~samplescale.strategies.prompting.with_system`); ``note``: it is added after the
question (:func:`~samplescale.strategies.prompting.with_note`)."""

REPHRASE_TEMPLATE = (
    "Here is a problem, possibly with instructions for whoever solves it:\n\n{question}\n\n"
    "Do not solve the problem and do not give any answer. Rewrite only the problem itself "
    "in your own words, keeping every number and condition and leaving out any "
    "instructions. Reply with the rewritten problem and nothing else."
)
"""The task-specific perturbation's request to the model (``{question}``: the question, which
for a task's prompt includes the task's instruction, so the request says what to do after
it: small models follow the last instruction they read)."""

REPHRASE_STOP = ("The answer is", "the answer is")
"""Stop strings of the rewording call, besides the run's own: a model that goes on to answer
(the task's instruction asks for "The answer is ...") is cut before its answer, and the
rewording before it is kept. Qwen2.5-Coder-0.5B answered all 30 first GSM8K problems
instead of rewording them under the previous, stop-less request (RESULTS (n6))."""

REPHRASE_NOTE = "The same problem in other words: {rephrasing}"
"""How the model's rewording is added to the question (after it, as a note)."""

KINDS = ("original", *PERTURBATIONS, "rephrase")
MAX_SAMPLES = 1024


def perturb(prompt: Prompt, kind: str, rephrasing: str | None = None) -> Prompt:
    """``prompt`` under perturbation ``kind`` (one of :data:`KINDS`); ``rephrase`` needs the
    model's ``rephrasing`` of the question.

    Raises
    ------
    ConfigError
        If ``kind`` is unknown, or ``rephrase`` comes without a rephrasing.
    """
    if kind == "original":
        return prompt
    if kind == "rephrase":
        if not rephrasing:
            raise ConfigError("perturbation 'rephrase' needs the model's rephrasing")
        return with_note(prompt, REPHRASE_NOTE.format(rephrasing=rephrasing))
    if kind not in PERTURBATIONS:
        raise ConfigError(f"perturbation must be one of {', '.join(KINDS)}, got {kind!r:.40}")
    where, text = PERTURBATIONS[kind]
    return with_system(prompt, text) if where == "system" else with_note(prompt, text)


# why the rewording is left out, by the status of the rephrasing call
UNUSABLE = {
    "error": "the rephrasing call failed",
    "empty": "the rephrasing was empty (or began with 'The answer is')",
    "answered": "the rephrasing states an answer, which would reach every sample of the "
                "prompt as a hint",
    "new-number": "the rephrasing has a number the question does not (new_numbers in its "
                  "trace record), which may be a computed answer and would reach every "
                  "sample of the prompt as a hint",
}

_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")


def new_numbers(rephrasing: str, question: str) -> list[str]:
    """The numbers of ``rephrasing`` that ``question`` does not have.

    A faithful rewording keeps the question's numbers; a new one ("The answer to this
    problem is 15.") may be a computed value, which would reach every sample of the
    rephrased prompt as a hint (the risk DivSampling's task-specific perturbation, Wang et
    al. 2025, runs with a model that answers instead of rewording).

    Parameters
    ----------
    rephrasing, question : str
        The model's rewording and the question it rewords (any text; no errors raised).

    Returns
    -------
    list of str
        The new numbers as digit strings (``\\d+`` groups joined by ``.`` or ``,``,
        thousands commas dropped: "$80,000" and "80000" are one number), sorted, no
        repeats; empty when every number of ``rephrasing`` is in ``question``.
        Conservative: a number the question spells in words ("three" -> "3") counts as
        new, so such a rewording is left out.
    """
    def numbers(text: str) -> set[str]:
        return {n.replace(",", "") for n in _NUMBER_RE.findall(text)}

    return sorted(numbers(rephrasing) - numbers(question))


def _usage_row(usage: Usage) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "model_calls": usage.model_calls}


@STRATEGIES.register("div-sampling")
@dataclass(frozen=True)
class DivSampling(Strategy):
    """Prompt perturbation for diversity, then a majority vote over all samples (DivSampling,
    Wang et al. 2025, "Diversified Sampling Improves Scaling LLM Inference").

    Attributes
    ----------
    perturbations : sequence of str
        The prompts sampled, in round-robin order: names from :data:`KINDS`
        (``"original"``, ``"role"``, ``"instruction"``, ``"style"``, ``"rephrase"``), each at
        most once, at least one. Default: all five.

    Result
    ------
    ``samples`` are the ``params.n`` samples in round-robin order (sample ``i`` from prompt
    ``i mod P``); the vote (self-consistency over math-equivalent answers) picks ``answer``
    and ``selected``; ``vote_shares`` as in self-consistency. The trace has a ``rephrase``
    record (the model's rewording, its status and usage) when ``rephrase`` is used, and a
    ``sample`` record: ``prompt_of`` (the perturbation of each sample) and ``prompts`` (per
    prompt: name, samples, prompt / completion tokens and model calls; the rephrasing call
    is counted under ``rephrase``). ``usage`` is the sum of every call. When the rephrasing
    fails (an error sample or empty text, status ``"error"`` / ``"empty"``; the call stops
    at "The answer is", :data:`REPHRASE_STOP`, so a reply that starts by answering is empty)
    or still states an answer (``"answered"``: ``extract_answer`` without the last-number
    rule finds one, e.g. "\\boxed{14}"; it would reach every sample of that prompt as a
    hint) or has a number the question does not (``"new-number"``, :func:`new_numbers`:
    "The answer to this problem is 15."), ``rephrase`` is left out and its samples go round robin to the other prompts
    (recorded in the trace); when it is the only prompt the run draws nothing. When
    ``params.n`` is below ``rephrase``'s place in the list, no sample falls to it and the
    rewording call is not made (``left_out`` in the trace).

    Raises
    ------
    ConfigError
        If ``perturbations`` is not a non-empty sequence of distinct names from
        :data:`KINDS`; or (at run time) ``params.n`` is not in [1, 1024].
    """

    name = "div-sampling"
    perturbations: tuple[str, ...] = KINDS

    def __post_init__(self) -> None:
        super().__post_init__()
        kinds = self.perturbations
        if isinstance(kinds, str) or not isinstance(kinds, (list, tuple)) or not kinds:
            raise ConfigError(f"perturbations must be a non-empty list of names from "
                              f"{', '.join(KINDS)}, got {kinds!r:.60}")
        for k in kinds:
            if k not in KINDS:
                raise ConfigError(f"perturbations: each must be one of {', '.join(KINDS)}, "
                                  f"got {k!r:.40}")
        if len(set(kinds)) != len(kinds):
            raise ConfigError(f"perturbations must not repeat a name, got {list(kinds)}")
        object.__setattr__(self, "perturbations", tuple(kinds))

    def init(self, prompt: Prompt, params: Any) -> State:
        p = self.sampling_params(params)
        check_int("n (params.n)", p.n, 1, MAX_SAMPLES)
        return State(prompt=prompt, params=p)

    def done(self, state: State) -> bool:
        return any(t.get("event") == "sample" for t in state.trace)

    def step(
        self, rng: np.random.Generator | None, state: State, backend: Backend
    ) -> tuple[State, dict[str, Any]]:
        """Step 1 asks for the rephrasing (when used); the last step samples every prompt."""
        kinds = list(self.perturbations)
        n = state.params.n
        rephrasing = None
        left_out: dict[str, str] = {}
        if "rephrase" in kinds and kinds.index("rephrase") >= n:
            place = kinds.index("rephrase") + 1
            kinds.remove("rephrase")  # no sample falls to it: no rewording call
            left_out["rephrase"] = f"no sample falls to it (n = {n}, it is prompt {place})"
        elif "rephrase" in kinds:
            done = [t for t in state.trace if t.get("event") == "rephrase"]
            if not done:
                return self._rephrase(rng, state, backend)
            rephrasing = done[0]["text"] if done[0]["status"] == "ok" else None
            if rephrasing is None:
                kinds.remove("rephrase")
                left_out["rephrase"] = UNUSABLE[done[0]["status"]]
        counts = [n // len(kinds) + (j < n % len(kinds)) for j in range(len(kinds))] \
            if kinds else []
        drawn: list[list[Sample]] = []
        rows: list[dict[str, Any]] = []
        usage = Usage()
        for j, (kind, k) in enumerate(zip(kinds, counts)):
            if k == 0:
                drawn.append([])
                rows.append({"name": kind, "samples": 0, **_usage_row(Usage())})
                continue
            gen = generate(backend, perturb(state.prompt, kind, rephrasing),
                           call_params(state.params, k, 1, j), rng)
            drawn.append(list(gen.samples))
            rows.append({"name": kind, "samples": len(gen.samples), **_usage_row(gen.usage)})
            usage = usage + gen.usage
        order: list[Sample] = []
        prompt_of: list[str] = []
        for i in range(max(counts, default=0)):  # round robin: sample i from prompt i mod P
            for kind, samples in zip(kinds, drawn):
                if i < len(samples):
                    order.append(samples[i])
                    prompt_of.append(kind)
        for t in state.trace:  # the rephrasing call is part of its prompt's usage
            if t.get("event") == "rephrase":
                rows.append({"name": "rephrase (rewording call)", "samples": 0,
                             **{k: t[k] for k in ("prompt_tokens", "completion_tokens",
                                                  "model_calls")}})
        info: dict[str, Any] = {"event": "sample", "prompt_of": prompt_of, "prompts": rows}
        if left_out:
            info["left_out"] = left_out
        new = state.model_copy(update={
            "samples": state.samples + tuple(order),
            "usage": state.usage + usage,
            "trace": state.trace + (info,),
        })
        return new, info

    def _rephrase(
        self, rng: np.random.Generator | None, state: State, backend: Backend
    ) -> tuple[State, dict[str, Any]]:
        question = question_of(state.prompt)
        ask = with_question(state.prompt, REPHRASE_TEMPLATE.format(question=question))
        params = call_params(state.params, 1, 0, temperature=0.0,
                             stop=(*state.params.stop, *REPHRASE_STOP))
        gen = generate(backend, ask, params, rng)
        s = gen.samples[0]
        text = s.text.strip() if s.status == "ok" else ""
        status = "ok" if text else ("error" if s.status == "error" else "empty")
        extra = new_numbers(text, question) if text else []
        if text and extract_answer(text, last_number=False) is not None:
            status = "answered"
        elif extra:
            status = "new-number"
        info: dict[str, Any] = {
            "event": "rephrase", "text": text or None, "status": status,
            **({"new_numbers": extra} if extra else {}), **_usage_row(gen.usage),
        }
        new = state.model_copy(update={"usage": state.usage + gen.usage,
                                        "trace": state.trace + (info,)})
        return new, info

    def finalize(self, state: State) -> Result:
        answers = self.answers(state)
        v = vote(answers, None, self.equivalent)
        return self.result(state, answers, selected=v.winner, answer=v.answer,
                           vote_shares=v.shares)
