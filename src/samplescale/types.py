"""Frozen records that flow between the layers: prompts, samples, usage and results.

All log-probabilities are natural logarithms. All times are seconds. Token counts are
tokens of the backend's own tokenizer.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RECORD = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "error", "cancelled"]


class Message(BaseModel):
    """One chat message."""

    model_config = RECORD
    role: Role
    content: str


class Prompt(BaseModel):
    """What a backend is asked to continue: chat ``messages`` or a raw ``text`` prefix.

    Exactly one of the two is set. Chat messages are rendered with the model's own chat
    template (for GGUF models, the template stored in the file) with a generation prompt
    appended; raw text is tokenised as it is.

    ``prefix`` is the start of the reply, to be continued: it is appended after the
    rendered prompt (after the generation prompt for chat), and the generated text continues
    it without repeating it. Step-level search uses it to extend partial solutions.

    ``grounding`` is an optional source document the reply should be grounded in. Backends
    see it through :meth:`resolved`: it is put before the content of the first user message
    (or before ``text``), separated by a blank line. KL-guided temperature
    (``SamplingParams.kl_sigma``) compares the model with and without it.

    Raises
    ------
    pydantic.ValidationError
        If both or neither of ``messages`` and ``text`` are given, or ``messages`` is empty.
    """

    model_config = RECORD
    messages: tuple[Message, ...] | None = None
    text: str | None = None
    prefix: str = ""
    grounding: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Prompt:
        if (self.messages is None) == (self.text is None):
            raise ValueError("Prompt needs exactly one of 'messages' or 'text'")
        if self.messages is not None and len(self.messages) == 0:
            raise ValueError("Prompt.messages must not be empty")
        return self

    @classmethod
    def user(cls, content: str, system: str | None = None) -> Prompt:
        """A chat prompt with one user message (and an optional system message)."""
        msgs = [Message(role="system", content=system)] if system else []
        msgs.append(Message(role="user", content=content))
        return cls(messages=tuple(msgs))

    def resolved(self) -> Prompt:
        """The prompt as a backend renders it: ``grounding`` merged into the first user
        message (or the text), ``grounding`` then None. Returns ``self`` without grounding."""
        if self.grounding is None:
            return self
        if self.text is not None:
            return self.model_copy(
                update={"text": f"{self.grounding}\n\n{self.text}", "grounding": None}
            )
        assert self.messages is not None
        msgs = list(self.messages)
        i = next((j for j, m in enumerate(msgs) if m.role == "user"), len(msgs) - 1)
        msgs[i] = Message(role=msgs[i].role, content=f"{self.grounding}\n\n{msgs[i].content}")
        return self.model_copy(update={"messages": tuple(msgs), "grounding": None})

    def continued(self, prefix: str) -> Prompt:
        """The same prompt with ``prefix`` as the start of the reply (replacing any earlier)."""
        return self.model_copy(update={"prefix": prefix})


class Sample(BaseModel):
    """One generated completion.

    Attributes
    ----------
    text : str
        The completion text (stop string excluded).
    token_ids : tuple of int
        The generated token ids; when present, ``L = len(token_ids)`` is the number of
        tokens. Backends that report no ids (OpenAI-compatible servers without
        ``return_tokens_as_token_ids``) leave them empty, and ``L`` is then the length of
        the non-empty fields below, which must agree.
    token_texts : tuple of str
        Empty or length ``L``: the text of each generated token as the backend reported it
        (filled by backends that report token strings instead of ids).
    logprobs : tuple of float
        Empty or length ``L``: natural-log probability of each generated token under the
        model's raw next-token distribution (softmax of the unprocessed logits over the full
        vocabulary, temperature 1). This is the model's own score of the text.
    sampling_logprobs : tuple of float
        Empty or length ``L``: natural-log probability of each token under the distribution
        it was actually drawn from (after temperature and truncation). Equals ``logprobs``
        when no transform is active; 0.0 at temperature 0 (greedy is deterministic).
    finish_reason : {"stop", "length", "error", "cancelled"}
        ``stop``: end-of-sequence token or a stop string; ``length``: ``max_tokens`` reached;
        ``cancelled``: stopped unfinished because enough other samples of its call had
        finished (short-m@k, :meth:`~samplescale.backends.base.FirstFinished.generate_first`);
        it has no final answer.
    status : {"ok", "error"}
        ``error`` samples carry the message in ``error``; aggregators exclude them and
        metrics count them as failures.

    Raises
    ------
    pydantic.ValidationError
        If ``token_texts``, ``logprobs`` or ``sampling_logprobs`` is neither empty nor of
        length ``L`` (without ids: if two of them disagree), a log-probability is > 0 or
        NaN, or ``status`` and ``error`` disagree.
    """

    model_config = RECORD
    text: str
    token_ids: tuple[int, ...] = ()
    token_texts: tuple[str, ...] = ()
    logprobs: tuple[float, ...] = ()
    sampling_logprobs: tuple[float, ...] = ()
    finish_reason: FinishReason = "stop"
    status: Literal["ok", "error"] = "ok"
    error: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Sample:
        n = self.num_tokens
        for name in ("token_texts", "logprobs", "sampling_logprobs"):
            values = getattr(self, name)
            if len(values) not in (0, n):
                raise ValueError(f"{name} has {len(values)} values for {n} tokens")
            if name != "token_texts" and any(not (v <= 0.0) for v in values):  # rejects NaN
                raise ValueError(f"{name} must be natural-log probabilities <= 0 (no NaN)")
        if (self.status == "error") != (self.error is not None):
            raise ValueError("status='error' needs an error message, and only then")
        return self

    @property
    def num_tokens(self) -> int:
        """Number of generated tokens ``L``: ``len(token_ids)``, else the length of the first
        non-empty of ``token_texts``, ``logprobs``, ``sampling_logprobs`` (0 when the backend
        reported no per-token data)."""
        if self.token_ids:
            return len(self.token_ids)
        per_token = (self.token_texts, self.logprobs, self.sampling_logprobs)
        return next((len(v) for v in per_token if v), 0)

    @property
    def sum_logprob(self) -> float:
        """Sequence log-probability under the model (natural log, <= 0); -inf for errors."""
        if self.status == "error":
            return -math.inf
        return float(math.fsum(self.logprobs))

    @property
    def mean_logprob(self) -> float:
        """Mean per-token log-probability (natural log, <= 0); -inf for errors or no tokens."""
        if self.status == "error" or not self.logprobs:
            return -math.inf
        return self.sum_logprob / len(self.logprobs)

    @classmethod
    def failed(cls, message: str) -> Sample:
        """An explicit error sample (never voted on, counted as a failure)."""
        return cls(text="", finish_reason="error", status="error", error=message)


class Usage(BaseModel):
    """Compute spent: tokens, model calls and wall time.

    Attributes
    ----------
    prompt_tokens : int
        Prompt tokens evaluated by the model (a prompt shared by ``n`` parallel samples in
        one call is counted once, as the OpenAI API does), whether computed or served from
        a cache.
    cached_prompt_tokens : int
        Of ``prompt_tokens``, those served from the backend's prefix cache (KV cells kept
        from an earlier call of the same session) instead of being computed; at most
        ``prompt_tokens`` (OpenAI's ``prompt_tokens_details.cached_tokens``).
    completion_tokens : int
        Generated tokens over all samples.
    model_calls : int
        Backend generation requests.
    scorer_calls : int
        Calls to process / outcome scorers (reward models, judges, P(True)); their model
        tokens are included in the token counts when the scorer reports them.
    wall_time_s : float
        Wall-clock seconds.
    """

    model_config = RECORD
    prompt_tokens: int = Field(default=0, ge=0)
    cached_prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    model_calls: int = Field(default=0, ge=0)
    scorer_calls: int = Field(default=0, ge=0)
    wall_time_s: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _cached_within_prompt(self) -> Usage:
        if self.cached_prompt_tokens > self.prompt_tokens:
            raise ValueError(
                f"cached_prompt_tokens ({self.cached_prompt_tokens}) must be in "
                f"[0, prompt_tokens={self.prompt_tokens}]"
            )
        return self

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens + other.cached_prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            model_calls=self.model_calls + other.model_calls,
            scorer_calls=self.scorer_calls + other.scorer_calls,
            wall_time_s=self.wall_time_s + other.wall_time_s,
        )


class Generation(BaseModel):
    """What one backend call returns: ``n`` samples and the usage of the call."""

    model_config = RECORD
    samples: tuple[Sample, ...]
    usage: Usage


class Result(BaseModel):
    """The one result type every strategy returns.

    Attributes
    ----------
    strategy : str
        Registry name of the strategy that produced it.
    samples : tuple of Sample
        Every sample drawn, length ``N``.
    answers : tuple of (str or None)
        Length ``N``: the answer extracted from each sample (None when none was found or the
        sample failed).
    scores : tuple of (float or None)
        Length ``N``: per-sample scores on the scale named by ``score_scale`` (None where a
        strategy does not score).
    score_scale : str or None
        "probability", "log-probability" (natural log) or "reward" (unbounded, higher is
        better).
    weights : tuple of float
        Length ``N`` normalised weights (sum 1) where the strategy weighs samples, else empty.
    selected : int or None
        Index of the selected sample (None when every sample failed).
    answer : str or None
        The selected answer.
    vote_shares : dict of str to float
        For voting strategies: share of the (weighted) vote of each answer class,
        keyed by the class representative, in first-seen order; sums to 1.
    trace : tuple of dict
        One JSON-serialisable record per strategy step.
    usage : Usage
        Compute spent by the whole strategy run.
    log_evidence : float or None
        Natural-log estimate of the normalising constant (SMC strategies), else None.
    """

    model_config = RECORD
    strategy: str
    samples: tuple[Sample, ...]
    answers: tuple[str | None, ...] = ()
    scores: tuple[float | None, ...] = ()
    score_scale: str | None = None
    weights: tuple[float, ...] = ()
    selected: int | None = None
    answer: str | None = None
    vote_shares: dict[str, float] = Field(default_factory=dict)
    trace: tuple[dict[str, Any], ...] = ()
    usage: Usage = Usage()
    log_evidence: float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Result:
        n = len(self.samples)
        for name in ("answers", "scores", "weights"):
            if len(getattr(self, name)) not in (0, n):
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} samples")
        if self.weights and (min(self.weights) < 0 or abs(math.fsum(self.weights) - 1.0) > 1e-9):
            raise ValueError("weights must be >= 0 and sum to 1")
        if self.selected is not None and not 0 <= self.selected < n:
            raise ValueError(f"selected={self.selected} is not a sample index in [0, {n - 1}]")
        return self

    @property
    def text(self) -> str | None:
        """Text of the selected sample, or None."""
        return None if self.selected is None else self.samples[self.selected].text
