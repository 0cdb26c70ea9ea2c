"""phi-Decoding: foresight sampling of reasoning steps.

Xu et al. 2025, "phi-Decoding: Adaptive Foresight Sampling for Balanced Inference-Time
Exploration and Exploitation" (arXiv:2503.13288). One solution is built step by step. At
each step:

1. ``width`` candidate steps are drawn in one call.
2. **In-width pruning**: candidates whose mean token log-probability is below the
   candidates' mean minus ``prune_sigma`` standard deviations are dropped (never all).
3. **Foresight**: each kept candidate is rolled out to the end of the solution (one
   completion each); its foresight value ``F`` is the mean token log-probability of
   candidate + rollout, and its rollout's answer puts it in a cluster (the strategy's
   answer equivalence).
4. The next step is **sampled** from the joint distribution
   ``p_i = (softmax(F / tau)_i + |cluster(i)| / k) / 2`` over the ``k`` kept candidates
   (the value and the cluster distributions, equally weighted).
5. **In-depth pruning**: when the largest cluster holds at least ``depth_threshold`` of
   the rollouts, the search stops and the chosen candidate's rollout completes the
   solution.

The paper's advantage compares each foresight with the previous step's; the mean
log-probability used here is the same ordering for candidates of one step.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.aggregate import cluster
from samplescale.backends.base import Backend
from samplescale.errors import ConfigError
from samplescale.rng import derived_seed, make_rng
from samplescale.steps import trajectory_sample
from samplescale.strategies.base import check_number
from samplescale.strategies.registry import STRATEGIES
from samplescale.strategies.search_state import SearchState
from samplescale.strategies.tree import PathSearch, positive_int
from samplescale.verifiers.extract import sample_answer
from samplescale.verifiers.process_base import ProcessScorer


def _mean_logprob(lps: list[float]) -> float:
    return float(np.mean(lps)) if lps else 0.0


@STRATEGIES.register("phi-decoding")
@dataclass(frozen=True)
class PhiDecoding(PathSearch):
    """phi-Decoding (see the module docstring and the :class:`TreeSearch` options:
    delimiter, max_steps, token_budget; the process scorer is not used).

    Attributes
    ----------
    width : int or None
        Candidate steps per step (>= 1); None: ``params.n``.
    tau : float
        Temperature of the foresight-value softmax, > 0 (default 0.6; nats per token).
    prune_sigma : float
        In-width pruning below mean - ``prune_sigma`` x std of the candidates' mean
        log-probabilities, >= 0 (default 1.0).
    depth_threshold : float
        Share of rollouts in the largest answer cluster that stops the search, in (0, 1]
        (default 0.7).

    Notes
    -----
    Needs a backend with log-probabilities. Every step is a trace record
    ``{"event": "phi", "candidates", "kept", "foresight", "clusters", "probabilities",
    "chosen", "early_stop"}``; with a run seed the choice is reproducible.

    Raises
    ------
    ConfigError
        If an option is out of range.
    """

    name = "phi-decoding"
    requires = ("logprobs",)
    width: int | None = None
    tau: float = 0.6
    prune_sigma: float = 1.0
    depth_threshold: float = 0.7

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int("width", self.width)
        check_number("tau", self.tau, lambda v: 0 < v < float("inf"), "(0, inf)")
        check_number("prune_sigma", self.prune_sigma, lambda v: 0 <= v < float("inf"), "[0, inf)")
        check_number("depth_threshold", self.depth_threshold, lambda v: 0 < v <= 1, "(0, 1]")

    def resolve_scorer(self, backend: Backend) -> ProcessScorer:
        """No process scorer: foresight values come from the policy's log-probabilities."""
        return _Unused()

    def advance(
        self, rng: np.random.Generator | None, state: SearchState, backend: Backend
    ) -> SearchState:
        leaf = state.frontier[0]
        width = self.width if self.width is not None else state.params.n
        calls = state.calls
        state, cands = self.expand(rng, state, backend, leaf, width, scored=False)
        if not cands:
            return state.model_copy(update={"stop_reason": state.stop_reason or "no-progress"})
        step_lp = np.array([_mean_logprob(list(state.nodes[i].step.sample.logprobs))  # type: ignore[union-attr]
                            for i in cands])
        cut = step_lp.mean() - self.prune_sigma * step_lp.std()
        kept = [i for i, lp in zip(cands, step_lp, strict=True) if lp >= cut] or cands
        ends: list[int] = []
        for i in kept:  # foresight: each kept candidate rolled out to the end
            node = state.nodes[i]
            if node.done or state.stop_reason is not None:
                ends.append(i)
                continue
            state, roll = self.expand(rng, state, backend, i, 1, rest=True, scored=False)
            ends.append(roll[0] if roll else i)
        foresight, answers = [], []
        for end in ends:
            steps = [n.step for n in state.path(end) if n.step is not None]
            own = steps[state.nodes[leaf].depth:]  # the candidate and its rollout
            foresight.append(_mean_logprob([lp for s in own for lp in s.sample.logprobs]))
            answers.append(sample_answer(trajectory_sample(steps, complete=True), self.extract))
        labels = cluster(answers, self.equivalent)
        sizes = Counter(x for x in labels if x is not None)
        f = np.array(foresight) / self.tau
        value = np.exp(f - f.max())
        value /= value.sum()
        share = np.array([sizes[x] / len(kept) if x is not None else 0.0 for x in labels])
        p = (value + (share / share.sum() if share.sum() else value)) / 2
        seed = state.params.seed
        chooser = make_rng(rng if seed is None else derived_seed(seed, calls, 1 << 20))
        pick = int(chooser.choice(len(kept), p=p / p.sum()))
        early = bool(sizes) and max(sizes.values()) / len(kept) >= self.depth_threshold
        chosen = ends[pick] if early else kept[pick]
        record = {
            "event": "phi", "depth": state.nodes[kept[pick]].depth, "candidates": cands,
            "kept": kept, "foresight": foresight, "clusters": labels,
            "probabilities": [float(x) for x in p / p.sum()], "chosen": chosen,
            "early_stop": early,
        }
        done = early or state.nodes[chosen].done
        stop = state.stop_reason or ("done" if done else None)
        return state.model_copy(
            update={"frontier": (chosen,), "trace": state.trace + (record,), "stop_reason": stop}
        )



class _Unused(ProcessScorer):
    """The scorer slot of the search state: phi-decoding never scores a step."""

    name = "none"
    scale = "probability"

    def _evaluate(self, prompt: Any, steps: Any) -> Any:  # pragma: no cover - never called
        raise ConfigError("phi-decoding does not score steps")
