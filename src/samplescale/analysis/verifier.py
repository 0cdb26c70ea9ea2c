"""Where an imperfect verifier caps best-of-N, and which N pays once mistakes cost.

Stroebl, Kapoor & Narayanan (2024), "Inference Scaling fLaws: The Limits of LLM
Resampling with Imperfect Verifiers" (arXiv:2411.17501): resampling until a verifier
accepts cannot beat the verifier. With a problem whose samples are correct with
probability ``p``, a verifier that accepts a correct sample with probability ``TPR`` and
a wrong one with ``FPR``, a sample is accepted with ``q = p TPR + (1 - p) FPR``; drawing
``N`` samples and returning an accepted one (none accepted: no answer, counted wrong)::

    accuracy(N) = (1 - (1 - q)**N) * p TPR / q   ->   p TPR / q   as N -> infinity

so for ``FPR > 0`` the limit is below 1, and on hard problems (small ``p``) it is small.
With a reward of 1 for a correct answer, ``-cost`` for a wrong answer returned (a false
positive reaches the user) and 0 for no answer, the expected utility is::

    utility(N) = (1 - (1 - q)**N) / q * (p TPR - cost (1 - p) FPR)

Summed over problems of different ``p`` it rises while easy problems gain and falls once
hard problems' false positives dominate: the utility-optimal N is finite.

:func:`verifier_rates` estimates TPR and FPR from a pool with gold labels and verdicts,
:func:`best_of_n_pool` the exact best-of-N accuracy for ``N`` up to the pool size, and
:func:`best_of_n_model` / :func:`optimal_n` the curve, its limit and the optimal N under
the model above. No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from samplescale.analysis.small_sample import jeffreys_interval
from samplescale.errors import ConfigError, check_int

__all__ = [
    "VerifierRates",
    "best_of_n_model",
    "best_of_n_pool",
    "optimal_n",
    "verifier_rates",
]


@dataclass(frozen=True)
class VerifierRates:
    """True / false positive rates of a verifier with 95% Jeffreys intervals, and the
    counts they come from (samples pooled over problems)."""

    tpr: float
    tpr_interval: tuple[float, float]
    fpr: float
    fpr_interval: tuple[float, float]
    correct: int
    wrong: int


def _bools(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1 or not np.all((arr == 0) | (arr == 1)):
        raise ConfigError(f"{name} must be a 1-D array of 0/1 (or bool) values")
    return arr.astype(bool)


def verifier_rates(correct: ArrayLike, accepted: ArrayLike) -> VerifierRates:
    """TPR = P(accepted | correct), FPR = P(accepted | wrong), over pooled samples.

    Parameters
    ----------
    correct : array_like of bool, shape (S,)
        Whether each sample's answer matches the gold answer.
    accepted : array_like of bool, shape (S,)
        The verifier's verdict on each sample (a score above a threshold).

    Returns
    -------
    VerifierRates
        A rate with no samples to estimate it from is nan, its interval (0, 1).

    Raises
    ------
    ConfigError
        If the arrays are not 1-D 0/1 arrays of one length.
    """
    c = _bools(correct, "correct")
    a = _bools(accepted, "accepted")
    if c.shape != a.shape:
        raise ConfigError(f"correct and accepted must have one length, got {c.size} and {a.size}")
    n_c, n_w = int(c.sum()), int((~c).sum())
    tp, fp = int((c & a).sum()), int((~c & a).sum())
    tpr = tp / n_c if n_c else math.nan
    fpr = fp / n_w if n_w else math.nan
    return VerifierRates(
        tpr, jeffreys_interval(tp, n_c) if n_c else (0.0, 1.0),
        fpr, jeffreys_interval(fp, n_w) if n_w else (0.0, 1.0), n_c, n_w,
    )


def best_of_n_pool(
    n: Sequence[int], accepted_correct: Sequence[int], accepted_wrong: Sequence[int],
    ns: Sequence[int],
) -> np.ndarray:
    """Exact best-of-N accuracy from pools with verdicts, for each N.

    For one problem with ``n`` samples of which ``A_c`` correct and ``A_w`` wrong ones
    are accepted (``A = A_c + A_w``), the expectation over uniformly random N-subsets of
    the pool of "an accepted sample is returned (uniformly among the accepted ones in
    the subset) and it is correct" is ``A_c / A * (1 - C(n - A, N) / C(n, N))``: by
    symmetry the returned sample is uniform over the pool's accepted ones, given that
    the subset holds one. A subset with none accepted returns no answer (wrong).

    Parameters
    ----------
    n, accepted_correct, accepted_wrong : sequence of int, length P
        Per problem: pool size, accepted correct and accepted wrong samples.
    ns : sequence of int
        Values of N, each in ``[1, min(n)]``.

    Returns
    -------
    numpy.ndarray, shape (len(ns),), float64
        Mean accuracy over the P problems at each N.

    Raises
    ------
    ConfigError
        If the lengths differ, counts are inconsistent or an N is out of range.
    """
    if not (len(n) == len(accepted_correct) == len(accepted_wrong) >= 1):
        raise ConfigError("n, accepted_correct and accepted_wrong must have one length >= 1")
    rows = []
    for i, (m, ac, aw) in enumerate(zip(n, accepted_correct, accepted_wrong)):
        m, ac, aw = check_int(m, "n"), check_int(ac, "accepted_correct"), check_int(
            aw, "accepted_wrong")
        if m < 1 or ac < 0 or aw < 0 or ac + aw > m:
            raise ConfigError(f"problem {i}: need 0 <= accepted_correct + accepted_wrong <= n, "
                              f"got {ac} + {aw} > {m}")
        rows.append((m, ac, aw))
    top = min(r[0] for r in rows)
    out = []
    for big_n in ns:
        k = check_int(big_n, "N")
        if not 1 <= k <= top:
            raise ConfigError(f"N must be in [1, {top}] (the smallest pool), got {k}")
        acc = [
            0.0 if ac == 0 else ac / (ac + aw) * (1 - math.comb(m - ac - aw, k) / math.comb(m, k))
            for m, ac, aw in rows
        ]
        out.append(float(np.mean(acc)))
    return np.asarray(out)


def _model_parts(p: ArrayLike, tpr: float, fpr: float) -> tuple[np.ndarray, np.ndarray]:
    rates = np.asarray(p, dtype=np.float64)
    if rates.ndim != 1 or rates.size < 1 or np.any((rates < 0) | (rates > 1)):
        raise ConfigError("p must be a 1-D array of per-problem sample accuracies in [0, 1]")
    for name, v in (("tpr", tpr), ("fpr", fpr)):
        if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
            raise ConfigError(f"{name} must be in [0, 1], got {v!r}")
    q = rates * tpr + (1 - rates) * fpr
    return rates, q


def best_of_n_model(
    p: ArrayLike, tpr: float, fpr: float, ns: Sequence[int]
) -> tuple[np.ndarray, float]:
    """Best-of-N accuracy under the model of Stroebl et al. (2024), and its limit.

    Parameters
    ----------
    p : array_like, shape (P,)
        Per-problem probability that a sample is correct (e.g. ``c / n`` of a pool).
    tpr, fpr : float
        The verifier's true and false positive rates, in ``[0, 1]``.
    ns : sequence of int
        Values of N, ``>= 1``.

    Returns
    -------
    tuple
        ``(accuracy, limit)``: accuracy of shape ``(len(ns),)`` (mean over problems of
        ``(1 - (1 - q)**N) p TPR / q``), and the ``N -> infinity`` limit, mean of
        ``p TPR / q`` (0 for a problem with ``q = 0``).

    Raises
    ------
    ConfigError
        If ``p`` is not 1-D in ``[0, 1]``, a rate is outside ``[0, 1]`` or an N < 1.
    """
    rates, q = _model_parts(p, tpr, fpr)
    share = np.divide(rates * tpr, q, out=np.zeros_like(q), where=q > 0)
    acc = []
    for big_n in ns:
        k = check_int(big_n, "N")
        if k < 1:
            raise ConfigError(f"N must be >= 1, got {k}")
        acc.append(float(np.mean((1 - (1 - q) ** k) * share)))
    return np.asarray(acc), float(np.mean(share))


def optimal_n(
    p: ArrayLike, tpr: float, fpr: float, cost: float, n_max: int = 1024
) -> tuple[int, np.ndarray]:
    """The N in ``[1, n_max]`` that maximises expected utility (Stroebl et al. 2024).

    Utility per problem: +1 for a correct answer returned, ``-cost`` for a wrong one
    returned (a false positive), 0 for no answer; with ``N`` samples its expectation is
    ``(1 - (1 - q)**N) / q * (p TPR - cost (1 - p) FPR)`` (and ``N (p TPR - ...)`` as
    ``q -> 0``), averaged over problems.

    Parameters
    ----------
    p : array_like, shape (P,)
        Per-problem sample accuracies in ``[0, 1]``.
    tpr, fpr : float
        Verifier rates in ``[0, 1]``.
    cost : float
        Cost of a false positive in units of the reward of a correct answer, ``>= 0``.
    n_max : int, default 1024
        Largest N considered, ``>= 1``.

    Returns
    -------
    tuple
        ``(n_star, utility)``: the smallest maximiser and the utility curve, shape
        ``(n_max,)``, at N = 1, ..., n_max.

    Raises
    ------
    ConfigError
        If an argument is out of range.
    """
    rates, q = _model_parts(p, tpr, fpr)
    if not (isinstance(cost, (int, float)) and math.isfinite(cost) and cost >= 0):
        raise ConfigError(f"cost must be a finite number >= 0, got {cost!r}")
    top = check_int(n_max, "n_max")
    if top < 1:
        raise ConfigError(f"n_max must be >= 1, got {top}")
    gain = rates * tpr - cost * (1 - rates) * fpr
    ns = np.arange(1, top + 1, dtype=np.float64)[:, None]
    safe_q = np.where(q > 0, q, 1.0)
    accepted = np.where(q > 0, (1 - (1 - safe_q) ** ns) / safe_q, ns)
    utility = np.mean(accepted * gain, axis=1)
    return int(np.argmax(utility)) + 1, utility
