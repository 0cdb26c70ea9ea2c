"""Code extraction, program construction, the code tasks and their evaluation (issue 14)."""

from __future__ import annotations

import gzip
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from samplescale.backends.fake import ScriptedBackend
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, DataError
from samplescale.evaluate import evaluate
from samplescale.summary import summarize_pool
from samplescale.tasks import load_task
from samplescale.tasks.code import CHAT_PREFIX, CHAT_STOP, COMPLETION_STOP, humaneval, mbpp
from samplescale.verifiers.code import build_program, extract_code

HUMANEVAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "humaneval"
HUMANEVAL_FILE = next(
    (
        p / "HumanEval.jsonl.gz"
        for p in (HUMANEVAL, Path("/work/shared/data/humaneval"))
        if (p / "HumanEval.jsonl.gz").exists()
    ),
    None,
)
needs_humaneval = pytest.mark.skipif(HUMANEVAL_FILE is None, reason="HumanEval data not found")

FENCE = "```"


@pytest.mark.parametrize(
    "text, entry, expected",
    [
        # the block that defines the entry point, example calls dropped
        (
            f"Here:\n{FENCE}python\nimport math\n\ndef g(x):\n    return x\n\nprint(g(1))\n{FENCE}\n",
            "g",
            "import math\n\ndef g(x):\n    return x\n",
        ),
        # an earlier block without the entry point is skipped
        (
            f"{FENCE}python\nprint(f(2))\n{FENCE}\nthen\n{FENCE}py\ndef f(x):\n    return 2\n{FENCE}",
            "f",
            "def f(x):\n    return 2\n",
        ),
        # a block of another language is skipped; an unclosed last block counts
        (
            f"{FENCE}bash\ndef f(x): rm -rf\n{FENCE}\n{FENCE}python\ndef f(x):\n    return 3\n",
            "f",
            "def f(x):\n    return 3\n",
        ),
        # no fence: the whole reply when it defines the entry point
        ("def f(x):\n    return x\nassert f(1) == 1\n", "f", "def f(x):\n    return x\n"),
        # a bare body is indented to continue the prompt's signature
        (f"{FENCE}python\nreturn x + 1\n{FENCE}", "f", "    return x + 1\n"),
        (f"{FENCE}\n  y = x * 2\n  return y\n{FENCE}", "f", "    y = x * 2\n    return y\n"),
        # no Python at all
        ("I cannot do that.", "f", None),
        (f"{FENCE}python\ndef f(:\n{FENCE}", "f", None),
    ],
)
def test_extract_code_table(text, entry, expected):
    assert extract_code(text, entry) == expected


def test_build_program_follows_the_official_harness():
    prompt = 'def f(x):\n    """Double x."""\n'
    assert (
        build_program(prompt, "    return 2 * x\n", "completion") == prompt + "    return 2 * x\n"
    )
    chat = build_program(prompt, "def f(x):\n    return 2 * x\n", "chat", entry_point="f")
    assert chat == prompt + "\ndef f(x):\n    return 2 * x\n"
    body = build_program(prompt, f"{FENCE}\nreturn 2 * x\n{FENCE}", "chat", entry_point="f")
    assert body == prompt + "    return 2 * x\n"
    assert build_program(prompt, "no code here", "chat", entry_point="f") is None
    with pytest.raises(ConfigError, match="mode"):
        build_program(prompt, "", "fim")  # type: ignore[arg-type]


@needs_humaneval
def test_humaneval_loads_and_every_canonical_solution_passes():
    task = humaneval(HUMANEVAL_FILE)
    assert len(task.problems) == 164 and task.name == "humaneval"
    p32 = next(p for p in task.problems if p.id == "HumanEval/32")
    assert p32.metadata["entry_point"] == "find_zero"
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: task.grade(p, p.gold), task.problems))
    assert [r.status for r in results] == ["passed"] * 164
    wrong = task.grade(
        task.problems[0], task.problems[0].metadata["code_prompt"] + "    return True\n"
    )
    assert wrong.status == "failed" and "assert candidate" in wrong.detail


@needs_humaneval
def test_humaneval_prompts():
    chat = humaneval(HUMANEVAL_FILE, limit=1)
    prompt = chat.prompt(chat.problems[0])
    assert prompt.prefix == CHAT_PREFIX and "has_close_elements" in prompt.messages[0].content
    comp = humaneval(HUMANEVAL_FILE, mode="completion", limit=1)
    assert comp.name == "humaneval-completion"
    assert comp.prompt(comp.problems[0]).text == comp.problems[0].metadata["code_prompt"]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


MBPP_ROWS = [
    {
        "task_id": 2,
        "text": "Write a function to find the shared elements from the given two lists.",
        "code": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n",
        "test_list": [
            "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
            "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))",
        ],
        "test_setup_code": "",
    }
]


def test_mbpp_loads_grades_and_names_bad_fields(tmp_path):
    task = mbpp(_write(tmp_path / "mbpp.jsonl", MBPP_ROWS))
    (p,) = task.problems
    assert p.id == "mbpp/2" and p.metadata["entry_point"] == "similar_elements"
    assert "Your code should pass these tests" in p.question
    assert task.grade(p, p.gold).status == "passed"
    assert task.grade(p, "def similar_elements(a, b):\n    return ()\n").status == "failed"
    bad = dict(MBPP_ROWS[0], test_list="assert True")
    with pytest.raises(DataError, match="test_list"):
        mbpp(_write(tmp_path / "bad.jsonl", [bad]))


def test_task_files_may_be_gzipped_and_modes_are_checked(tmp_path):
    raw = "".join(json.dumps(r) + "\n" for r in MBPP_ROWS).encode()
    (tmp_path / "m.jsonl.gz").write_bytes(gzip.compress(raw))
    assert len(load_task("mbpp", path=tmp_path / "m.jsonl.gz").problems) == 1
    (tmp_path / "broken.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="broken.jsonl.gz"):
        load_task("mbpp", path=tmp_path / "broken.jsonl.gz")
    with pytest.raises(ConfigError, match="mode"):
        mbpp(tmp_path / "m.jsonl.gz", mode="fim")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="timeout"):
        mbpp(tmp_path / "m.jsonl.gz", timeout=0)


CODE_ROWS = [
    {
        "task_id": "t/0",
        "prompt": 'def add(a, b):\n    """Add."""\n',
        "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
        "entry_point": "add",
    },
    {
        "task_id": "t/1",
        "prompt": 'def neg(a):\n    """Negate."""\n',
        "test": "def check(candidate):\n    assert candidate(2) == -2\n",
        "entry_point": "neg",
    },
]


def _replies(prompt, i):
    """Greedy (temperature 0) is right for add, wrong for neg; samples alternate."""
    text = prompt.messages[0].content
    right = (
        "def add(a, b):\n    return a + b\n" if "add" in text else "def neg(a):\n    return -a\n"
    )
    wrong = "def add(a, b):\n    return a - b\n" if "add" in text else "def neg(a):\n    return a\n"
    return right if i % 2 == 0 else wrong


def test_evaluate_a_code_task_reports_pass_at_k_and_every_program(tmp_path):
    task = load_task("code-jsonl", path=_write(tmp_path / "c.jsonl", CODE_ROWS))
    backend = ScriptedBackend(_replies)
    records = list(evaluate(task, backend, SamplingParams(n=4, temperature=0.8)))
    assert [r["id"] for r in records] == ["t/0", "t/1"]
    for r in records:
        assert r["n"] == 4
        assert sum(s["test_status"] == "passed" for s in r["samples"]) == r["c"]
        assert all(
            s["program"].startswith(CODE_ROWS[0 if r["id"] == "t/0" else 1]["prompt"])
            for s in r["samples"]
        )
        assert {s["test_status"] for s in r["samples"]} <= {"passed", "failed"}
    summary = summarize_pool(records)
    assert summary["problems"] == 2 and summary["curve"][0]["k"] == 1
    c = [r["c"] for r in records]
    assert summary["curve"][0]["pass"]["mean"] == pytest.approx(sum(x / 4 for x in c) / 2)


def test_code_tasks_use_their_stop_sequences():
    from samplescale.evaluate_code import code_params
    from samplescale.tasks.code import CodeTask

    chat = CodeTask(name="x", problems=(), mode="chat")
    comp = CodeTask(name="x", problems=(), mode="completion")
    assert code_params(chat, SamplingParams()).stop == CHAT_STOP
    assert code_params(comp, SamplingParams()).stop == COMPLETION_STOP
    assert code_params(comp, SamplingParams(stop=("END",))).stop == ("END",)


PROMPT = '''def double(x: int) -> int:
    """Double x.
    >>> double(2)
    4
    >>> print("not a call of double")
    not a call of double
    >>> double(-1)  # a comment
    -2

    double(0) == 0
    double(n) -> 2 * n
    double(3) => six
    """
'''


@pytest.mark.parametrize(
    "prompt, entry, expected",
    [
        # doctests calling the entry point (comment dropped), then one-line examples with
        # literal arguments and value
        (PROMPT, "double", [("double(2)", "4"), ("double(-1)", "-2"), ("double(0)", "0")]),
        # the last doctest right before the docstring's closing quotes
        ('def f(x):\n    """\n    >>> f(1)\n    2\n    """\n', "f", [("f(1)", "2")]),
        ("def f(s):\n    \"\"\"Reverse.\n    f('ab') \u279e 'ba'.\n    f([1]) -> [1]\n    \"\"\"\n", "f",
         [("f('ab')", "'ba'"), ("f([1])", "[1]")]),
        ("def f():\n    pass\n", "f", []),
        (PROMPT, None, []),
        ("    >>> f(1\n    2\n", "f", []),  # not an expression
    ],
)
def test_public_examples_table(prompt, entry, expected):
    from samplescale.verifiers.code_examples import public_examples

    assert public_examples(prompt, entry) == expected


def _runs(*rows):
    from samplescale.verifiers.code_select import ExampleRun

    return [ExampleRun(*r) for r in rows]


# outputs on (double(2), double(-1), double(0)) and examples passed
SQUARE = ("x * x", ("4", "1", "0"), 2)
TWICE = ("2 * x", ("4", "-2", "0"), 3)
ABS = ("abs(2 * x)", ("4", "2", "0"), 2)
CRASH = ("crash", None, 0)  # raised at import: no outputs
NONE = (None, None, 0)


@pytest.mark.parametrize(
    "rows, best, mbr, cluster",
    [
        # one class passes everything: best-of-N and filtering take it, MBR-exec the
        # largest class (which is wrong)
        ([NONE, SQUARE, TWICE, TWICE, ABS, ABS, SQUARE, ABS], 2, 4, 2),
        # no program passes everything: best-of-N takes the earliest of the tied, the
        # clustering rules the largest class of them
        ([SQUARE, ABS, CRASH, ABS, SQUARE, ABS], 0, 1, 1),
        # no sample holds a program
        ([NONE, NONE], None, None, None),
        # programs but none finished the examples: the first program
        ([NONE, CRASH, CRASH], 1, 1, 1),
    ],
)
def test_selection_rules_table(rows, best, mbr, cluster):
    from samplescale.verifiers.code_select import (
        behaviour_classes,
        select_best_public,
        select_by_behaviour,
        select_filter_and_cluster,
    )

    runs = _runs(*rows)
    assert select_best_public(runs, 3).selected == best
    assert select_by_behaviour(runs, 3).selected == mbr
    assert select_filter_and_cluster(runs, 3).selected == cluster
    classes = behaviour_classes(runs)
    for i, r in enumerate(runs):  # a class is the first sample with the same outputs
        assert classes[i] == (None if r.outputs is None else
                              next(j for j, q in enumerate(runs) if q.outputs == r.outputs))
    # without public examples every rule takes the first program, and says why
    for rule in (select_best_public, select_by_behaviour, select_filter_and_cluster):
        choice = rule(runs, 0)
        first = next((i for i, r in enumerate(runs) if r.program is not None), None)
        assert choice.selected == first
        assert ("no public example" in choice.reason) or first is None


def test_code_strategies_run_each_program_once_and_say_why():
    from samplescale.strategies import get_strategy
    from samplescale.types import Prompt

    bodies = ["return x * x", "return 2 * x", "no code", "return x + x", "return abs(2 * x)"]
    texts = [b if b == "no code" else f"{FENCE}python\ndef double(x):\n    {b}\n{FENCE}"
             for b in bodies]
    params = SamplingParams(n=5, temperature=1.0)
    expect = {"best-of-n-public-tests": 1, "mbr-exec": 1, "filter-and-cluster": 1}
    for name, selected in expect.items():
        r = get_strategy(name).run(ScriptedBackend(texts), Prompt.user(PROMPT), params)
        assert r.selected == selected and r.answer == "def double(x):\n    return 2 * x\n"
        assert r.scores == (2 / 3, 1.0, None, 1.0, 2 / 3) and r.score_scale == "probability"
        why = r.trace[-1]
        assert why["event"] == "code-selection" and why["rule"] == name
        assert why["examples"] == 3 and why["passed"] == [2, 3, None, 3, 2]
        assert why["behaviour_classes"] == [0, 1, None, 1, 4]
        assert r.usage.scorer_calls == 4  # one sandboxed run per program
    assert "passes 3 of 3 public examples, the most of 4 programs (2 tied" in (
        get_strategy("best-of-n-public-tests")
        .run(ScriptedBackend(texts), Prompt.user(PROMPT), params).trace[-1]["reason"])
    with pytest.raises(ConfigError, match="entry_point"):
        get_strategy("mbr-exec", entry_point="not an identifier")


@needs_humaneval
@pytest.mark.slow
def test_humaneval_public_examples_pass_on_the_canonical_solutions():
    """113 of 164 HumanEval prompts have usable examples (314 in all); the canonical solution
    passes every one of them except in HumanEval/47 and /116, whose prompts state a wrong
    example (median([-10, 4, 6, 1000, 10, 20]) is 8.0, not 15.0; sort_array's examples
    contradict its text)."""
    task = humaneval(HUMANEVAL_FILE)
    tests = [task.public_tests(p) for p in task.problems]
    assert sum(bool(t.examples) for t in tests) == 113
    assert sum(len(t.examples) for t in tests) == 314
    programs = [p.gold for p in task.problems]
    with ThreadPoolExecutor(max_workers=4) as pool:  # the sandbox pool runs them in parallel
        runs = list(pool.map(lambda tp: tp[0].run_programs([tp[1]])[0], zip(tests, programs)))
    short = {p.id for p, t, r in zip(task.problems, tests, runs) if r.passed != len(t.examples)}
    assert short == {"HumanEval/47", "HumanEval/116"}


DOUBLE_ROWS = [
    {
        "task_id": "d/0",
        "prompt": PROMPT,
        "test": "def check(candidate):\n    assert candidate(-3) == -6\n",
        "entry_point": "double",
    }
]


def _double_replies(prompt, i):
    """Reply 0 is the greedy one; the pool of four is abs(2x), 2x, abs(x+x), x*x."""
    bodies = ["2 * x", "abs(2 * x)", "2 * x", "abs(x + x)", "x * x"]
    return f"{FENCE}python\ndef double(x):\n    return {bodies[i % 5]}\n{FENCE}"


def test_evaluate_runs_code_strategies_on_the_pool_a_pool_run_draws(tmp_path):
    from samplescale.strategies import get_strategy

    task = load_task("code-jsonl", path=_write(tmp_path / "d.jsonl", DOUBLE_ROWS))
    params = SamplingParams(n=4, temperature=0.8)
    (pool,) = evaluate(task, ScriptedBackend(_double_replies), params)
    assert [s["correct"] for s in pool["samples"]] == [False, True, False, False]
    picks = {}
    for name in ("best-of-n-public-tests", "mbr-exec", "filter-and-cluster"):
        (rec,) = evaluate(task, ScriptedBackend(_double_replies), params,
                          strategy=get_strategy(name))
        assert rec["strategy"] == name and rec["selection"]["rule"] == name
        assert rec["selection"]["examples"] == 3 and rec["selection"]["reason"]
        # the same samples as the pool run, graded by the hidden tests
        assert [s["text"] for s in rec["samples"]] == [s["text"] for s in pool["samples"]]
        for key in ("n", "c", "labels", "correct_label"):
            assert rec[key] == pool[key]
        assert [s["public_passed"] for s in rec["samples"]] == [2, 3, 2, 2]
        assert [s["behaviour_class"] for s in rec["samples"]] == [0, 1, 0, 3]
        assert rec["correct"] == rec["samples"][rec["selected"]]["correct"]
        assert rec["program"] == rec["samples"][rec["selected"]]["program"]
        picks[name] = (rec["selected"], rec["correct"])
    # abs(2x) and abs(x+x) behave alike on the public inputs and outvote 2x
    assert picks == {"best-of-n-public-tests": (1, True), "mbr-exec": (0, False),
                     "filter-and-cluster": (1, True)}


def test_code_strategies_and_code_tasks_refuse_each_other(tmp_path):
    from samplescale.strategies import get_strategy

    code = load_task("code-jsonl", path=_write(tmp_path / "d.jsonl", DOUBLE_ROWS))
    with pytest.raises(ConfigError, match="best-of-n-public-tests, filter-and-cluster, mbr-exec"):
        evaluate(code, ScriptedBackend(["x"]), SamplingParams(n=2),
                 strategy=get_strategy("self-consistency"))
    with pytest.raises(ConfigError, match="needs a code task"):
        evaluate(load_task("arithmetic", limit=1), ScriptedBackend(["x"]), SamplingParams(n=2),
                 strategy=get_strategy("mbr-exec"))


MBPP_EXCERPT = Path(__file__).parent / "data" / "mbpp-1-27.jsonl"


def test_mbpp_excerpt_every_reference_solution_passes_and_a_wrong_one_fails():
    """The first 27 problems of the original mbpp.jsonl (CC-BY-4.0; tests/data/mbpp-1-27.LICENSE):
    every reference ``code`` passes its ``test_list`` in the sandbox, and each problem's
    tests reject the next problem's code."""
    task = mbpp(MBPP_EXCERPT)
    assert len(task.problems) == 27 and task.problems[0].id == "mbpp/1"
    assert task.problems[0].metadata["entry_point"] == "min_cost"
    verdicts = [task.grade(p, p.gold).status for p in task.problems]
    assert verdicts == ["passed"] * 27
    shifted = task.problems[1:] + task.problems[:1]
    assert all(task.grade(p, q.gold).status in ("failed", "error")
               for p, q in zip(task.problems[:3], shifted[:3]))


def test_cli_eval_on_a_code_task_writes_programs_and_resumes(capsys, tmp_path, llama_backend):
    from samplescale.cli import main

    data = _write(tmp_path / "code.jsonl", CODE_ROWS)
    out = tmp_path / "run"
    argv = ["eval", "--task", "code-jsonl", "--data", str(data), "--n", "4"]
    argv += ["--max-tokens", "32", "--output", str(out), "--model", str(llama_backend.model_path)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "pass@k" in stdout and "greedy" in stdout
    lines = (out / "results.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    assert [r["id"] for r in records] == ["t/0", "t/1"]
    for r in records:
        assert len(r["samples"]) == 4 and r["c"] == sum(s["correct"] for s in r["samples"])
        for s in r["samples"]:
            assert s["test_status"] in {"passed", "failed", "timeout", "error"}
            assert s["correct"] == (s["test_status"] == "passed")
            prompt = next(row["prompt"] for row in CODE_ROWS if row["task_id"] == r["id"])
            assert s["program"] is None or s["program"].startswith(prompt)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 4 and [c["k"] for c in summary["curve"]] == [1, 2, 4]
    # resume: drop the last record; it is redone with the same draws and verdicts
    (out / "results.jsonl").write_text(lines[0] + "\n")
    assert main(argv) == 0
    assert "1 of 2 problems already done" in capsys.readouterr().out
    again = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert again[1]["samples"] == records[1]["samples"]


@pytest.mark.slow
def test_cli_eval_and_generate_run_a_code_strategy(capsys, tmp_path, llama_backend):
    """``eval --strategy`` on a code task writes strategy records that are also a pool
    (summary: accuracy beside pass@k) and resumes; ``generate`` says why it chose."""
    from samplescale.cli import main
    from samplescale.records import check_record

    data = _write(tmp_path / "code.jsonl", DOUBLE_ROWS + CODE_ROWS[:1])
    out = tmp_path / "run"
    model = ["--model", str(llama_backend.model_path), "--max-tokens", "32", "--n", "2"]
    argv = ["eval", "--task", "code-jsonl", "--data", str(data), "--output", str(out),
            "--strategy", "filter-and-cluster", *model]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "filter-and-cluster" in stdout and "pass@k" in stdout
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["d/0", "t/0"]
    for r in records:
        assert check_record(r, "strategy") is None and check_record(r, "pool") is None
        assert r["selection"]["rule"] == "filter-and-cluster" and r["selection"]["reason"]
        if r["selected"] is None:
            assert r["program"] is None and not r["correct"]
        else:
            assert r["correct"] == r["samples"][r["selected"]]["correct"]
    assert [r["selection"]["examples"] for r in records] == [3, 0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["strategy"] == "filter-and-cluster"
    assert [c["k"] for c in summary["pool"]["curve"]] == [1, 2]
    assert main(argv) == 0
    assert "2 of 2 problems already done" in capsys.readouterr().out
    assert main(["generate", "--strategy", "mbr-exec", PROMPT, *model]) == 0
    assert "why:" in capsys.readouterr().out
