"""Particle Gibbs: repeated conditional SMC sweeps around a reference particle.

Andrieu, Doucet & Holenstein (2010), "Particle Markov chain Monte Carlo methods"; applied to
inference-time scaling with a process reward model by Puri et al. (2025). The first sweep is
particle filtering (:class:`~samplescale.strategies.particle_filtering.ParticleFiltering`).
Each later sweep is conditional SMC: particle 0 retraces the reference path (the particle
drawn by weight at the end of the previous sweep, its steps and scores reused, so it costs
no tokens and no scorer calls), keeps itself as ancestor at every resampling, and the other
``N - 1`` particles are resampled from all ``N`` weights by conditional multinomial
resampling. The references form a Markov chain that leaves the target invariant.
"""

from __future__ import annotations

from dataclasses import dataclass

from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.strategies.particle_filtering import ParticleFiltering, SMCState
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Prompt


@STRATEGIES.register("particle-gibbs")
@dataclass(frozen=True)
class ParticleGibbs(ParticleFiltering):
    """Particle Gibbs with ``N = params.n >= 2`` particles per sweep.

    Attributes
    ----------
    iterations : int >= 1
        Number of sweeps (1 is particle filtering).
    (others)
        As :class:`~samplescale.strategies.particle_filtering.ParticleFiltering`; the
        first sweep resamples with ``resampling``, conditional sweeps with conditional
        multinomial resampling. Budgets cover all sweeps.

    Notes
    -----
    The Result holds the particles of every completed sweep, each sweep's normalised
    weights divided by the number of sweeps (the Rao-Blackwellised particle Gibbs estimate
    of the target), so ``select="vote"`` is a weighted vote over all sweeps. When a budget
    stops a conditional sweep, that unfinished sweep is left out. ``log_evidence`` is the
    first sweep's estimate (unconditional SMC, unbiased for ``Z``); conditional sweeps give
    no unbiased estimate.
    """

    name = "particle-gibbs"
    iterations: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        it = self.iterations
        if isinstance(it, bool) or not isinstance(it, int) or it < 1:
            raise ConfigError(f"iterations must be an integer >= 1, got {it!r}")

    def sweeps_wanted(self) -> int:
        """``iterations``."""
        return self.iterations

    def init(self, prompt: Prompt, params: SamplingParams) -> SMCState:  # type: ignore[override]
        if params.n < 2:
            raise ConfigError(
                f"particle Gibbs needs params.n >= 2 particles (one is the reference), got {params.n}"
            )
        return super().init(prompt, params)
