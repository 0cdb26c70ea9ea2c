"""ModelSwitch: sample several models in turn, switching when one model's samples disagree.

Chen et al. 2025, "Do We Truly Need So Many Samples? Multi-LLM Repeated Sampling
Efficiently Scales Test-Time Compute" (ModelSwitch). The run's backend is the first model
and ``models`` the next ones. Each model in turn draws ``per_model`` samples; when the
leader's share of that model's answers reaches ``threshold`` (1.0: unanimous) the run
stops, otherwise it switches to the next model. The answer is the vote over the samples
of every model drawn, each model's votes weighted by its consistency (its leader's share)
times an optional prior weight of the model, as the paper weights models by how much their
samples agree and by what is known of them beforehand. An exact tie goes to the class seen
first among the samples of the latest model drawn (the model switched to), then of the one
before it, and so on: a later model is only asked because the earlier ones disagreed, so on
a tie its answer is preferred to an earlier model's arbitrary first sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.aggregate import cluster, vote
from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.stopping import vote_counts
from samplescale.strategies.base import State, Strategy, check_number
from samplescale.strategies.registry import STRATEGIES
from samplescale.strategies.tree import positive_int
from samplescale.types import Prompt, Result


def model_label(backend: Any) -> str:
    """A readable name of a model: its file name when it has one, else the backend name."""
    path = getattr(backend, "model_path", None)
    return str(getattr(path, "name", path)) if path else str(getattr(backend, "name", "model"))


@STRATEGIES.register("model-switch")
@dataclass(frozen=True)
class ModelSwitch(Strategy):
    """ModelSwitch over the run's backend and ``models`` (see the module docstring).

    Attributes
    ----------
    models : sequence of Backend
        The models after the run's backend, in the order they are tried (at least one).
        From the command line: ``--option models='["other.gguf"]'`` (paths of GGUF files,
        loaded like ``--model``).
    per_model : int or None
        Samples per model, in [2, N - 1] (a single sample always agrees with itself, and
        N must leave samples for the next model); None: ``N // (1 + len(models))``. The
        run never draws more than N (``params.n``) samples.
    threshold : float
        Consistency at which to stop, the leader's share of one model's answers, in
        (0, 1] (default 1.0: all of the model's samples agree).
    priors : sequence of float or None
        Prior weight of each model, the run's backend first then ``models`` (length
        ``1 + len(models)``, finite and > 0; only ratios matter: they are scaled to a
        largest prior of 1); None: every model 1. A sample's vote weight is its model's
        prior times its model's consistency.

    Notes
    -----
    Each model's step is a trace record ``{"event": "switch", "model", "samples",
    "consistency", "decision": "stop" | "switch" | "budget", "completion_tokens",
    "wall_time_s"}``: the usage per model. ``model`` is the model's file name (or backend
    name), prefixed by its position (``"1: m.gguf"``) when two models share a name.

    Raises
    ------
    ConfigError
        If ``models`` is empty or holds an entry that is neither a path nor a backend, an
        option is out of range, ``priors`` does not give one positive weight per model;
        when a run starts, if a path is left unresolved or N leaves fewer than 2 samples
        to the first model or none to the next.
    """

    name = "model-switch"
    models: Sequence[Any] = ()
    per_model: int | None = None
    threshold: float = 1.0
    priors: Sequence[float] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.models, str | bytes) or not isinstance(self.models, Sequence) \
                or not self.models:
            raise ConfigError("model-switch: models must list at least one more model "
                              f"(backends, or GGUF paths on the command line), got {self.models!r}")
        for i, m in enumerate(self.models):
            if isinstance(m, str | bytes) and not m.strip() or not isinstance(m, str | bytes) \
                    and not callable(getattr(m, "generate", None)):
                raise ConfigError(f"model-switch: models[{i}] must be a model path (GGUF file, "
                                  f"or upstream model name) or a backend, got {m!r:.40}")
        object.__setattr__(self, "models", tuple(self.models))
        positive_int("per_model", self.per_model)
        check_number("threshold", self.threshold, lambda v: 0 < v <= 1, "(0, 1]")
        if self.priors is not None:
            size = 1 + len(self.models)
            if isinstance(self.priors, str | bytes) or not isinstance(self.priors, Sequence) \
                    or len(self.priors) != size:
                raise ConfigError(f"model-switch: priors must list {size} weights (the run's "
                                  f"model, then each of models), got {self.priors!r:.80}")
            for i, p in enumerate(self.priors):
                check_number(f"model-switch: priors[{i}]", p, lambda v: 0 < v < math.inf,
                             "(0, inf)")
            # only the ratios matter: scaled to a largest prior of 1, sums cannot overflow
            top = max(self.priors)
            object.__setattr__(self, "priors", tuple(p / top for p in self.priors))

    def _size(self, params: SamplingParams) -> int:
        return self.per_model or max(1, params.n // (1 + len(self.models)))

    def init(self, prompt: Prompt, params: SamplingParams) -> State:
        unresolved = [m for m in self.models if isinstance(m, str | bytes)]
        if unresolved:
            raise ConfigError(f"model-switch: models {unresolved!r} are paths; the command "
                              "line loads them, from Python pass backends")
        size = self._size(params)
        if size < 2 or size >= params.n:
            raise ConfigError(
                f"model-switch: N = {params.n} with {size} samples per model cannot switch: "
                "each model needs at least 2 samples (one always agrees with itself) and N "
                "must leave samples for the next model; use N >= 4 with per_model in "
                "[2, N - 1]")
        return super().init(prompt, params)

    def _labels(self, backend: Backend) -> list[str]:
        """Each model's label: its name, prefixed by its position when names repeat."""
        names = [model_label(m) for m in (backend, *self.models)]
        return [f"{i}: {n}" if names.count(n) > 1 else n for i, n in enumerate(names)]

    def _records(self, state: State) -> list[dict[str, Any]]:
        return [t for t in state.trace if t.get("event") == "switch"]

    def done(self, state: State) -> bool:
        recs = self._records(state)
        return bool(recs) and recs[-1]["decision"] in ("stop", "budget") or \
            len(recs) > len(self.models)

    def step(
        self, rng: np.random.Generator | None, state: State, backend: Backend
    ) -> tuple[State, dict[str, Any]]:
        """Draw the next model's samples and decide whether to switch."""
        index = len(self._records(state))
        model = backend if index == 0 else self.models[index - 1]
        size = min(self._size(state.params), state.params.n - len(state.samples))
        before = len(state.samples)
        new, info = self.draw(rng, state, model, size)
        answers = self.answers(new)[before:]
        counts, unanswered = vote_counts(cluster(answers, self.equivalent))
        consistency = max(counts) / len(answers) if counts else 0.0
        last = index == len(self.models) or len(new.samples) >= new.params.n
        decision = "stop" if consistency >= self.threshold else "budget" if last else "switch"
        record = {**info, "event": "switch", "model": self._labels(backend)[index],
                  "consistency": consistency, "decision": decision}
        return new.model_copy(update={"trace": new.trace[:-1] + (record,)}), record

    def finalize(self, state: State) -> Result:
        answers = self.answers(state)
        weights: list[float] = []
        blocks: list[range] = []
        for index, rec in enumerate(self._records(state)):
            prior = self.priors[index] if self.priors else 1.0
            blocks.append(range(len(weights), len(weights) + rec["samples"]))
            weights += [prior * rec["consistency"]] * rec["samples"]
        total = sum(weights)
        # the vote's ties go to the class seen first: show it the latest model's samples first
        order = [i for block in reversed(blocks) for i in block]
        v = vote([answers[i] for i in order], [weights[i] for i in order] if total else None,
                 self.equivalent)
        selected = None if v.winner is None else order[v.winner]
        # Result.weights sum to 1; none when no model's samples gave an answer
        norm = tuple(w / total for w in weights) if total else ()
        shares = {a: v.shares[a] for a in dict.fromkeys(a for a in answers if a in v.shares)}
        return self.result(state, answers, selected=selected, answer=v.answer,
                           vote_shares=shares, weights=norm)
