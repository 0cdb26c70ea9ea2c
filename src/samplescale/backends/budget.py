"""A per-run token budget: a backend wrapper that stops sampling when the budget is spent.

Wrap a backend for ONE strategy run (one request); every ``generate`` call of the run is
charged to the budget (prompt plus completion tokens, as the backend reports them), and so
is every ``logits_at`` call (the decoders that score tokens one at a time: priority
sampling, KL-guided temperature; see :meth:`TokenBudgetBackend.logits_at`).
Because it sits at the backend protocol, it works with every strategy unchanged.

Before each call the wrapper checks the worst case, ``prompt tokens + k * max_tokens``
for ``k`` samples, against what is left. When all requested samples fit, the call goes
through unchanged (the same samples as without a budget). When they do not, it draws as
many as fit, in batches, looking at the real spend after each batch, and returns the
samples it could not afford as explicit error samples whose message says the budget was
spent (``Sample(status="error")``: aggregators exclude them, metrics count them). A call
for which not even one sample fits draws nothing and returns only such samples.

Prompt tokens are counted in advance with the backend's ``tokenize_prompt`` where it has
one (llama.cpp; assumed to count what its usage reports), else taken from the previous
call (the larger of the two when both are known), else bounded from above by
the prompt's UTF-8 bytes plus ``TEMPLATE_TOKENS`` per chat message. When only that bound
is known and it does not fit, the first call draws a single sample to learn the real cost;
only that call can overrun the budget, by at most its prompt tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from samplescale.backends.base import Backend, StreamEvent, closing, replay
from samplescale.backends.fake import prompt_text
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.rng import make_rng, spawn
from samplescale.types import Generation, Prompt, Sample, Usage

TEMPLATE_TOKENS = 16


class BudgetSpent(ConfigError):
    """A ``logits_at`` call through :class:`TokenBudgetBackend` did not fit the budget."""


class TokenBudgetBackend:
    """``backend`` with a cap of ``max_total_tokens`` on all calls made through it.

    Parameters
    ----------
    backend : Backend
        The wrapped backend; attributes other than ``generate`` (``name``,
        ``capabilities``, ``tokenize_prompt``, ...) are the wrapped backend's;
        ``generate``, ``stream`` and ``logits_at`` are charged.
    max_total_tokens : int
        The budget in tokens (prompt + completion over every call), >= 1.

    Attributes
    ----------
    spent : int
        Tokens charged so far.
    not_drawn : int
        Samples returned as budget errors instead of being drawn.
    refused_logits : int
        ``logits_at`` calls refused for lack of budget (each raised :class:`BudgetSpent`).

    Raises
    ------
    ConfigError
        If ``max_total_tokens`` is not an integer >= 1.
    """

    def __init__(self, backend: Backend, max_total_tokens: int) -> None:
        if (
            isinstance(max_total_tokens, bool)
            or not isinstance(max_total_tokens, int)
            or max_total_tokens < 1
        ):
            raise ConfigError(
                f"max_total_tokens must be an integer >= 1, got {max_total_tokens!r}"
            )
        self.backend = backend
        self.max_total_tokens = max_total_tokens
        self.spent = 0
        self.not_drawn = 0
        self.refused_logits = 0
        self._scored: dict[int, dict] = {}  # trie of the token sequences already scored
        self._prompt_cost: int | None = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    @property
    def exhausted(self) -> bool:
        """True once a sample or a ``logits_at`` call was refused for lack of budget."""
        return self.not_drawn > 0 or self.refused_logits > 0

    def _prompt_tokens(self, prompt: Prompt) -> tuple[int, bool]:
        """Prompt tokens of one call and whether the count is exact (or an upper bound)."""
        tokenize = getattr(self.backend, "tokenize_prompt", None)
        if tokenize is not None:
            try:
                return max(len(tokenize(prompt)), self._prompt_cost or 0), True
            except ConfigError:
                pass
        if self._prompt_cost is not None:
            return self._prompt_cost, True
        # An upper bound: tokenizers use at least one byte per text token, plus a chat
        # template's few tokens per message.
        messages = len(prompt.messages or ())
        return len(prompt_text(prompt).encode("utf-8", "surrogatepass")) + TEMPLATE_TOKENS * (messages + 1), False

    def _affordable(self, prompt: Prompt, max_tokens: int, want: int) -> int:
        left = self.max_total_tokens - self.spent
        cost, exact = self._prompt_tokens(prompt)
        if cost + want * max_tokens <= left:
            return want
        if not exact:  # the bound does not fit: one sample first, to learn the real cost
            return 1 if max_tokens <= left else 0
        return max(0, (left - cost) // max_tokens)

    def generate(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Generation:
        """Draw up to ``params.n`` samples within the budget (see the module docstring).

        Returns
        -------
        Generation
            ``params.n`` samples in order: the drawn ones first, then one error sample per
            sample the budget could not pay for. ``usage`` sums the calls made.
        """
        with self._lock:
            k = self._affordable(prompt, params.max_tokens, params.n)
            if k == params.n:  # everything fits: the call goes through unchanged
                gen = self.backend.generate(prompt, params, rng)
                self._charge(gen.usage)
                return gen
            # Batches need fresh streams each: derive one generator from the seed (or rng)
            # and let every batch spawn its children from it.
            source = spawn(params.seed, 1)[0] if params.seed is not None else make_rng(rng)
            samples: list[Sample] = []
            usage = Usage()
            while len(samples) < params.n and k > 0:
                gen = self.backend.generate(prompt, params.replace(n=k, seed=None), source)
                self._charge(gen.usage)
                usage = usage + gen.usage
                samples.extend(gen.samples)
                k = self._affordable(prompt, params.max_tokens, params.n - len(samples))
            missing = params.n - len(samples)
            self.not_drawn += missing
            message = (
                f"not drawn: the max_total_tokens budget ({self.max_total_tokens} tokens) "
                f"was spent ({self.spent} tokens used)"
            )
            samples.extend(Sample.failed(message) for _ in range(missing))
            return Generation(samples=tuple(samples), usage=usage)

    def generate_first(
        self, prompt: Prompt, params: SamplingParams, m: int,
        rng: np.random.Generator | None = None,
    ) -> Generation:
        """The wrapped backend's ``generate_first`` (early exit once ``m`` finished,
        :class:`~samplescale.backends.base.FirstFinished`), charged. Only the ``k'``
        samples the budget pays for at ``max_tokens`` each are drawn (waiting for
        ``min(m, k')``); the rest are budget error samples, as in :meth:`generate`.

        Raises
        ------
        ConfigError
            As the wrapped backend (``m`` outside ``[1, params.n]``).
        """
        with self._lock:
            k = self._affordable(prompt, params.max_tokens, params.n)
            if k == 0:
                self.not_drawn += params.n
                gen = Generation(samples=(), usage=Usage())
            else:
                gen = self.backend.generate_first(  # type: ignore[attr-defined]
                    prompt, params.replace(n=k), min(m, k), rng)
                self._charge(gen.usage)
                self.not_drawn += params.n - k
            message = (f"not drawn: the max_total_tokens budget ({self.max_total_tokens} "
                       f"tokens) was spent ({self.spent} tokens used)")
            missing = tuple(Sample.failed(message) for _ in range(params.n - k))
            return Generation(samples=gen.samples + missing, usage=gen.usage)

    def stream(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Iterator[StreamEvent]:
        """Stream a call within the budget
        (:class:`~samplescale.backends.base.StreamingBackend`).

        When all ``params.n`` samples fit and the wrapped backend streams, its stream goes
        through unchanged and its usage is charged at the end. Otherwise the call is
        :meth:`generate` (samples drawn in batches, budget errors for the rest) and each
        drawn sample's text arrives as one delta before the ``Generation``.
        """
        with self._lock:
            fits = self._affordable(prompt, params.max_tokens, params.n) == params.n
            if fits and self.backend.capabilities.streaming:
                stream = self.backend.stream  # type: ignore[attr-defined]
                with closing(stream(prompt, params, rng)) as events:
                    for ev in events:
                        if isinstance(ev, Generation):
                            self._charge(ev.usage)
                        yield ev
                return
        yield from replay(self.generate(prompt, params, rng))

    def logits_at(self, tokens: Sequence[int], last: int = 1) -> np.ndarray:
        """The wrapped model's next-token logits (``LogitsModel.logits_at``), charged.

        A call costs the tokens of ``tokens`` that no earlier call through this wrapper
        scored (the positions beyond the longest prefix shared with one of them, at least
        1): the prompt once, then about one token per decoding step, what a model with a
        prefix cache evaluates.

        Returns
        -------
        ndarray, shape (last, vocab_size), float
            As the wrapped model's ``logits_at``.

        Raises
        ------
        BudgetSpent
            If the call's cost does not fit in what is left of ``max_total_tokens``
            (nothing is scored; token-by-token decoders cannot return partial samples).
        """
        return self.cached_logits_at(tokens, last)[0]

    def cached_logits_at(self, tokens: Sequence[int], last: int = 1) -> tuple[np.ndarray, int]:
        """:meth:`logits_at`, charged the same, and the number of ``tokens`` the wrapped
        model served from its prefix cache (0 when it has none).

        Raises
        ------
        BudgetSpent
            As :meth:`logits_at`.
        """
        with self._lock:
            node, new = self._scored, 0
            for t in tokens:
                if new == 0 and int(t) in node:
                    node = node[int(t)]
                else:
                    new += 1
            cost = max(new, 1)
            if self.spent + cost > self.max_total_tokens:
                self.refused_logits += 1
                raise BudgetSpent(
                    f"max_total_tokens: the budget of {self.max_total_tokens} tokens is spent "
                    f"({self.spent} used; the next next-token scoring call needs {cost} more). "
                    "Token-by-token decoders (decoding='priority', kl_sigma) cannot return "
                    "partial samples: raise max_total_tokens or lower n / max_tokens"
                )
            inner = getattr(self.backend, "cached_logits_at", None)
            if callable(inner):
                logits, cached = inner(tokens, last)
            else:
                logits, cached = self.backend.logits_at(tokens, last), 0  # type: ignore[attr-defined]
            self.spent += cost
            node = self._scored
            for t in tokens:
                node = node.setdefault(int(t), {})
            return logits, cached

    def _charge(self, usage: Usage) -> None:
        self.spent += usage.total_tokens
        if usage.model_calls:
            cost = usage.prompt_tokens // usage.model_calls
            self._prompt_cost = max(self._prompt_cost or 0, cost)
