"""Compute accounting per problem: tokens, calls, wall time, FLOPs and dollars.

Each record's ``usage`` (:class:`samplescale.types.Usage`) is the cost of the method on
that problem (the pool, or the strategy's run); the greedy baseline's cost is kept apart
(``record["greedy"]["usage"]``). FLOPs follow Kaplan et al. (2020), "Scaling Laws for
Neural Language Models" (arXiv:2001.08361): a forward pass costs about
``2 * parameters`` FLOPs per token, so ``FLOPs = 2 * params * (prompt + completion
tokens)`` (the attention term, small for short contexts, is left out; a prompt shared
by a pool is counted once, as the backends count it). Dollars use the user's prices per
million prompt and completion tokens. No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from samplescale.errors import ConfigError

__all__ = ["AXES", "Cost", "cost_per_problem"]

AXES = {  # the cost axes a comparison can use, and their labels
    "tokens": "generated tokens per problem",
    "total_tokens": "prompt + generated tokens per problem",
    "flops": "FLOPs per problem (2 x parameters x tokens)",
    "dollars": "dollars per problem",
    "time": "wall seconds per problem",
}

FIELDS = ("prompt_tokens", "completion_tokens", "model_calls", "scorer_calls", "wall_time_s")


@dataclass(frozen=True)
class Cost:
    """Mean cost per problem (over the problems that ran): tokens, calls, seconds, FLOPs
    (None without a parameter count) and dollars for prompt and completion tokens (None
    without prices)."""

    problems: int
    prompt_tokens: float
    completion_tokens: float
    model_calls: float
    scorer_calls: float
    wall_time_s: float
    flops: float | None = None
    prompt_dollars: float | None = None
    completion_dollars: float | None = None

    @property
    def dollars(self) -> float | None:
        """Prompt plus completion dollars, or None without prices."""
        if self.prompt_dollars is None or self.completion_dollars is None:
            return None
        return self.prompt_dollars + self.completion_dollars

    def scaled(self, fraction: float) -> Cost:
        """The cost of drawing ``fraction`` (k / n) of each pool: completion tokens,
        scorer calls, seconds and the completions' FLOPs and dollars scale; the prompt,
        shared by the pool and counted once, does not; model calls scale but stay at
        least one when the pool needed any (a pool drawn in one batched call is still
        one call for k samples).

        Raises
        ------
        ConfigError
            If ``fraction`` is not in ``(0, 1]``.
        """
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(f"fraction must be in (0, 1], got {fraction!r}")
        flops = None
        if self.flops is not None:
            tokens = self.prompt_tokens + self.completion_tokens
            per_token = self.flops / tokens if tokens else 0.0
            flops = per_token * (self.prompt_tokens + fraction * self.completion_tokens)
        return Cost(
            self.problems, self.prompt_tokens, fraction * self.completion_tokens,
            max(fraction * self.model_calls, min(self.model_calls, 1.0)),
            fraction * self.scorer_calls,
            fraction * self.wall_time_s, flops, self.prompt_dollars,
            None if self.completion_dollars is None else fraction * self.completion_dollars,
        )


def _price(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value >= 0
    ):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def cost_per_problem(
    records: Sequence[dict[str, Any]],
    *,
    params: float | None = None,
    price_prompt: float | None = None,
    price_completion: float | None = None,
) -> Cost:
    """Mean cost per problem of a run's method (not its greedy baseline).

    Parameters
    ----------
    records : sequence of dict
        Records of one run; error records are left out (they have no usage).
    params : float, optional
        The model's parameter count (e.g. ``135e6``), ``> 0``; gives FLOPs.
    price_prompt, price_completion : float, optional
        Dollars per million prompt / completion tokens, ``>= 0``; both give dollars.

    Returns
    -------
    Cost

    Raises
    ------
    ConfigError
        If no record ran, ``params <= 0``, or a price is negative or only one is given.
    """
    ran = [r for r in records if r.get("status") == "ok"]
    if not ran:
        raise ConfigError("records must hold at least one record with status 'ok'")
    means = {f: math.fsum(float(r["usage"].get(f, 0)) for r in ran) / len(ran) for f in FIELDS}
    tokens = means["prompt_tokens"] + means["completion_tokens"]
    flops = None
    if params is not None:
        if _price(params, "params") <= 0:
            raise ConfigError(f"params must be > 0, got {params!r}")
        flops = 2.0 * float(params) * tokens
    if (price_prompt is None) != (price_completion is None):
        raise ConfigError("give both price_prompt and price_completion (dollars per million "
                          "tokens), or neither")
    dollars: tuple[float | None, float | None] = (None, None)
    if price_prompt is not None and price_completion is not None:
        dollars = (means["prompt_tokens"] * _price(price_prompt, "price_prompt") / 1e6,
                   means["completion_tokens"] * _price(price_completion, "price_completion")
                   / 1e6)
    return Cost(len(ran), means["prompt_tokens"], means["completion_tokens"],
                means["model_calls"], means["scorer_calls"], means["wall_time_s"], flops,
                *dollars)
