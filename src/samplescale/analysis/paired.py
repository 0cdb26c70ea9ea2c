"""Paired comparison of two runs on the same problems.

Two methods run on one benchmark share its problems, so the difference of their rates is
measured problem by problem: the problems' difficulty cancels, and only the problems
where they disagree carry information. For 0/1 outcomes this module gives the exact
McNemar test (McNemar 1947, "Note on the sampling error of the difference between
correlated proportions or percentages", Psychometrika 12(2)) and a Bayesian paired model
(a Dirichlet posterior over the four cells of the 2x2 table, giving the posterior of the
accuracy difference and the probability that B is better); for per-problem rates in
``[0, 1]`` (pass@k, maj@k) a paired permutation test with a bootstrap interval. No I/O.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from samplescale.analysis.intervals import bootstrap_interval
from samplescale.errors import ConfigError, check_confidence, check_rng

__all__ = ["PairedResult", "compare_paired", "mcnemar_exact"]

# scipy >= 1.15 spells the generator argument ``rng``; older versions ``random_state``.
_PERMUTATION_RNG_KW = (
    "rng" if "rng" in inspect.signature(stats.permutation_test).parameters else "random_state"
)


def _mean_difference(u: np.ndarray, v: np.ndarray, axis: int) -> np.ndarray:
    return np.mean(v - u, axis=axis)


@dataclass(frozen=True)
class PairedResult:
    """The paired comparison of run B against run A on ``problems`` shared problems.

    ``difference`` is mean(B) - mean(A) (rate units), ``interval`` its interval at
    ``confidence`` (Bayesian credible interval for 0/1 outcomes, percentile bootstrap over
    problems otherwise); ``p_value`` is two-sided (exact McNemar, or the paired
    permutation test); ``prob_b_better`` is the posterior probability that B's accuracy is
    higher (0/1 outcomes only, else None); ``only_a`` and ``only_b`` count the problems
    solved by one run only (0/1 outcomes; for rates, the problems where A's, resp. B's,
    value is higher); ``test`` names the test.
    """

    problems: int
    mean_a: float
    mean_b: float
    difference: float
    interval: tuple[float, float]
    p_value: float
    prob_b_better: float | None
    only_a: int
    only_b: int
    test: str


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size < 1:
        raise ConfigError(f"a and b must be 1-D of one length >= 1 (one value per shared "
                          f"problem), got shapes {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ConfigError("a and b must be finite")
    if np.any((x < 0) | (x > 1) | (y < 0) | (y > 1)):
        raise ConfigError("a and b must be per-problem rates in [0, 1]")
    return x, y


def mcnemar_exact(a: ArrayLike, b: ArrayLike) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes.

    Under the null hypothesis that A and B are equally accurate, each of the ``d``
    discordant problems is won by B with probability 1/2, so the number ``only_b`` is
    Binomial(d, 1/2); the p-value is ``scipy.stats.binomtest(only_b, d, 0.5)``'s
    two-sided one (1.0 when ``d = 0``).

    Parameters
    ----------
    a, b : array_like, shape (P,)
        Outcomes of runs A and B on the same problems, each 0 or 1.

    Returns
    -------
    float
        p-value in ``[0, 1]``.

    Raises
    ------
    ConfigError
        If the shapes differ or a value is not 0 or 1.
    """
    x, y = _pair(a, b)
    if not (np.all((x == 0) | (x == 1)) and np.all((y == 0) | (y == 1))):
        raise ConfigError("mcnemar_exact needs 0/1 outcomes")
    only_a = int(np.sum((x == 1) & (y == 0)))
    only_b = int(np.sum((x == 0) & (y == 1)))
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_b, only_a + only_b, 0.5).pvalue)


def compare_paired(
    a: ArrayLike,
    b: ArrayLike,
    *,
    rng: np.random.Generator,
    confidence: float = 0.95,
    draws: int = 20000,
) -> PairedResult:
    """Compare run B with run A on the same problems.

    0/1 outcomes (both runs): exact McNemar p-value; the Bayesian paired model puts a
    Dirichlet(1, 1, 1, 1) prior on the probabilities of the four cells (both right, only
    A, only B, both wrong), so the posterior is Dirichlet(1 + counts); ``draws`` posterior
    samples of ``p_only_b - p_only_a`` (the accuracy difference) give the equal-tailed
    credible interval and ``prob_b_better = P(difference > 0)``.

    Rates in ``[0, 1]`` (pass@k, maj@k, or one run 0/1 and the other not): the paired
    permutation test (``scipy.stats.permutation_test`` with ``permutation_type="samples"``,
    exact when ``2**P`` is at most ``draws``, else ``draws`` random sign flips) on the
    mean difference, and the percentile bootstrap interval over problems of that mean.

    Parameters
    ----------
    a, b : array_like, shape (P,)
        Per-problem values of runs A and B, in the same problem order, in ``[0, 1]``.
    rng : numpy.random.Generator
        Source of the posterior draws, permutations and bootstrap (keyword-only).
    confidence : float, default 0.95
        Interval level, in ``(0, 1)``.
    draws : int, default 20000
        Posterior draws or permutations, ``>= 100``.

    Returns
    -------
    PairedResult

    Raises
    ------
    ConfigError
        If the shapes differ, values are outside ``[0, 1]``, or an argument is out of
        range.
    """
    x, y = _pair(a, b)
    conf = check_confidence(confidence)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 100:
        raise ConfigError(f"draws must be an integer >= 100, got {draws!r}")
    check_rng(rng)
    tail = (1.0 - conf) / 2.0
    diff = float(y.mean() - x.mean())
    binary = bool(np.all((x == 0) | (x == 1)) and np.all((y == 0) | (y == 1)))
    if binary:
        both = int(np.sum((x == 1) & (y == 1)))
        only_a = int(np.sum((x == 1) & (y == 0)))
        only_b = int(np.sum((x == 0) & (y == 1)))
        neither = x.size - both - only_a - only_b
        post = rng.dirichlet(np.array([both, only_a, only_b, neither], dtype=float) + 1.0,
                             size=draws)
        delta = post[:, 2] - post[:, 1]
        lo, hi = np.quantile(delta, [tail, 1.0 - tail])
        return PairedResult(
            int(x.size), float(x.mean()), float(y.mean()), diff, (float(lo), float(hi)),
            mcnemar_exact(x, y), float(np.mean(delta > 0)), only_a, only_b, "exact McNemar",
        )
    d = y - x
    if np.all(d == 0):
        p_value = 1.0
    else:
        res = stats.permutation_test(
            (x, y), _mean_difference, permutation_type="samples", vectorized=True,
            n_resamples=draws, **{_PERMUTATION_RNG_KW: rng},
        )
        p_value = float(min(1.0, res.pvalue))
    lo, hi = bootstrap_interval(d, conf, rng=rng)
    return PairedResult(
        int(x.size), float(x.mean()), float(y.mean()), diff, (lo, hi), p_value, None,
        int(np.sum(d < 0)), int(np.sum(d > 0)), "paired permutation",
    )
