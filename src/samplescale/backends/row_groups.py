"""Groups of samples with their own parameters in one call (per-row parameters).

:meth:`~samplescale.backends.base.GroupGenerating.generate_groups` decodes several groups of
samples of one prompt together: rows ``0 .. n_1 - 1`` are the first group's samples, the
next ``n_2`` the second's, and so on; each row is drawn with its group's
``SamplingParams`` and seeded stream (:func:`samplescale.backends.decoding.decode_rows`'s
``row_params``). These helpers check the groups and split the call's samples back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.rng import sample_generators
from samplescale.types import Generation


def check_groups(
    groups: Sequence[SamplingParams], what: str = "generate_groups", field: str = "groups"
) -> None:
    """Raise unless ``groups`` can be decoded in one call (of the method named ``what``,
    whose argument is named ``field`` in messages).

    Raises
    ------
    ConfigError
        If there is no group, a group is not a SamplingParams, or one uses what the shared
        decode loop cannot give per row: ``decoding`` other than ``independent``,
        ``kl_sigma``, or a ``constraint``.
    """
    if not groups:
        raise ConfigError(f"{what} needs at least one group of SamplingParams")
    for i, g in enumerate(groups):
        if not isinstance(g, SamplingParams):
            raise ConfigError(f"{field}[{i}] must be a SamplingParams, got {type(g).__name__}")
        if g.decoding != "independent" or g.kl_sigma is not None or g.constraint is not None:
            raise ConfigError(
                f"{field}[{i}]: {what} decodes independent samples only (no "
                "decoding='arithmetic'/'priority', kl_sigma or constraint); call generate"
            )


def group_rows(
    groups: Sequence[SamplingParams], rng: np.random.Generator | None
) -> tuple[list[SamplingParams], list[np.random.Generator]]:
    """The parameters and the random stream of every row, groups one after the other
    (each group's streams are the ones ``generate`` would give it alone)."""
    params = [g for g in groups for _ in range(g.n)]
    gens = [x for g in groups for x in sample_generators(g.seed, rng, g.n)]
    return params, gens


def split(gen: Generation, groups: Sequence[SamplingParams]) -> list[Generation]:
    """The call's Generation cut into one per group; usage as documented in
    :meth:`~samplescale.backends.base.GroupGenerating.generate_groups`."""
    out, lo = [], 0
    for i, g in enumerate(groups):
        samples = gen.samples[lo : lo + g.n]
        lo += g.n
        u = gen.usage
        cached = u.cached_prompt_tokens if i == 0 else u.prompt_tokens
        usage = u.model_copy(update={
            "cached_prompt_tokens": cached,
            "completion_tokens": sum(s.num_tokens for s in samples),
        })
        out.append(Generation(samples=samples, usage=usage))
    return out
