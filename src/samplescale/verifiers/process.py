"""Process scorers: one score for a partial solution (a problem and the steps so far).

One interface (:class:`ProcessScorer`): ``name``, ``scale`` (``"probability"`` in [0, 1],
``"log-probability"`` natural log <= 0, or ``"reward"``: real, higher is better, within
``bounds`` when the scorer knows them), ``score(prompt, steps) -> float``, and usage
counting (``usage``: scorer calls plus the model tokens and calls they spent). The scale
names are those of the outcome scorers in :mod:`samplescale.verifiers.scorers`.

Implementations:

(a) :class:`LabelTokenScorer`: a process reward model served by any backend, read from the
    probability of a label token ("+" / "-", "Yes" / "No") after a judging prompt
    (Math-Shepherd, Wang et al., 2024, reads a PRM this way);
(b) :class:`JudgeScorer`: an LLM judge prompt whose reply carries a number ("Score: 7");
    an unparseable reply is a :class:`ScorerError`, never a silent 0;
(c) :func:`self_evaluation`: P(True), the model's own probability that its partial
    solution is correct (Kadavath et al., 2022, "Language Models (Mostly) Know What They
    Know"), a :class:`LabelTokenScorer` on the policy model;
(d) :class:`CallableScorer`: any Python callable ``(prompt, steps) -> float``;
    :func:`from_outcome` wraps an outcome :class:`~samplescale.verifiers.scorers.Scorer`.

:func:`aggregate_step_scores` turns the per-step scores of a path into one score (last,
min, mean or product: a parameter, never hard-coded).
"""

from __future__ import annotations

import math
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from samplescale.backends.base import Backend, LogitsModel
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, SamplescaleError
from samplescale.registry import Registry
from samplescale.sampling.functional import log_softmax
from samplescale.types import Prompt, Sample, Usage
from samplescale.verifiers.extract import extract_answer
from samplescale.verifiers.scorers import Scale, Scorer

Aggregation = Literal["last", "min", "mean", "product"]
AGGREGATIONS: tuple[str, ...] = ("last", "min", "mean", "product")


class ScorerError(SamplescaleError, RuntimeError):
    """A process scorer could not produce a score (unparseable judge reply, a label the
    model did not produce, a value outside the scorer's scale). Never turned into a score.

    Attributes
    ----------
    usage : Usage
        The model usage the failed call spent (set by :meth:`ProcessScorer.measure`).
    """

    usage: Usage = Usage()


class ScorerUsage(BaseModel):
    """What a scorer spent.

    Attributes
    ----------
    calls : int
        ``score`` calls (failed ones included).
    usage : Usage
        Model tokens, model calls and wall seconds spent by those calls.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    calls: int = 0
    usage: Usage = Usage()


def _failure(message: str, usage: Usage) -> ScorerError:
    """A ScorerError carrying the usage of the failed call."""
    exc = ScorerError(message)
    exc.usage = usage
    return exc


def question_of(prompt: Prompt) -> str:
    """The problem text of a prompt: its last user message, or its raw text."""
    if prompt.text is not None:
        return prompt.text
    assert prompt.messages is not None
    users = [m.content for m in prompt.messages if m.role == "user"]
    return users[-1] if users else prompt.messages[-1].content


class ProcessScorer(ABC):
    """Base of the process scorers: counting, scale checks and the public ``score``.

    Subclasses set ``name`` and ``scale`` and implement :meth:`_evaluate`. Safe to call
    from several threads (the counters are locked).
    """

    name: str
    scale: Scale

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage = ScorerUsage()

    @property
    def bounds(self) -> tuple[float, float]:
        """The interval every score lies in: (0, 1) for probabilities, (-inf, 0] for
        log-probabilities, (-inf, inf) for rewards unless a subclass knows better."""
        return {"probability": (0.0, 1.0), "log-probability": (-math.inf, 0.0)}.get(
            self.scale, (-math.inf, math.inf)
        )

    @property
    def usage(self) -> ScorerUsage:
        """Calls and model usage so far (a snapshot)."""
        with self._lock:
            return self._usage

    def score(self, prompt: Prompt, steps: Sequence[str]) -> float:
        """The score of the partial solution ``steps`` (strings, in order) to ``prompt``.

        Returns
        -------
        float
            On the scorer's ``scale``, within ``bounds``.

        Raises
        ------
        ScorerError
            If no score can be read, or the value is NaN or outside ``bounds``.
        """
        return self.measure(prompt, steps)[0]

    def measure(self, prompt: Prompt, steps: Sequence[str]) -> tuple[float, Usage]:
        """Like :meth:`score`, also returning the model usage of this one call."""
        start = time.perf_counter()
        spent = Usage()
        try:
            value, spent = self._evaluate(prompt, tuple(steps))
            value = float(value)
            lo, hi = self.bounds
            if not lo <= value <= hi:  # also rejects NaN
                raise ScorerError(
                    f"scorer {self.name!r} returned {value}, outside its {self.scale} range "
                    f"[{lo}, {hi}]"
                )
        except ScorerError as exc:
            exc.usage = self._count(spent + exc.usage, start)
            raise
        except BaseException:
            self._count(spent, start)
            raise
        return value, self._count(spent, start)

    def _count(self, spent: Usage, start: float) -> Usage:
        """Add one call spending ``spent`` (wall time from ``start``) to the counters."""
        spent = spent.model_copy(update={"wall_time_s": time.perf_counter() - start})
        with self._lock:
            self._usage = ScorerUsage(calls=self._usage.calls + 1, usage=self._usage.usage + spent)
        return spent

    @abstractmethod
    def _evaluate(self, prompt: Prompt, steps: tuple[str, ...]) -> tuple[float, Usage]:
        """The raw score and the model usage of computing it."""


PTRUE_TEMPLATE = (
    "Question: {question}\n\n"
    "Proposed solution (it may be unfinished):\n{solution}\n\n"
    "Is every step of the proposed solution so far correct? Answer Yes or No."
)


class LabelTokenScorer(ProcessScorer):
    """A reward read from the probability of a label token after a judging prompt.

    The judging prompt is ``template`` filled with ``{question}`` (see :func:`question_of`)
    and ``{solution}`` (the steps joined), sent as one user message (``chat=True``) or as
    raw text. The score (probability scale) is

    - on a :class:`~samplescale.backends.base.LogitsModel`, from the next-token
      distribution after the prompt: ``p(pos) / (p(pos) + p(neg))`` with a ``negative``
      label, else ``p(pos)``;
    - on any other backend, from a 1-token greedy generation: ``p(pos)`` when the greedy
      token is the positive label, ``1 - p(neg)`` when it is the negative label. These equal
      the two-label formula when the two labels hold all the probability mass (otherwise
      they are a lower and an upper bound of it).

    Parameters
    ----------
    backend : Backend
        The model that reads the prompt (a PRM, or the policy model itself).
    template : str
        Judging prompt with ``{question}`` and ``{solution}`` fields.
    positive, negative : str, str or None
        Label texts; each must be ONE token right after the prompt.
    name : str
    chat : bool
        Send the prompt as a user message (chat template) or as raw text.

    Raises
    ------
    ConfigError
        (at scoring) If a label is not a single token after the prompt.
    ScorerError
        (at scoring, plain backends) If the backend returns no logprob, the call fails, or
        the greedy token is neither label.
    """

    scale: Scale = "probability"

    def __init__(
        self,
        backend: Backend,
        template: str,
        positive: str = "Yes",
        negative: str | None = "No",
        *,
        name: str = "label-token",
        chat: bool = True,
    ) -> None:
        super().__init__()
        for field, value in (("positive", positive), ("negative", negative)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{field} label must be a non-empty string, got {value!r}")
        if positive == negative:
            raise ConfigError(f"positive and negative labels must differ, both are {positive!r}")
        for key in ("{question}", "{solution}"):
            if key not in template:
                raise ConfigError(f"template must contain the field {key}")
        self.backend, self.template, self.chat = backend, template, chat
        self.positive, self.negative, self.name = positive, negative, name

    def judging_prompt(self, prompt: Prompt, steps: Sequence[str]) -> Prompt:
        """The prompt the judging model reads."""
        text = self.template.format(question=question_of(prompt), solution="".join(steps))
        return Prompt.user(text) if self.chat else Prompt(text=text)

    def _evaluate(self, prompt: Prompt, steps: tuple[str, ...]) -> tuple[float, Usage]:
        judge = self.judging_prompt(prompt, steps)
        if isinstance(self.backend, LogitsModel):
            return self._from_logits(self.backend, judge)
        return self._from_greedy(judge)

    def _label_id(self, model: LogitsModel, judge: Prompt, base: list[int], label: str) -> int:
        try:
            ids = model.tokenize_prompt(judge.continued(judge.prefix + label))
        except ConfigError as exc:
            raise ConfigError(
                f"label {label!r} cannot be tokenised by this model ({exc}); choose another "
                "positive/negative label"
            ) from exc
        if len(ids) != len(base) + 1 or ids[: len(base)] != base:
            raise ConfigError(
                f"label {label!r} is not a single token after the judging prompt for this "
                "model; choose another positive/negative label"
            )
        return ids[-1]

    def _from_logits(self, model: LogitsModel, judge: Prompt) -> tuple[float, Usage]:
        base = model.tokenize_prompt(judge)
        logp = log_softmax(np.asarray(model.logits_at(base), dtype=np.float64))[0]
        pos = float(logp[self._label_id(model, judge, base, self.positive)])
        usage = Usage(prompt_tokens=len(base), model_calls=1)
        if self.negative is None:
            return math.exp(pos), usage
        neg = float(logp[self._label_id(model, judge, base, self.negative)])
        if pos == neg == -math.inf:
            raise ScorerError(f"{self.name}: both labels have probability 0 after the prompt")
        return math.exp(pos - np.logaddexp(pos, neg)), usage

    def _from_greedy(self, judge: Prompt) -> tuple[float, Usage]:
        gen = self.backend.generate(judge, SamplingParams(temperature=0.0, max_tokens=1))
        sample = gen.samples[0]
        if sample.status == "error":
            raise _failure(f"{self.name}: the judging call failed: {sample.error}", gen.usage)
        if not sample.logprobs:
            raise _failure(
                f"{self.name}: backend {self.backend.name!r} returned no token logprobs; "
                "use a backend with logprobs or a LogitsModel (e.g. LlamaCppBackend)",
                gen.usage,
            )
        p, token = math.exp(sample.logprobs[0]), sample.text.strip()
        if token == self.positive.strip():
            return p, gen.usage
        if self.negative is not None and token == self.negative.strip():
            return 1.0 - p, gen.usage
        raise _failure(
            f"{self.name}: the greedy label token {sample.text!r} is neither "
            f"{self.positive!r} nor {self.negative!r}",
            gen.usage,
        )


def self_evaluation(backend: Backend, template: str = PTRUE_TEMPLATE) -> LabelTokenScorer:
    """P(True) self-evaluation (Kadavath et al., 2022): the policy model's own probability,
    normalised over "Yes" / "No", that the partial solution is correct so far.

    Returns
    -------
    LabelTokenScorer
        Named ``"p-true"``, probability scale.
    """
    return LabelTokenScorer(backend, template, "Yes", "No", name="p-true")


JUDGE_TEMPLATE = (
    "Question: {question}\n\n"
    "Proposed solution (it may be unfinished):\n{solution}\n\n"
    "Rate how likely the proposed solution so far is correct, from {low} (surely wrong) to "
    "{high} (surely correct). Reply with 'Score: ' and the number only."
)


class JudgeScorer(ProcessScorer):
    """An LLM judge: the backend replies to a judging prompt, and the score is parsed.

    Parameters
    ----------
    backend : Backend
    template : str
        With ``{question}``, ``{solution}``, ``{low}`` and ``{high}`` fields.
    low, high : float
        The judge's score range; the score (reward scale) must lie in ``[low, high]``.
    pattern : str
        Regular expression whose first group is the number (the first match is used).
    params : SamplingParams
        The judge's decoding (default greedy, 16 tokens).

    Raises
    ------
    ConfigError
        If ``low >= high``, a template field is missing or ``pattern`` has no group.
    ScorerError
        (at scoring) If the reply has no number matching ``pattern``, the number is outside
        ``[low, high]``, or the judging call failed.
    """

    scale: Scale = "reward"

    def __init__(
        self,
        backend: Backend,
        template: str = JUDGE_TEMPLATE,
        *,
        low: float = 0.0,
        high: float = 10.0,
        pattern: str = r"score\s*[:=]?\s*(-?\d+(?:\.\d+)?)",
        params: SamplingParams | None = None,
        name: str = "judge",
    ) -> None:
        super().__init__()
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ConfigError(f"judge range needs finite low < high, got [{low}, {high}]")
        for key in ("{question}", "{solution}"):
            if key not in template:
                raise ConfigError(f"template must contain the field {key}")
        regex = re.compile(pattern, re.IGNORECASE)
        if regex.groups < 1:
            raise ConfigError("pattern must have a group that captures the number")
        self.backend, self.template, self.regex, self.name = backend, template, regex, name
        self.low, self.high = float(low), float(high)
        self.params = params or SamplingParams(temperature=0.0, max_tokens=16)

    @property
    def bounds(self) -> tuple[float, float]:
        """``(low, high)``."""
        return self.low, self.high

    def _evaluate(self, prompt: Prompt, steps: tuple[str, ...]) -> tuple[float, Usage]:
        text = self.template.format(
            question=question_of(prompt), solution="".join(steps), low=self.low, high=self.high
        )
        gen = self.backend.generate(Prompt.user(text), self.params.replace(n=1))
        reply = gen.samples[0]
        if reply.status == "error":
            raise _failure(f"{self.name}: the judging call failed: {reply.error}", gen.usage)
        m = self.regex.search(reply.text)
        if m is None:
            raise _failure(
                f"{self.name}: no score in the judge's reply {reply.text[:200]!r}", gen.usage
            )
        return float(m.group(1)), gen.usage


class CallableScorer(ProcessScorer):
    """Any Python callable ``fn(prompt, steps) -> float`` as a process scorer.

    Parameters
    ----------
    fn : callable (Prompt, tuple of str) -> float
    scale : {"probability", "log-probability", "reward"}
    name : str
    bounds : (float, float), optional
        Known range of a reward (default: the scale's range).

    Raises
    ------
    ConfigError
        If ``fn`` is not callable or ``scale`` is unknown.
    """

    def __init__(
        self,
        fn: Callable[[Prompt, tuple[str, ...]], float],
        scale: Scale,
        name: str = "callable",
        bounds: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if not callable(fn):
            raise ConfigError(f"fn must be callable, got {type(fn).__name__}")
        if scale not in ("probability", "log-probability", "reward"):
            raise ConfigError(
                f"scale must be 'probability', 'log-probability' or 'reward', got {scale!r}"
            )
        self.fn, self.scale, self.name, self._bounds = fn, scale, name, bounds

    @property
    def bounds(self) -> tuple[float, float]:
        return self._bounds if self._bounds is not None else super().bounds

    def _evaluate(self, prompt: Prompt, steps: tuple[str, ...]) -> tuple[float, Usage]:
        return self.fn(prompt, steps), Usage()


def from_outcome(
    scorer: Scorer, extract: Callable[[str], str | None] = extract_answer
) -> CallableScorer:
    """An outcome scorer (:mod:`samplescale.verifiers.scorers`) as a process scorer.

    The steps are joined into one text; the wrapped scorer sees ``Sample(text=...)`` (no
    token logprobs, so use answer-based scorers such as an oracle) and the answer
    ``extract(text)``. Same name and scale.
    """

    def fn(prompt: Prompt, steps: tuple[str, ...]) -> float:
        text = "".join(steps)
        value = scorer(Sample(text=text), extract(text))
        assert value is not None  # only error samples score None
        return value

    return CallableScorer(fn, scorer.scale, name=scorer.name)


def aggregate_step_scores(
    scores: Sequence[float], how: Aggregation, scale: Scale = "probability"
) -> float:
    """One score for a path from the scores after each of its steps.

    ``how``: ``"last"`` (the score of the whole partial solution), ``"min"`` (the weakest
    step), ``"mean"`` or ``"product"``. On the log-probability scale the result is the log
    of the same aggregate of the probabilities (``product`` sums the logs, ``mean`` is
    ``log(mean(exp(s)))``), so ranking agrees across the two scales. ``product`` favours
    short paths: step scores A = [.9, .9, .9, .9], B = [.8] give A 0.6561 < B 0.8, while
    min, mean and last prefer A.

    Parameters
    ----------
    scores : sequence of float, length >= 1
    how : {"last", "min", "mean", "product"}
    scale : {"probability", "log-probability", "reward"}

    Returns
    -------
    float
        On ``scale``.

    Raises
    ------
    ConfigError
        If ``how`` is unknown, ``scores`` is empty, or ``product`` is asked of negative
        rewards.
    """
    if how not in AGGREGATIONS:
        raise ConfigError(f"how must be one of {', '.join(AGGREGATIONS)}; got {how!r}")
    values = [float(s) for s in scores]
    if not values:
        raise ConfigError("aggregate_step_scores needs at least one step score")
    if how == "last":
        return values[-1]
    if how == "min":
        return min(values)
    if scale == "log-probability":
        if how == "product":
            return math.fsum(values)
        top = max(values)
        if top == -math.inf:
            return -math.inf
        return top + math.log(math.fsum(math.exp(v - top) for v in values) / len(values))
    if how == "mean":
        return math.fsum(values) / len(values)
    if scale == "reward" and min(values) < 0:
        raise ConfigError("how='product' needs rewards >= 0; use 'last', 'min' or 'mean'")
    return math.prod(values)


PROCESS_SCORERS: Registry[Callable[[Backend], ProcessScorer]] = Registry("process scorer")
PROCESS_SCORERS.register("p-true")(self_evaluation)
PROCESS_SCORERS.register("judge")(JudgeScorer)
