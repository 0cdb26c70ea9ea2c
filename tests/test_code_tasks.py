"""Code extraction, program construction, the code tasks and their evaluation (issue 14)."""

from __future__ import annotations

import gzip
import json
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
    >>> double(-1)
    -2
    >>> print("not a call of double")
    not a call of double
    """
'''
RIGHT = PROMPT + "    return 2 * x\n"
RIGHT_TOO = PROMPT + "    return x + x\n"
WRONG = PROMPT + "    return x * x\n"  # passes double(2) only


def test_public_examples_are_the_doctests_that_call_the_entry_point():
    from samplescale.verifiers.code_select import public_examples

    assert public_examples(PROMPT, "double") == [("double(2)", "4"), ("double(-1)", "-2")]
    assert public_examples("def f():\n    pass\n", "f") == []


def test_best_of_n_by_public_tests_and_behaviour_vote():
    from samplescale.strategies import BestOfN, SelfConsistency
    from samplescale.verifiers.code_select import behaviour_extractor, public_tests_scorer

    texts = [WRONG[len(PROMPT) :], RIGHT[len(PROMPT) :], RIGHT_TOO[len(PROMPT) :], "no code"]

    def program_of(text):
        return None if text == "no code" else PROMPT + text

    backend = ScriptedBackend(lambda prompt, i: texts[i % 4])
    from samplescale.types import Prompt

    params = SamplingParams(n=4, temperature=1.0)
    scorer = public_tests_scorer(PROMPT, "double", program_of)
    r = BestOfN(scorer=scorer).run(backend, Prompt.user("x"), params)
    assert list(r.scores) == [0.5, 1.0, 1.0, 0.0] and r.selected == 1
    extract = behaviour_extractor(PROMPT, "double", program_of)
    sc = SelfConsistency(extract=extract, equivalent=str.__eq__)
    v = sc.run(ScriptedBackend(lambda prompt, i: texts[i % 4]), Prompt.user("x"), params)
    assert v.selected == 1 and v.answer == "4\n-2\n"


def test_select_offline_measures_both_rules_against_coverage():
    from samplescale.verifiers.code_select import select_offline

    rows = [
        {"program": WRONG, "correct": False},
        {"program": None, "correct": False},
        {"program": RIGHT, "correct": True},
        {"program": RIGHT_TOO, "correct": True},
    ]
    out = select_offline({"samples": rows}, PROMPT, "double")
    assert out == {
        "coverage": True,
        "first": False,
        "best_of_n_public": True,
        "behaviour_vote": True,
        "examples": 2,
    }


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
