"""The process-scorer interface: :class:`ProcessScorer`, its errors and usage counting.

A process scorer gives one score for a partial solution (a problem and the steps so far):
``name``, ``scale`` (``"probability"`` in [0, 1], ``"log-probability"`` natural log <= 0,
or ``"reward"``: real, higher is better, within ``bounds`` when the scorer knows them),
``score(prompt, steps) -> float``, and usage counting (``usage``: scorer calls plus the
model tokens and calls they spent). The scale names are those of the outcome scorers in
:mod:`samplescale.verifiers.scorers`. Implementations: :mod:`samplescale.verifiers.process`.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from samplescale.types import Prompt, Usage
from samplescale.verifiers.scorers import SCALE_BOUNDS, Scale, ScorerError, check_score


class ScorerUsage(BaseModel):
    """What a scorer spent.

    Attributes
    ----------
    calls : int
        ``score`` calls (failed ones included).
    usage : Usage
        Model tokens, model calls and wall seconds spent by those calls.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    calls: int = 0
    usage: Usage = Usage()


def scorer_failure(message: str, usage: Usage) -> ScorerError:
    """A ScorerError carrying the usage of the failed call."""
    exc = ScorerError(message)
    exc.usage = usage
    return exc


def question_of(prompt: Prompt) -> str:
    """The problem text of a prompt: its last user message, or its raw text."""
    if prompt.text is not None:
        return prompt.text
    assert prompt.messages is not None
    users = [m.content for m in prompt.messages if m.role == "user"]
    return users[-1] if users else prompt.messages[-1].content


class ProcessScorer(ABC):
    """Base of the process scorers: counting, scale checks and the public ``score``.

    Subclasses set ``name`` and ``scale`` and implement :meth:`_evaluate`. Safe to call
    from several threads (the counters are locked).
    """

    name: str
    scale: Scale

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage = ScorerUsage()

    @property
    def bounds(self) -> tuple[float, float]:
        """The interval every score lies in: (0, 1) for probabilities, (-inf, 0] for
        log-probabilities, (-inf, inf) for rewards (finite) unless a subclass knows
        better."""
        return SCALE_BOUNDS[self.scale]

    @property
    def usage(self) -> ScorerUsage:
        """Calls and model usage so far (a snapshot)."""
        with self._lock:
            return self._usage

    def check_prompt(self, prompt: Prompt) -> None:
        """Raise :class:`~samplescale.errors.ConfigError` if this scorer cannot score
        partial solutions of ``prompt`` at all (strategies call it before their first
        model call, so that no compute is spent first). The default accepts every prompt.
        """
        return None

    def score(self, prompt: Prompt, steps: Sequence[str]) -> float:
        """The score of the partial solution ``steps`` (strings, in order) to ``prompt``.

        Returns
        -------
        float
            On the scorer's ``scale``, within ``bounds``.

        Raises
        ------
        ScorerError
            If no score can be read, or the value is NaN, outside ``bounds``, or an
            infinite reward.
        """
        return self.measure(prompt, steps)[0]

    def measure(self, prompt: Prompt, steps: Sequence[str]) -> tuple[float, Usage]:
        """Like :meth:`score`, also returning the model usage of this one call."""
        start = time.perf_counter()
        spent = Usage()
        try:
            value, spent = self._evaluate(prompt, tuple(steps))
            value = check_score(self.name, self.scale, value, self.bounds)
        except ScorerError as exc:
            exc.usage = self._count(spent + exc.usage, start)
            raise
        except BaseException:
            self._count(spent, start)
            raise
        return value, self._count(spent, start)

    def _count(self, spent: Usage, start: float) -> Usage:
        """Add one call spending ``spent`` (wall time from ``start``) to the counters."""
        spent = spent.model_copy(update={"wall_time_s": time.perf_counter() - start})
        with self._lock:
            self._usage = ScorerUsage(calls=self._usage.calls + 1, usage=self._usage.usage + spent)
        return spent

    @abstractmethod
    def _evaluate(self, prompt: Prompt, steps: tuple[str, ...]) -> tuple[float, Usage]:
        """The raw score and the model usage of computing it."""
