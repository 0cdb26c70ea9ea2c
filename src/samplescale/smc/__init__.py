"""Sequential Monte Carlo: resampling schemes, a generic engine, token-level SMC.

- :mod:`samplescale.smc.resampling`: multinomial, stratified, systematic and residual
  resampling, and the effective sample size.
- :mod:`samplescale.smc.engine`: weighted particles, a proposal and potentials (twists) as
  callables, ESS-triggered resampling, the log-evidence estimate, conditional SMC.
- :mod:`samplescale.smc.token`: token-level SMC on any ``LogitsModel``.
- :mod:`samplescale.smc.stepwise`: the step-level proposal on any ``Backend`` (used by the
  particle filtering and particle Gibbs strategies).
"""

from samplescale.smc.engine import Extension, ParticleSystem
from samplescale.smc.resampling import RESAMPLERS, effective_sample_size, resample
from samplescale.smc.token import TokenState, token_smc

__all__ = [
    "RESAMPLERS",
    "Extension",
    "ParticleSystem",
    "TokenState",
    "effective_sample_size",
    "resample",
    "token_smc",
]
