"""Stopping rules for adaptive sampling: pure functions of the answers seen so far.

Each rule looks at the answer classes (and, for DeepConf, the token log-probabilities) of
the samples drawn so far and says whether to stop. The adaptive strategies
(:mod:`samplescale.strategies.adaptive`, :mod:`samplescale.strategies.confidence_stop`)
call them after every round, and :mod:`samplescale.analysis.stopping_price` prices them on
a fixed pool of samples with the same functions. No I/O, no randomness.

Conventions: ``counts`` are the vote counts of the answer classes seen so far (any order,
zeros allowed); samples without an answer (no extracted answer, or an error sample) cast
no vote and are counted apart as ``unanswered``.

* ESC (Li et al. 2024, "Escape Sky-high Cost: Early-stopping Self-Consistency for Multi-step
  Reasoning"): stop when the last window of ``w`` samples is unanimous
  (:func:`window_unanimous`).
* Adaptive-Consistency (Aggarwal et al. 2023, "Let's Sample Step by Step:
  Adaptive-Consistency for Efficient Reasoning and Coding with LLMs"): stop when the
  posterior probability that the current leader is the true majority exceeds a threshold
  (:func:`leader_probability`).
* Semantic-entropy guided termination (Xu et al. 2025; entropy of the answer classes, as in
  Kuhn et al. 2023's semantic entropy): stop when the entropy falls below a threshold
  (:func:`answer_entropy`).
* DeepConf (Fu et al. 2025, "Deep Think with Confidence"): the lowest group confidence of a
  trace (:func:`lowest_group_confidence`) and a threshold calibrated on warm-up traces
  (:func:`confidence_threshold`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import integrate, special

from samplescale.errors import ConfigError, check_int

__all__ = [
    "GROUP_WINDOW",
    "add_vote",
    "answer_entropy",
    "check_fraction",
    "check_positive",
    "check_round",
    "confidence_threshold",
    "consensus_share",
    "leader_probability",
    "leading_share",
    "lowest_group_confidence",
    "vote_counts",
    "window_unanimous",
]

#: Default DeepConf group size in tokens (``confidence-stop``'s ``window``; evaluation pool
#: records store each sample's lowest group confidence at this window).
GROUP_WINDOW = 16


def _as_float(value: Any) -> float:
    """``float(value)``, with an integer too large for a float as +-inf (out of every range)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def check_fraction(value: object, name: str, *, closed_high: bool = False) -> float:
    """``value`` as a float in ``(0, 1)`` (``(0, 1]`` with ``closed_high``), else
    :class:`ConfigError` naming ``name`` and the range (NaN, bools and huge ints refused)."""
    rng = "(0, 1]" if closed_high else "(0, 1)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number in {rng}, got {value!r}")
    x = _as_float(value)
    if not (0.0 < x < 1.0 or (closed_high and x == 1.0)):
        raise ConfigError(f"{name} must be in {rng}, got {value!r}")
    return x


def check_positive(value: object, name: str, *, zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``zero``), else :class:`ConfigError`."""
    rng = "[0, inf)" if zero else "(0, inf)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a finite number in {rng}, got {value!r}")
    x = _as_float(value)
    if not math.isfinite(x) or x < 0 or (x == 0 and not zero):
        raise ConfigError(f"{name} must be a finite number in {rng}, got {value!r}")
    return x


def check_round(value: object, name: str, budget: int, minimum: int = 1) -> int:
    """A round (window) size as an int in ``[minimum, budget]``, else :class:`ConfigError`
    naming ``name``, the budget ``N`` and the valid range."""
    size = check_int(value, name)
    if budget < minimum:  # no size fits: the budget is what to change
        raise ConfigError(
            f"{name} must be in [{minimum}, N], so N (the maximum number of samples) must "
            f"be at least {minimum}, got N = {budget}"
        )
    if not minimum <= size <= budget:
        raise ConfigError(
            f"{name} must be in [{minimum}, N] = [{minimum}, {budget}] (N is the maximum "
            f"number of samples), got {size}"
        )
    return size


def vote_counts(labels: Sequence[Hashable | None]) -> tuple[list[int], int]:
    """Vote counts of the classes in first-seen order, and the number of ``None`` labels."""
    counts: dict[Hashable, int] = {}
    unanswered = 0
    for label in labels:
        if label is None:
            unanswered += 1
        else:
            counts[label] = counts.get(label, 0) + 1
    return list(counts.values()), unanswered


def window_unanimous(labels: Sequence[Hashable | None]) -> bool:
    """ESC's test: True when the window is non-empty and all its samples have the same
    answer class. A sample without an answer (``None``) is never unanimous with anything.

    Li et al. 2024 stop when the entropy of the window's answers is 0, i.e. all agree.
    """
    return bool(labels) and labels[0] is not None and all(x == labels[0] for x in labels)


def answer_entropy(counts: Sequence[int], unanswered: int = 0) -> float:
    """Entropy, in nats, of the empirical distribution of answer classes.

    Every sample without an answer is a class of its own (a non-answer agrees with
    nothing), so ``unanswered`` raises the entropy. ``H = -sum_c (n_c / n) log(n_c / n)``
    over the ``n = sum(counts) + unanswered`` samples; 0 when all agree (or none were
    drawn). Scale ``[0, log n]``.
    """
    parts = [int(c) for c in counts if c > 0] + [1] * int(unanswered)
    total = sum(parts)
    if total == 0:
        return 0.0
    return float(-math.fsum(c / total * math.log(c / total) for c in parts))


@lru_cache(maxsize=65536)
def _leader_probability(alphas: tuple[float, ...]) -> float:
    lead, rest = alphas[0], np.asarray(alphas[1:])
    if rest.size == 1:  # Beta(lead, other): P(p_lead > 1/2) = I_{1/2}(other, lead), closed form
        return float(special.betainc(rest[0], lead, 0.5))
    # Gamma representation p_i = G_i / sum G: P(G_lead > max_j G_j)
    # = int_0^1 prod_j F_j(Q_lead(u)) du (u = F_lead(x)), a smooth integrand on [0, 1];
    # the regularized incomplete gamma functions directly (scipy.stats' gamma.ppf / cdf
    # compute the same, 10-50 times slower, which made pricing many-class pools crawl).
    def integrand(u: float) -> float:
        x = special.gammaincinv(lead, u)
        return float(np.prod(special.gammainc(rest, x)))

    value, _ = integrate.quad(integrand, 0.0, 1.0, epsabs=1e-10, epsrel=1e-8, limit=200)
    return float(min(max(value, 0.0), 1.0))


def leader_probability(counts: Sequence[int], prior: float = 1.0) -> float:
    """Posterior probability that the current leader is the true majority answer.

    Adaptive-Consistency (Aggarwal et al. 2023): the answer distribution ``p`` over the
    ``K`` classes seen has a symmetric ``Dirichlet(prior)`` prior; after the vote counts
    ``v`` its posterior is ``Dirichlet(v + prior)``, and the rule stops when
    ``P(p_leader > max_{j != leader} p_j | v)`` exceeds a threshold. Fewer than two classes
    seen: zero-count classes are added up to ``K = 2`` (an unseen rival), so one
    unanimous class of ``v`` votes gives the Beta value ``1 - 2^-(v+1)`` (prior 1).

    Computation (deterministic, no Monte Carlo): for ``K = 2`` the exact Beta tail
    ``P(Beta(v_1 + a, v_2 + a) > 1/2)``; for ``K > 2`` the Gamma representation
    ``p_i = G_i / sum_j G_j`` with independent ``G_i ~ Gamma(v_i + a)`` turns it into
    the one-dimensional integral ``int f_lead(x) prod_{j != lead} F_j(x) dx``, evaluated
    by adaptive quadrature (``scipy.integrate.quad``, absolute error below ``1e-9``).

    Parameters
    ----------
    counts : sequence of int
        Vote counts of the classes seen (zeros allowed); the leader is the class with the
        most votes (any one of tied leaders: the value is the same).
    prior : float, default 1.0
        Concentration ``a > 0`` of the symmetric Dirichlet prior (1: uniform).

    Returns
    -------
    float
        Probability in ``[0, 1]``.

    Raises
    ------
    ConfigError
        If a count is negative or not an integer, or ``prior`` is not a finite number > 0.
    """
    a = check_positive(prior, "prior")
    votes = sorted((check_int(c, "counts", minimum=0) for c in counts), reverse=True)
    votes += [0] * (2 - len(votes))
    return _leader_probability(tuple(float(v) + a for v in votes))


def lowest_group_confidence(logprobs: Sequence[float], window: int) -> float:
    """DeepConf's lowest group confidence of one trace, from its token log-probabilities.

    Definition used here (Fu et al. 2025, "Deep Think with Confidence", section 3, with
    the chosen token's log-probability as the token confidence): the group confidence of
    a window of ``w`` consecutive tokens is the mean log-probability of its tokens, and the
    lowest group confidence is the minimum over all ``L - w + 1`` sliding windows (stride
    1); a trace shorter than ``w`` is one group (the mean over its tokens). DeepConf's
    token confidence is the negative mean log-probability of the top-k candidates; backends
    report only the chosen token's log-probability (``Sample.logprobs``), so this variant
    measures how improbable the trace's weakest stretch is.

    Parameters
    ----------
    logprobs : sequence of float, length L
        Natural-log probabilities of the generated tokens (``<= 0``).
    window : int
        Group size ``w >= 1`` in tokens.

    Returns
    -------
    float
        A mean log-probability in ``(-inf, 0]`` (higher: more confident); ``-inf`` for an
        empty trace.

    Raises
    ------
    ConfigError
        If ``window`` is not an integer >= 1.
    """
    w = check_int(window, "window", minimum=1)
    x = np.asarray(logprobs, dtype=np.float64)
    if x.size == 0:
        return -math.inf
    if x.size <= w:
        return float(x.mean())
    sums = np.convolve(x, np.ones(w), mode="valid")
    return float(sums.min() / w)


def confidence_threshold(confidences: Sequence[float], keep: float) -> float:
    """DeepConf's stopping threshold from the warm-up traces' confidences.

    The threshold is the ``(1 - keep)`` quantile of the warm-up confidences (numpy's
    ``"lower"`` method, so at least a ``keep`` fraction of the warm-up traces are at or
    above it): DeepConf-low keeps the top 10 % (``keep=0.1``), DeepConf-high the top 90 %
    (``keep=0.9``). Traces whose confidence is below the threshold are dropped.

    Raises
    ------
    ConfigError
        If ``confidences`` is empty or ``keep`` is not in ``(0, 1]``.
    """
    k = check_fraction(keep, "keep", closed_high=True)
    values = np.asarray(list(confidences), dtype=np.float64)
    if values.size == 0:
        raise ConfigError("confidences must hold at least one warm-up trace's confidence")
    return float(np.quantile(values, 1.0 - k, method="lower"))


def consensus_share(
    labels: Sequence[Hashable | None], weights: Sequence[float]
) -> tuple[Hashable | None, float]:
    """The weighted vote's leader and its share of the vote (DeepConf's consensus).

    ``labels[i]`` is the answer class of trace ``i`` (None: no answer, no vote) and
    ``weights[i] >= 0`` its weight (0: dropped). Ties go to the class seen first.

    Returns
    -------
    (hashable or None, float)
        The leading class and its share in ``[0, 1]``; ``(None, 0.0)`` when no trace with
        an answer has positive weight.
    """
    totals: dict[Hashable, float] = {}
    for label, w in zip(labels, weights):
        add_vote(totals, label, w)
    return leading_share(totals)


def add_vote(totals: dict[Hashable, float], label: Hashable | None, weight: float) -> None:
    """Add one trace's vote to the running ``totals`` of :func:`consensus_share` (a trace
    without an answer or with weight 0 casts none)."""
    if label is not None and weight > 0:
        totals[label] = totals.get(label, 0.0) + float(weight)


def leading_share(totals: dict[Hashable, float]) -> tuple[Hashable | None, float]:
    """:func:`consensus_share` of the vote ``totals`` (classes in first-vote order)."""
    if not totals:
        return None, 0.0
    leader = max(totals, key=totals.__getitem__)  # first seen among ties (dict order)
    return leader, totals[leader] / math.fsum(totals.values())
