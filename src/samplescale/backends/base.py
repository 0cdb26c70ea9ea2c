"""The backend protocol, its capability record, and the streaming protocol."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from samplescale.config import SamplingParams
from samplescale.errors import BackendError
from samplescale.types import Generation, Prompt


class Capabilities(BaseModel):
    """What a backend can do.

    Attributes
    ----------
    logits : bool
        The backend exposes next-token logits and samples with samplescale's own pipeline
        (:mod:`samplescale.sampling.pipeline`), so sampling is identical across such backends.
    seeds : bool
        ``SamplingParams.seed`` makes results reproducible.
    parallel_n : bool
        ``n`` samples of one prompt are decoded together in one call sharing the prompt.
    chat : bool
        Chat ``messages`` are rendered with the model's chat template.
    streaming : bool
        The backend has a ``stream`` method (:class:`StreamingBackend`) that yields text
        deltas while it decodes.
    logprobs : bool
        Samples carry per-token log-probabilities (``Sample.logprobs`` or
        ``sampling_logprobs``).
    prefix : bool
        ``Prompt.prefix`` (continuing a partial reply, as step-level search does) works
        with chat prompts.
    prefix_caching : bool
        A prompt prefix computed by one call is reused by later calls, beyond the ``n``
        samples of one call sharing their prompt: across requests (a server's automatic
        prefix cache), or inside a :func:`prefix_session` (:class:`PrefixCaching`).
    early_exit : bool
        The backend has ``generate_first`` (:class:`FirstFinished`): the samples of a call
        are decoded together and the unfinished ones are cancelled as soon as ``m`` have
        finished, so the cancelled ones stop spending tokens and wall time (short-m@k).
        Without it a strategy draws all samples and can only count what stopping would
        have saved.
    constraints : bool
        ``SamplingParams.constraint`` is honoured (constrained generation). Defaults to
        ``logits``: every backend that samples with the pipeline masks through it
        (:func:`samplescale.backends.decoding.decode_rows`); a backend without logits says
        so itself (e.g. one that passes the constraint to an upstream server).
    groups : bool
        :meth:`GroupGenerating.generate_groups`: one call decodes several groups of
        samples of one prompt, each group with its own ``SamplingParams`` (per-row
        parameters), in shared batch steps after one prompt prefill. The evaluation loop
        decodes a problem's greedy answer so, beside its pool
        (:mod:`samplescale.evaluate_greedy`).
    prompt_batching : bool
        :meth:`PromptBatching.generate_prompts`: one call decodes the samples of several
        prompts in shared batch steps (step-level search extends partial solutions that
        differ; :func:`samplescale.steps.generate_steps_many`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    logits: bool
    seeds: bool
    parallel_n: bool
    chat: bool
    streaming: bool = False
    logprobs: bool = True
    prefix: bool = True
    prefix_caching: bool = False
    early_exit: bool = False
    constraints: bool = False
    groups: bool = False
    prompt_batching: bool = False

    @model_validator(mode="before")
    @classmethod
    def _constraints_with_logits(cls, data: Any) -> Any:
        if isinstance(data, dict) and "constraints" not in data:
            return {**data, "constraints": bool(data.get("logits", False))}
        return data


@runtime_checkable
class Backend(Protocol):
    """A language model that generates samples.

    Implementations must be safe to call from several threads (they may serialise calls).
    """

    name: str
    capabilities: Capabilities

    def generate(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Generation:
        """Draw ``params.n`` samples continuing ``prompt``.

        Parameters
        ----------
        prompt : Prompt
        params : SamplingParams
        rng : numpy.random.Generator, optional
            Source of randomness when ``params.seed`` is None.

        Returns
        -------
        Generation
            ``params.n`` samples, in order, and the usage of the call.
        """
        ...


class TextDelta(BaseModel):
    """New final text of one sample while it is being decoded.

    Attributes
    ----------
    index : int
        The sample's index in ``[0, params.n)`` (its place in the final ``Generation``).
    text : str
        Non-empty text that follows the sample's earlier deltas. It is final: decoded
        UTF-8 only, and never text that could still turn out to be the start of a stop
        string (it is held back until a later token rules that out).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    index: int = Field(ge=0)
    text: str = Field(min_length=1)


StreamEvent = TextDelta | Generation


@runtime_checkable
class FirstFinished(Backend, Protocol):
    """A backend that stops a call's samples once ``m`` of them have finished
    (``capabilities.early_exit`` is True). Implementations: ``LlamaCppBackend`` (the
    unfinished sequences leave the shared batch), ``OpenAIHTTPBackend`` with
    ``stream=True`` (the other requests are closed)."""

    def generate_first(
        self, prompt: Prompt, params: SamplingParams, m: int,
        rng: np.random.Generator | None = None,
    ) -> Generation:
        """Draw ``params.n`` samples together; once ``m`` have finished with ``"stop"``,
        cancel the rest.

        Parameters
        ----------
        prompt : Prompt
        params : SamplingParams
            ``params.n`` is the pool k.
        m : int
            Finished samples to wait for, in ``[1, params.n]``.
        rng : numpy.random.Generator, optional

        Returns
        -------
        Generation
            ``params.n`` samples in order: the finished ones (at least ``m`` unless fewer
            than ``m`` finish before ``max_tokens``; several may finish at the same step),
            and the others with ``finish_reason="cancelled"`` and the tokens they drew
            before they were stopped. The usage counts every token drawn, cancelled rows'
            included.

        Raises
        ------
        ConfigError
            If ``m`` is not an integer in ``[1, params.n]`` (naming ``m``), and as
            ``generate``.
        """
        ...


@runtime_checkable
class StreamingBackend(Backend, Protocol):
    """A backend that also streams (``capabilities.streaming`` is True)."""

    def stream(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Iterator[StreamEvent]:
        """Draw ``params.n`` samples like ``generate``, yielding text while decoding.

        Yields
        ------
        TextDelta
            New text of sample ``index``, in decoding order (deltas of different samples
            interleave). Joined per index they equal that sample's final ``text``.
        Generation
            Last, exactly once: what ``generate`` returns for the same arguments (same
            samples for the same seed, exact usage).

        Notes
        -----
        Invalid arguments raise the errors ``generate`` raises, when ``stream`` is called
        or at the latest at the first ``next``. A backend may hold a lock until the
        iterator is exhausted or closed: close it (``iterator.close()``) when stopping
        early.
        """
        ...


@contextlib.contextmanager
def closing(events: Iterable[StreamEvent]) -> Iterator[Iterable[StreamEvent]]:
    """Close a stream (releasing what its backend holds) when the block ends, early or not;
    for iterators without ``close`` this does nothing."""
    try:
        yield events
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def collect(
    events: Iterable[StreamEvent], on_delta: Callable[[TextDelta], None] | None = None
) -> Generation:
    """Consume a stream and return its final ``Generation``.

    Parameters
    ----------
    events : iterable of StreamEvent
        A ``stream`` iterator; it is closed when this returns or raises.
    on_delta : callable, optional
        Called with every ``TextDelta`` as it arrives (an exception from it stops the
        stream and propagates).

    Raises
    ------
    BackendError
        If the stream ends without a ``Generation``.
    """
    gen = None
    with closing(events):
        for ev in events:
            if isinstance(ev, Generation):
                gen = ev
            elif on_delta is not None:
                on_delta(ev)
    if gen is None:
        raise BackendError("the stream ended without its final Generation")
    return gen


def replay(gen: Generation) -> Iterator[StreamEvent]:
    """The stream of an already finished call: each sample's whole text as one delta (in
    sample order, samples with empty text skipped), then ``gen``."""
    for i, s in enumerate(gen.samples):
        if s.text:
            yield TextDelta(index=i, text=s.text)
    yield gen


@runtime_checkable
class GroupGenerating(Protocol):
    """A backend that decodes groups of samples with different parameters in one call
    (``capabilities.groups``). Implementations: ``LlamaCppBackend``."""

    def generate_groups(
        self,
        prompt: Prompt,
        groups: Sequence[SamplingParams],
        rng: np.random.Generator | None = None,
    ) -> list[Generation]:
        """``generate(prompt, g, rng)`` for each group ``g``, decoded in one call: the
        prompt is prefilled once and every step decodes one token of every unfinished
        sample of every group in one batch, each group's rows drawn with its own
        parameters and seeded streams.

        Returns
        -------
        list of Generation
            One per group, in order, with ``g.n`` samples each. The first group's usage is
            the call's prompt prefill (as ``generate`` reports it); each later group reports
            its prompt tokens as cached (``cached_prompt_tokens == prompt_tokens``: served
            by that same prefill). Completion tokens are each group's own.
        """
        ...


@runtime_checkable
class PromptBatching(Protocol):
    """A backend that decodes the samples of several prompts in one call
    (``capabilities.prompt_batching``). Implementations: ``LlamaCppBackend``."""

    def generate_prompts(
        self,
        requests: Sequence[tuple[Prompt, SamplingParams]],
        rngs: Sequence[np.random.Generator | None] | None = None,
    ) -> list[Generation]:
        """``generate(prompt, params, rng)`` for each request, the rows of all requests
        decoded in shared batch steps; one Generation per request, in order."""
        ...


@runtime_checkable
class PrefixCaching(Protocol):
    """A backend that keeps computed prefixes in its KV cache between calls of a session.

    Step-level search and SMC call the backend once per step with the prompt plus a
    partial solution, and score each partial solution with a prompt that shares most of
    the previous one. Inside ``prefix_session()`` such a backend keeps every call's
    sequences (prompt and samples) cached and serves the longest token prefix a later call
    shares with them from the cache, decoding only the rest; resampling or branching a
    partial solution copies its cached sequence. Sequences are freed when the cache needs
    room (least recently used first) and all of them when the session ends.
    ``Usage.cached_prompt_tokens`` reports what was served from the cache.

    Implementations: ``LlamaCppBackend``. A backend without it recomputes every prompt
    (:func:`prefix_session` does nothing there).
    """

    def prefix_session(self) -> contextlib.AbstractContextManager[None]:
        """Keep prefixes cached until the block ends; the same calls in a session give
        the same results on a fresh backend and after other calls."""
        ...

    def cached_logits_at(self, tokens: Sequence[int], last: int = 1) -> tuple[np.ndarray, int]:
        """``LogitsModel.logits_at`` and the number of ``tokens`` served from the cache."""
        ...


def prefix_session(backend: object) -> contextlib.AbstractContextManager[None]:
    """``backend.prefix_session()`` for a :class:`PrefixCaching` backend, else a block that
    does nothing (every call recomputes its prompt)."""
    session = getattr(backend, "prefix_session", None)
    return session() if callable(session) else contextlib.nullcontext()


def scored_logits(model: LogitsModel, tokens: Sequence[int]) -> tuple[np.ndarray, int]:
    """Next-token logits after ``tokens``, shape (vocab_size,), and how many of ``tokens``
    a :class:`PrefixCaching` model served from its cache (0 for other models)."""
    cached = getattr(model, "cached_logits_at", None)
    if callable(cached):
        logits, hits = cached(tokens)
        return logits[0], int(hits)
    return model.logits_at(tokens)[0], 0


@runtime_checkable
class LogitsModel(Protocol):
    """A model that scores next tokens: what set-level samplers, speculative sampling and
    token-level SMC need (:mod:`samplescale.decoders`).

    Token ids index a vocabulary of ``vocab_size`` tokens. Implementations: ``ToyLM`` and
    ``LlamaCppBackend`` (which keeps recently scored prefixes in its KV cache, so extending
    a prefix by a few tokens costs only those tokens).
    """

    vocab_size: int

    def tokenize_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids of ``prompt`` as the model sees it (chat template applied)."""
        ...

    def logits_at(self, tokens: Sequence[int], last: int = 1) -> np.ndarray:
        """Raw next-token logits after each of the last ``last`` prefixes of ``tokens``.

        Parameters
        ----------
        tokens : sequence of int, length L
            Prompt ids followed by generated ids.
        last : int
            Number of positions, ``1 <= last <= L`` (the toy LM also allows ``L + 1``: the
            empty prefix).

        Returns
        -------
        ndarray, shape (last, vocab_size), float
            Row ``i`` is the logits after ``tokens[: L - last + 1 + i]``; the final row is
            the next-token logits after all of ``tokens``.
        """
        ...

    def piece(self, token: int) -> bytes:
        """The bytes of one token (UTF-8 may be split across tokens)."""
        ...

    def is_end(self, token: int) -> bool:
        """True for end-of-generation tokens."""
        ...
