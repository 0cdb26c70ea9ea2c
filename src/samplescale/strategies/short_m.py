"""short-m@k (Hassid et al. 2025, "Don't Overthink It: Preferring Shorter Thinking Chains for
Improved LLM Reasoning"): k chains decoded together, stopped once m have finished.

``params.n`` is the pool k. The k chains are drawn in one backend call; as soon as ``m``
of them have finished (``finish_reason="stop"``) the others are cancelled and the first
``m`` finished answers vote, ties to the class of the shortest chain.

* On a backend with ``Capabilities.early_exit``
  (:class:`~samplescale.backends.base.FirstFinished`) the cancellation is real: llama.cpp
  drops the unfinished sequences from the shared batch at the step the m-th chain finishes;
  over HTTP (``OpenAIHTTPBackend(stream=True)``) the other requests are closed. The
  cancelled samples stay in the Result (``finish_reason="cancelled"``, the tokens they drew,
  no answer) and ``Result.usage`` counts their tokens.
* On any other backend all k chains are drawn to the end and the rule is applied
  afterwards (the m shortest finished chains vote): the same choice, but nothing is saved;
  the trace says so (``mode="drawn-all"``, ``wall_time_saved=False``) and reports the
  tokens early exit would have saved (``tokens_saveable``).

The trace has one record: ``{"event": "stopping", "decision": "stop", "mode", "finished",
"cancelled", "voters", "cut_at", ...}`` (see :meth:`ShortMAtK.step`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.aggregate import vote
from samplescale.backends.base import Backend, FirstFinished
from samplescale.backends.decoding import check_m
from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.errors import ConfigError
from samplescale.strategies.base import State, Strategy
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Generation, Prompt, Result, Sample


def draw_first(
    backend: Backend, prompt: Prompt, params: SamplingParams, m: int,
    rng: np.random.Generator | None,
) -> tuple[Generation, bool]:
    """``params.n`` samples, stopped once ``m`` finished where the backend can; and
    whether it could (``Capabilities.early_exit`` and a ``generate_first`` method, with a
    decoding the backend runs itself: not priority sampling or KL-guided temperature).
    Otherwise all samples are drawn (:func:`samplescale.decoders.generate`)."""
    direct = params.decoding != "priority" and params.kl_sigma is None
    if direct and backend.capabilities.early_exit and isinstance(backend, FirstFinished):
        return backend.generate_first(prompt, params, m, rng), True
    return generate(backend, prompt, params, rng), False


def voters(samples: Sequence[Sample], m: int) -> list[int]:
    """Indices of the ``m`` chains that vote, shortest first.

    Finished chains (``"stop"``) by ``(num_tokens, index)``; when fewer than ``m``
    finished, chains cut by ``max_tokens`` (``"length"``) follow in the same order.
    Cancelled and error samples never vote. In a joint decode the first chains to finish
    are the shortest, so these are the first ``m`` to finish. Samples without per-token
    data (an HTTP server that reports no log-probabilities) count 0 tokens, so there the
    order falls back to the index.
    """
    done = [i for i, s in enumerate(samples)
            if s.status == "ok" and s.finish_reason in ("stop", "length")]
    done.sort(key=lambda i: (samples[i].finish_reason != "stop", samples[i].num_tokens, i))
    return done[:m]


@STRATEGIES.register("short-m-at-k")
@dataclass(frozen=True)
class ShortMAtK(Strategy):
    """short-m@k: the first ``m`` of k chains to finish vote (Hassid et al. 2025).

    Majority vote over the answers of the voters (:func:`voters`); a tie between answer
    classes goes to the class of the shortest voter (the votes are cast shortest first and
    :func:`samplescale.aggregate.vote` breaks ties to the class seen first). ``m=1`` is
    short-1@k (the first chain to finish answers); the paper's short-3@k is the default.

    Attributes
    ----------
    m : int, default 3
        Finished chains to wait for, in ``[1, k]`` with ``k = params.n``.

    Raises
    ------
    ConfigError
        If ``m`` is not an integer ``>= 1`` (when built) or exceeds k (at :meth:`init`),
        naming ``m`` and the valid range.
    """

    name = "short-m-at-k"
    m: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.m, bool) or not isinstance(self.m, int) or self.m < 1:
            raise ConfigError(
                f"m must be an integer in [1, k] (k = n, the chains decoded together), "
                f"got {self.m!r}"
            )

    def check_budget(self, budget: int) -> None:
        """Raise ConfigError naming ``m`` unless it is in ``[1, budget]`` (k = budget)."""
        check_m(self.m, budget)

    def init(self, prompt: Prompt, params: SamplingParams) -> State:
        state = super().init(prompt, params)
        self.check_budget(state.params.n)
        return state

    def done(self, state: State) -> bool:
        """True after the one step (the k chains are drawn in one call)."""
        return bool(state.trace)

    def step(
        self, rng: np.random.Generator | None, state: State, backend: Backend
    ) -> tuple[State, dict[str, Any]]:
        """Draw the k chains in one call and record the stopping decision.

        The record: ``mode`` (``"early-exit"``: unfinished chains were cancelled;
        ``"drawn-all"``: the backend cannot, all k ran to the end), ``finished`` (chains
        that finished with ``"stop"``), ``cancelled``, ``voters`` (their indices, shortest
        first), ``cut_at`` (tokens of the longest voter: where the others were or would
        have been stopped), ``completion_tokens`` (spent, cancelled chains' tokens
        included), ``cancelled_tokens`` (of those, drawn by cancelled chains),
        ``tokens_saveable`` (drawn-all: tokens the non-voters drew past ``cut_at``, what
        early exit saves; early-exit: None, their full lengths were never drawn),
        ``wall_time_saved`` and ``wall_time_s``.
        """
        k = state.params.n
        gen, live = draw_first(backend, state.prompt, state.params, self.m, rng)
        samples = gen.samples
        chosen = voters(samples, self.m)
        cut = max((samples[i].num_tokens for i in chosen), default=0)
        others = [s for i, s in enumerate(samples) if i not in chosen]
        record: dict[str, Any] = {
            "step": 0,
            "event": "stopping",
            "decision": "stop",
            "mode": "early-exit" if live else "drawn-all",
            "k": k,
            "m": self.m,
            "samples": len(samples),
            "errors": sum(s.status == "error" for s in samples),
            "finished": sum(s.status == "ok" and s.finish_reason == "stop" for s in samples),
            "cancelled": sum(s.finish_reason == "cancelled" for s in samples),
            "voters": chosen,
            "cut_at": cut,
            "completion_tokens": gen.usage.completion_tokens,
            "cancelled_tokens": sum(s.num_tokens for s in samples
                                    if s.finish_reason == "cancelled"),
            "tokens_saveable": None if live else sum(max(0, s.num_tokens - cut) for s in others),
            "wall_time_saved": live,
            "wall_time_s": gen.usage.wall_time_s,
        }
        new = state.model_copy(update={
            "samples": samples, "usage": state.usage + gen.usage, "trace": (record,),
        })
        return new, record

    def finalize(self, state: State) -> Result:
        answers = self.answers(state)
        chosen = voters(state.samples, self.m)
        v = vote([answers[i] for i in chosen], None, self.equivalent)
        weights = [0.0] * len(state.samples)
        for i in chosen:
            weights[i] = 1.0 / len(chosen)
        return self.result(
            state, answers,
            weights=tuple(weights) if chosen else (),
            selected=None if v.winner is None else chosen[v.winner],
            answer=v.answer,
            vote_shares=v.shares,
        )
