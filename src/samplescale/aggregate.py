"""Aggregation rules: clustering answers into equivalence classes, majority and weighted votes.

Tie rule (documented convention): when several answer classes have the same (weighted)
vote, the class whose first member appears EARLIEST in the sample order wins. Votes
``[1.0, 2.0, 1.0, 2.0, 3.0]`` therefore select ``1.0``. Because samples are i.i.d., the
earliest-first-seen rule picks each tied class with equal probability, and it is
reproducible for a fixed sample order.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, cast

import numpy as np

from samplescale.errors import ConfigError, check_answers

Equivalence = Callable[[str, str], bool]


def _exact(a: str, b: str) -> bool:
    return a == b


def cluster(answers: Sequence[str | None], equivalent: Equivalence = _exact) -> list[int | None]:
    """Assign each answer to an equivalence class.

    Classes are numbered in first-seen order; an answer joins the first earlier class
    whose representative (its first member) is equivalent to it. ``None`` answers (no
    answer extracted, or an error sample) get class ``None``.

    Parameters
    ----------
    answers : sequence of (str or None), length N
    equivalent : callable (str, str) -> bool
        Equivalence test, e.g. :func:`samplescale.verifiers.math.answers_equivalent`
        (default: exact string equality).

    Returns
    -------
    list of (int or None), length N

    Raises
    ------
    ConfigError
        If ``answers`` is not a sequence of str or None (a ``str`` is refused).
    """
    reps: list[str] = []
    labels: list[int | None] = []
    for a in check_answers(answers):
        if a is None:
            labels.append(None)
            continue
        for k, r in enumerate(reps):
            if a == r or equivalent(r, a):
                labels.append(k)
                break
        else:
            reps.append(a)
            labels.append(len(reps) - 1)
    return labels


class Vote(NamedTuple):
    """Outcome of a (weighted) vote.

    Attributes
    ----------
    winner : int or None
        Index of the first sample of the winning class (None if no sample voted).
    answer : str or None
        The winning class's representative answer.
    shares : dict of str to float
        Vote share of every class (representative -> share), first-seen order; sums to 1.
    labels : list of (int or None)
        Class of each sample.
    """

    winner: int | None
    answer: str | None
    shares: dict[str, float]
    labels: list[int | None]


def vote(
    answers: Sequence[str | None],
    weights: Sequence[float] | None = None,
    equivalent: Equivalence = _exact,
) -> Vote:
    """Majority vote (``weights=None``) or weighted vote over answer classes.

    Self-consistency (Wang et al., 2023, "Self-Consistency Improves Chain of Thought
    Reasoning in Language Models") is this vote over sampled reasoning paths.

    Parameters
    ----------
    answers : sequence of (str or None), length N
        ``None`` casts no vote.
    weights : sequence of float, length N, optional
        Non-negative finite weights (a list, tuple or 1-D array of real numbers; not a
        generator, not bools); a class's score is the sum of its members' weights.
        Weights of any size work: they are scaled by a power of two first (so that the
        largest voting weight is below 1, which is exact), so sums of weights near the
        float limit (``[1e308, 1.5e308, 1e308]``) cannot overflow into ``inf`` or NaN
        shares.
    equivalent : callable (str, str) -> bool
        Answer equivalence used to form the classes.

    Returns
    -------
    Vote
        Ties go to the class seen first (see the module docstring).

    Raises
    ------
    ConfigError
        If ``answers`` is not a sequence of str or None, or ``weights`` is not a sized
        sequence of real numbers, has the wrong length, or has a negative / non-finite
        value.
    """
    answers = check_answers(answers)
    values = [1.0] * len(answers) if weights is None else _check_weights(weights, len(answers))
    labels = cluster(answers, equivalent)
    voting = [w for lab, w in zip(labels, values) if lab is not None]
    top = max(voting, default=0.0)
    # Scale by a power of two (exact) so that every voting weight is < 1 and no class
    # total can overflow; shares and the winner are unchanged by the scaling.
    exponent = math.frexp(top)[1] if top > 0 else 0
    totals: dict[int, float] = {}
    first: dict[int, int] = {}
    for i, (lab, w) in enumerate(zip(labels, values)):
        if lab is None:
            continue
        totals[lab] = totals.get(lab, 0.0) + math.ldexp(w, -exponent)
        first.setdefault(lab, i)
    if not totals:
        return Vote(None, None, {}, labels)
    best = max(totals, key=lambda k: (totals[k], -first[k]))
    mass = math.fsum(totals.values())
    n_classes = len(totals)
    shares = {
        str(answers[first[k]]): (totals[k] / mass if mass > 0 else 1.0 / n_classes)
        for k in sorted(totals, key=first.__getitem__)
    }
    return Vote(first[best], answers[first[best]], shares, labels)


def _check_weights(weights: object, n: int) -> list[float]:
    """``weights`` as a list of ``n`` finite floats >= 0, else ConfigError naming it."""
    if isinstance(weights, (str, bytes, Mapping)) or not (
        hasattr(weights, "__len__") and hasattr(weights, "__getitem__")
    ):
        raise ConfigError(
            "weights must be a sequence (list, tuple or 1-D array) of finite numbers >= 0 "
            f"or None, got {type(weights).__name__}"
        )
    try:
        size = len(weights)  # type: ignore[arg-type]
    except TypeError as exc:  # e.g. a 0-d numpy array
        raise ConfigError(
            f"weights must be a 1-D sequence of finite numbers >= 0, got {_show(weights)}"
        ) from exc
    if size != n:
        raise ConfigError(f"weights has length {size}, answers has {n}; they must match")
    values: list[float] = []
    for i, w in enumerate(cast(Sequence[object], weights)):  # checked to index above
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Real):
            raise ConfigError(f"weights must be finite numbers >= 0; weights[{i}] is {_show(w)}")
        try:
            value = float(w)
        except OverflowError:  # an int or Fraction beyond the float range
            value = math.inf
        if not math.isfinite(value) or value < 0:
            raise ConfigError(
                f"weights must be finite and >= 0 (in [0, inf)); weights[{i}] is {_show(w)}"
            )
        values.append(value)
    return values


def _show(value: object, width: int = 60) -> str:
    """``repr(value)``, cut to ``width`` characters for error messages."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def argmax(scores: Sequence[float | None]) -> int | None:
    """Index of the highest score (ties to the earliest; None and NaN never win; None if none)."""
    best: int | None = None
    for i, s in enumerate(scores):
        if s is None or math.isnan(s):
            continue
        if best is None or s > scores[best]:  # type: ignore[operator]
            best = i
    return best
