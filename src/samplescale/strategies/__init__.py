"""Meta-generation strategies. Each returns :class:`~samplescale.types.Result`.

Look one up by its registry name (kebab-case; snake_case accepted) with
:func:`get_strategy`, or call a convenience function::

    from samplescale.strategies import self_consistency
    result = self_consistency(backend, "What is 7 + 5?", SamplingParams(n=8, temperature=0.8))
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.strategies.ab_mcts import ABMCTS
from samplescale.strategies.adaptive import ESC, AdaptiveConsistency, SemanticEntropy
from samplescale.strategies.aggregation import Aggregate
from samplescale.strategies.base import State, Strategy
from samplescale.strategies.batch_prompting import BatchPrompting
from samplescale.strategies.beam_search import BeamSearch
from samplescale.strategies.best_first import BestFirst
from samplescale.strategies.best_of_n import BestOfN
from samplescale.strategies.code_selection import (
    BestOfNPublicTests,
    CodeSelection,
    FilterAndCluster,
    MBRExec,
)
from samplescale.strategies.confidence_stop import ConfidenceStop
from samplescale.strategies.constrained_smc import ConstrainedSMC
from samplescale.strategies.div_sampling import DivSampling
from samplescale.strategies.first_step_selection import FirstStepSelection
from samplescale.strategies.fractured import Fractured
from samplescale.strategies.greedy import Greedy
from samplescale.strategies.mcts import MCTS
from samplescale.strategies.model_switch import ModelSwitch
from samplescale.strategies.mur import MUR
from samplescale.strategies.osca import OSCA
from samplescale.strategies.particle_filtering import ParticleFiltering
from samplescale.strategies.particle_gibbs import ParticleGibbs
from samplescale.strategies.phi_decoding import PhiDecoding
from samplescale.strategies.progressive_hint import ProgressiveHint
from samplescale.strategies.refine import Refine
from samplescale.strategies.registry import STRATEGIES
from samplescale.strategies.repeated_sampling import RepeatedSampling
from samplescale.strategies.reprompting import Reprompting
from samplescale.strategies.short_m import ShortMAtK
from samplescale.strategies.thinksum import ThinkSum
from samplescale.strategies.voting import SelfConsistency, WeightedVote
from samplescale.types import Prompt, Result

__all__ = [
    "ABMCTS",
    "ESC",
    "MCTS",
    "ModelSwitch",
    "MUR",
    "OSCA",
    "STRATEGIES",
    "Aggregate",
    "BatchPrompting",
    "DivSampling",
    "Fractured",
    "ProgressiveHint",
    "AdaptiveConsistency",
    "ConfidenceStop",
    "SemanticEntropy",
    "BeamSearch",
    "BestFirst",
    "BestOfN",
    "BestOfNPublicTests",
    "CodeSelection",
    "FilterAndCluster",
    "MBRExec",
    "ConstrainedSMC",
    "FirstStepSelection",
    "Greedy",
    "ParticleFiltering",
    "ParticleGibbs",
    "PhiDecoding",
    "Refine",
    "RepeatedSampling",
    "Reprompting",
    "SelfConsistency",
    "ShortMAtK",
    "State",
    "Strategy",
    "ThinkSum",
    "WeightedVote",
    "ab_mcts",
    "adaptive_consistency",
    "aggregate",
    "confidence_stop",
    "esc",
    "model_switch",
    "phi_decoding",
    "mur",
    "osca",
    "semantic_entropy",
    "batch_prompting",
    "beam_search",
    "best_first",
    "best_of_n",
    "best_of_n_public_tests",
    "filter_and_cluster",
    "constrained_smc",
    "div_sampling",
    "fractured",
    "first_step_selection",
    "get_strategy",
    "greedy",
    "mbr_exec",
    "mcts",
    "particle_filtering",
    "particle_gibbs",
    "progressive_hint",
    "refine",
    "repeated_sampling",
    "reprompting",
    "self_consistency",
    "short_m_at_k",
    "thinksum",
    "weighted_vote",
]


def get_strategy(name: str, **options: Any) -> Strategy:
    """Build the strategy registered as ``name`` with ``options``.

    Raises
    ------
    UnknownNameError
        If ``name`` is not registered (the message lists the registered strategies).
    ConfigError
        If an option is not one of the strategy's (the message lists the valid ones), or
        a value is out of its range.
    """
    cls = STRATEGIES.get(name)
    if dataclasses.is_dataclass(cls):
        valid = sorted(f.name for f in dataclasses.fields(cls) if f.init)
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ConfigError(
                f"strategy {name!r} has no option {unknown[0]!r}; valid: {', '.join(valid)}"
            )
    return cls(**options)


def _runner(cls: type[Strategy]):
    def run(
        backend: Backend,
        prompt: Prompt | str,
        params: SamplingParams | None = None,
        rng: np.random.Generator | None = None,
        **options: Any,
    ) -> Result:
        return cls(**options).run(backend, prompt, params, rng)

    run.__name__ = cls.name.replace("-", "_")
    run.__doc__ = f"Run :class:`{cls.__name__}` (``options`` are its attributes); returns Result."
    return run


greedy = _runner(Greedy)
repeated_sampling = _runner(RepeatedSampling)
best_of_n = _runner(BestOfN)
best_of_n_public_tests = _runner(BestOfNPublicTests)
mbr_exec = _runner(MBRExec)
filter_and_cluster = _runner(FilterAndCluster)
self_consistency = _runner(SelfConsistency)
weighted_vote = _runner(WeightedVote)
beam_search = _runner(BeamSearch)
best_first = _runner(BestFirst)
first_step_selection = _runner(FirstStepSelection)
mcts = _runner(MCTS)
ab_mcts = _runner(ABMCTS)
particle_filtering = _runner(ParticleFiltering)
particle_gibbs = _runner(ParticleGibbs)
constrained_smc = _runner(ConstrainedSMC)
esc = _runner(ESC)
adaptive_consistency = _runner(AdaptiveConsistency)
semantic_entropy = _runner(SemanticEntropy)
confidence_stop = _runner(ConfidenceStop)
short_m_at_k = _runner(ShortMAtK)
refine = _runner(Refine)
aggregate = _runner(Aggregate)
div_sampling = _runner(DivSampling)
progressive_hint = _runner(ProgressiveHint)
fractured = _runner(Fractured)
batch_prompting = _runner(BatchPrompting)
osca = _runner(OSCA)
mur = _runner(MUR)
phi_decoding = _runner(PhiDecoding)
model_switch = _runner(ModelSwitch)
reprompting = _runner(Reprompting)
thinksum = _runner(ThinkSum)
