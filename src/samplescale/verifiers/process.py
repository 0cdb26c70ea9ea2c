"""Process scorers: one score for a partial solution (a problem and the steps so far).

One interface (:class:`ProcessScorer`): ``name``, ``scale`` (``"probability"`` in [0, 1],
``"log-probability"`` natural log <= 0, or ``"reward"``: real, higher is better, within
``bounds`` when the scorer knows them), ``score(prompt, steps) -> float``, and usage
counting (``usage``: scorer calls plus the model tokens and calls they spent). The scale
names are those of the outcome scorers in :mod:`samplescale.verifiers.scorers`.

Implementations:

(a) :class:`LabelTokenScorer`: a process reward model served by any backend, read from the
    probability of a label token ("+" / "-", "Yes" / "No") after a judging prompt
    (Math-Shepherd, Wang et al., 2024, reads a PRM this way);
(b) :class:`JudgeScorer`: an LLM judge prompt whose reply carries a number ("Score: 7");
    an unparseable reply is a :class:`ScorerError`, never a silent 0;
(c) :func:`self_evaluation`: P(True), the model's own probability that its partial
    solution is correct (Kadavath et al., 2022, "Language Models (Mostly) Know What They
    Know"), a :class:`LabelTokenScorer` on the policy model; :class:`InContextLabelScorer`
    (``"p-true-in-context"``) asks it in the policy's own conversation, so that a backend
    with a prefix cache decodes only the question per score;
(d) :class:`CallableScorer`: any Python callable ``(prompt, steps) -> float``;
    :func:`from_outcome` wraps an outcome :class:`~samplescale.verifiers.scorers.Scorer`.

:func:`~samplescale.verifiers.step_scores.aggregate_step_scores` (re-exported here) turns
the per-step scores of a path into one score (last, min, mean or product: a parameter,
never hard-coded).
"""

from __future__ import annotations

from collections.abc import Callable

from samplescale.backends.base import Backend
from samplescale.errors import ConfigError
from samplescale.registry import Registry
from samplescale.types import Prompt, Sample, Usage
from samplescale.verifiers.extract import extract_answer
from samplescale.verifiers.model_scorers import (
    JUDGE_TEMPLATE,
    PTRUE_TEMPLATE,
    InContextLabelScorer,
    JudgeScorer,
    LabelTokenScorer,
    self_evaluation,
    self_evaluation_in_context,
)
from samplescale.verifiers.process_base import (
    ProcessScorer,
    ScorerError,
    ScorerUsage,
    question_of,
)
from samplescale.verifiers.scorers import Scale, Scorer
from samplescale.verifiers.step_scores import AGGREGATIONS, Aggregation, aggregate_step_scores

__all__ = [
    "AGGREGATIONS",
    "JUDGE_TEMPLATE",
    "PROCESS_SCORERS",
    "PTRUE_TEMPLATE",
    "Aggregation",
    "CallableScorer",
    "InContextLabelScorer",
    "JudgeScorer",
    "LabelTokenScorer",
    "ProcessScorer",
    "ScorerError",
    "ScorerUsage",
    "aggregate_step_scores",
    "from_outcome",
    "question_of",
    "self_evaluation",
    "self_evaluation_in_context",
]


class CallableScorer(ProcessScorer):
    """Any Python callable ``fn(prompt, steps) -> float`` as a process scorer.

    Parameters
    ----------
    fn : callable (Prompt, tuple of str) -> float
    scale : {"probability", "log-probability", "reward"}
    name : str
    bounds : (float, float), optional
        Known range of a reward (default: the scale's range).

    Raises
    ------
    ConfigError
        If ``fn`` is not callable or ``scale`` is unknown.
    """

    def __init__(
        self,
        fn: Callable[[Prompt, tuple[str, ...]], float],
        scale: Scale,
        name: str = "callable",
        bounds: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if not callable(fn):
            raise ConfigError(f"fn must be callable, got {type(fn).__name__}")
        if scale not in ("probability", "log-probability", "reward"):
            raise ConfigError(
                f"scale must be 'probability', 'log-probability' or 'reward', got {scale!r}"
            )
        self.fn, self.scale, self.name, self._bounds = fn, scale, name, bounds

    @property
    def bounds(self) -> tuple[float, float]:
        return self._bounds if self._bounds is not None else super().bounds

    def _evaluate(self, prompt: Prompt, steps: tuple[str, ...]) -> tuple[float, Usage]:
        return self.fn(prompt, steps), Usage()


def from_outcome(
    scorer: Scorer, extract: Callable[[str], str | None] = extract_answer
) -> CallableScorer:
    """An outcome scorer (:mod:`samplescale.verifiers.scorers`) as a process scorer.

    The steps are joined into one text; the wrapped scorer sees ``Sample(text=...)`` (no
    token logprobs, so use answer-based scorers such as an oracle) and the answer
    ``extract(text)``. Same name and scale.
    """

    def fn(prompt: Prompt, steps: tuple[str, ...]) -> float:
        text = "".join(steps)
        value = scorer(Sample(text=text), extract(text))
        assert value is not None  # only error samples score None
        return value

    return CallableScorer(fn, scorer.scale, name=scorer.name)


PROCESS_SCORERS: Registry[Callable[[Backend], ProcessScorer]] = Registry("process scorer")
PROCESS_SCORERS.register("p-true")(self_evaluation)
PROCESS_SCORERS.register("judge")(JudgeScorer)
PROCESS_SCORERS.register("p-true-in-context")(self_evaluation_in_context)
