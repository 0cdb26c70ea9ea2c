"""Fractured sampling: cut reasoning traces at several depths and draw answers from each cut.

Liao et al. 2025 ("Fractured Chain-of-Thought Reasoning") spread a sample budget over three
axes: ``n`` reasoning traces, ``d`` depths at which each trace is cut, and ``m`` final
answers drawn from each cut. A cut is continued as a reply prefix: the trace's first part,
then an answer cue (:data:`ANSWER_CUE`), and the model writes only the answer (a few
tokens). Answers from early cuts are cheap and differ from the full traces' answers, so the
vote over all ``n * d * m`` of them sees more of the answer distribution per generated token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from samplescale.aggregate import vote
from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.errors import ConfigError
from samplescale.steps import check_delimiter, split_steps
from samplescale.strategies.base import State, Strategy, check_int
from samplescale.strategies.prompting import call_params
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Prompt, Result, Sample, Usage

ANSWER_CUE = "\nThe answer is"
"""Appended after a cut trace, so that the continuation is the final answer."""

MAX_TRACES = 256
MAX_DEPTHS = 16
MAX_ANSWERS = 64
MAX_ANSWER_TOKENS = 256



def cut_positions(length: int, depths: int) -> list[int]:
    """The ``depths`` cut positions of a trace of ``length`` units: ``round(k * length /
    depths)`` for ``k = 1 .. depths`` (half to even), so the last cut is the whole trace."""
    return [round(k * length / depths) for k in range(1, depths + 1)]


def token_prefix(backend: object, sample: Sample, tokens: int) -> str:
    """The text of the first ``tokens`` generated tokens of ``sample`` (from its
    ``token_texts``, else its ``token_ids`` decoded with ``backend.piece``; a character
    split across the cut is left out), never longer than ``sample.text``.

    Raises
    ------
    ConfigError
        If the sample has neither token texts nor ids the backend can decode.
    """
    if sample.token_texts:
        text = "".join(sample.token_texts[:tokens])
    elif sample.token_ids and callable(getattr(backend, "piece", None)):
        raw = b"".join(backend.piece(t) for t in sample.token_ids[:tokens])  # type: ignore[attr-defined]
        text = raw.decode("utf-8", errors="ignore")
    else:
        raise ConfigError("fractured with unit='token' needs samples with token texts or ids "
                          "the backend can decode; use unit='step'")
    return text if sample.text.startswith(text) else sample.text[: len(text)]


@STRATEGIES.register("fractured")
@dataclass(frozen=True)
class Fractured(Strategy):
    """Fractured sampling (Liao et al. 2025, "Fractured Chain-of-Thought Reasoning").

    Attributes
    ----------
    depths : int
        ``d``, cuts per trace, in [1, 16]: after ``k / d`` of the trace for ``k = 1 .. d``
        (:func:`cut_positions`; the last is the whole trace).
    answers_per_cut : int
        ``m``, answers drawn from each cut, in [1, 64] (one backend call per cut).
    unit : {"token", "step"}
        What depth counts: generated tokens (default) or steps (the trace split at
        ``delimiter``, :func:`~samplescale.steps.split_steps`).
    delimiter : str
        The step delimiter for ``unit="step"`` (default a newline).
    cue : str
        Written after the cut trace, before the answer (:data:`ANSWER_CUE`).
    answer_tokens : int
        ``max_tokens`` of each answer, in [1, 256] (default 16).

    ``n`` = ``params.n`` traces, in [1, 256]. The run draws ``n`` traces (one call) and
    ``n * d * m`` answers (``n * d`` calls), each continuing ``prompt.prefix + cut + cue``
    (so the backend must continue a partial reply: ``requires = ("prefix",)``).

    Result
    ------
    ``samples``: the ``n`` traces, then the answers (trace ``i``, depth ``k``, ``m`` each).
    ``answers``: a trace's own answer, and for an answer sample the answer extracted from
    ``cue + text``. The vote is over the answer samples only (self-consistency, math
    equivalence); ``selected`` is the first trace whose own answer is in the winning class
    (its text is a whole solution), else the first answer sample of that class, and
    ``answer`` is the selected sample's answer. The trace
    has the traces' record, then one ``cut`` record per cut (``trace``, ``depth``,
    ``position``, ``length``, ``unit``, ``new``, ``answers``, ``completion_tokens``).
    ``usage`` counts every call. Failed traces are not cut.

    Raises
    ------
    ConfigError
        If an option is out of its range or of the wrong type (the message names it); at run
        time, if ``params.n`` is out of range, or ``unit="token"`` meets samples without
        token information.
    """

    name = "fractured"
    requires: ClassVar[tuple[str, ...]] = ("prefix",)
    depths: int = 3
    answers_per_cut: int = 1
    unit: str = "token"
    delimiter: str = "\n"
    cue: str = ANSWER_CUE
    answer_tokens: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("depths", self.depths, 1, MAX_DEPTHS)
        check_int("answers_per_cut", self.answers_per_cut, 1, MAX_ANSWERS)
        check_int("answer_tokens", self.answer_tokens, 1, MAX_ANSWER_TOKENS)
        if self.unit not in ("token", "step"):
            raise ConfigError(f"unit must be 'token' or 'step', got {self.unit!r:.40}")
        check_delimiter(self.delimiter)
        if not isinstance(self.cue, str):
            raise ConfigError(f"cue must be a str, got {type(self.cue).__name__}")

    def init(self, prompt: Prompt, params: SamplingParams) -> State:
        p = self.sampling_params(params)
        check_int("n (traces, params.n)", p.n, 1, MAX_TRACES)
        return State(prompt=prompt, params=p)

    def done(self, state: State) -> bool:
        return len(state.trace) >= 2

    def cut(self, backend: object, sample: Sample) -> list[tuple[int, int, str]]:
        """``(position, length, prefix text)`` of each of the ``depths`` cuts of ``sample``."""
        if self.unit == "step":
            steps = split_steps(sample.text, self.delimiter)
            return [(p, len(steps), "".join(steps[:p]))
                    for p in cut_positions(len(steps), self.depths)]
        length = sample.num_tokens
        return [(p, length, token_prefix(backend, sample, p))
                for p in cut_positions(length, self.depths)]

    def step(
        self, rng: np.random.Generator | None, state: State, backend: Backend
    ) -> tuple[State, dict[str, Any]]:
        """Step 1 draws the ``n`` traces; step 2 draws ``m`` answers at every cut."""
        if not state.trace:
            return self.draw(rng, state, backend, state.params.n)
        samples: list[Sample] = []
        cuts: list[dict[str, Any]] = []
        usage = Usage()
        start = len(state.samples)
        for i, trace in enumerate(state.samples):
            if trace.status != "ok":
                continue
            for k, (pos, length, text) in enumerate(self.cut(backend, trace)):
                prompt = state.prompt.continued(state.prompt.prefix + text + self.cue)
                params = call_params(state.params, self.answers_per_cut, 1, i, k,
                                     max_tokens=self.answer_tokens)
                gen = generate(backend, prompt, params, rng)
                first = start + len(samples)
                samples += gen.samples
                usage = usage + gen.usage
                cuts.append({
                    "event": "cut", "trace": i, "depth": k + 1, "position": pos,
                    "length": length, "unit": self.unit,
                    "new": list(range(first, first + len(gen.samples))),
                    "answers": [self.answer_of(s) for s in gen.samples],
                    "completion_tokens": gen.usage.completion_tokens,
                })
        if not cuts:
            cuts.append({"event": "stop", "reason": "every trace failed"})
        new = state.model_copy(update={
            "samples": state.samples + tuple(samples),
            "usage": state.usage + usage,
            "trace": state.trace + tuple(cuts),
        })
        return new, {"cuts": len(cuts)}

    def answer_of(self, sample: Sample) -> str | None:
        """The answer of an answer sample: extracted from ``cue + text`` (None for an error
        sample or none found)."""
        if sample.status != "ok":
            return None
        return self.extract(self.cue + sample.text)

    def finalize(self, state: State) -> Result:
        n = state.trace[0]["samples"] if state.trace else 0
        own = self.answers(state)[:n]
        cued = tuple(self.answer_of(s) for s in state.samples[n:])
        v = vote((None,) * n + cued, None, self.equivalent)
        selected = v.winner
        if v.winner is not None:
            for i, a in enumerate(own):
                if a is not None and self.equivalent(a, v.answer):  # type: ignore[arg-type]
                    selected = i
                    break
        answers = own + cued
        return self.result(state, answers, selected=selected,
                           answer=None if selected is None else answers[selected],
                           vote_shares=v.shares)
