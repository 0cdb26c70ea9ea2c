"""Tests for samplescale.tasks: the generated arithmetic task and the jsonl loaders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from samplescale.errors import ConfigError, DataError, UnknownNameError
from samplescale.tasks import (
    TASKS,
    Problem,
    Task,
    arithmetic,
    gsm8k,
    jsonl_task,
    load_task,
    math_task,
)
from samplescale.tasks._records import MAX_DEPTH
from samplescale.tasks.arithmetic import DISTINCT_PROBLEMS

GSM8K_TEST = Path("/work/shared/data/gsm8k/test.jsonl")


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# --- arithmetic -------------------------------------------------------------------------

_ADDITION = re.compile(r"What is (\d+) \+ (\d+)\?")
# One pattern per level-3 template, recomputing the answer from the question text alone.
_WORD_PROBLEMS = (
    (
        re.compile(
            r"\w+ has (\d+) (\w+)\. (He|She) buys (\d+) more and then gives away (\d+)\. "
            r"How many \2 does (he|she) have now\?"
        ),
        lambda g: int(g[0]) + int(g[3]) - int(g[4]),
    ),
    (
        re.compile(
            r"\w+ had (\d+) (\w+)\. (He|She) gave (\d+) to a friend and then found (\d+) "
            r"more\. How many \2 does (he|she) have now\?"
        ),
        lambda g: int(g[0]) - int(g[3]) + int(g[4]),
    ),
    (
        re.compile(
            r"\w+ buys (\d+) bags of (\w+) with (\d+) \2 in each bag\. (He|She) gives "
            r"away (\d+) of them\. How many \2 does (he|she) have left\?"
        ),
        lambda g: int(g[0]) * int(g[2]) - int(g[4]),
    ),
    (
        re.compile(
            r"There are (\d+) (\w+) in a basket\. \w+ adds (\d+) more and then takes "
            r"out (\d+)\. How many \2 are in the basket now\?"
        ),
        lambda g: int(g[0]) + int(g[2]) - int(g[3]),
    ),
)


def recompute(question: str) -> int:
    """The answer to an arithmetic question, worked out from its text."""
    match = _ADDITION.fullmatch(question)
    if match:
        return int(match[1]) + int(match[2])
    results = [
        compute(m.groups())
        for pattern, compute in _WORD_PROBLEMS
        if (m := pattern.fullmatch(question))
    ]
    assert len(results) == 1, f"question matches {len(results)} templates: {question!r}"
    return results[0]


@pytest.mark.parametrize(("level", "limit"), [(1, 100), (2, 200), (3, 200)])
def test_arithmetic_gold_equals_recomputed_answer(level: int, limit: int) -> None:
    task = arithmetic(level=level, limit=limit, seed=7)  # level 1: all 100 problems
    assert task.name == "arithmetic"
    assert len(task.problems) == limit
    for problem in task.problems:
        answer = recompute(problem.question)
        assert problem.gold == str(answer)
        assert answer >= 0
        assert problem.metadata["level"] == level
        assert eval(problem.metadata["expression"]) == answer  # digits, + - * only


def test_arithmetic_operand_ranges() -> None:
    one = [_ADDITION.fullmatch(p.question) for p in arithmetic(1, 100, seed=1).problems]
    two = [_ADDITION.fullmatch(p.question) for p in arithmetic(2, 300, seed=1).problems]
    ones = {int(x) for m in one for x in m.groups()}
    twos = {int(x) for m in two for x in m.groups()}
    assert ones == set(range(10))
    assert min(twos) >= 10 and max(twos) <= 99 and len(twos) > 60


def test_arithmetic_distinct_problem_counts() -> None:
    # level 1: 10 * 10 ordered pairs; level 2: 90 * 90; level 3: 8 names * 8 items *
    # (a+b-c twice: sum over a in 5..40, b in 1..20 of (a + b) = 23760 each;
    #  a-b+c: sum over a in 5..40 of 20 a = 16200; a*b-c: 44 * 77 = 3388)
    assert DISTINCT_PROBLEMS == {1: 100, 2: 8100, 3: 64 * (2 * 23760 + 16200 + 3388)}
    assert DISTINCT_PROBLEMS[3] == 4_294_912


def test_arithmetic_level1_limit_100_is_every_pair_once() -> None:
    task = arithmetic(level=1, limit=100, seed=0)
    pairs = [tuple(map(int, _ADDITION.fullmatch(p.question).groups())) for p in task.problems]
    assert len(set(pairs)) == 100
    assert set(pairs) == {(a, b) for a in range(10) for b in range(10)}


@pytest.mark.parametrize(("level", "limit"), [(1, 50), (1, 99), (2, 2000), (3, 2000)])
def test_arithmetic_questions_are_distinct(level: int, limit: int) -> None:
    for seed in (0, 1, 2):
        questions = [p.question for p in arithmetic(level, limit, seed=seed).problems]
        assert len(questions) == limit
        assert len(set(questions)) == limit


def test_arithmetic_default_task_has_50_distinct_questions() -> None:
    # Sampling with replacement gave only 39 distinct questions out of 50 here.
    assert len({p.question for p in arithmetic().problems}) == 50
    assert len({p.question for p in load_task("arithmetic").problems}) == 50


def test_arithmetic_first_problems_do_not_depend_on_limit() -> None:
    for level in (1, 2, 3):
        assert (
            arithmetic(level, 100, seed=5).problems[:30] == arithmetic(level, 30, seed=5).problems
        )


@pytest.mark.parametrize("level", [1, 2, 3])
def test_arithmetic_limit_above_distinct_problems(level: int) -> None:
    available = DISTINCT_PROBLEMS[level]
    with pytest.raises(
        ConfigError,
        match=rf"limit must be in \[1, {available}\] for arithmetic level {level}: the "
        rf"level has only {available} distinct problems .*got limit={available + 1}",
    ):
        arithmetic(level=level, limit=available + 1)
    with pytest.raises(ConfigError, match=rf"has only {available} distinct problems"):
        load_task("arithmetic", level=level, limit=available + 1)


def test_arithmetic_limit_101_raises_for_level1() -> None:
    with pytest.raises(ConfigError, match=r"level 1: the level has only 100 distinct problems"):
        arithmetic(level=1, limit=101)


def test_arithmetic_level3_uses_every_template() -> None:
    questions = [p.question for p in arithmetic(3, 200, seed=0).problems]
    for pattern, _ in _WORD_PROBLEMS:
        assert any(pattern.fullmatch(q) for q in questions), pattern.pattern


def test_arithmetic_ids() -> None:
    task = arithmetic(level=2, limit=3)
    assert [p.id for p in task.problems] == [
        "arithmetic-L2-0000",
        "arithmetic-L2-0001",
        "arithmetic-L2-0002",
    ]
    assert len({p.id for p in arithmetic(3, 200).problems}) == 200


@pytest.mark.parametrize("level", [1, 2, 3])
def test_arithmetic_is_deterministic_by_seed(level: int) -> None:
    assert arithmetic(level, 50, seed=3) == arithmetic(level, 50, seed=3)
    first = [p.question for p in arithmetic(level, 50, seed=3).problems]
    other = [p.question for p in arithmetic(level, 50, seed=4).problems]
    assert first != other


def test_arithmetic_default_is_50_level1_problems() -> None:
    task = arithmetic()
    assert len(task.problems) == 50
    assert all(p.id.startswith("arithmetic-L1-") for p in task.problems)


@pytest.mark.parametrize("level", [0, 4, -1, "2", 2.0, True])
def test_arithmetic_bad_level(level: object) -> None:
    with pytest.raises(ConfigError, match=r"level must be one of 1, 2, 3"):
        arithmetic(level=level)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", [0, -5])
def test_arithmetic_bad_limit(limit: int) -> None:
    with pytest.raises(ConfigError, match=r"limit must be an integer >= 1"):
        arithmetic(limit=limit)


def test_arithmetic_bad_seed() -> None:
    with pytest.raises(ConfigError, match=r"seed must be an integer >= 0"):
        arithmetic(seed=-1)


# --- gsm8k ------------------------------------------------------------------------------


@pytest.mark.skipif(not GSM8K_TEST.is_file(), reason=f"GSM8K test file {GSM8K_TEST} absent")
def test_gsm8k_real_file() -> None:
    task = gsm8k(GSM8K_TEST)
    assert task.name == "gsm8k"
    assert len(task.problems) == 1319
    first = task.problems[0]
    assert first.id == "gsm8k-0000"
    assert first.question.startswith("Janet’s ducks lay 16 eggs per day")
    assert first.gold == "18"
    assert first.metadata["solution"].endswith("#### 18")
    assert task.problems[-1].id == "gsm8k-1318"
    assert all(re.fullmatch(r"-?\d+", p.gold) for p in task.problems)
    assert len(gsm8k(GSM8K_TEST, limit=10).problems) == 10


def test_gsm8k_negative_and_comma_golds(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "g.jsonl",
        [
            {"question": "What is 2 - 5?", "answer": "2 - 5 = <<2-5=-3>>-3\n#### -3"},
            {"question": "What is 10 * 100?", "answer": "10 * 100 = 1000\n#### 1,000"},
            {"question": "Big?", "answer": "Very.\n#### 1,450,000"},
            {"question": "Spaces?", "answer": "x\n####   7  "},
        ],
    )
    task = gsm8k(path)
    assert [p.gold for p in task.problems] == ["-3", "1000", "1450000", "7"]
    assert [p.id for p in task.problems] == ["gsm8k-0000", "gsm8k-0001", "gsm8k-0002", "gsm8k-0003"]
    assert task.problems[1].metadata == {"solution": "10 * 100 = 1000\n#### 1,000"}


def test_gsm8k_signs_decimals_and_thousands_groups(tmp_path: Path) -> None:
    answers = ["+5", "2.5", "-1,000", "1,234,567", "12,345.75", "0", "100000"]
    path = write_jsonl(
        tmp_path / "g.jsonl", [{"question": "q", "answer": f"x\n#### {a}"} for a in answers]
    )
    golds = [p.gold for p in gsm8k(path).problems]
    assert golds == ["5", "2.5", "-1000", "1234567", "12345.75", "0", "100000"]


@pytest.mark.parametrize(
    "raw",
    ["1 2", "3,4", "12,34,5", "1,2345", "1,000,00", ",123", "123,", "1,,000", "- 3", "1 000"],
)
def test_gsm8k_malformed_numbers_are_rejected_not_rewritten(tmp_path: Path, raw: str) -> None:
    # These used to become "12", "34", "12345", ... by deleting commas and spaces.
    path = write_jsonl(
        tmp_path / "g.jsonl",
        [
            {"question": "q", "answer": "#### 1"},
            {"question": "q", "answer": f"So.\n#### {raw}"},
        ],
    )
    with pytest.raises(
        DataError,
        match=rf"g\.jsonl:2: final answer {re.escape(repr(raw))} after '####' is not a number",
    ):
        gsm8k(path)


def test_gsm8k_limit_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    rows = [json.dumps({"question": f"q{i}", "answer": f"#### {i}"}) for i in range(5)]
    path.write_text("\n\n".join(rows) + "\n\n", encoding="utf-8")
    assert [p.gold for p in gsm8k(path).problems] == ["0", "1", "2", "3", "4"]
    assert [p.gold for p in gsm8k(path, limit=2).problems] == ["0", "1"]
    assert len(gsm8k(path, limit=100).problems) == 5


def test_gsm8k_answer_without_marker(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "g.jsonl",
        [
            {"question": "q", "answer": "#### 1"},
            {"question": "q", "answer": "The answer is 4."},
        ],
    )
    with pytest.raises(DataError, match=r"g\.jsonl:2: .*no final '#### N' line"):
        gsm8k(path)


def test_gsm8k_answer_not_a_number(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "#### four"}])
    with pytest.raises(DataError, match=r"g\.jsonl:1: final answer 'four' .* not a number"):
        gsm8k(path)


def test_gsm8k_missing_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "solution": "#### 1"}])
    with pytest.raises(DataError) as info:
        gsm8k(path)
    message = str(info.value)
    assert "g.jsonl:1" in message
    assert "missing field 'answer'" in message
    assert "fields present: 'question', 'solution'" in message


# --- MATH -------------------------------------------------------------------------------


def test_math_boxed_answers(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {
                "problem": "Half?",
                "solution": "It is $\\boxed{\\frac{1}{2}}$.",
                "level": "Level 2",
                "type": "Algebra",
            },
            {
                "problem": "Two boxes",
                "solution": "First \\boxed{1}, then \\boxed{\\sqrt{\\frac{a}{b}}}",
                "subject": "Precalculus",
            },
            {"problem": "Set", "solution": "$\\boxed{\\{1, 2\\}}$"},
            {"problem": "Given", "answer": "42", "solution": "ignored \\boxed{7}"},
            {"problem": "Numeric", "answer": 3},
            {"problem": "Short", "solution": "so $\\boxed 5$."},
            {"problem": "Fbox", "solution": "\\fbox{x^{2}}"},
        ],
    )
    task = math_task(path)
    assert task.name == "math"
    assert [p.gold for p in task.problems] == [
        "\\frac{1}{2}",
        "\\sqrt{\\frac{a}{b}}",
        "\\{1, 2\\}",
        "42",
        "3",
        "5",
        "x^{2}",
    ]
    assert [p.id for p in task.problems][:2] == ["math-0000", "math-0001"]
    first = task.problems[0]
    assert first.question == "Half?"
    assert first.metadata["level"] == "Level 2"
    assert first.metadata["type"] == "Algebra"
    assert task.problems[1].metadata["subject"] == "Precalculus"
    assert "problem" not in first.metadata and "answer" not in task.problems[3].metadata


def test_math_unbalanced_boxed(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"problem": "p", "solution": "\\boxed{\\frac{1}{2}"}])
    with pytest.raises(DataError, match=r"m\.jsonl:1: field 'solution': unbalanced braces"):
        math_task(path)


def test_math_no_boxed(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"problem": "p", "solution": "It is 4."}])
    with pytest.raises(DataError, match=r"m\.jsonl:1: field 'solution' has no \\boxed"):
        math_task(path)


def test_math_neither_answer_nor_solution(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"problem": "p", "level": "Level 1"}])
    with pytest.raises(DataError) as info:
        math_task(path)
    assert "m.jsonl:1" in str(info.value)
    assert "'answer'" in str(info.value) and "'solution'" in str(info.value)
    assert "fields present: 'problem', 'level'" in str(info.value)


def test_math_missing_problem(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"question": "p", "answer": "1"}])
    with pytest.raises(
        DataError,
        match=r"m\.jsonl:1: missing field 'problem'; fields present: "
        r"'question', 'answer'",
    ):
        math_task(path)


# --- generic jsonl ----------------------------------------------------------------------


def test_jsonl_field_mapping(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"uid": "a1", "prompt": "2+2?", "target": 4, "source": "x"},
            {"uid": 7, "prompt": "3+3?", "target": " 6 "},
        ],
    )
    task = jsonl_task(
        path, question_field="prompt", answer_field="target", id_field="uid", name="mine"
    )
    assert task.name == "mine"
    assert [(p.id, p.question, p.gold) for p in task.problems] == [
        ("a1", "2+2?", "4"),
        ("7", "3+3?", "6"),
    ]
    assert task.problems[0].metadata == {"source": "x"}


def test_jsonl_default_ids_and_limit(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl", [{"question": f"q{i}", "answer": str(i)} for i in range(3)]
    )
    task = jsonl_task(path, limit=2)
    assert task.name == "jsonl"
    assert [p.id for p in task.problems] == ["jsonl-0000", "jsonl-0001"]


def test_jsonl_duplicate_ids(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [{"id": "x", "question": "q", "answer": "1"}, {"id": "x", "question": "q", "answer": "2"}],
    )
    with pytest.raises(DataError, match=r"d\.jsonl:2: duplicate id 'x'.*first seen on line 1"):
        jsonl_task(path, id_field="id")


def test_jsonl_missing_mapped_field(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl", [{"question": "q", "answer": "1"}, {"question": "q", "gold": "1"}]
    )
    with pytest.raises(
        DataError,
        match=r"d\.jsonl:2: missing field 'answer'; fields present: "
        r"'question', 'gold'",
    ):
        jsonl_task(path)


@pytest.mark.parametrize("value", [None, "", "   ", [1], {"a": 1}, True])
def test_jsonl_bad_field_value(tmp_path: Path, value: object) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": value}])
    with pytest.raises(DataError, match=r"d\.jsonl:1: field 'answer' must be a non-empty string"):
        jsonl_task(path)


def test_jsonl_empty_field_names(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "1"}])
    with pytest.raises(ConfigError, match=r"question_field must be a non-empty string"):
        jsonl_task(path, question_field="")
    with pytest.raises(ConfigError, match=r"id_field must be a non-empty string or None"):
        jsonl_task(path, id_field="")


# --- errors shared by the file loaders --------------------------------------------------

LOADERS = [gsm8k, math_task, jsonl_task]


@pytest.mark.parametrize("loader", LOADERS)
def test_missing_file(tmp_path: Path, loader) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DataError, match=r"nope\.jsonl' does not exist"):
        loader(missing)
    with pytest.raises(DataError, match=r"is a directory"):
        loader(tmp_path)


@pytest.mark.parametrize("loader", LOADERS)
def test_invalid_json(tmp_path: Path, loader) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"question": "q", "answer": "#### 1", "problem": "p"}\n{"question": \n', encoding="utf-8"
    )
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:2: invalid JSON"):
        loader(path)


@pytest.mark.parametrize("loader", LOADERS)
def test_line_not_an_object(tmp_path: Path, loader) -> None:
    path = write_jsonl(tmp_path / "list.jsonl", [[1, 2]])
    with pytest.raises(DataError, match=r"list\.jsonl:1: expected a JSON object, got list"):
        loader(path)


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_empty_file(tmp_path: Path, loader, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=r"empty\.jsonl' is empty"):
        loader(path)


@pytest.mark.parametrize("loader", LOADERS)
def test_deeply_nested_json_is_a_data_error(tmp_path: Path, loader) -> None:
    path = tmp_path / "deep.jsonl"
    deep = "[" * 100_000 + "]" * 100_000  # used to raise RecursionError
    path.write_text(
        '{"question": "q", "answer": "#### 1", "problem": "p"}\n'
        f'{{"question": "q", "answer": "#### 1", "problem": "p", "x": {deep}}}\n',
        encoding="utf-8",
    )
    with pytest.raises(DataError, match=r"deep\.jsonl:2: JSON nested too deeply; at most 100 "):
        loader(path)


def test_nesting_limit_is_max_depth(tmp_path: Path) -> None:
    def line(depth: int) -> str:  # the line's object is level 1
        nested = "[" * (depth - 1) + "]" * (depth - 1)
        return f'{{"question": "q", "answer": "1", "x": {nested}}}\n'

    assert MAX_DEPTH == 100
    ok = tmp_path / "ok.jsonl"
    ok.write_text(line(MAX_DEPTH), encoding="utf-8")
    value = jsonl_task(ok).problems[0].metadata["x"]
    for _ in range(MAX_DEPTH - 2):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert value == []
    bad = tmp_path / "bad.jsonl"
    bad.write_text(line(MAX_DEPTH + 1), encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: JSON nested too deeply"):
        jsonl_task(bad)


def test_numeric_answers_keep_their_text(tmp_path: Path) -> None:
    numbers = [
        "1e20",
        "0.00001",
        "12345678901234567890.5",
        "1E+5",
        "-0",
        "2.50",
        "7",
        "123456789012345678901234567890",
        "9" * 5000,  # more digits than int() converts: kept as text, no error
    ]
    path = tmp_path / "n.jsonl"
    path.write_text(
        "".join(f'{{"question": "q{i}", "answer": {n}}}\n' for i, n in enumerate(numbers)),
        encoding="utf-8",
    )
    assert [p.gold for p in jsonl_task(path).problems] == numbers
    m = tmp_path / "m.jsonl"
    m.write_text('{"problem": "p", "answer": 1e20}\n', encoding="utf-8")
    assert math_task(m).problems[0].gold == "1e20"


def test_numeric_ids_keep_their_text(tmp_path: Path) -> None:
    path = tmp_path / "ids.jsonl"
    path.write_text(
        '{"id": 7, "question": "a", "answer": "1"}\n'
        '{"id": 12345678901234567890123, "question": "b", "answer": "2"}\n'
        '{"id": "x", "question": "c", "answer": "3"}\n'
        '{"id": 1e2, "question": "d", "answer": "4"}\n',
        encoding="utf-8",
    )
    task = jsonl_task(path, id_field="id")
    assert [p.id for p in task.problems] == ["7", "12345678901234567890123", "x", "1e2"]


def test_metadata_numbers_are_json_numbers(tmp_path: Path) -> None:
    path = tmp_path / "meta.jsonl"
    path.write_text(
        '{"question": "q", "answer": "1", "n": 5, "x": 2.5, "big": 12345678901234567890123,'
        ' "nested": [1, {"y": 1e3, "z": null, "t": true}], "s": "5", "huge": 1' + "0" * 400 + "}\n",
        encoding="utf-8",
    )
    meta = jsonl_task(path).problems[0].metadata
    assert meta == {
        "n": 5,
        "x": 2.5,
        "big": 12345678901234567890123,
        "nested": [1, {"y": 1000.0, "z": None, "t": True}],
        "s": "5",
        "huge": 10**400,
    }
    assert type(meta["n"]) is int and type(meta["x"]) is float
    assert type(meta["nested"][1]["y"]) is float and type(meta["s"]) is str
    m = tmp_path / "m.jsonl"
    m.write_text('{"problem": "p", "answer": "1", "level": 3}\n', encoding="utf-8")
    assert math_task(m).problems[0].metadata == {"level": 3}


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("1e400", r"field 'extra' holds the number '1e400', outside the float range"),
        ("9" * 5000, r"field 'extra' holds an integer with 5000 digits"),
        ('[1, {"a": -1e999}]', r"field 'extra' holds the number '-1e999'"),
    ],
)
def test_metadata_numbers_that_do_not_fit(tmp_path: Path, value: str, match: str) -> None:
    path = tmp_path / "meta.jsonl"
    path.write_text(f'{{"question": "q", "answer": "1", "extra": {value}}}\n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"meta\.jsonl:1: {match}"):
        jsonl_task(path)


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["answer", "extra"])
def test_nan_and_infinity_are_rejected(tmp_path: Path, loader, token: str, field: str) -> None:
    # Python's json accepts them; they used to become gold answers "nan" / "inf".
    path = tmp_path / "nan.jsonl"
    fields = {"question": '"q"', "problem": '"p"', "answer": '"#### 1"', "extra": '"x"'}
    fields[field] = token
    body = ", ".join(f'"{k}": {v}' for k, v in fields.items())
    path.write_text(
        f'{{"question": "q", "answer": "#### 1", "problem": "p"}}\n{{{body}}}\n', encoding="utf-8"
    )
    with pytest.raises(
        DataError, match=rf"nan\.jsonl:2: invalid JSON \({token} is not a JSON value\)"
    ):
        loader(path)


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"question": "q", "answer": "#### 1"}\n{"question": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"latin\.jsonl:2: not valid UTF-8"):
        gsm8k(path)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"question": "q", "answer": "#### 1"}\n')
    assert gsm8k(path).problems[0].gold == "1"


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("limit", [0, -1])
def test_file_loader_bad_limit(tmp_path: Path, loader, limit: int) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "#### 1"}])
    with pytest.raises(ConfigError, match=r"limit must be an integer >= 1 or None"):
        loader(path, limit=limit)


# --- registry and load_task -------------------------------------------------------------


def test_registry_names() -> None:
    assert TASKS.names() == ["arithmetic", "gsm8k", "jsonl", "math"]


def test_load_task_arithmetic() -> None:
    task = load_task("arithmetic", level=3, seed=5)
    assert isinstance(task, Task)
    assert len(task.problems) == 50
    assert task == arithmetic(level=3, limit=50, seed=5)
    assert len(load_task("Arithmetic", limit=4).problems) == 4


@pytest.mark.parametrize(
    ("name", "option", "message"),
    [
        ("arithmetic", {"path": "d.jsonl"}, "does not use --data (path); it takes --level, --limit"),
        ("arithmetic", {"question_field": "q"}, "does not use --question-field"),
        ("gsm8k", {"level": 2}, "does not use --level (level); it takes --data, --limit"),
        ("math", {"answer_field": "a"}, "does not use --answer-field"),
        ("jsonl", {"level": 1}, "it takes --data, --limit, --question-field, --answer-field"),
    ],
)
def test_an_option_a_task_does_not_use_is_refused(name, option, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"task {name!r} {message}")
                       if message.startswith("does") else re.escape(message)):
        load_task(name, **option)


@pytest.mark.parametrize("name", ["gsm8k", "math", "jsonl"])
def test_load_task_needs_path(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"task '{name}' needs a data path \(--data PATH\)"):
        load_task(name)


def test_load_task_files(tmp_path: Path) -> None:
    g = write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "x\n#### 1,234"}])
    assert load_task("gsm8k", path=g).problems[0].gold == "1234"
    m = write_jsonl(tmp_path / "m.jsonl", [{"problem": "p", "solution": "\\boxed{\\pi}"}])
    assert load_task("math", path=str(m)).problems[0].gold == "\\pi"
    j = write_jsonl(tmp_path / "j.jsonl", [{"q": "p", "a": "z"}, {"q": "p2", "a": "y"}])
    task = load_task("jsonl", path=j, question_field="q", answer_field="a", limit=1)
    assert [(p.question, p.gold) for p in task.problems] == [("p", "z")]


def test_load_task_unknown_name() -> None:
    with pytest.raises(
        UnknownNameError,
        match=r"unknown task 'gsm9k'; valid: arithmetic, "
        r"gsm8k, jsonl, math",
    ):
        load_task("gsm9k")


def test_problem_prompt_contains_question() -> None:
    problem = arithmetic(limit=1).problems[0]
    assert isinstance(problem, Problem)
    prompt = problem.prompt()
    assert problem.question in str(prompt.model_dump())
