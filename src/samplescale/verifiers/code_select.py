"""Selecting among N programs by their behaviour on the prompt's PUBLIC examples.

Two ways to choose one program out of N without the hidden tests:

* **best-of-N by public tests**: score each program by the fraction of the doctest-style
  examples in its prompt (``>>> f(2)`` / ``4``) that it passes (:func:`public_tests_scorer`,
  a :class:`~samplescale.verifiers.scorers.Scorer` for
  :class:`~samplescale.strategies.BestOfN`); the filtering step of AlphaCode (Li et al.,
  2022, "Competition-Level Code Generation with AlphaCode") and CodeT's execution signal
  (Chen et al., 2022).
* **self-consistency by behaviour**: run every program on the examples' inputs and cluster
  programs whose outputs agree (:func:`behaviour_extractor`, an ``extract`` for
  :class:`~samplescale.strategies.SelfConsistency`); the majority class wins. This is
  AlphaCode's clustering, here on the public inputs only.

The hidden tests are never used here; :func:`select_offline` applies both rules to graded
pool records (where the hidden-test verdicts are known) to measure them against coverage
(pass@N with the hidden tests as the oracle).

Only examples in doctest form (``>>> call`` followed by the expected output) whose call
names the entry point are used; an expected output that is not a Python expression is
skipped. HumanEval has such examples for most problems; a problem without any gives every
program the same score / no behaviour, and the rules fall back to the first sample.
"""

from __future__ import annotations

import ast
import doctest
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from samplescale.types import Sample
from samplescale.verifiers.code import run_tests
from samplescale.verifiers.scorers import Scorer

Example = tuple[str, str]
"""One public example: the call's source and the expected value's source."""


def public_examples(code_prompt: str, entry_point: str) -> list[Example]:
    """The doctest examples of ``code_prompt`` that call ``entry_point``, as
    ``(call, expected)`` source pairs (expected outputs that do not parse are skipped)."""
    examples = []
    try:
        parsed = doctest.DocTestParser().get_examples(code_prompt)
    except ValueError:  # malformed doctest (inconsistent indentation)
        return []
    for ex in parsed:
        call, want = ex.source.strip(), ex.want.strip()
        if entry_point not in call or not want:
            continue
        try:
            ast.parse(call, mode="eval")
            ast.parse(want, mode="eval")
        except SyntaxError:
            continue
        examples.append((call, want))
    return examples


def _example_test(call: str, want: str) -> str:
    return f"assert ({call}) == ({want}), {call!r}\n"


def public_tests_scorer(
    code_prompt: str,
    entry_point: str,
    program_of: Callable[[str], str | None],
    timeout: float = 10.0,
) -> Scorer:
    """A Scorer on the probability scale: the fraction of public examples a sample passes.

    Parameters
    ----------
    code_prompt : str
        The problem's code prompt (its docstring holds the examples).
    entry_point : str
        The function the examples call.
    program_of : callable str -> str or None
        The program a sample's text gives (e.g. ``CodeTask.program`` bound to a problem).
    timeout : float
        Seconds per sandboxed run (one run per example).

    Returns
    -------
    Scorer
        Score in [0, 1]; 0 for a sample without code; 1 for every sample when the prompt
        has no usable example.
    """
    examples = public_examples(code_prompt, entry_point)

    def score(sample: Sample, answer: str | None) -> float:
        program = program_of(sample.text)
        if program is None:
            return 0.0
        if not examples:
            return 1.0
        passed = sum(
            run_tests(program, _example_test(c, w), None, timeout).passed for c, w in examples
        )
        return passed / len(examples)

    return Scorer(name="public-tests", scale="probability", fn=score)


def behaviour(
    program: str | None, examples: Sequence[Example], timeout: float = 10.0
) -> str | None:
    """The program's outputs on the examples' inputs as one string (its behaviour class).

    Each call's ``repr`` (or the exception's type name) is one line; None if the program
    is None, there are no examples, or the run did not finish.
    """
    if program is None or not examples:
        return None
    lines = "".join(
        f"try:\n    print(repr({call}))\nexcept Exception as _e:\n    print('raised', type(_e).__name__)\n"
        for call, _ in examples
    )
    r = run_tests(program, lines, None, timeout)
    return r.stdout if r.status == "passed" else None


def behaviour_extractor(
    code_prompt: str,
    entry_point: str,
    program_of: Callable[[str], str | None],
    timeout: float = 10.0,
) -> Callable[[str], str | None]:
    """An ``extract`` for self-consistency: a sample's text -> its behaviour class."""
    examples = public_examples(code_prompt, entry_point)
    return lambda text: behaviour(program_of(text), examples, timeout)


def select_offline(
    record: dict[str, Any], code_prompt: str, entry_point: str, timeout: float = 10.0
) -> dict[str, Any]:
    """Apply both selection rules to one graded pool record (from a code ``eval`` run).

    Returns ``{"coverage": bool, "first": bool, "best_of_n_public": bool,
    "behaviour_vote": bool, "examples": int}``: whether the hidden tests pass for any
    sample (pass@N), the first sample, the best-of-N pick by public tests (ties to the
    earliest) and the first sample of the largest behaviour class (samples that did not
    finish the examples do not vote; no votes: the first sample).
    """
    rows = record["samples"]
    examples = public_examples(code_prompt, entry_point)
    correct = [bool(r["correct"]) for r in rows]
    scores = []
    for r in rows:
        if r["program"] is None:
            scores.append(-1.0)
        elif not examples:
            scores.append(1.0)
        else:
            runs = [
                run_tests(r["program"], _example_test(c, w), None, timeout) for c, w in examples
            ]
            scores.append(sum(x.passed for x in runs) / len(examples))
    best = max(range(len(rows)), key=lambda i: (scores[i], -i)) if rows else 0
    classes = [behaviour(r["program"], examples, timeout) for r in rows]
    counts = Counter(c for c in classes if c is not None)
    if counts:
        top = max(counts.values())
        vote = next(i for i, c in enumerate(classes) if c is not None and counts[c] == top)
    else:
        vote = 0
    return {
        "coverage": any(correct),
        "first": bool(correct and correct[0]),
        "best_of_n_public": bool(correct and correct[best]),
        "behaviour_vote": bool(correct and correct[vote]),
        "examples": len(examples),
    }
