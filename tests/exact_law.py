"""Goodness of fit of sampled token sequences against an exactly enumerated law."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import stats


def chisquare_pvalue(
    sequences: Iterable[tuple[int, ...]], exact: dict[tuple[int, ...], float]
) -> float:
    """Pearson chi-square p-value of ``sequences`` against ``exact`` probabilities.

    Cells whose expected count is below 5 are pooled into one cell. A sequence outside
    ``exact`` (probability 0) raises ``KeyError``.
    """
    keys = list(exact)
    index = {k: i for i, k in enumerate(keys)}
    counts = np.zeros(len(keys))
    for s in sequences:
        counts[index[tuple(s)]] += 1
    probs = np.array([exact[k] for k in keys])
    expected = probs / probs.sum() * counts.sum()
    small = expected < 5
    if small.any():
        counts = np.append(counts[~small], counts[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    return float(stats.chisquare(counts, expected).pvalue)
