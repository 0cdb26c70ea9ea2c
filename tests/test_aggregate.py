"""Tests for samplescale.aggregate.vote: weighted shares near the float limit, bad weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from samplescale.aggregate import vote
from samplescale.errors import ConfigError

BIG = np.finfo(np.float64).max


def test_shares_do_not_overflow() -> None:
    # The class total 2e308 overflowed to inf: shares {'a': nan}.
    v = vote(["a", "b", "a"], [1e308, 1.5e308, 1e308])
    assert (v.winner, v.answer) == (0, "a")
    assert v.shares == pytest.approx({"a": 2 / 3.5, "b": 1.5 / 3.5}, rel=1e-15)
    assert math.fsum(v.shares.values()) == pytest.approx(1.0, rel=1e-15)
    assert list(v.shares) == ["a", "b"]
    assert v.labels == [0, 1, 0]


def test_winner_is_correct_when_every_class_total_would_overflow() -> None:
    # Both totals were inf, so the tie rule picked the first class, "a".
    v = vote(["a", "b", "b"], [BIG, BIG, BIG])
    assert (v.winner, v.answer) == (1, "b")
    assert v.shares == pytest.approx({"a": 1 / 3, "b": 2 / 3}, rel=1e-15)
    v = vote(["a", "b", "b", "a", "a"], [BIG, BIG / 2, BIG / 2, BIG / 4, BIG / 8])
    assert v.answer == "a"
    assert v.shares == pytest.approx({"a": 1.375 / 2.375, "b": 1 / 2.375}, rel=1e-15)


def test_scale_comes_from_voting_samples_only() -> None:
    # A huge weight on a sample without an answer must not wipe out the others.
    v = vote([None, "a", "b"], [1e308, 1e-320, 2e-320])
    assert (v.winner, v.answer) == (2, "b")
    assert v.shares == pytest.approx({"a": 1 / 3, "b": 2 / 3}, rel=1e-12)


def test_ordinary_weights_unchanged() -> None:
    v = vote(["7", "7", "9"], [0.5, 0.5, 0.9])
    assert v.answer == "7"
    assert v.shares == {"7": 1.0 / 1.9, "9": 0.9 / 1.9}
    v = vote(["x", "y", "x"], np.array([0.25, 0.5, 0.25]))  # a tie: first seen wins
    assert (v.winner, v.answer, v.shares) == (0, "x", {"x": 0.5, "y": 0.5})
    v = vote(["x", "y"], (0.0, 0))
    assert (v.answer, v.shares) == ("x", {"x": 0.5, "y": 0.5})
    assert vote([None, None], [1.0, 2.0]) == (None, None, {}, [None, None])


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ("abc", r"weights must be a sequence .* got str"),
        (b"abc", r"weights must be a sequence .* got bytes"),
        ((w for w in [1.0, 1.0, 1.0]), r"weights must be a sequence .* got generator"),
        ({0: 1.0, 1: 1.0, 2: 1.0}, r"weights must be a sequence .* got dict"),
        (3, r"weights must be a sequence .* got int"),
        (np.array(1.0), r"weights must be a 1-D sequence"),
        ([None, 1.0, 1.0], r"weights must be finite numbers >= 0; weights\[0\] is None"),
        ([1.0, "2", 1.0], r"weights\[1\] is '2'"),
        ([1.0, 1.0, True], r"weights\[2\] is True"),
        (np.ones((3, 1)), r"weights\[0\] is array"),
        ([1.0, float("nan"), 1.0], r"weights must be finite and >= 0 .*weights\[1\] is nan"),
        ([1.0, 1.0, float("inf")], r"weights\[2\] is inf"),
        ([1.0, -0.5, 1.0], r"weights\[1\] is -0.5"),
        ([10**400, 1.0, 1.0], r"weights must be finite and >= 0 .*weights\[0\]"),
        ([1.0, 1.0], r"weights has length 2, answers has 3"),
    ],
)
def test_bad_weights_raise_config_error(weights: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        vote(["a", "b", "a"], weights)  # type: ignore[arg-type]
