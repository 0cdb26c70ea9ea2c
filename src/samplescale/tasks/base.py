"""Problems with gold answers, and the task record that holds them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from samplescale.types import Prompt

RECORD = ConfigDict(frozen=True, extra="forbid")

DEFAULT_INSTRUCTION = (
    "Solve the problem. Think step by step, then finish your reply with "
    "'The answer is' followed by the final answer."
)
"""Instruction for multi-step problems (GSM8K, MATH, generic files)."""

SHORT_ANSWER_INSTRUCTION = (
    "Answer the question. End your reply with 'The answer is' followed by the number."
)
"""Instruction for one-line arithmetic: short replies (about 12 tokens with SmolLM2-135M)."""


class Problem(BaseModel):
    """One problem: the question shown to the model and its gold answer.

    Attributes
    ----------
    id : str
        Stable identifier, unique within its task (used to resume interrupted runs).
    question : str
        The problem statement, without instructions.
    gold : str
        The gold final answer as a string (e.g. ``"-3"``, ``"\\frac{1}{2}"``).
    metadata : dict
        Anything else the source file carried (level, solution, ...), JSON-serialisable.
    source : str or None
        Where the problem came from (``"path:line"`` of a data file), for error messages;
        None for generated problems. Not part of the problem's identity.
    """

    model_config = RECORD
    id: str
    question: str
    gold: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: str | None = None

    def prompt(self, instruction: str = DEFAULT_INSTRUCTION) -> Prompt:
        """The chat prompt for this problem: the instruction then the question, as one user turn."""
        return Prompt.user(f"{instruction}\n\n{self.question}")


class Task(BaseModel):
    """A named, ordered collection of problems and the instruction shown before each."""

    model_config = RECORD
    name: str
    problems: tuple[Problem, ...]
    instruction: str = DEFAULT_INSTRUCTION

    def prompt(self, problem: Problem) -> Prompt:
        """The chat prompt of ``problem`` under this task's instruction."""
        return problem.prompt(self.instruction)
