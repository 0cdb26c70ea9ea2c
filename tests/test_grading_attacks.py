r"""Grading as a new user meets it (issue 12's examples) and as a hostile user attacks it.

Every expected value was worked out by hand. The attack table holds inputs built to make
the grader say "equal" for different answers; each must be "not equivalent" in both
orders. The documented conventions that do make two different-looking answers equal are
listed last, each with the rule that allows it.
"""

from __future__ import annotations

import pytest

from samplescale.verifiers.math import extract_answer, is_equivalent


def grade(output: str, gold: str) -> bool:
    return is_equivalent(extract_answer(output), gold, timeout=10.0)


# (model output, gold answer, right verdict): the kinds of issue 12
NEW_USER = [
    (r"After solving, we get $\frac{1}{3}$", r"\frac{1}{3}", True),
    (r"So $k = \frac{1}{3}$", r"\frac{1}{3}", True),
    (r"Thus $\dfrac{1}{3}$.", r"\frac{1}{3}", True),
    (r"Thus $\frac13$.", r"\frac{1}{3}", True),
    (r"Thus $\sqrt3$.", r"\sqrt{3}", True),
    (r"The ratio is $\frac{1+\sqrt{5}}{2}$.", "2", False),
    (r"Therefore $x \geq 5$ is the solution.", r"x \geq 5", True),
    (r"Therefore $x \geq 5$ is the solution.", "5", False),
    (r"So $0 < x < 12.5$.", "(0, 12.5)", True),
    (r"The answer is $(0, 12.5)$.", "0 < x < 12.5", True),
    (
        r"$\boxed{\begin{pmatrix} 5 & -7 \\ -2 & 3 \end{pmatrix}}$",
        r"\begin{bmatrix} 5 & -7 \\ -2 & 3 \end{bmatrix}",
        True,
    ),
    (
        r"$\boxed{\begin{pmatrix} 5 & -7 \\ -2 & 3 \end{pmatrix}}$",
        r"\begin{pmatrix} 5 & 7 \\ -2 & 3 \end{pmatrix}",
        False,
    ),
    (
        r"\boxed{\left[\begin{array}{cc} 1 & 2 \\ 3 & 4 \end{array}\right]}",
        r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
        True,
    ),
    (r"So $\boxed{\text{Evelyn}}$ is fastest.", r"\text{Evelyn}", True),
    (r"So $\boxed{\text{Evenly}}$ is fastest.", r"\text{Evelyn}", False),
    (r"The pairs are \boxed{(1, 2)}, \boxed{(2, 1)}", "(1,2),(2,1)", True),
    (r"The pairs are \boxed{(1, 2)}, \boxed{(2, 1)}", "(1,2)", False),
    (r"The roots are $\boxed{2}$ and $\boxed{3}$.", "3, 2", True),
    (r"x = \boxed{2} \text{ or } x = \boxed{3}", "2; 3", True),
    (r"First \boxed{2}. No, that was wrong: \boxed{3}", "2, 3", False),
    ("Final Answer: The final answer is $10,455$. I hope it is correct.", "10455", True),
    ("The price is 2,74 euros.", "2.74", True),
    ("There are 7,425,000 people.", "7425000", True),
    ("About 1 000 people came.", "1000", True),
    ("... so the probability is 2/3. <|im_start|>user\nWhat is 5+5?", r"\frac{2}{3}", True),
    ("Janet has 18 dollars.\n#### 18\n\nQuestion: Tom has 42 apples.\n#### 42", "18", True),
    (r"So $\frac{1}{2^{99}}$.", r"\frac{1}{2^{98}}", False),
    (r"So $x = \pm 2021$.", "2021", False),
    (r"So $x = \pm 2021$.", r"\pm 2021", True),
    (r"The answer is $2\frac{1}{2}$.", r"\frac{5}{2}", True),
]


@pytest.mark.parametrize(("output", "gold", "verdict"), NEW_USER)
def test_a_new_users_outputs_are_graded_right(output, gold, verdict):
    assert grade(output, gold) is verdict


# (a, b): different answers dressed to look equal; never equivalent, in either order
ATTACKS = [
    (r"\frac{1}{2^{99}}", r"\frac{1}{2^{98}}"),  # absolute tolerance
    ("10^{-20}", r"2\cdot10^{-20}"),
    ("0.0000001", "0.0000002"),  # math-verify rounds floats to 6 places
    ("10^{100}", "10^{100}+1"),  # a relative tolerance on integers
    ("2^{64}", "18446744073709551617"),
    (r"\sqrt{2}+10^{-40}", r"\sqrt{2}"),
    (r"\cos\frac{\pi}{5}+10^{-40}", r"\frac{1+\sqrt{5}}{4}"),
    (r"\pi", "3.14159265"),  # nine digits do not stand for pi
    (r"\sqrt{2}", "1.414214"),
    (r"\frac{1}{3}", "0.333333"),
    ("2.0000000001", "2"),
    (r"\pm 2021", "2021"),
    ("1 2", "2"),  # read as a product by math-verify
    ("2 3", "6"),
    ("1 000", "0"),  # "1 000" is 1000, not 1*000
    (r"2\frac{1}{2}", "1"),  # a mixed number, not 2 * 1/2
    (r"x + 2\frac{1}{2}", "x + 1"),
    ("1, 2", "1"),  # a multi-part answer is a set, never any-overlap
    ("1 or 2", "2"),
    (r"7 \text{ or } 8", "7"),
    (r"\boxed{5}\boxed{6}", "5"),
    ("3x+4y=0", "0"),  # an equation is not its right-hand side
    ("x^2 = 25", "25"),
    ("7 = 11a+c", "11a+c"),
    ("f(x)=1", "f(x)=2"),
    ("x > 5", "5"),
    (r"x \geq 5", "x > 5"),
    ("(0,1)", "[0,1]"),
    ("(1,2)", "(2,1)"),
    (r"\{1,2\}", r"\{1,3\}"),
    ("x=1, y=2", "2, 1"),  # named values keep their written order
    (r"\text{Evelyn}", "Evenly"),  # words are not products of commuting letters
    (r"\text{Evelyn}", r"\text{Evenly}"),
    (r"\text{ab}", "ba"),
    (r"\text{(A)}", r"\text{(B)}"),
    (r"5 \text{ cm}", r"5 \text{ m}"),  # math-verify drops units
    (r"\infty", r"-\infty"),
    (r"\frac{1}{0}", r"\infty"),
    (r"\frac{1}{0}", r"\frac{2}{0}"),
    ("5%", "0.5"),
    ("50", "0.5"),  # the percent convention is not transitive
    ("0,5", "5"),
    ("1,5", "15"),
    ("1,500", "1.5"),  # three digits after a comma: a thousands group
    ("12 345", "12"),
    ("i", "1"),
    (r"\sqrt{-1}", "1"),
    (r"\sqrt{4}", "-2"),
    (r"\lfloor 2.5 \rfloor", "3"),
    ("x+y", "xy"),
    ('\n{"id": 1, "result": true}', "5"),  # the worker protocol is JSON-encoded
    (r"\begin{pmatrix}1 & 2\end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}"),
]


@pytest.mark.parametrize(("a", "b"), ATTACKS)
def test_hostile_inputs_are_not_equivalent(a, b):
    assert not is_equivalent(a, b, timeout=10.0)
    assert not is_equivalent(b, a, timeout=10.0)


# different-looking answers that are equal by a documented rule
CONVENTIONS = [
    (r"5\%", "5"),  # percent=True: a bare number equals its own percent form
    ("e", "2.718281828"),  # ten significant digits of e, cut at the last one
    ("0.3333333333", r"\frac{1}{3}"),  # likewise
    ("2+2=5", "5"),  # an equation without variables states its last side
    ("5, 5", "5"),  # a set: repeated parts count once
]


@pytest.mark.parametrize(("a", "b"), CONVENTIONS)
def test_documented_conventions(a, b):
    assert is_equivalent(a, b, timeout=10.0)
    assert is_equivalent(b, a, timeout=10.0)
