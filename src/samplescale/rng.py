"""The only place that creates random number generators.

Randomness is an argument everywhere else: functions take a ``numpy.random.Generator``.
Seeds are expanded with :class:`numpy.random.SeedSequence` so that ``n`` samples drawn
under one seed are independent of each other (never ``n`` copies of one stream) and the
same seed gives the same ``n``-tuple on every run.
"""

from __future__ import annotations

import numpy as np

SeedLike = int | np.random.Generator | None


def make_rng(seed: SeedLike = None) -> np.random.Generator:
    """Return a generator for ``seed``.

    Parameters
    ----------
    seed : int, numpy.random.Generator or None
        An integer seed (>= 0), an existing generator (returned unchanged), or None for
        fresh operating-system entropy.

    Raises
    ------
    ConfigError
        If ``seed`` is a negative integer.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and seed < 0:
        from samplescale.errors import ConfigError

        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    return np.random.default_rng(seed)


def spawn(seed: SeedLike, n: int) -> list[np.random.Generator]:
    """Return ``n`` statistically independent child generators.

    Parameters
    ----------
    seed : int, numpy.random.Generator or None
        With an integer, the children depend only on ``(seed, n)``, so reruns reproduce the
        same ``n`` streams. With a generator, the children are spawned from it (advancing it).
    n : int
        Number of children (>= 0).
    """
    if isinstance(seed, np.random.Generator):
        return list(seed.spawn(n))
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def child_seed(rng: np.random.Generator) -> int:
    """Draw a fresh 63-bit integer seed from ``rng`` (for a component that takes a seed)."""
    return int(rng.integers(0, 2**63 - 1))


def sample_generators(
    seed: int | None, rng: np.random.Generator | None, n: int
) -> list[np.random.Generator]:
    """One independent generator per sample of a request.

    A request seed wins (the ``n`` streams then depend only on ``(seed, n)``); otherwise
    children are spawned from ``rng``; with neither, from fresh entropy. Sample ``i`` always
    uses stream ``i``, however a backend splits the ``n`` samples into batches.
    """
    if seed is not None:
        return spawn(seed, n)
    return spawn(rng, n)


def derived_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for the sub-stream ``keys`` of a run seed.

    Distinct ``keys`` give independent streams (SeedSequence entropy mixing); the same
    ``(seed, keys)`` always gives the same seed. Used for per-problem seeds in evaluation and
    per-expansion seeds in search.
    """
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1, np.uint64)[0] >> 1)
