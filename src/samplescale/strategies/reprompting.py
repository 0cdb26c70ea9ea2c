"""Reprompting: a learned chain-of-thought recipe (few-shot examples), then self-consistency.

Xu et al. 2023, "Reprompting: Automated Chain-of-Thought Prompt Inference Through Gibbs
Sampling" (ICML 2024). A *recipe* is an ordered list of ``K`` worked examples (a training
question and a model-written solution that reaches its gold answer). The recipe is learned
offline on training problems by Gibbs-style sampling (:func:`~samplescale.strategies.
reprompting_search.gibbs_search`, run by ``samplescale reprompt``, which writes
``recipe.json``); this strategy applies it to a new problem: the examples are put before
the question (:func:`~samplescale.strategies.prompting.with_examples`), N solutions are
sampled in one call and the answer is their majority vote (self-consistency over the
recipe prompt).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.strategies.base import State
from samplescale.strategies.prompting import question_of, with_examples
from samplescale.strategies.registry import STRATEGIES
from samplescale.strategies.voting import SelfConsistency
from samplescale.types import Prompt

MAX_EXAMPLES = 16
"""The most examples a recipe may hold (the paper uses K = 5)."""

Recipe = tuple[tuple[str, str], ...]
"""A parsed recipe: ``((question, solution), ...)`` in prompt order."""


def parse_recipe(recipe: Any) -> Recipe:
    """A recipe given as a list of ``{"question": str, "solution": str}`` mappings (as
    ``recipe.json`` holds it under ``"recipe"``) as ``((question, solution), ...)``.

    Raises
    ------
    ConfigError
        Naming the field, unless ``recipe`` is a list (or tuple) of 1 to
        :data:`MAX_EXAMPLES` mappings, each with exactly the keys ``question`` and
        ``solution``, both non-empty strings.
    """
    if isinstance(recipe, str | bytes) or not isinstance(recipe, Sequence):
        raise ConfigError(
            "reprompting: recipe must be a list of 1 to "
            f"{MAX_EXAMPLES} {{\"question\": ..., \"solution\": ...}} examples (samplescale "
            "reprompt learns one; on the command line give the path of its recipe.json), "
            f"got {type(recipe).__name__} {recipe!r:.60}"
        )
    if not 1 <= len(recipe) <= MAX_EXAMPLES:
        raise ConfigError(f"reprompting: recipe must hold 1 to {MAX_EXAMPLES} examples, "
                          f"got {len(recipe)}")
    out = []
    for i, ex in enumerate(recipe):
        if not isinstance(ex, Mapping) or set(ex) != {"question", "solution"}:
            keys = sorted(map(str, ex)) if isinstance(ex, Mapping) else type(ex).__name__
            raise ConfigError(f"reprompting: recipe[{i}] must be a mapping with exactly the "
                              f"keys 'question' and 'solution', got {keys}")
        for key in ("question", "solution"):
            if not isinstance(ex[key], str) or not ex[key].strip():
                raise ConfigError(f"reprompting: recipe[{i}].{key} must be a non-empty string, "
                                  f"got {ex[key]!r:.60}")
        out.append((ex["question"], ex["solution"]))
    return tuple(out)


def recipe_json(recipe: Recipe) -> list[dict[str, str]]:
    """``recipe`` as the JSON list :func:`parse_recipe` reads."""
    return [{"question": q, "solution": z} for q, z in recipe]


@STRATEGIES.register("reprompting")
@dataclass(frozen=True)
class Reprompting(SelfConsistency):
    """Self-consistency over a few-shot prompt made of a learned recipe (Xu et al. 2023).

    The prompt is the problem's prompt with the recipe's examples before its question
    (chat: a user / assistant message pair per example before the last user message;
    raw text: ``question\\nsolution\\n\\n`` per example first; see
    :func:`~samplescale.strategies.prompting.with_examples`). One step draws the N
    samples (``params.n``) in one backend call; the answer is their majority vote (ties to
    the class seen first: :class:`~samplescale.strategies.voting.SelfConsistency`'s
    selection). The recipe's questions should be the
    training prompts' questions as the model saw them (``samplescale reprompt`` stores
    them so), and never the problems it is evaluated on.

    Attributes
    ----------
    recipe : list of mapping
        ``[{"question": ..., "solution": ...}, ...]``, 1 to :data:`MAX_EXAMPLES` examples
        in prompt order (required; ``samplescale reprompt`` writes one to recipe.json and
        prints the option that applies it).

    Raises
    ------
    ConfigError
        When built, for a missing or malformed recipe (:func:`parse_recipe`); from
        :meth:`init` when the prompt's question is one of the recipe's questions (the
        problem was a training problem: its learned solution is in the prompt).
    """

    name = "reprompting"
    recipe: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "recipe", recipe_json(parse_recipe(self.recipe)))

    def init(self, prompt: Prompt, params: SamplingParams) -> State:
        """The initial state, its prompt the recipe prompt of ``prompt``."""
        shots = parse_recipe(self.recipe)
        question = question_of(prompt).strip()
        leaked = [i for i, (q, _) in enumerate(shots) if q.strip() == question]
        if leaked:
            raise ConfigError(
                f"reprompting: this problem's question is recipe[{leaked[0]}].question: it "
                "was a training problem, and its learned solution would be in the prompt; "
                "evaluate on problems the recipe was not learned on (samplescale reprompt "
                "--offset)")
        return super().init(with_examples(prompt, shots), params)

