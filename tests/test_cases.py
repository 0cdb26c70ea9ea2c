"""The rows of ../shared/cases.md named by the main-job issue, one test each, with the right values.

(C18 and C19 are in test_strategies.py; the sampler rows are in test_sampling.py.)
"""

from __future__ import annotations

import threading
import time

import pytest

from samplescale.errors import ConfigError
from samplescale.metrics import clopper_pearson_interval, pass_at_k, wilson_interval
from samplescale.verifiers.math import extract_answer, is_equivalent


def test_c22_pass_at_k_is_not_bootstrap_best_at_k():
    assert pass_at_k(4, 1, 4) == 1.0
    assert pass_at_k(4, 1, 2) == 0.5
    assert pass_at_k(4, 1, 1) == 0.25


@pytest.mark.parametrize(
    "text, expected",
    [
        ("First we get \\boxed{5}. That is wrong; recomputing gives \\boxed{7}.", "7"),
        ("The choice is \\boxed{\\text{E}}", "E"),
        ("We have 2 apples and 34 pears. Final Answer: **73**", "73"),
    ],
)
def test_c23_which_boxed_and_bold(text, expected):
    assert extract_answer(text) == expected


def test_c25_last_number_regex_skips_lone_commas():
    assert extract_answer("The answer is 72, in total, so we are done") == "72"


def test_c26_numeric_normalisation_and_sign():
    pred = extract_answer("So the toy costs $29.00.")
    assert is_equivalent(pred, "29")
    assert extract_answer("She loses 3 dollars.\n#### -3") == "-3"
    assert not is_equivalent("3", "-3")


def test_c28_different_lines_are_not_equivalent():
    assert not is_equivalent("3x + 4y + 14=0", "3*x-1*y+13=0")


@pytest.mark.parametrize("pred, gold", [("1728", "1331 and 1728"), ("n=1, 2, 3", "n=2, 3, 4")])
def test_c30_multi_answers_need_set_equality(pred, gold):
    assert not is_equivalent(pred, gold)


def test_c32_percent_convention():
    assert is_equivalent(extract_answer("\\boxed{28 percent}"), "28\\%")
    assert is_equivalent("10", extract_answer("\\boxed{10\\%}"))
    assert not is_equivalent("10", "10\\%", percent=False)


@pytest.mark.parametrize(
    "pred, gold",
    [("\\boxed{\\dfrac{5^{(5^{(5^{(5^5)})}-4)}-5}{16}}", "5"), ("2003^{2002^{2001}}", "1")],
)
def test_c34_pathological_inputs_return_false_within_the_budget(pred, gold):
    results: list[bool] = []
    start = time.monotonic()
    worker = threading.Thread(target=lambda: results.append(is_equivalent(pred, gold, timeout=2.0)))
    worker.start()  # off the main thread, where signal-based time limits do not work
    worker.join(30)
    assert results == [False]
    assert time.monotonic() - start < 30


def test_c35_pass_at_k_edge_cases():
    assert pass_at_k(2000, 2, 1000) == pytest.approx(2999 / 3998, rel=1e-12)
    with pytest.raises(ConfigError, match="k"):
        pass_at_k(2, 0, 5)
    with pytest.raises(ConfigError, match="k"):
        pass_at_k(99, 0, 100)
    assert pass_at_k(100, 0, 100) == 0.0


def test_c37_intervals_for_zero_successes():
    lo, hi = wilson_interval(0, 25)
    assert lo == 0.0 and hi == pytest.approx(0.13319, abs=5e-6)
    lo, hi = clopper_pearson_interval(0, 25)
    assert lo == 0.0 and hi == pytest.approx(0.13719, abs=5e-6)
