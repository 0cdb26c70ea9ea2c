"""Backends without a real model: scripted replies, and an exact toy language model.

``ScriptedBackend`` returns replies you script (contract tests of strategies, servers and
evaluation). ``ToyLM`` is a tiny bigram language model with a known next-token table whose
sequence distribution can be enumerated exactly, for statistical tests of samplers and
strategies; it samples through the same :mod:`samplescale.sampling.pipeline` as every
backend that exposes logits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from samplescale.backends.base import Capabilities, StreamEvent, TextDelta, collect
from samplescale.backends.decoding import (
    FinishQuota,
    SequenceBuilder,
    check_constraint,
    check_decoding,
    decode_rows,
)
from samplescale.config import SamplingParams
from samplescale.constraints.matcher import PrefixMatchers
from samplescale.errors import ConfigError
from samplescale.rng import sample_generators
from samplescale.sampling import functional as F
from samplescale.sampling import pipeline
from samplescale.sampling.arithmetic import ArithmeticCodes
from samplescale.types import Generation, Prompt, Sample, Usage

Reply = str | Exception


def prompt_text(prompt: Prompt) -> str:
    """A plain rendering of a prompt (``role: content`` lines) for backends without a template."""
    prompt = prompt.resolved()
    if prompt.text is not None:
        return prompt.text + prompt.prefix
    assert prompt.messages is not None
    body = "\n".join(f"{m.role}: {m.content}" for m in prompt.messages)
    return body + "\nassistant: " + prompt.prefix if prompt.prefix else body


class ScriptedBackend:
    """Returns scripted replies in order, cycling; one character is one token.

    The ``n`` samples of a call are decoded together, one character of every unfinished
    sample per step, so :meth:`stream` interleaves their deltas like a parallel decoder.

    Parameters
    ----------
    replies : sequence of (str or Exception), or callable (Prompt, int) -> str or Exception
        The reply for the i-th sample drawn from this backend (counted over all calls). An
        Exception instance yields an error sample (``status="error"``), as when one of
        several parallel requests fails.
    token_logprob : float or sequence of float
        Natural-log probability reported for every token of a reply (one value for all
        replies, or one per reply, cycling like ``replies``). Must be <= 0.
    token_delay_s : float
        Seconds each decoding step waits before its token, in [0, 10] (simulates a model's
        per-token time, e.g. to observe streaming).

    Notes
    -----
    Stop strings and ``max_tokens`` are honoured (tokens are characters). Sampling
    parameters other than ``n``, ``stop`` and ``max_tokens`` are ignored.
    """

    name = "fake"
    capabilities = Capabilities(
        logits=False, seeds=True, parallel_n=True, chat=True, streaming=True, early_exit=True
    )

    def __init__(
        self,
        replies: Sequence[Reply] | Callable[[Prompt, int], Reply],
        token_logprob: float | Sequence[float] = -0.1,
        token_delay_s: float = 0.0,
    ) -> None:
        if not callable(replies) and len(replies) == 0:
            raise ConfigError("ScriptedBackend needs at least one reply")
        lps = [token_logprob] if isinstance(token_logprob, (int, float)) else list(token_logprob)
        if not lps or any(not lp <= 0 for lp in lps):  # NaN fails too
            raise ConfigError(
                f"token_logprob values must be <= 0 (natural-log probabilities), got {lps!r:.80}"
            )
        if isinstance(token_delay_s, bool) or not (
            isinstance(token_delay_s, (int, float)) and 0 <= token_delay_s <= 10
        ):
            raise ConfigError(f"token_delay_s must be seconds in [0, 10], got {token_delay_s!r}")
        self._replies = replies
        self._lps = lps
        self.token_delay_s = float(token_delay_s)
        self._count = 0
        self._lock = threading.Lock()
        self.calls: list[tuple[Prompt, SamplingParams]] = []

    def piece(self, token: int) -> bytes:
        """The bytes of one token (one character is one token)."""
        return chr(token).encode()

    def _reply(self, prompt: Prompt, i: int) -> Reply:
        if callable(self._replies):
            return self._replies(prompt, i)
        return self._replies[i % len(self._replies)]

    def generate(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Generation:
        """Draw ``params.n`` scripted samples (see the class docstring)."""
        return collect(self.stream(prompt, params, rng))

    def generate_first(
        self, prompt: Prompt, params: SamplingParams, m: int,
        rng: np.random.Generator | None = None,
    ) -> Generation:
        """:meth:`generate`, cancelling the unfinished samples at the step in which ``m``
        have finished (:class:`~samplescale.backends.base.FirstFinished`; a reply of
        ``L`` characters finishes at step ``L + 1``).

        Raises
        ------
        ConfigError
            If ``m`` is not in ``[1, params.n]``, and as :meth:`stream`.
        """
        quota = FinishQuota(m, params.n)
        return collect(self._start(prompt, params, quota))

    def stream(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Iterator[StreamEvent]:
        """Draw ``params.n`` scripted samples, yielding their text as it is decoded
        (:class:`~samplescale.backends.base.StreamingBackend`).

        Raises
        ------
        ConfigError
            If ``params.constraint`` is set (scripted replies cannot be constrained).
        """
        return self._start(prompt, params, None)

    def _start(
        self, prompt: Prompt, params: SamplingParams, quota: FinishQuota | None
    ) -> Iterator[StreamEvent]:
        start = time.perf_counter()
        check_constraint(params, self.capabilities, self.name)
        with self._lock:
            first = self._count
            self._count += params.n
            self.calls.append((prompt, params))
        return self._events(prompt, params, first, start, quota)

    def _events(
        self, prompt: Prompt, params: SamplingParams, first: int, start: float,
        quota: FinishQuota | None,
    ) -> Iterator[StreamEvent]:
        replies = [self._reply(prompt, i) for i in range(first, first + params.n)]
        texts = {j: r for j, r in enumerate(replies) if isinstance(r, str)}
        seqs = {
            j: SequenceBuilder(self.piece, lambda t: False, params.stop, params.max_tokens)
            for j in texts
        }
        pos = 0
        while active := [j for j, seq in seqs.items() if not seq.done]:
            if self.token_delay_s and any(pos < len(texts[j]) for j in active):
                time.sleep(self.token_delay_s)
            for j in active:
                if pos < len(texts[j]):
                    lp = float(self._lps[(first + j) % len(self._lps)])
                    seqs[j].push(ord(texts[j][pos]), lp, lp)
                else:
                    seqs[j].end()
                if quota is not None and seqs[j].finish_reason == "stop":
                    quota.finished += 1
                if delta := seqs[j].take_delta():
                    yield TextDelta(index=j, text=delta)
            if quota is not None and quota.reached:
                for seq in seqs.values():
                    seq.cancel()
            pos += 1
        samples = [
            Sample.failed(f"{type(r).__name__}: {r}") if isinstance(r, Exception)
            else seqs[j].to_sample()
            for j, r in enumerate(replies)
        ]
        usage = Usage(
            prompt_tokens=len(prompt_text(prompt)),
            completion_tokens=sum(s.num_tokens for s in samples),
            model_calls=1,
            wall_time_s=time.perf_counter() - start,
        )
        yield Generation(samples=tuple(samples), usage=usage)


DEFAULT_TOY_TABLE = np.array(
    [
        # next:  <eos>  "1"   "2"   "3"
        [0.10, 0.50, 0.30, 0.10],  # after BOS
        [0.20, 0.20, 0.50, 0.10],  # after "1"
        [0.30, 0.40, 0.10, 0.20],  # after "2"
        [0.60, 0.10, 0.10, 0.20],  # after "3"
    ]
)


class ToyLM:
    """An exact bigram language model over the tokens ``<eos>, "1", "2", "3"``.

    The next-token distribution depends only on the previous token (BOS at the start) and
    is ``table[prev]``; token 0 is end-of-sequence. Sequence probabilities are therefore
    known exactly, and :meth:`exact_distribution` enumerates them after the sampling
    transforms of a ``SamplingParams``.

    Parameters
    ----------
    table : ndarray, shape (V, V), float64, optional
        Row ``r`` is the next-token probability vector after token ``r`` (row 0: after BOS);
        rows must be non-negative and sum to 1. Defaults to :data:`DEFAULT_TOY_TABLE`.
    """

    name = "toy"
    capabilities = Capabilities(
        logits=True, seeds=True, parallel_n=True, chat=False, streaming=True
    )
    EOS = 0

    def __init__(self, table: np.ndarray | None = None) -> None:
        t = np.asarray(DEFAULT_TOY_TABLE if table is None else table, dtype=np.float64)
        if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] < 2:
            raise ConfigError(f"table must be square (V, V) with V >= 2, got shape {t.shape}")
        if (t < 0).any() or not np.allclose(t.sum(axis=1), 1.0):
            raise ConfigError("every row of table must be a probability vector (>= 0, sums to 1)")
        with np.errstate(divide="ignore"):
            self._logits = np.log(t)
        self.vocab = ("<eos>",) + tuple(str(i) for i in range(1, t.shape[0]))

    @property
    def vocab_size(self) -> int:
        """Number of tokens, including ``<eos>``."""
        return len(self.vocab)

    def next_token_logits(self, prefix: Sequence[int]) -> np.ndarray:
        """Raw next-token logits after ``prefix`` (generated token ids), shape (V,), float64."""
        return self._logits[prefix[-1] if prefix else 0].copy()

    def tokenize_prompt(self, prompt: Prompt) -> list[int]:
        """The ids of ``prompt.prefix`` (one token per character ``"1"``..); the rest of the
        prompt is not seen by the model.

        Raises
        ------
        ConfigError
            If the prefix has a character outside the vocabulary.
        """
        ids = {tok: i for i, tok in enumerate(self.vocab) if i != self.EOS}
        bad = sorted({c for c in prompt.prefix if c not in ids})
        if bad:
            raise ConfigError(
                f"ToyLM prompt prefix may only contain {sorted(ids)}, got {bad[:3]}"
            )
        return [ids[c] for c in prompt.prefix]

    def logits_at(self, tokens: Sequence[int], last: int = 1) -> np.ndarray:
        """Raw logits after each of the last ``last`` prefixes of ``tokens``, shape (last, V).

        ``last`` may be ``len(tokens) + 1`` (the first row is then the distribution after BOS).

        Raises
        ------
        ConfigError
            If ``last`` is outside ``[1, len(tokens) + 1]`` or a token id is out of range.
        """
        toks = [int(t) for t in tokens]
        if not 1 <= last <= len(toks) + 1:
            raise ConfigError(f"last must be in [1, {len(toks) + 1}], got {last}")
        if any(not 0 <= t < self.vocab_size for t in toks):
            raise ConfigError(f"token ids must be in [0, {self.vocab_size - 1}]")
        prev = [0, *toks][len(toks) + 1 - last :]
        return self._logits[prev].copy()

    def piece(self, token: int) -> bytes:
        """The bytes of one token (empty for ``<eos>``)."""
        return b"" if token == self.EOS else self.vocab[token].encode()

    def token_name(self, token: int) -> str:
        """The token's name in the vocabulary (``"<eos>"`` for token 0)."""
        return self.vocab[token]

    def is_end(self, token: int) -> bool:
        """True for ``<eos>``."""
        return int(token) == self.EOS

    def generate(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Generation:
        """Draw ``params.n`` sequences continuing ``prompt.prefix`` (the rest of the prompt
        only counts toward usage)."""
        return collect(self.stream(prompt, params, rng))

    def stream(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Iterator[StreamEvent]:
        """:meth:`generate`, yielding each sequence's text as it is decoded
        (:class:`~samplescale.backends.base.StreamingBackend`)."""
        start = time.perf_counter()
        check_decoding(params)
        context = self.tokenize_prompt(prompt)
        gens = sample_generators(params.seed, rng, params.n)
        return self._events(prompt, params, context, gens, start)

    def _events(
        self,
        prompt: Prompt,
        params: SamplingParams,
        context: list[int],
        gens: list[np.random.Generator],
        start: float,
    ) -> Iterator[StreamEvent]:
        codes = ArithmeticCodes(gens) if params.decoding == "arithmetic" else None
        first = self.next_token_logits(context)

        def step(active: list[int], tokens: list[int], k: int) -> np.ndarray:
            return self._logits[tokens]  # a bigram model: the last token is the state

        samples = tuple(
            (
                yield from decode_rows(
                    first, params, gens, range(params.n), codes, self.piece, self.is_end, step
                )
            )
        )
        usage = Usage(
            prompt_tokens=len(prompt_text(prompt)),
            completion_tokens=sum(s.num_tokens for s in samples),
            model_calls=1,
            wall_time_s=time.perf_counter() - start,
        )
        yield Generation(samples=samples, usage=usage)

    def exact_distribution(self, params: SamplingParams) -> dict[tuple[int, ...], float]:
        """Exact probability of every token sequence the sampler can produce.

        Enumerates all sequences up to ``params.max_tokens`` tokens (ending in ``<eos>`` or
        at the length limit) under the processed next-token distribution of ``params`` at
        each step (with that sequence's history for the penalties and its position for
        FIRE), masked by ``params.constraint`` when given (the law of masked sampling, not
        the model conditioned on the constraint). Stop strings are not applied;
        ``decoding`` does not matter (arithmetic and independent sampling have the same
        per-sample law).

        Returns
        -------
        dict
            Token-id tuple -> probability; the values sum to 1.
        """
        out: dict[tuple[int, ...], float] = {}
        prefixes = None
        if params.constraint is not None:
            prefixes = PrefixMatchers(params.constraint, self.piece, self.is_end, self.vocab_size)

        def visit(seq: tuple[int, ...], p: float) -> None:
            logits = self._logits[seq[-1] if seq else 0]
            allowed = None if prefixes is None else prefixes.allowed([seq])
            processed = pipeline.process(logits, params, [list(seq)], len(seq), allowed)
            probs = F.softmax(processed)[0]
            for tok in np.flatnonzero(probs > 0):
                q = p * float(probs[tok])
                nxt = (*seq, int(tok)) if prefixes is None else prefixes.extend(seq, int(tok))
                if tok == self.EOS or len(nxt) == params.max_tokens:
                    out[nxt] = out.get(nxt, 0.0) + q
                else:
                    visit(nxt, q)

        visit((), 1.0)
        return out
