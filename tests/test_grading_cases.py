r"""The public table of grading cases (``tests/data/grading_cases.jsonl``).

Each row is a (gold, model output) pair from a public source, named in its ``source``
field: most are Math-Verify's own regression tests (real MATH, NuminaMath and
OpenThoughts outputs, MIT License: ``tests/data/grading_cases.LICENSE``), grouped by
``kind``. Both texts go through the grading pipeline
of an evaluation: :func:`extract_answer` on each, then :func:`is_equivalent`.

Columns: ``verdict`` is the right verdict worked out by hand; ``samplescale`` is what
the grader gives (it differs from ``verdict`` only towards "not equivalent", each time
with a ``note``); ``math_verify`` is Math-Verify's documented verdict in its tests.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from samplescale.verifiers.math import extract_answer, is_equivalent

TABLE = Path(__file__).parent / "data" / "grading_cases.jsonl"
CASES = [json.loads(line) for line in TABLE.read_text(encoding="utf-8").splitlines() if line]


def grade(pred_text: str, gold_text: str) -> bool:
    """The verdict of an evaluation on one (model output, gold) pair."""
    return is_equivalent(extract_answer(pred_text), extract_answer(gold_text), timeout=10.0)


def test_the_table_is_large_sourced_and_never_grades_a_wrong_answer_right():
    assert len(CASES) >= 150
    assert all(c["source"] and c["kind"] for c in CASES)
    assert len(Counter(c["kind"] for c in CASES)) >= 8
    # the expected grader output errs only towards "not equivalent", and says why
    assert not [c for c in CASES if c["samplescale"] and not c["verdict"]]
    assert all(c["note"] for c in CASES if c["samplescale"] != c["verdict"])


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{i:03d}-{c['kind'].split()[0]}" for i, c in enumerate(CASES)]
)
def test_grading_case(case):
    assert grade(case["pred"], case["gold"]) is case["samplescale"]
