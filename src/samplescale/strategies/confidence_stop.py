"""DeepConf-style confidence-gated stopping (Fu et al. 2025, "Deep Think with Confidence").

``confidence-stop`` draws ``warmup`` traces, sets a confidence threshold from them, then
draws rounds of traces: a trace whose lowest group confidence is below the threshold is
dropped (it does not vote), the rest vote with weight ``exp(confidence)``, and sampling
stops once the weighted leader's share reaches ``consensus`` or N traces were drawn.
Definitions in :mod:`samplescale.stopping` (:func:`~samplescale.stopping.lowest_group_confidence`,
:func:`~samplescale.stopping.confidence_threshold`,
:func:`~samplescale.stopping.consensus_share`).

DeepConf stops a low-confidence trace while it is decoded; backends here return whole
samples, so such a trace is decoded to the end and then dropped. Each stopping record
reports ``tokens_after_cut``: the tokens of the dropped traces after the point where
their running group confidence first fell below the threshold, i.e. what stopping them
in flight would have saved (not saved here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.aggregate import vote
from samplescale.errors import BackendError, check_int
from samplescale.stopping import (
    GROUP_WINDOW,
    check_fraction,
    check_round,
    confidence_threshold,
    consensus_share,
    lowest_group_confidence,
)
from samplescale.strategies.adaptive import AdaptiveStrategy, Labels
from samplescale.strategies.base import State
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Result, Sample


def _cut_tokens(logprobs: tuple[float, ...], window: int, threshold: float) -> int:
    """Tokens after the first window (the first ``min(window, L)`` tokens, then sliding)
    whose mean log-probability is below ``threshold``; 0 if none is."""
    x = np.asarray(logprobs, dtype=np.float64)
    if x.size == 0:
        return 0
    w = min(window, x.size)
    means = np.convolve(x, np.ones(w), mode="valid") / w
    below = np.nonzero(means < threshold)[0]
    return int(x.size - (below[0] + w)) if below.size else 0


@STRATEGIES.register("confidence-stop")
@dataclass(frozen=True)
class ConfidenceStop(AdaptiveStrategy):
    """DeepConf-style stopping: calibrated confidence filter, weighted vote, consensus stop.

    Confidence of a trace: its lowest group confidence over a sliding window of
    ``window`` tokens, the minimum over windows of the mean log-probability of the chosen
    tokens (``Sample.logprobs``; scale ``(-inf, 0]``, higher is more confident). The
    threshold is the ``1 - keep`` quantile of the warm-up traces' confidences (DeepConf-high:
    ``keep=0.9``; DeepConf-low: ``keep=0.1``), fixed after the warm-up and recorded in the
    trace. Traces below it (warm-up traces too) do not vote; the others vote with weight
    ``exp(confidence)`` in ``(0, 1]``. After each round (the warm-up is the first) the rule
    stops when the weighted leader's share of the vote is at least ``consensus``.

    Attributes
    ----------
    warmup : int, default 4
        Warm-up traces, in ``[1, N]``.
    keep : float, default 0.9
        Fraction of warm-up traces at or above the threshold, in ``(0, 1]``.
    window : int, default 16
        Group size in tokens, ``>= 1``.
    consensus : float, default 0.95
        Weighted vote share that stops sampling, in ``(0, 1]``.
    round : int, default 1
        Traces per step after the warm-up, in ``[1, N]``.

    Raises
    ------
    ConfigError
        For a parameter outside its range (naming it), or a backend without per-token
        log-probabilities (``Capabilities.logprobs``).
    BackendError
        If the backend returns a non-empty sample without log-probabilities.
    """

    name = "confidence-stop"
    requires = ("logprobs",)
    warmup: int = 4
    keep: float = 0.9
    window: int = GROUP_WINDOW
    consensus: float = 0.95
    round: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.keep, "keep", closed_high=True)
        check_fraction(self.consensus, "consensus", closed_high=True)
        check_int(self.window, "window", minimum=1)

    def round_size(self, drawn: int) -> int:
        return self.warmup if drawn == 0 else self.round

    def check_budget(self, budget: int) -> None:
        check_round(self.warmup, "warmup", budget)
        check_round(self.round, "round", budget)

    def confidences(self, state: State) -> list[float]:
        """Lowest group confidence of each sample (``-inf`` for an error sample)."""
        out = []
        for s in state.samples:
            if s.status != "ok":
                out.append(-math.inf)
                continue
            if s.num_tokens and not s.logprobs:
                raise BackendError(
                    f"strategy 'confidence-stop' needs per-token log-probabilities; the "
                    f"backend returned a sample of {s.num_tokens} tokens without them"
                )
            out.append(lowest_group_confidence(s.logprobs, self.window))
        return out

    def threshold(self, state: State) -> float:
        """The threshold fixed by the warm-up traces (the first ``warmup`` samples)."""
        return confidence_threshold(self.confidences(state)[: self.warmup], self.keep)

    def weights(self, state: State) -> list[float]:
        """``exp(confidence)`` for traces at or above the threshold, 0 for dropped ones."""
        thr = self.threshold(state)
        return [math.exp(c) if c >= thr and math.isfinite(c) else 0.0
                for c in self.confidences(state)]

    def rule(self, labels: Labels, last_round: int, state: State) -> dict[str, Any]:
        thr = self.threshold(state)
        weights = self.weights(state)
        _, share = consensus_share(labels, weights)
        new: tuple[Sample, ...] = state.samples[-last_round:]
        dropped = [s for s, w in zip(new, weights[-last_round:]) if w == 0.0 and s.status == "ok"]
        return {
            "stop": share >= self.consensus,
            "threshold": thr,
            "consensus_share": share,
            "dropped": len(dropped),
            "tokens_after_cut": sum(_cut_tokens(s.logprobs, self.window, thr) for s in dropped),
        }

    def finalize(self, state: State) -> Result:
        answers = self.answers(state)
        weights = self.weights(state) if state.samples else []
        voting = tuple(a if w > 0 else None for a, w in zip(answers, weights))
        v = vote(voting, weights, self.equivalent)
        total = math.fsum(weights)
        confidences = tuple(self.confidences(state))
        return self.result(
            state,
            answers,
            scores=tuple(c if math.isfinite(c) else None for c in confidences),
            score_scale="log-probability",
            weights=tuple(w / total for w in weights) if total > 0 else (),
            selected=v.winner,
            answer=v.answer,
            vote_shares=v.shares,
        )
