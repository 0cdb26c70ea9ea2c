r"""Answer extraction and equivalence (samplescale.verifiers.math).

Every expected value in the tables was checked by hand. The math-verify stage runs in a
worker process; the time-limit tests use inputs on which math-verify runs for ever.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import samplescale.verifiers._workers as vw
import samplescale.verifiers.math as vm
from samplescale.errors import ConfigError, MissingDependencyError, SamplescaleError
from samplescale.verifiers.math import (
    answers_equivalent,
    extract_answer,
    is_equivalent,
    normalize_number,
)

POWER_TOWER = r"\boxed{\dfrac{5^{(5^{(5^{(5^5)})}-4)}-5}{16}}"
HUGE_POWER = "2003^{2002^{2001}}"
LIMIT = 1.5  # seconds, for the time-limit tests
SLACK = 3.0  # seconds allowed on top of the limit (kill, IPC, waiting for a warm worker)


@pytest.fixture(autouse=True)
def _fresh_cache():
    vm._decide.cache_clear()
    yield
    vm._decide.cache_clear()


@pytest.fixture(scope="module")
def warm_worker():
    """Start one worker process up front, so timings measure verification only."""
    assert is_equivalent("x+1", "1+x")
    return vw._worker_pids()


# --------------------------------------------------------------------------------------
# extract_answer
# --------------------------------------------------------------------------------------

EXTRACT_CASES = [
    # (a) last box, balanced braces, \text{} wrapper removed
    (r"First \boxed{5}. That was wrong; redo: \boxed{7}.", "7"),
    (r"So the answer is $\boxed{\text{E}}$.", "E"),
    (r"Hence $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
    (r"$\boxed{\{1, 2\}}$", r"\{1, 2\}"),
    (r"\fbox{42} is it", "42"),
    (r"We get \boxed 5 in the end", "5"),
    (r"Put the answer in \boxed{}. It is \boxed{-3}", "-3"),
    (r"\boxed{4} and then \boxed{\frac{1}{", "4"),  # last box never closed: skipped
    (r"\boxed{\boxed{9}}", "9"),
    (r"Answer: 3. Actually \boxed{8}", "8"),  # (a) beats (c)
    # (b) GSM8K gold lines
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "72"),
    ("The temperature dropped by 5 then rose by 2.\n#### -3", "-3"),
    ("#### 1,000", "1,000"),
    ("#### Step 2: add\nWe get 5 apples.", "5"),  # a markdown heading is not an answer
    # (c) answer phrases
    ("First 2 then 34. Final Answer: **73**", "73"),
    ("The answer is 72, in total, so we are done.", "72"),
    ("the answer is 12.", "12"),
    ("THE ANSWER IS 4", "4"),
    ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", r"\frac{3}{4}"),
    ("The answer is 18 dollars.", "18"),
    ("The answer is: \n\n  42", "42"),
    ("**Answer:** $x = 5$.", "x = 5"),
    ("The answer is 3. Then the answer is not something I can find easily today.", "3"),
    ("The answer is 2 and 3.", "2 and 3"),
    ("The answer is 10 percent.", "10 percent"),
    ("The answer is −5.", "-5"),  # Unicode minus sign
    # (c) a worked computation gives its result; an equation with a variable stays whole
    ("The answer is: 7 + 5 = 12.", "12"),
    ("the answer is 3 + 4 = 7", "7"),
    ("Answer: 10 - 3 = 7, so we are done", "7"),
    ("The answer is $\\frac{6}{2} \\times 4 = 12$.", "12"),
    ("The answer is \\left(3+4\\right) \\cdot 2 = 14", "14"),
    ("The answer is 50\\% \\times 24 = 12.", "12"),
    ("The answer is 1,000 + 2,000 = 3,000.", "3,000"),
    ("The answer is 7 + 5 = 12 apples.", "12"),
    ("The final answer is 2 + 2 = 4 = 4", "4"),
    ("The answer is 2x + 3 = 5", "2x + 3 = 5"),
    ("The answer is 3 + 4 = x", "3 + 4 = x"),
    ("The answer is x = 3 + 4 = 7", "x = 3 + 4 = 7"),
    ("The answer is 22/7 \\approx 3.14 = 3.14", "22/7 \\approx 3.14 = 3.14"),
    # (c) quotes around the phrase or the answer, a repeated phrase, a restated question
    ('End with "The answer is": 7 + 5 = 12.', "12"),
    ('The answer is 7." You are providing a basic math equation in the context', "7"),
    ("The answer is \u201c42\u201d.", "42"),
    ('The answer is: The answer is: 3"', "3"),
    ("The answer is: The answer is:", None),
    ("The answer is 9. Check: the answer is 1 + 8.", "9"),  # uncomputed: the earlier phrase
    # ... and its operands are not answers for rule (e) either
    ("The answer is 0 + 5.", None),
    ("7 + 5 = 12. The answer is 7 + 5.", "12"),
    ("So 3 + 4 = 7 and the answer is 3 + 4. Then 8 more", "8"),
    ('The Answer is 3," and it does not have any additional information', "3"),  # closing quote
    # hedge words before the number are not part of the answer; words that change it are
    ("I think the answer is probably 12.", "12"),
    ("The answer is approximately 3.5 meters.", "3.5"),
    ("The answer is roughly -4.5%", "-4.5%"),
    ("The answer is a total of 24 eggs.", "24"),
    ("The answer is about 3 + 4", "about 3 + 4"),
    ("The answer is negative 5.", "negative 5"),
    ("So the answer is not 5, it is 6.", "6"),  # a negated phrase is skipped
    ("The answer is 11. The answer is not 15.", "11"),
    ("The answer is indeed 7.", "7"),
    ('The answer is "the number 8"', "8"),
    ("The answer is less than 5.", "less than 5"),
    ("The answer is half of 10.", "half of 10"),
    ("The answer is square root 2", "square root 2"),
    ("The answer is 3/4.", "3/4"),  # a fraction is a result
    ("The answer is 3 + 2\\sqrt{2}.", "3 + 2\\sqrt{2}"),  # a closed form is a result
    # filler words before a worked computation go too; an equation with a variable stays
    ("The answer is indeed 3 + 4 = 7.", "7"),
    ("The answer is therefore 7.", "7"),
    ("So the answer is Thus 10 - 3 = 7 apples.", "7"),
    ("The answer is simply 2 + 3 = 5, as shown.", "5"),
    ("The answer is clearly x = 5", "clearly x = 5"),
    ("The answer is just 7 + 5.", "just 7 + 5"),  # uncomputed: not turned into a sum
    # a phrase stating no value (negated; relative, as an echoed progressive hint) is
    # skipped, and the value it names is no answer for rules (d) and (e) either
    ("The answer is near to 2.", None),
    ("The answer is not 15.", None),
    ("The answer is not 15 but 16.", "16"),
    ("The answer is 7. (Hint: The answer is near to 2.)", "7"),
    ("(Hint: The answer is near to 2, 5.)\n3 + 4 = 7. The answer is near to 2, 5.", "7"),
    ("The answer is close to 12.", None),
    ("The answer is Closer to 12 than to 20. 3 * 4 = 12. So 12.", "12"),
    ("The answer is probably near 12.", None),
    ("The answer is **near to 2**.", None),
    ("The answer is near to $2$. Adding 3 and 4 gives 7.", "7"),
    ("We get **near to 2**, then **not 3**", None),
    # ... while a hedge is the model's own estimate, and other words stay
    ("The answer is around 5.", "5"),
    ("The answer is nearly 7.", "7"),
    ("The answer is 7, which is close to 8.", "7"),
    ("The answer is less than 5 but more than 3.", "less than 5 but more than 3"),
    # (d) bold with a number
    ("We compute a lot.\n**Step 2:** nothing\nSo the total is **$18**, done.", "18"),
    ("**Step 3** then **12 apples** remain", "12"),
    # (e) last number
    ("The shirt costs $29.00.", "29.00"),
    ("In 2019 there were 1,234 cats and 12 dogs", "12"),
    ("She had 1,234 cats", "1,234"),
    ("The change is -7", "-7"),
    ("we subtract: 10-3", "3"),
    ("a fraction .5 of it", ".5"),
    ("it grew by 28%.", "28%"),
    ("lists: 1, 2", "2"),
    ("H2O and x2 but no real number", None),
    ("no digits at all, only , commas", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), EXTRACT_CASES)
def test_extract_answer_table(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "completion", ["The answer is 1 + 8.", "Answer: 1+8", "So **1 + 8**", "The answer is 4 * 2 + 1",
                   "The answer is 2 + 9.", "The final answer is: 3 * 9"]
)
def test_a_restated_question_is_never_graded_correct(completion):
    # math-verify evaluates "1 + 8" to 9: the echo of "What is 1 + 8?" must not reach it
    assert not is_equivalent(extract_answer(completion), "9")


@pytest.mark.parametrize(
    "completion", ["The answer is not 9.", "The answer is near to 9.", "**not 9**",
                   "(Hint: The answer is near to 9.)", "The answer is close to 9.",
                   "Final answer: probably near 9"]
)
def test_a_value_the_reply_does_not_state_is_never_graded_correct(completion):
    # an echoed progressive hint or a negation names 9 without answering it
    assert not is_equivalent(extract_answer(completion), "9")


def test_extracted_dollar_amount_is_equivalent_to_29():
    assert is_equivalent(extract_answer("In total it costs $29.00."), "29")


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_extract_roundtrips_integers(n):
    assert extract_answer(f"work... \\boxed{{{n}}}") == str(n)
    assert extract_answer(f"So the answer is {n}.") == str(n)
    assert extract_answer(f"blah\n#### {n}") == str(n)
    assert extract_answer(f"there are {n:,} of them") == f"{n:,}"


@settings(max_examples=300)
@given(st.text())
def test_extract_never_fails_on_arbitrary_text(text):
    answer = extract_answer(text)
    assert answer is None or (isinstance(answer, str) and answer)


def test_extract_is_fast_on_degenerate_repetition():
    loops = [
        "\\boxed{" * 20_000 + "**2** " * 2_000 + "The answer is 1.",
        "\\boxed " * 20_000 + "x",
        "The answer is " * 5_000,
        "**Step 1** " * 5_000,
        "1,234," * 10_000,
    ]
    start = time.perf_counter()
    assert extract_answer(loops[0]) == "1"
    for text in loops[1:]:
        extract_answer(text)
    assert time.perf_counter() - start < 2.0


def _nested(n: int, inner: str = "5", open_: str = "\\text{", close: str = "}") -> str:
    return open_ * n + inner + close * n


def test_deeply_nested_text_wrappers_are_linear():
    # The wrapper clean-up used to rescan the answer once per nesting level (quadratic):
    # 25 s for 10000 levels in is_equivalent, 6.5 s for 5000 in extract_answer.
    start = time.perf_counter()
    assert is_equivalent(_nested(10_000), "6", timeout=1.0) is False
    assert is_equivalent(_nested(10_000), "5", timeout=1.0) is True
    assert answers_equivalent(_nested(10_000, "7"), _nested(3, "7.0"), timeout=1.0) is True
    assert normalize_number(_nested(10_000, "12\\%")) == "12%"
    assert extract_answer("So \\boxed{" + _nested(5_000) + "}.") == "5"
    assert time.perf_counter() - start < 1.5


@pytest.mark.parametrize(
    "text",
    [
        "#### $" + _nested(5_000, open_="\\(\\text{", close="}\\)") + "$",
        "**" + _nested(5_000, open_="\\(\\mathbf{", close="}\\)") + "**",
        "The answer is " + _nested(150, open_="\\(\\text{", close="}\\)") + ".",
        "**" + _nested(5_000, open_="\\[\\text{*", close="*}\\]") + "**",
    ],
)
def test_alternating_wrappers_and_delimiters_are_linear(text):
    # Math delimiters, emphasis and \text{} wrappers nested in turn: each round of the
    # clean-up used to copy and rescan the whole answer.
    start = time.perf_counter()
    assert extract_answer(text) == "5"
    assert time.perf_counter() - start < 1.0


# --------------------------------------------------------------------------------------
# normalize_number
# --------------------------------------------------------------------------------------

NORMALIZE_CASES = [
    ("29.00", "29"),
    ("1,000", "1000"),
    ("1{,}000", "1000"),
    ("1,\\!000", "1000"),
    ("-1,234.50", "-1234.5"),
    ("$1,234.50", "1234.5"),
    ("\\$18.90", "18.9"),
    ("-$5", "-5"),
    ("$-5", "-5"),
    ("$\\frac{1}{2}$", "0.5"),
    ("\\frac{1}{2}", "0.5"),
    ("\\dfrac{3}{8}", "0.375"),
    ("-\\frac{3}{4}", "-0.75"),
    ("\\frac{-3}{4}", "-0.75"),
    ("\\frac12", "0.5"),
    ("2/6", "1/3"),
    ("1/3", "1/3"),
    (".5", "0.5"),
    ("5.", "5"),
    ("007", "7"),
    ("-0", "0"),
    ("\u22127", "-7"),
    ("28%", "28%"),
    ("28\\%", "28%"),
    ("28 percent", "28%"),
    ("12.50\\%", "12.5%"),
    ("\\text{42}", "42"),
    ("1, 2", None),
    ("1,2", None),
    ("1,23", None),
    (",", None),
    ("1/0", None),
    ("18 dollars", None),
    ("1e5", None),
    ("x", None),
    ("", None),
    ("%", None),
    ("1" * 5000, None),  # more digits than int() converts
    # canonical forms with more digits than str(int) writes: None, not ValueError
    ("1/" + str(2**14000), None),  # a 9786-digit decimal
    ("\\frac{1}{" + str(2**14000) + "}", None),
    ("-1/" + str(2**14000) + "\\%", None),
    ("1/" + str(2**13000 * 5**500), None),
    ("1" + "3" * 4289 + "/0." + "0" * 4288 + "7", None),  # p/7 with an 8579-digit p
    ("0." + "3" * 4000 + "1/0." + "7" * 4000 + "3", "3" * 4000 + "1/" + "7" * 4000 + "3"),
    ("1/" + str(5**6000), "0." + str(2**6000).rjust(6000, "0")),  # 6000 places: fits
    ("1/" + str(2**20), "0.00000095367431640625"),
]


@pytest.mark.parametrize(("text", "expected"), NORMALIZE_CASES)
def test_normalize_number_table(text, expected):
    assert normalize_number(text) == expected


def _representations(q: Fraction) -> list[str]:
    """Ways of writing the number q that must all be equivalent."""
    n, d = q.numerator, q.denominator
    reps = [f"{n}/{d}", f"\\frac{{{n}}}{{{d}}}", f"${n}/{d}$"]
    if d == 1:
        reps += [str(n), f"{n:,}", f"{n}.00", f"${n:,}", f"\\boxed{{{n}}}"]
    canonical = normalize_number(f"{n}/{d}")
    assert canonical is not None
    if "/" not in canonical:  # terminating decimal
        reps += [canonical, canonical + ("0" if "." in canonical else ".0")]
    return reps


fractions = st.builds(
    Fraction,
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([1, 1, 2, 3, 4, 5, 8, 10, 16, 25, 100, 7]),
)


@given(fractions, st.data())
def test_numbers_equal_to_themselves_in_any_form(q, data):
    reps = _representations(q)
    a = data.draw(st.sampled_from(reps))
    b = data.draw(st.sampled_from(reps))
    assert is_equivalent(a, a)
    assert is_equivalent(a, b) and is_equivalent(b, a)
    assert answers_equivalent(a, b)


@given(fractions, fractions, st.data())
def test_numbers_compare_exactly_and_symmetrically(p, q, data):
    a = data.draw(st.sampled_from(_representations(p)))
    b = data.draw(st.sampled_from(_representations(q)))
    assert is_equivalent(a, b) == is_equivalent(b, a) == (p == q)


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_percent_convention_for_integers(n):
    for sign in ("%", "\\%", " percent"):
        assert is_equivalent(f"{n}{sign}", str(n))
        assert is_equivalent(str(n), f"{n}{sign}")
        assert is_equivalent(f"{n}{sign}", str(n), percent=False) == (n == 0)
        assert is_equivalent(f"{n}{sign}", str(Fraction(n, 100)), percent=False)


def test_huge_fractions_still_compare_exactly():
    tiny = "1/" + str(2**14000)
    assert is_equivalent(tiny, "\\frac{1}{" + str(2**14000) + "}")
    assert not is_equivalent(tiny, "0")
    assert not is_equivalent(tiny, "1/" + str(2**13999))


@given(st.text(alphabet="0123456789-.,/%$\\frac{} ", max_size=12))
def test_normalize_number_is_idempotent(text):
    once = normalize_number(text)
    if once is not None:
        assert normalize_number(once) == once


# --------------------------------------------------------------------------------------
# is_equivalent and answers_equivalent
# --------------------------------------------------------------------------------------

EQUIVALENT_CASES = [
    # (pred, gold, kwargs, expected)
    ("0.5", "\\frac{1}{2}", {}, True),
    ("\\frac{1}{2}", "0.5", {}, True),
    ("1/2", "0.5", {}, True),
    ("1/2", "\\frac{1}{2}", {}, True),
    ("29.00", "29", {}, True),
    ("1,000", "1000", {}, True),
    ("\\boxed{1,\\!000}", "1000", {}, True),
    ("\\$18.90", "18.9", {}, True),
    ("-3", "-3", {}, True),
    ("3", "-3", {}, False),
    ("0.333", "\\frac{1}{3}", {}, False),  # exact comparison of plain numbers
    ("7", "\\boxed{7}", {}, True),
    # equations
    ("3x + 4y + 14=0", "3*x-1*y+13=0", {}, False),
    ("4x-2y+2=0", "2x-y+1=0", {}, True),  # the same line
    ("y=3x+13", "3x-y+13=0", {}, True),
    ("3x+4y+14=0", "0", {}, False),  # not "0 == 0"
    ("x=5", "5", {}, True),
    ("5", "x=5", {}, True),
    ("x=2", "x^2=4", {}, False),
    # multiple answers are sets
    ("1728", "1331 and 1728", {}, False),
    ("1728 and 1331", "1331 and 1728", {}, True),
    ("n=1, 2, 3", "n=2, 3, 4", {}, False),
    ("n=4, 3, 2", "n=2, 3, 4", {}, True),
    ("2, 3, 4", "n=2, 3, 4", {}, True),
    ("4", "n=2, 3, 4", {}, False),
    ("5,3", "3,5", {}, True),
    # percent
    ("\\boxed{28 percent}", "28\\%", {}, True),
    ("28%", "28\\%", {}, True),
    ("28", "28\\%", {}, True),
    ("10", "\\boxed{10\\%}", {}, True),
    ("10", "10%", {"percent": False}, False),
    ("0.1", "10%", {"percent": False}, True),
    ("0.1", "10%", {}, True),
    ("12.5", "\\frac{25}{2}\\%", {}, True),
    ("0.125", "\\frac{25}{2}\\%", {}, True),
    ("12.5", "\\frac{25}{2}\\%", {"percent": False}, False),
    ("29", "28\\%", {}, False),
    # general expressions
    ("\\dfrac{\\sqrt3}{2}", "\\frac{\\sqrt{3}}{2}", {}, True),
    ("(x+1)^2", "x^2+2x+1", {}, True),
    ("\\sqrt{4}", "2", {}, True),
    ("(1, 2)", "(1,2)", {}, True),
    ("(2,1)", "(1,2)", {}, False),
    ("x \\in [2, 5)", "[2,5)", {}, True),
    ("\\text{(B)}", "B", {}, True),
    ("E", "\\text{E}", {}, True),
    ("18.90 \\text{ dollars}", "18.9", {}, True),
    ("\\pi", "3.14159", {}, False),
    # no answer
    (None, "5", {}, False),
    ("5", None, {}, False),
    (None, None, {}, False),
    ("", "", {}, False),
    ("\\boxed{}", "5", {}, False),
]


@pytest.mark.parametrize(("pred", "gold", "kwargs", "expected"), EQUIVALENT_CASES)
def test_is_equivalent_table(pred, gold, kwargs, expected):
    assert is_equivalent(pred, gold, **kwargs) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("0.5", "\\frac{1}{2}", True),
        ("x=2", "2", True),
        ("2+3=5", "5", True),  # math-verify alone accepts only one direction
        ("1<x<2", "(1,2)", True),  # likewise
        ("1728", "1331 and 1728", False),
        ("10%", "10", True),
        ("3", "4", False),
        (None, "4", False),
    ],
)
def test_answers_equivalent_is_symmetric(a, b, expected):
    assert answers_equivalent(a, b) is expected
    assert answers_equivalent(b, a) is expected


def test_plain_numbers_never_use_the_worker(monkeypatch):
    def no_worker(*args, **kwargs):
        raise AssertionError("the numeric fast path must not reach the worker")

    monkeypatch.setattr(vm, "_run_in_worker", no_worker)
    assert is_equivalent("1,000.00", "1000")
    assert is_equivalent("\\boxed{28 percent}", "28\\%")
    assert not is_equivalent("2", "3")
    assert answers_equivalent("\\frac{1}{2}", "0.5")
    assert is_equivalent("x^2", "x^2")  # identical answers are equivalent outright


def test_results_are_cached(monkeypatch):
    calls = []
    real = vm._run_in_worker

    def counting(pairs, timeout):
        calls.append(pairs)
        return real(pairs, timeout)

    monkeypatch.setattr(vm, "_run_in_worker", counting)
    for _ in range(5):
        assert is_equivalent("(x+1)^2", "x^2+2x+1")
        assert answers_equivalent("(x+1)^2", "x^2+2x+1")
        assert answers_equivalent("x^2+2x+1", "(x+1)^2")
    # equivalence is symmetric: all three questions share one cache entry
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: extract_answer(None), "text"),
        (lambda: extract_answer(5), "text"),
        (lambda: normalize_number(5), "s"),
        (lambda: is_equivalent(5, "5"), "pred"),
        (lambda: is_equivalent("5", ["5"]), "gold"),
        (lambda: is_equivalent("5", "5", percent="yes"), "percent"),
        (lambda: is_equivalent("5", "5", timeout=0), "timeout"),
        (lambda: is_equivalent("5", "5", timeout=-1.0), "timeout"),
        (lambda: is_equivalent("5", "5", timeout=float("nan")), "timeout"),
        (lambda: is_equivalent("5", "5", timeout=float("inf")), "timeout"),
        (lambda: is_equivalent("5", "5", timeout=True), "timeout"),
        (lambda: is_equivalent("5", "5", timeout="5"), "timeout"),
        (lambda: answers_equivalent(5, "5"), "a"),
        (lambda: answers_equivalent("5", b"5"), "b"),
        (lambda: answers_equivalent("5", "5", timeout=0), "timeout"),
    ],
)
def test_bad_arguments_raise_config_error(call, name):
    with pytest.raises(ConfigError, match=name):
        call()
    assert issubclass(ConfigError, ValueError)


# --------------------------------------------------------------------------------------
# Hard time limit
# --------------------------------------------------------------------------------------


def _timed(pred, gold, timeout=LIMIT):
    start = time.perf_counter()
    result = is_equivalent(pred, gold, timeout=timeout)
    return result, time.perf_counter() - start


def _is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(("pred", "gold"), [(POWER_TOWER, "5"), (HUGE_POWER, "1")])
def test_pathological_inputs_time_out_on_the_main_thread(warm_worker, pred, gold):
    result, elapsed = _timed(pred, gold)
    assert result is False
    assert elapsed < LIMIT + SLACK
    result, elapsed = _timed(pred, gold)  # cached: no second wait
    assert result is False and elapsed < 0.1


@pytest.mark.parametrize(("pred", "gold"), [(POWER_TOWER, "5"), (HUGE_POWER, "1")])
def test_pathological_inputs_time_out_off_the_main_thread(warm_worker, pred, gold):
    with ThreadPoolExecutor(max_workers=1) as pool:
        result, elapsed = pool.submit(_timed, pred, gold).result(timeout=60)
    assert result is False
    assert elapsed < LIMIT + SLACK


def test_answers_equivalent_times_out_too(warm_worker):
    def timed():
        start = time.perf_counter()
        result = answers_equivalent(HUGE_POWER, "1", timeout=LIMIT)
        return result, time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=1) as pool:
        result, elapsed = pool.submit(timed).result(timeout=60)
    assert result is False and elapsed < LIMIT + SLACK


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_stuck_worker_is_killed_and_replaced(warm_worker):
    assert is_equivalent("x+1", "1+x")
    before = set(vw._worker_pids())
    assert before
    assert _timed(HUGE_POWER, "7")[0] is False
    killed = before - set(vw._worker_pids())
    assert len(killed) == 1
    deadline = time.monotonic() + 5
    while any(_is_running(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_is_running(pid) for pid in killed)
    # the replacement works, with correct results
    assert is_equivalent("2x+2", "2(x+1)")
    assert not is_equivalent("2x+3", "2(x+1)")


def test_concurrent_threads_get_correct_answers(warm_worker):
    pairs = [
        ("(x+1)^2", "x^2+2x+1", True),
        ("1728", "1331 and 1728", False),
        ("\\sqrt{9}", "3", True),
        ("3x + 4y + 14=0", "3*x-1*y+13=0", False),
        ("x=5", "5", True),
        ("\\frac{\\pi}{2}", "\\frac{\\pi}{3}", False),
    ] * 3

    def check(item):
        pred, gold, expected = item
        return is_equivalent(pred, gold, timeout=30.0) is expected

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert all(pool.map(check, pairs))
    assert 0 < len(vw._worker_pids()) <= vw._POOL_SIZE


def _child_verifies(results):
    results.put(is_equivalent("2(x+1)", "2x+2", timeout=30.0))
    results.put(vw._worker_pids())


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_a_multiprocessing_child_can_verify_and_exit(warm_worker):
    # The child inherits the parent's pool state: it must start its own worker, and its
    # exit must not wait for ever on that worker.
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_child_verifies, args=(results,))
    child.start()
    assert results.get(timeout=60) is True
    child_pids = results.get(timeout=60)
    child.join(timeout=30)
    assert child.exitcode == 0
    assert child_pids and not set(child_pids) & set(vw._worker_pids())
    if os.path.isdir("/proc/self"):  # the child killed its worker when it exited
        assert not any(_is_running(pid) for pid in child_pids)
    assert is_equivalent("3(x+1)", "3x+3")  # the parent's workers are untouched


# --------------------------------------------------------------------------------------
# Worker processes: no __main__ guard needed, robust protocol, clean exit
# --------------------------------------------------------------------------------------

UNGUARDED_SCRIPT = """\
import sys
from samplescale.verifiers._workers import _worker_pids
from samplescale.verifiers.math import is_equivalent

print(is_equivalent("\\\\frac{1}{2}+x", "x+0.5"))
print(" ".join(map(str, _worker_pids())))
sys.stdout.flush()
"""


def test_an_unguarded_script_can_verify(tmp_path):
    # No `if __name__ == "__main__":` guard: workers must not re-import the script.
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "True"
    assert done.stderr == ""  # the worker writes nothing to the terminal
    pids = [int(pid) for pid in lines[1].split()]
    assert len(pids) == 1
    if os.path.isdir("/proc/self"):  # the worker was killed when the script exited
        deadline = time.monotonic() + 10
        while any(_is_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_is_running(pid) for pid in pids)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_a_worker_exits_when_its_parent_is_killed(tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(UNGUARDED_SCRIPT + "import time\ntime.sleep(600)\n", encoding="utf-8")
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert parent.stdout.readline().strip() == "True"
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert pids and all(_is_running(pid) for pid in pids)
    finally:
        parent.kill()  # SIGKILL: no atexit handler runs
        parent.wait(timeout=30)
        parent.stdout.close()
    deadline = time.monotonic() + 10
    while any(_is_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_is_running(pid) for pid in pids)


def test_the_worker_survives_bad_requests():
    worker = subprocess.Popen(
        [sys.executable, "-m", "samplescale.verifiers._verify_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = json.loads(worker.stdout.readline())
        assert ready == {"ready": True, "pid": worker.pid}
        requests = [
            b"this is not json\n",
            b"[1, 2]\n",
            b'{"id": 1, "pairs": 5}\n',
            b'{"id": 2, "pairs": [["x", 3]]}\n',
            b'{"id": 3}\n',
            b"\n",  # ignored
            b'{"id": 4, "pairs": [["x+1", "1+x"]]}\n',
            b'{"id": 5, "pairs": [["\\\\frac{", "\\\\sqrt{"]]}\n',
            b'{"id": 6, "pairs": [["2", "3"]]}\n',
        ]
        worker.stdin.write(b"".join(requests))
        worker.stdin.flush()
        replies = [json.loads(worker.stdout.readline()) for _ in range(8)]
        assert [r["id"] for r in replies] == [None, None, 1, 2, 3, 4, 5, 6]
        assert all("error" in r for r in replies[:5])
        assert replies[5:] == [
            {"id": 4, "result": True},
            {"id": 5, "result": False},
            {"id": 6, "result": False},
        ]
        worker.stdin.close()  # end of input: the worker exits by itself
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stdout.close()


def test_an_error_in_the_worker_means_not_equivalent():
    slot = vw._Slot()
    try:
        assert slot.run((("x+1", "1+x"),), 30.0) is True
        pids = slot.pids()
        assert slot.run(((1, 2),), 30.0) is False  # the worker raises TypeError
        assert slot.pids() == pids  # and lives on
        assert slot.run((("x+2", "2+x"),), 30.0) is True
    finally:
        slot._stop()
    assert slot.pids() == []


def test_a_worker_that_cannot_start_raises(monkeypatch):
    command = [sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"]
    monkeypatch.setattr(vw, "_worker_command", lambda module=None: command)
    slot = vw._Slot()
    with pytest.raises(SamplescaleError, match=r"(?s)exit code 3.*boom") as info:
        slot.run((("x", "y"),), 5.0)
    assert "__main__" not in str(info.value)
    assert slot.pids() == []


def test_a_worker_without_math_verify_raises_missing_dependency(monkeypatch):
    reply = '{"ready": false, "missing": true, "error": "No module named math_verify"}'
    command = [sys.executable, "-c", f"print({reply!r})"]
    monkeypatch.setattr(vw, "_worker_command", lambda module=None: command)
    slot = vw._Slot()
    with pytest.raises(MissingDependencyError, match="pip install math-verify"):
        slot.run((("x", "y"),), 5.0)
    assert slot.pids() == []


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_worker_that_died_while_idle_is_replaced():
    slot = vw._Slot()
    try:
        assert slot.run((("x+1", "1+x"),), 30.0) is True
        (pid,) = slot.pids()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while slot._worker.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slot.run((("x+2", "2+x"),), 30.0) is True
        assert slot.pids() and slot.pids() != [pid]
    finally:
        slot._stop()


def test_a_sample_cut_by_max_tokens_counts_only_a_stated_answer():
    from samplescale.types import Sample
    from samplescale.verifiers.extract import sample_answer

    rambling = "We have 3 apples and buy 4 more, so we get 7. Then 12 * 2 is"
    assert sample_answer(Sample(text=rambling, finish_reason="stop")) == "2"  # rule e
    assert sample_answer(Sample(text=rambling, finish_reason="length")) is None
    stated = "The answer is 7. Let me also check that 3 + 4 is"
    assert sample_answer(Sample(text=stated, finish_reason="length")) == "7"
    assert sample_answer(Sample(text=stated, status="error", error="x")) is None
    assert sample_answer(Sample(text=rambling, finish_reason="length"), str.upper) == rambling.upper()
    assert extract_answer(rambling, last_number=False) is None
