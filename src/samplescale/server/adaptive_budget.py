"""A server-wide token rate shared by the requests' strategies (``serve --adaptive-budget``):
more rounds for requests whose votes are split, fewer for settled ones.

Every strategy request is charged the completion tokens its steps generate against one
token bucket that refills at ``tokens_per_minute`` (capacity: one minute's worth; it may
go below zero when requests running at once overdraw it, and then refills from there).
An adaptive strategy (:class:`~samplescale.strategies.adaptive.AdaptiveStrategy`: esc,
adaptive-consistency, semantic-entropy, confidence-stop) stops by its own rule as always;
when its rule says "continue", the next round is granted only if

    level - cost >= (capacity / 2) * max(0, 1 - 2 * split)

where ``level`` is the bucket's tokens, ``cost`` the round's expected tokens (the
request's mean tokens per sample so far times the round's size) and ``split`` is
``1 - (leader's share of the votes cast)``, 0 while no vote is cast (a request whose samples
give no answer is not favoured): a unanimous vote (split 0) continues only while
the bucket is more than half full; an even two-way split (split >= 0.5) continues while
the bucket can pay for the round. A denied round ends the request with the samples drawn
(``decision: "stop"``, the trace record's ``global_budget`` says why). The first round of
every request is never gated, so every request gets an answer; non-adaptive strategies
are charged but never stopped. Plain completions (no strategy) are not charged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.backends.base import Backend
from samplescale.errors import ConfigError
from samplescale.stopping import vote_counts
from samplescale.strategies.adaptive import AdaptiveStrategy
from samplescale.strategies.base import State, Strategy
from samplescale.types import Prompt, Result


class TokenRate:
    """A token bucket refilled at ``tokens_per_minute`` (thread-safe).

    Parameters
    ----------
    tokens_per_minute : int
        Refill rate and capacity, in [1, 10**9] tokens.
    clock : callable, optional
        Seconds (monotonic); ``time.monotonic`` by default (tests pass their own).

    Raises
    ------
    ConfigError
        If ``tokens_per_minute`` is out of range.
    """

    def __init__(self, tokens_per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if (isinstance(tokens_per_minute, bool) or not isinstance(tokens_per_minute, int)
                or not 1 <= tokens_per_minute <= 10**9):
            raise ConfigError("adaptive budget (tokens per minute) must be an integer in "
                              f"[1, 1000000000], got {tokens_per_minute!r}")
        self.capacity = float(tokens_per_minute)
        self._clock = clock
        self._level = self.capacity
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._at) * self.capacity / 60.0)
        self._at = now

    def level(self) -> float:
        """Tokens in the bucket now (may be negative)."""
        with self._lock:
            self._refill()
            return self._level

    def charge(self, tokens: int) -> None:
        """Take ``tokens`` (>= 0) generated tokens out of the bucket."""
        with self._lock:
            self._refill()
            self._level -= max(0, int(tokens))

    def grant(self, cost: float, split: float) -> dict[str, Any]:
        """Whether a round of expected ``cost`` tokens may run for a vote of ``split`` in
        [0, 1] (see the module docstring); the decision with its numbers."""
        with self._lock:
            self._refill()
            need = cost + self.capacity / 2 * max(0.0, 1.0 - 2.0 * split)
            return {"granted": self._level >= need, "level": round(self._level, 1),
                    "cost": round(cost, 1), "split": round(split, 4), "need": round(need, 1)}


def _split(strategy: AdaptiveStrategy, state: State) -> float:
    """``1 - leader's share`` of the votes cast (0 when no vote was cast)."""
    counts, _ = vote_counts(strategy.labels(state))
    return 1.0 - max(counts) / sum(counts) if counts else 0.0


@dataclass(frozen=True)
class RateGated(Strategy):
    """``inner`` with every step charged to ``rate`` and, for adaptive strategies, every
    "continue" decision granted or denied by it (the module docstring has the rule)."""

    inner: Strategy | None = None
    rate: TokenRate | None = None

    @property
    def name(self) -> str:  # type: ignore[override]  # the inner strategy's registry name
        assert self.inner is not None
        return self.inner.name

    def init(self, prompt: Prompt, params: Any) -> State:
        assert self.inner is not None
        return self.inner.init(prompt, params)

    def done(self, state: State) -> bool:
        assert self.inner is not None
        return self.inner.done(state)

    def check_backend(self, backend: Backend) -> None:
        assert self.inner is not None
        self.inner.check_backend(backend)

    def step(
        self, rng: np.random.Generator | None, state: State, backend: Backend
    ) -> tuple[State, dict[str, Any]]:
        inner, rate = self.inner, self.rate
        assert inner is not None and rate is not None
        new, record = inner.step(rng, state, backend)
        # what the step spent, from the state's usage: every strategy keeps one, while only
        # the sampling strategies' step records carry completion_tokens (searches do not)
        rate.charge(new.usage.completion_tokens - state.usage.completion_tokens)
        if not isinstance(inner, AdaptiveStrategy) or record.get("decision") != "continue":
            return new, record
        samples = len(new.samples)
        per_sample = new.usage.completion_tokens / samples if samples else 0.0
        size = min(inner.round_size(samples), new.params.n - samples)
        gate = rate.grant(per_sample * size, _split(inner, new))
        record = {**record, "global_budget": gate}
        if not gate["granted"]:
            record["decision"] = "stop"
        return new.model_copy(update={"trace": new.trace[:-1] + (record,)}), record

    def finalize(self, state: State) -> Result:
        assert self.inner is not None
        return self.inner.finalize(state)
