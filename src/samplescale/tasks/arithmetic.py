"""A generated arithmetic task with exact integer gold answers, for quick offline runs."""

from __future__ import annotations

from numbers import Integral

import numpy as np

from samplescale.errors import ConfigError
from samplescale.tasks.base import SHORT_ANSWER_INSTRUCTION, Problem, Task

LEVELS = (1, 2, 3)

_NAMES = (
    ("Sam", "he"),
    ("Maya", "she"),
    ("Leo", "he"),
    ("Ana", "she"),
    ("Omar", "he"),
    ("Lena", "she"),
    ("Tom", "he"),
    ("Priya", "she"),
)
_ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "oranges", "cards", "shells")

# Each template: (text, expression). The text uses {name}, {He}, {he}, {item}, {a}, {b},
# {c}; the expression is the same arithmetic written over a, b and c.
_TEMPLATES = (
    (
        "{name} has {a} {item}. {He} buys {b} more and then gives away {c}. "
        "How many {item} does {he} have now?",
        "{a} + {b} - {c}",
    ),
    (
        "{name} had {a} {item}. {He} gave {b} to a friend and then found {c} more. "
        "How many {item} does {he} have now?",
        "{a} - {b} + {c}",
    ),
    (
        "{name} buys {a} bags of {item} with {b} {item} in each bag. {He} gives away {c} "
        "of them. How many {item} does {he} have left?",
        "{a} * {b} - {c}",
    ),
    (
        "There are {a} {item} in a basket. {name} adds {b} more and then takes out {c}. "
        "How many {item} are in the basket now?",
        "{a} + {b} - {c}",
    ),
)


# Operand ranges (both ends inclusive). Level 1 and 2 questions "What is a + b?" take
# both operands from one range; the word problems draw a, b, c as noted per shape.
_ADDITION_RANGES = {1: (0, 9), 2: (10, 99)}
_MUL_A, _MUL_B = (2, 9), (2, 12)  # a * b - c, c in [1, a * b]
_SUB_A, _SUB_C = (5, 40), (1, 20)  # a - b + c, b in [1, a]
_ADD_A, _ADD_B = (5, 40), (1, 20)  # a + b - c, c in [1, a + b]


def _span(bounds: tuple[int, int]) -> range:
    return range(bounds[0], bounds[1] + 1)


def _value_count(expression: str) -> int:
    """How many distinct ``(a, b, c)`` a template with ``expression`` can draw."""
    if "*" in expression:
        return sum(a * b for a in _span(_MUL_A) for b in _span(_MUL_B))
    if expression.startswith("{a} - "):
        return sum(a * len(_span(_SUB_C)) for a in _span(_SUB_A))
    return sum(a + b for a in _span(_ADD_A) for b in _span(_ADD_B))


DISTINCT_PROBLEMS: dict[int, int] = {
    1: len(_span(_ADDITION_RANGES[1])) ** 2,
    2: len(_span(_ADDITION_RANGES[2])) ** 2,
    3: len(_NAMES) * len(_ITEMS) * sum(_value_count(e) for _, e in _TEMPLATES),
}
"""Number of distinct questions of each level (100, 8100 and 4,294,912)."""


def arithmetic(level: int = 1, limit: int = 50, seed: int = 0) -> Task:
    """Generate an arithmetic task with exact integer gold answers.

    Problems are drawn WITHOUT replacement: every question of a task is distinct, so
    intervals "over problems" count each problem once. Each problem is drawn from the
    distribution described under ``level``, and a draw that repeats an earlier
    question is skipped (so the first problems of a seed do not depend on ``limit``).

    Parameters
    ----------
    level : int
        1: one-digit addition, ``"What is 3 + 5?"``, both operands drawn from 0-9
        (100 distinct problems).
        2: two-digit addition, both operands drawn from 10-99 (8100 distinct problems).
        3: two-step word problems ("Sam has 12 apples. He buys 7 more and then gives
        away 5. How many apples does he have now?") from four templates (add then
        subtract, subtract then add, multiply then subtract) with varied names and
        items; what is taken away never exceeds what is there, so every answer is a
        non-negative integer (4,294,912 distinct problems; drawing most of them is
        slow, since the later draws mostly repeat earlier ones).
        :data:`DISTINCT_PROBLEMS` holds these counts.
    limit : int
        How many problems to generate, from 1 to the number of distinct problems of
        the level.
    seed : int
        Seed for :func:`numpy.random.default_rng` (>= 0); the same seed gives the same
        problems.

    Returns
    -------
    Task
        A task named ``"arithmetic"`` with ids ``"arithmetic-L{level}-0000"``, ...; each
        problem's metadata holds ``level`` and the ``expression`` its gold answer equals.

    Raises
    ------
    ConfigError
        If ``level`` is not 1, 2 or 3, ``limit`` is below 1 or above the number of
        distinct problems of the level, or ``seed`` is negative.
    """
    if not _is_int(level) or level not in LEVELS:
        raise ConfigError(f"arithmetic level must be one of 1, 2, 3, got {level!r}")
    if not _is_int(limit) or limit < 1:
        raise ConfigError(f"limit must be an integer >= 1, got {limit!r}")
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    level, limit, seed = int(level), int(limit), int(seed)
    available = DISTINCT_PROBLEMS[level]
    if limit > available:
        raise ConfigError(
            f"limit must be in [1, {available}] for arithmetic level {level}: the level "
            f"has only {available} distinct problems (drawn without replacement), "
            f"got limit={limit}"
        )
    rng = np.random.default_rng(seed)
    make = _word_problem if level == 3 else _addition
    problems: list[Problem] = []
    seen: set[str] = set()
    while len(problems) < limit:
        question, expression, answer = make(rng, level)
        if question in seen:
            continue
        seen.add(question)
        problems.append(
            Problem(
                id=f"arithmetic-L{level}-{len(problems):04d}",
                question=question,
                gold=str(answer),
                metadata={"level": level, "expression": expression},
            )
        )
    return Task(name="arithmetic", problems=tuple(problems), instruction=SHORT_ANSWER_INSTRUCTION)


def _is_int(value: object) -> bool:
    """Whether ``value`` is an integer (Python or numpy), but not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def _draw(rng: np.random.Generator, low: int, high: int) -> int:
    """A uniform integer in ``[low, high]`` (both inclusive) as a Python int."""
    return int(rng.integers(low, high + 1))


def _addition(rng: np.random.Generator, level: int) -> tuple[str, str, int]:
    """A one-digit (level 1) or two-digit (level 2) addition question."""
    low, high = _ADDITION_RANGES[level]
    a, b = _draw(rng, low, high), _draw(rng, low, high)
    return f"What is {a} + {b}?", f"{a} + {b}", a + b


def _word_problem(rng: np.random.Generator, level: int) -> tuple[str, str, int]:
    """A two-step word problem from one of the templates."""
    text, expression = _TEMPLATES[_draw(rng, 0, len(_TEMPLATES) - 1)]
    name, he = _NAMES[_draw(rng, 0, len(_NAMES) - 1)]
    item = _ITEMS[_draw(rng, 0, len(_ITEMS) - 1)]
    if "*" in expression:
        a, b = _draw(rng, *_MUL_A), _draw(rng, *_MUL_B)
        c = _draw(rng, 1, a * b)
        answer = a * b - c
    elif expression.startswith("{a} - "):
        a = _draw(rng, *_SUB_A)
        b, c = _draw(rng, 1, a), _draw(rng, *_SUB_C)
        answer = a - b + c
    else:
        a, b = _draw(rng, *_ADD_A), _draw(rng, *_ADD_B)
        c = _draw(rng, 1, a + b)
        answer = a + b - c
    values = {"a": a, "b": b, "c": c}
    question = text.format(name=name, He=he.capitalize(), he=he, item=item, **values)
    return question, expression.format(**values), answer
