"""Process scorers read from a language model: a label-token reward model, P(True)
self-evaluation and an LLM judge (see :mod:`samplescale.verifiers.process`)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from samplescale.backends.base import Backend, LogitsModel, scored_logits
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.sampling.functional import log_softmax
from samplescale.types import Message, Prompt, Usage
from samplescale.verifiers.process_base import (
    ProcessScorer,
    ScorerError,
    question_of,
    scorer_failure,
)
from samplescale.verifiers.scorers import Scale

PTRUE_TEMPLATE = (
    "Question: {question}\n\n"
    "Proposed solution (it may be unfinished):\n{solution}\n\n"
    "Is every step of the proposed solution so far correct? Answer Yes or No."
)


class LabelTokenScorer(ProcessScorer):
    """A reward read from the probability of a label token after a judging prompt.

    The judging prompt is ``template`` filled with ``{question}`` (see :func:`question_of`)
    and ``{solution}`` (the steps joined; another field name with ``field``), sent as one
    user message (``chat=True``) or as raw text. The score (probability scale) is

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
    field : str
        The template field the steps fill (default ``"solution"``; ThinkSum's sub-queries
        use ``"item"``).

    Raises
    ------
    ConfigError
        If a label is empty, the labels are equal, ``field`` is not an identifier other
        than ``question``, or the template lacks ``{question}`` or ``{<field>}``;
        (at scoring) if a label is not a single token after the prompt.
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
        field: str = "solution",
    ) -> None:
        super().__init__()
        self.check_options(template, positive, negative, field)
        self.backend, self.template, self.chat = backend, template, chat
        self.positive, self.negative, self.name, self.field = positive, negative, name, field

    @staticmethod
    def check_options(
        template: object, positive: object, negative: object, field: object = "solution"
    ) -> None:
        """The checks of the constructor's options, without a backend (so that a strategy
        that builds this scorer when it runs can refuse bad options when it is built).

        Raises
        ------
        ConfigError
            As the constructor does (see the class docstring).
        """
        for label, value in (("positive", positive), ("negative", negative)):
            if (value is not None or label == "positive") and (
                not isinstance(value, str) or not value.strip()
            ):
                raise ConfigError(f"{label} label must be a non-empty string, got {value!r}")
        if positive == negative:
            raise ConfigError(f"positive and negative labels must differ, both are {positive!r}")
        if not isinstance(field, str) or not field.isidentifier() or field == "question":
            raise ConfigError(f"field must be an identifier other than 'question', got {field!r}")
        if not isinstance(template, str):
            raise ConfigError(f"template must be a str, got {type(template).__name__}")
        for key in ("{question}", "{" + field + "}"):
            if key not in template:
                raise ConfigError(f"template must contain the field {key}")

    @property
    def reads(self) -> str:
        """How a score is read on this backend: ``"logits"`` (a LogitsModel: both labels'
        next-token probabilities) or ``"greedy-token"`` (the logprob of a 1-token greedy
        reply)."""
        return "logits" if isinstance(self.backend, LogitsModel) else "greedy-token"

    def judging_prompt(self, prompt: Prompt, steps: Sequence[str]) -> Prompt:
        """The prompt the judging model reads."""
        text = self.template.format(**{"question": question_of(prompt),
                                        self.field: "".join(steps)})
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
        logits, cached = scored_logits(model, base)
        logp = log_softmax(np.asarray(logits, dtype=np.float64))[0]
        pos = float(logp[self._label_id(model, judge, base, self.positive)])
        usage = Usage(prompt_tokens=len(base), cached_prompt_tokens=cached, model_calls=1)
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
            raise scorer_failure(f"{self.name}: the judging call failed: {sample.error}", gen.usage)
        if not sample.logprobs:
            raise scorer_failure(
                f"{self.name}: backend {self.backend.name!r} returned no token logprobs; "
                "use a backend with logprobs or a LogitsModel (e.g. LlamaCppBackend)",
                gen.usage,
            )
        p, token = math.exp(sample.logprobs[0]), sample.text.strip()
        if token == self.positive.strip():
            return p, gen.usage
        if self.negative is not None and token == self.negative.strip():
            return 1.0 - p, gen.usage
        raise scorer_failure(
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


IN_CONTEXT_QUESTION = (
    "Is every step of your solution so far correct? Answer Yes or No."
)


class InContextLabelScorer(LabelTokenScorer):
    """P(True) asked in the policy's own conversation: the partial solution stays the
    assistant's reply, and a user turn asks whether it is correct so far.

    The judging prompt is the problem's chat messages, then an assistant message with
    ``prompt.prefix`` and the steps, then a user message ``question``; the score is read
    as :class:`LabelTokenScorer` reads it (probability scale, ``p(Yes) / (p(Yes) +
    p(No))`` on a LogitsModel). On a backend that caches prefixes
    (:class:`~samplescale.backends.base.PrefixCaching`) the judging prompt shares the
    policy's cached tokens up to the end of the steps, so a score decodes only the chat
    markup and the question (about 25 tokens) instead of the whole judging prompt's tail
    (:data:`PTRUE_TEMPLATE` repeats the step text after the question). The model judges
    its solution in context, as in self-evaluation guided decoding (Xie et al., 2023,
    "Self-Evaluation Guided Beam Search for Reasoning"); the probability read is
    Kadavath et al.'s (2022) P(True).

    Parameters
    ----------
    backend : Backend
    question : str
        The user turn that asks for the verdict (non-empty).
    positive, negative : str
        One-token labels, as :class:`LabelTokenScorer`.

    Raises
    ------
    ConfigError
        If ``question`` is empty, as :class:`LabelTokenScorer` for the labels; (at
        scoring) if the problem's prompt is raw text (it needs chat messages), or the
        backend's chat template cannot render a user message after the assistant's (the
        backend's ``tokenize_prompt`` says so).
    """

    def __init__(
        self,
        backend: Backend,
        question: str = IN_CONTEXT_QUESTION,
        positive: str = "Yes",
        negative: str | None = "No",
        *,
        name: str = "p-true-in-context",
    ) -> None:
        if not isinstance(question, str) or not question.strip():
            raise ConfigError(f"question must be a non-empty string, got {question!r}")
        super().__init__(backend, "{question}{solution}", positive, negative, name=name)
        self.question = question

    def check_prompt(self, prompt: Prompt) -> None:
        """Raise ConfigError unless ``prompt`` is a chat prompt (messages)."""
        if prompt.messages is None:
            raise ConfigError(
                f"{self.name} needs a chat prompt (messages): it continues the policy's "
                "conversation; for a raw text prompt use 'p-true'"
            )

    def judging_prompt(self, prompt: Prompt, steps: Sequence[str]) -> Prompt:
        """The policy's conversation with the steps as its reply, then the question."""
        self.check_prompt(prompt)
        base = prompt.resolved()
        assert base.messages is not None
        reply = Message(role="assistant", content=prompt.prefix + "".join(steps))
        asked = Message(role="user", content=self.question)
        return Prompt(messages=(*base.messages, reply, asked))


def self_evaluation_in_context(backend: Backend) -> InContextLabelScorer:
    """P(True) in the policy's conversation (:class:`InContextLabelScorer`), named
    ``"p-true-in-context"``, probability scale."""
    return InContextLabelScorer(backend)


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
            raise scorer_failure(f"{self.name}: the judging call failed: {reply.error}", gen.usage)
        m = self.regex.search(reply.text)
        if m is None:
            raise scorer_failure(
                f"{self.name}: no score in the judge's reply {reply.text[:200]!r}", gen.usage
            )
        return float(m.group(1)), gen.usage
