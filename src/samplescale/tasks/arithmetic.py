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


def arithmetic(level: int = 1, limit: int = 50, seed: int = 0) -> Task:
    """Generate an arithmetic task with exact integer gold answers.

    Parameters
    ----------
    level : int
        1: one-digit addition, ``"What is 3 + 5?"``, both operands drawn from 0-9.
        2: two-digit addition, both operands drawn from 10-99.
        3: two-step word problems ("Sam has 12 apples. He buys 7 more and then gives
        away 5. How many apples does he have now?") from four templates (add then
        subtract, subtract then add, multiply then subtract) with varied names and
        items; what is taken away never exceeds what is there, so every answer is a
        non-negative integer.
    limit : int
        How many problems to generate (>= 1).
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
        If ``level`` is not 1, 2 or 3, ``limit`` is below 1, or ``seed`` is negative.
    """
    if not _is_int(level) or level not in LEVELS:
        raise ConfigError(f"arithmetic level must be one of 1, 2, 3, got {level!r}")
    if not _is_int(limit) or limit < 1:
        raise ConfigError(f"limit must be an integer >= 1, got {limit!r}")
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    level, limit, seed = int(level), int(limit), int(seed)
    rng = np.random.default_rng(seed)
    make = _word_problem if level == 3 else _addition
    problems = []
    for index in range(limit):
        question, expression, answer = make(rng, level)
        problems.append(
            Problem(
                id=f"arithmetic-L{level}-{index:04d}",
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
    low, high = (0, 9) if level == 1 else (10, 99)
    a, b = _draw(rng, low, high), _draw(rng, low, high)
    return f"What is {a} + {b}?", f"{a} + {b}", a + b


def _word_problem(rng: np.random.Generator, level: int) -> tuple[str, str, int]:
    """A two-step word problem from one of the templates."""
    text, expression = _TEMPLATES[_draw(rng, 0, len(_TEMPLATES) - 1)]
    name, he = _NAMES[_draw(rng, 0, len(_NAMES) - 1)]
    item = _ITEMS[_draw(rng, 0, len(_ITEMS) - 1)]
    if "*" in expression:
        a, b = _draw(rng, 2, 9), _draw(rng, 2, 12)
        c = _draw(rng, 1, a * b)
        answer = a * b - c
    elif expression.startswith("{a} - "):
        a = _draw(rng, 5, 40)
        b, c = _draw(rng, 1, a), _draw(rng, 1, 20)
        answer = a - b + c
    else:
        a, b = _draw(rng, 5, 40), _draw(rng, 1, 20)
        c = _draw(rng, 1, a + b)
        answer = a + b - c
    values = {"a": a, "b": b, "c": c}
    question = text.format(name=name, He=he.capitalize(), he=he, item=item, **values)
    return question, expression.format(**values), answer
