r"""Math-object comparison inside the verification worker (math-verify plus three guards).

Runs only in the worker process of :mod:`samplescale.verifiers._verify_worker` (it
imports sympy and math-verify, and math-verify may run for ever). Each answer is read
into a math object by math-verify's own parser, ``math_verify.parse("$answer$")`` with
``LatexExtractionConfig`` (numbers, expressions, relations, intervals, sets, tuples,
matrices, ``\text{}`` answers), and two objects are compared with ``math_verify.verify``
under the rules below, each a fix for a false positive of math-verify 0.9 used as is:

* **Symmetric.** ``verify`` is asymmetric (an equation predicted against a non-equation
  gold is cut to its right-hand side; a gold relation is compared with a predicted set,
  not the other way round). Two answers are equivalent only if ``verify`` accepts them
  in *both* orders, with set/relation comparison allowed both ways
  (``allow_set_relation_comp=True``), so ``0 < x < 12.5`` equals ``(0, 12.5)`` whichever
  is gold, and ``11a+c`` never equals ``7 = 11a+c``.
* **Numbers compare exactly or to a relative tolerance, never an absolute one.**
  math-verify rounds floats to 6 decimal places and cuts differences below about
  ``1e-15`` to zero (``evalf(chop=True)``), so ``\frac{1}{2^{99}}`` equalled
  ``\frac{1}{2^{98}}`` and ``0.0000001`` equalled ``0.0000002``. Its number comparison
  (``math_verify.grader.sympy_numeric_eq``, used for plain numbers and for the entries of
  tuples, sets, intervals and matrices) is replaced by :func:`numeric_eq`: a decimal
  means the exact rational it writes, and two numbers are equal when their difference
  is exactly zero (sympy's ``is_zero``; undecided means not equal here, and math-verify
  then tries its exact ``simplify``), or when one of them is a bare decimal of at least
  :data:`MIN_APPROX_DIGITS` significant digits that is the other value rounded or cut at
  its last digit, a tolerance relative to the digits written (``0.0833333333333333`` is
  ``\frac{1}{12}``; ``3.14159`` is not ``\pi``; ``\sqrt{2}`` is not ``1.414214``).
  Expressions with variables are left to math-verify's exact symbolic comparison.
* **An equation is cut to its right-hand side only if its left-hand side names a
  quantity** (see :func:`_is_name`: ``x = 5``, ``|AB| = 5``, ``f(x) = 5`` and
  ``2 + 3 = 5`` give ``5``) and the other answer is not an equation; ``0`` never equals
  ``3x+4y+14=0`` (math-verify cuts any predicted equation to its right-hand side).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from samplescale.verifiers.numbers import MIN_APPROX_DIGITS

logger = logging.getLogger(__name__)

#: Significant digits at which a value is evaluated to compare it with a decimal.
DIGITS = 50


def _decimal_text(value: Any) -> str:
    """The digits of a sympy Float as written (up to 15 significant digits, no trailing
    zeros, no exponent): ``Float("0.333333")`` gives ``"0.333333"``."""
    text = format(Decimal(str(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _exact(expr: Any) -> Any:
    """``expr`` with each Float replaced by the rational its decimal digits write."""
    from sympy import Float, Rational

    floats = expr.atoms(Float)
    return expr.xreplace({f: Rational(_decimal_text(f)) for f in floats}) if floats else expr


def _approximates(decimal: Any, value: Any) -> bool:
    """Whether the bare decimal ``decimal`` is ``value`` rounded or cut at its last
    written digit, with at least :data:`MIN_APPROX_DIGITS` significant digits."""
    from sympy import Rational

    text = _decimal_text(decimal).lstrip("-+")
    if len(text.replace(".", "").lstrip("0")) < MIN_APPROX_DIGITS:
        return False
    places = len(text.split(".", 1)[1]) if "." in text else 0
    difference = abs(value.evalf(DIGITS) - Rational(_decimal_text(decimal)))
    return bool(difference < Rational(1, 10**places))


def numbers_equal(a: Any, b: Any) -> bool:
    """Equality of two sympy numbers (no free symbols); see the module docstring."""
    from sympy import Float

    a_exact, b_exact = _exact(a), _exact(b)
    if a_exact == b_exact:
        return True
    if isinstance(a, Float) and not b.atoms(Float):
        return _approximates(a, b_exact)
    if isinstance(b, Float) and not a.atoms(Float):
        return _approximates(b, a_exact)
    try:
        return bool((a_exact - b_exact).is_zero)  # exact: None (undecided) is not equal
    except Exception:
        return False


def numeric_eq(a: Any, b: Any, float_rounding: int = 0, numeric_precision: int = 0) -> bool:
    """Drop-in replacement for ``math_verify.grader.sympy_numeric_eq``.

    Same signature (the rounding arguments are ignored: no absolute tolerance). Matrices
    of the same shape compare entry by entry; numbers as :func:`numbers_equal`;
    anything with variables only if the difference expands to exactly zero (math-verify
    then tries its own exact ``simplify``).
    """
    from sympy import MatrixBase, MatrixExpr, expand

    try:
        if isinstance(a, (MatrixBase, MatrixExpr)) or isinstance(b, (MatrixBase, MatrixExpr)):
            a, b = _doit(a), _doit(b)
            return (
                isinstance(a, MatrixBase)
                and isinstance(b, MatrixBase)
                and a.shape == b.shape
                and all(numeric_eq(x, y) for x, y in zip(a, b, strict=True))
            )
        a, b = _doit(a), _doit(b)
        if not getattr(a, "free_symbols", True) and not getattr(b, "free_symbols", True):
            if getattr(a, "is_number", False) and getattr(b, "is_number", False):
                return numbers_equal(a, b)
            return False
        return bool(expand(_exact(a) - _exact(b)) == 0)
    except Exception:  # sympy raises many kinds of errors on odd objects
        logger.debug("numeric comparison failed", exc_info=True)
        return False


def _doit(expr: Any) -> Any:
    try:
        return expr.doit()
    except Exception:
        return expr


def install() -> None:
    """Make math-verify compare numbers with :func:`numeric_eq` (in this process only).

    Raises
    ------
    ImportError
        If math-verify no longer has ``grader.sympy_numeric_eq`` (a version this module
        was not written for: fail loudly rather than grade with an absolute tolerance).
    """
    import math_verify.grader as grader

    if not hasattr(grader, "sympy_numeric_eq"):
        raise ImportError("math_verify.grader.sympy_numeric_eq is missing; unsupported version")
    grader.sympy_numeric_eq = numeric_eq


def _equation_parts(expr: Any) -> list[Any] | None:
    """The ``Eq`` parts of an equation or of a chain ``x = 3 + 4 = 7``, else None."""
    from latex2sympy2_extended.logic import And
    from sympy import Eq

    if isinstance(expr, Eq):
        return [expr]
    args = getattr(expr, "_unsorted_args", None) if isinstance(expr, And) else None
    if args and all(isinstance(a, Eq) for a in args):
        return list(args)
    return None


def _is_name(lhs: Any, rhs: Any) -> bool:
    """Whether ``lhs = rhs`` states the value of a named quantity: ``x``, ``a_3``,
    ``|AB|``, ``A:B``, ``\\frac{NO}{BO}``, ``f(x)``, ``(p, q)`` (no sum and no number
    other than 1 and -1, from a division), or ``2 + 3 = 5`` (no variables on either
    side: the last side is the value stated, as in a worked computation, even where the
    arithmetic before it is wrong); ``3x + 4y = 0`` and ``7 = 11a + c`` state no value."""
    from sympy import Add, Number

    if not getattr(lhs, "free_symbols", None):  # "2 + 3 = 5" states 5
        return not getattr(rhs, "free_symbols", None)
    return not lhs.has(Add) and lhs.atoms(Number) <= {1, -1}


def _as_value(expr: Any, other: Any) -> Any:
    """The value an equation states, when ``other`` is not an equation.

    ``x = 5`` gives ``5`` and a chain ``x = 3 + 4 = 7`` its last right side, if the
    left-hand side is a name (:func:`_is_name`). A list of such equations gives the
    list of values: ``x = 1, x = 2`` (one name) the set {1, 2}; ``AB = 4, CD = 5``
    (several names) the tuple (4, 5) in the written order, compared with the other
    answer's parts in their written order. Anything else is returned unchanged.
    """
    from sympy import FiniteSet, Tuple

    if _equation_parts(other) is not None:
        return expr
    parts = _equation_parts(expr)
    if parts is not None:
        return parts[-1].rhs if _is_name(parts[0].lhs, parts[-1].rhs) else expr
    items = getattr(expr, "_unsorted_args", None) if isinstance(expr, FiniteSet) else None
    if not items or _set_has_equation(other):
        return expr
    values, names = [], set()
    for item in items:
        item_parts = _equation_parts(item)
        if item_parts is None or not _is_name(item_parts[0].lhs, item_parts[-1].rhs):
            return expr
        names.add(item_parts[0].lhs)
        values.append(item_parts[-1].rhs)
    if len(names) == 1:
        return FiniteSet(*values)
    if isinstance(other, FiniteSet) and not isinstance(other, Tuple):
        return Tuple(*values)
    return expr


def _set_has_equation(expr: Any) -> bool:
    items: Any = getattr(expr, "_unsorted_args", None) or getattr(expr, "args", ())
    return any(_equation_parts(item) is not None for item in items)


def _ordered(expr: Any, other: Any) -> Any:
    """A set answer as the tuple of its parts in written order, when ``other`` is a
    tuple of named values (see :func:`_as_value`)."""
    from sympy import FiniteSet, Tuple

    items = getattr(expr, "_unsorted_args", None)
    if isinstance(other, Tuple) and isinstance(expr, FiniteSet) and items:
        return Tuple(*items)
    return expr


def parse_answer(latex: str) -> Any | None:
    """The math object of one answer (math-verify's parser), or None if it has none."""
    from math_verify import LatexExtractionConfig, parse

    # parsing_timeout=None: no signal.alarm; the parent kills a stuck worker.
    parsed = parse(f"${latex}$", extraction_config=[LatexExtractionConfig()], parsing_timeout=None)
    return parsed[0] if parsed and not isinstance(parsed[0], str) else None


def _one_way(gold: Any, pred: Any) -> bool:
    from math_verify import verify

    return bool(verify(gold, pred, timeout_seconds=None, allow_set_relation_comp=True))


def equivalent(a: str, b: str) -> bool:
    """Whether the LaTeX answers ``a`` and ``b`` denote the same math object (symmetric)."""
    x, y = parse_answer(a), parse_answer(b)
    if x is None or y is None:
        return False
    x, y = _as_value(x, y), _as_value(y, x)
    x, y = _ordered(x, y), _ordered(y, x)
    if (_equation_parts(x) is None) != (_equation_parts(y) is None):
        return False  # math-verify would cut the equation to its right side: "3x+4y=0" vs "0"
    return _one_way(x, y) and _one_way(y, x)
