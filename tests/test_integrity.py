"""Evaluation integrity: nothing reused, merged or dropped without a word (issue 11).

Most tests drive ``run_eval`` (the ``samplescale eval`` machinery: run.json, results.jsonl,
resume) over a scripted backend, so they are fast; the ones about real prompts (too long
for the context, invalid text) use the embedded model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from samplescale.backends.fake import ScriptedBackend
from samplescale.cli import build_parser, main
from samplescale.cli_eval import run_eval
from samplescale.cli_generate import why_no_answer
from samplescale.cli_results import load_results
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, DataError, PromptError, VerifierError
from samplescale.evaluate import evaluate, problem_digest
from samplescale.tasks import load_task
from samplescale.tasks.base import Problem, Task


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def echo_backend(_args=None) -> ScriptedBackend:
    """Answers every question with its own first number, so a changed question shows."""

    def reply(prompt, i):
        words = prompt.messages[-1].content.split()
        number = next(w.strip("?.") for w in words if w.strip("?.").isdigit())
        return f"The answer is {number}."

    return ScriptedBackend(reply)


@pytest.fixture()
def run_files(tmp_path):
    """A data file of three problems, a stand-in model file and an eval command for them."""
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [{"question": f"Say {q}?", "answer": str(q)} for q in (3, 4, 5)],
    )
    model = tmp_path / "m.gguf"
    model.write_bytes(b"not a model; the scripted backend answers")
    out = tmp_path / "run"

    def run(*extra, backend=echo_backend, output=out):
        argv = ["eval", "--task", "jsonl", "--data", str(data), "-n", "2", "--model", str(model)]
        if output is not None:
            argv += ["--output", str(output)]
        args = build_parser().parse_args([*argv, *extra])
        from samplescale.cli_sampling import sampling_params

        return run_eval(args, sampling_params(args), backend, None)

    return data, model, out, run


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# --- 1. a changed input is never resumed onto ------------------------------------------


def test_a_changed_data_file_is_refused_with_what_changed(run_files):
    data, _, out, run = run_files
    assert run() == 0
    rows = [json.loads(x) for x in lines_of(data)]
    rows[1]["question"] = "Say 9?"
    write_jsonl(data, rows)
    with pytest.raises(ConfigError, match=r"other settings \(data\.sha256: '[0-9a-f]{64}' -> "):
        run()


def test_default_output_of_a_changed_data_file_is_a_fresh_run(run_files, tmp_path, monkeypatch):
    data, _, _, run = run_files
    monkeypatch.chdir(tmp_path)
    assert run(output=None) == 0
    rows = [json.loads(x) for x in lines_of(data)]
    rows[1]["question"], rows[1]["answer"] = "Say 9?", "9"
    write_jsonl(data, rows)
    assert run(output=None) == 0
    dirs = sorted((tmp_path / "runs").iterdir())
    assert len(dirs) == 2  # the edited file is another run; nothing is reused
    answers = [
        [json.loads(x)["samples"][0]["answer"] for x in lines_of(d / "results.jsonl")] for d in dirs
    ]
    assert sorted(answers) == sorted([["3", "4", "5"], ["3", "9", "5"]])


def test_a_record_of_a_changed_problem_is_refused(tmp_path):
    task = Task(name="t", problems=(Problem(id="a", question="Say 3?", gold="3"),))
    rec = next(evaluate(task, echo_backend(), SamplingParams(n=1)))
    path = write_jsonl(tmp_path / "results.jsonl", [rec])
    same = {"a": problem_digest(task, task.problems[0])}
    assert [r["id"] for r in load_results(path, same, "pool")] == ["a"]
    for changed in (
        Problem(id="a", question="Say 4?", gold="3"),
        Problem(id="a", question="Say 3?", gold="4"),
        Problem(id="a", question="Say 3?", gold="3", metadata={"level": 2}),
    ):
        digests = {"a": problem_digest(task, changed)}
        with pytest.raises(ConfigError, match="line 1: problem 'a' has changed since"):
            load_results(path, digests, "pool")
    other = task.model_copy(update={"instruction": "Answer tersely."})
    with pytest.raises(ConfigError, match="has changed since"):
        load_results(path, {"a": problem_digest(other, task.problems[0])}, "pool")
    # the source line is not part of the identity: a moved line is the same problem
    moved = Problem(id="a", question="Say 3?", gold="3", source="d.jsonl:9")
    assert problem_digest(task, moved) == same["a"]


def test_run_json_records_content_digests_and_threads(run_files):
    data, model, out, run = run_files
    assert run() == 0
    settings = json.loads((out / "run.json").read_text())
    import hashlib

    assert settings["data"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert settings["model"] == {
        "file": "m.gguf",
        "bytes": model.stat().st_size,
        "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
    }
    assert settings["threads"] == len(os.sched_getaffinity(0))
    model.write_bytes(b"another model of another size")
    with pytest.raises(ConfigError, match=r"other settings \(model\.bytes: \d+ -> 29; model\.sha256"):
        run()
    model.write_bytes(b"not a model; the scripted backend answers")
    with pytest.raises(ConfigError, match="threads: .* -> 1"):
        run("--threads", "1")


# --- 2. the results file: torn lines, schema, nothing deleted ----------------------------


def test_an_unterminated_whole_record_is_kept_and_never_merged(run_files):
    _, _, out, run = run_files
    assert run() == 0
    results = out / "results.jsonl"
    lines = lines_of(results)
    results.write_text(lines[0] + "\n" + lines[1])  # the last newline was lost
    assert run() == 0
    again = lines_of(results)
    assert again[:2] == lines[:2] and len(again) == 3
    assert [json.loads(x)["id"] for x in again] == ["jsonl-0000", "jsonl-0001", "jsonl-0002"]
    assert run() == 0 and lines_of(results) == again  # and it reads back cleanly


def test_a_torn_last_line_is_moved_aside_not_deleted(run_files, capsys):
    _, _, out, run = run_files
    assert run() == 0
    results = out / "results.jsonl"
    lines = lines_of(results)
    results.write_text(lines[0] + "\n" + lines[1][:50])
    assert run() == 0
    assert "moved an unfinished last line of results.jsonl (50 bytes" in capsys.readouterr().out
    assert (out / "results.jsonl.torn").read_text() == lines[1][:50] + "\n"
    again = lines_of(results)
    assert again[0] == lines[0] and len(again) == 3
    for redone, first in zip(again[1:], lines[1:]):  # the same draws again (same seeds)
        assert json.loads(redone)["samples"] == json.loads(first)["samples"]


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda r: r.pop("n"), "line 2: n: Field required"),
        (lambda r: r.update(n="2"), "line 2: n: Input should be a valid integer"),
        (lambda r: r.update(c=2), "line 2: c is 2 but 1 samples are marked correct"),
        (lambda r: r.update(labels=[0]), "line 2: n is 2 but the record has 2 samples and 1 labels"),
        (lambda r: r.update(status="done"), "line 2: status must be 'ok' or 'error'"),
        (lambda r: r["samples"][0].update(tokens=-1), "line 2: samples.0.tokens"),
        (lambda r: r.update(id="jsonl-0099"), "line 2: problem 'jsonl-0099' is not in this task"),
    ],
)
def test_hand_edited_records_are_reported_with_line_and_reason(run_files, edit, reason):
    _, _, out, run = run_files
    assert run() == 0
    results = out / "results.jsonl"
    recs = [json.loads(x) for x in lines_of(results)]
    recs[1]["samples"][1]["correct"] = False  # one correct sample of two: c=1
    recs[1]["c"] = 1
    edit(recs[1])
    write_jsonl(results, recs)
    before = results.read_bytes()
    with pytest.raises(ConfigError) as exc:
        run()
    assert reason in str(exc.value)
    assert "samplescale never deletes results" in str(exc.value)
    assert results.read_bytes() == before


def test_every_bad_line_is_listed_at_once_and_bytes_are_kept(run_files):
    _, _, out, run = run_files
    assert run() == 0
    results = out / "results.jsonl"
    lines = lines_of(results)
    damaged = (
        lines[0].encode()
        + b"\n"
        + lines[1].encode().replace(b"Say", b"S\xffy")
        + b"\n"
        + lines[2].replace('{"status": "ok",', '{"status": "ok", "status": "ok",').encode()
        + b"\n"
        + lines[0].replace('"n": 2', '"n": 3').encode()
        + b"\n"
    )
    results.write_bytes(damaged)
    with pytest.raises(ConfigError) as exc:
        run()
    msg = str(exc.value)
    assert "has 3 line(s) that are not valid records" in msg
    assert "line 2: not UTF-8 text (byte 0xff at column" in msg
    assert "line 3: invalid record (the key 'status' is given twice)" in msg
    assert "line 4: n is 3 but the record has 2 samples" in msg
    assert results.read_bytes() == damaged
    # an exact duplicate line counts once
    results.write_text("\n".join(lines + lines[:1]) + "\n")
    assert run() == 0


def test_two_different_records_of_one_problem_are_refused(run_files):
    _, _, out, run = run_files
    assert run() == 0
    results = out / "results.jsonl"
    lines = lines_of(results)
    other = json.loads(lines[0])
    other["greedy"]["text"] = "edited"
    results.write_text("\n".join([*lines, json.dumps(other)]) + "\n")
    with pytest.raises(ConfigError, match="line 4: a second, different record of problem "
                       "'jsonl-0000' \\(the first is line 1\\)"):
        run()


# --- 3. bounds on numeric flags ----------------------------------------------------------


CORES = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "--threads", "100000"], f"--threads must be in [1, {CORES}]"),
        (["eval", "--threads", "0"], f"--threads must be in [1, {CORES}]"),
        (["generate", "hi", "--threads", str(CORES + 1)], f"--threads must be in [1, {CORES}]"),
        (["serve", "--threads", "2048"], f"--threads must be in [1, {CORES}]"),
        (["eval", "--draft-k", "0", "--draft-model", "x.gguf"], "--draft-k must be in [1, 32]"),
        (["eval", "--drafts", "17", "--draft-model", "x.gguf"], "--drafts must be in [1, 16]"),
        (["serve", "--port", "70000"], "--port must be in [0, 65535]"),
        (["serve", "--max-queue", "0"], "--max-queue must be in [1, 100000]"),
        (["serve", "--max-concurrency", "5000"], "--max-concurrency must be in [1, 1024]"),
        (["serve", "--max-samples", "100000"], "--max-samples must be in [1, 4096]"),
        (["serve", "--max-request-tokens", "0"], "--max-request-tokens must be in [1, "),
        (["serve", "--max-body-bytes", str(2**31)], "--max-body-bytes must be in [1, "),
        (["serve", "--upstream-in-flight", "0", "--upstream", "http://127.0.0.1:9/v1"],
         "--upstream-in-flight must be in [1, 1024]"),
        (["eval", "--limit", "0"], "limit must be an integer >= 1"),
        (["eval", "--level", "7"], "level"),
        (["eval", "-n", "0"], "n: "),
        (["eval", "--max-tokens", "-5"], "max_tokens"),
        (["eval", "--seed", "-1"], "seed"),
    ],
)
def test_numeric_flags_out_of_range_get_one_line_errors(capsys, argv, message):
    pytest.importorskip("fastapi")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_backend_refuses_more_threads_than_cores_before_loading():
    from samplescale.backends.llamacpp import LlamaCppBackend

    for bad in (0, CORES + 1, 100_000, 2.0, True):
        with pytest.raises(ConfigError, match=rf"n_threads must be an integer in \[1, {CORES}\]"):
            LlamaCppBackend("/nonexistent.gguf", n_threads=bad)


# --- 4. a problem that cannot be run is recorded, the run goes on ------------------------


@pytest.fixture(scope="module")
def hostile_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    rows = [
        {"question": "What is 1 + 2?", "answer": "3"},
        {"question": "Say 7. " + "x " * 9000, "answer": "7"},  # over the 4096-cell context
        {"question": "What is 2 + 2?\ud800", "answer": "4"},  # a lone surrogate
        {"question": "What is 3 + 3?", "answer": "6"},
    ]
    path = d / "hostile.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.llama
def test_unrunnable_problems_become_error_records_and_the_run_goes_on(
    capsys, tmp_path, hostile_data, llama_backend
):
    args = build_parser().parse_args(
        ["eval", "--task", "jsonl", "--data", str(hostile_data), "-n", "2", "--max-tokens", "8",
         "--output", str(tmp_path / "run"), "--model", str(llama_backend.model_path)]
    )
    from samplescale.cli_sampling import sampling_params

    assert run_eval(args, sampling_params(args), lambda a: llama_backend, None) == 0
    out = capsys.readouterr().out
    recs = [json.loads(x) for x in lines_of(tmp_path / "run" / "results.jsonl")]
    assert [r["status"] for r in recs] == ["ok", "error", "error", "ok"]
    assert recs[1]["error"]["type"] == "PromptError" and "exceeds the context" in recs[1]["error"]["message"]
    assert "unpaired surrogate '\\ud800' at character" in recs[2]["error"]["message"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["problems"] == 4
    assert [e["id"] for e in summary["problem_errors"]] == ["jsonl-0001", "jsonl-0002"]
    ok = [r for r in recs if r["status"] == "ok"]
    # errors count as wrong: pass@1 is the mean over all four problems
    expected = sum(r["c"] / r["n"] for r in ok) / 4
    assert summary["curve"][0]["pass"]["mean"] == pytest.approx(expected)
    assert "2 of 4 problems could not be run; they count as wrong" in out
    # the error records are final for this run: a rerun resumes past them
    assert run_eval(args, sampling_params(args), lambda a: llama_backend, None) == 0
    assert "4 of 4 problems already done" in capsys.readouterr().out


@pytest.mark.llama
def test_on_error_stop_names_the_problem_and_its_line(tmp_path, hostile_data, llama_backend):
    args = build_parser().parse_args(
        ["eval", "--task", "jsonl", "--data", str(hostile_data), "-n", "2", "--max-tokens", "8",
         "--output", str(tmp_path / "run"), "--model", str(llama_backend.model_path),
         "--on-error", "stop"]
    )
    from samplescale.cli_sampling import sampling_params

    with pytest.raises(PromptError, match=rf"problem jsonl-0001 \({hostile_data}:2\): prompt"):
        run_eval(args, sampling_params(args), lambda a: llama_backend, None)
    assert len(lines_of(tmp_path / "run" / "results.jsonl")) == 1  # the first one is kept


@pytest.mark.llama
def test_an_oversized_prompt_is_refused_before_it_is_tokenized(llama_backend, monkeypatch):
    from samplescale.types import Prompt

    def never(*a, **k):
        raise AssertionError("tokenized a prompt that is too long by its size alone")

    monkeypatch.setattr(llama_backend._model, "tokenize", never)
    huge = "7 " * 10_000_000  # 20 MB
    with pytest.raises(PromptError, match=r"prompt is 20000\d+ bytes, more than 4096 tokens"):
        llama_backend.tokenize_prompt(Prompt.user(huge))


def test_a_verifier_failure_is_an_error_record(monkeypatch):
    import samplescale.evaluate_records as ev

    def broken(answer, gold):
        if gold == "4":
            raise RecursionError("maximum recursion depth exceeded")
        return answer == gold

    monkeypatch.setattr(ev, "is_equivalent", broken)
    task = Task(
        name="t",
        problems=(
            Problem(id="a", question="Say 3?", gold="3"),
            Problem(id="b", question="Say 4?", gold="4"),
            Problem(id="c", question="Say 5?", gold="5"),
        ),
    )
    recs = list(evaluate(task, echo_backend(), SamplingParams(n=2)))
    assert [r["status"] for r in recs] == ["ok", "error", "ok"]
    assert recs[1]["error"] == {
        "type": "VerifierError",
        "message": "the verifier failed on answer '4': RecursionError: maximum recursion "
        "depth exceeded",
    }
    with pytest.raises(VerifierError, match="problem b: the verifier failed"):
        list(evaluate(task, echo_backend(), SamplingParams(n=2), on_error="stop"))


def test_a_run_where_every_problem_fails_still_reports(tmp_path):
    from samplescale.summary import summarize_pool, summarize_strategy

    recs = [
        {"status": "error", "id": "a", "problem_digest": "x",
         "error": {"type": "PromptError", "message": "too long"}},
    ]
    s = summarize_pool(recs)
    assert s["curve"] == [] and s["n"] is None and s["greedy"]["mean"] == 0.0
    assert s["problem_errors"] == [{"id": "a", "reason": "too long"}]
    t = summarize_strategy(recs)
    assert t["accuracy"]["mean"] == 0.0 and t["strategy"] is None


# --- 6. options that do not apply are errors ---------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "d.jsonl"], "task 'arithmetic' does not use --data (path)"),
        (["--question-field", "q"], "task 'arithmetic' does not use --question-field"),
        (["--task", "gsm8k", "--data", "d.jsonl", "--level", "2"], "task 'gsm8k' does not use --level"),
        (["--task", "math", "--data", "d.jsonl", "--answer-field", "a"], "does not use --answer-field"),
    ],
)
def test_options_the_task_does_not_use_are_refused(capsys, argv, message):
    assert main(["eval", *argv]) == 2
    assert message in capsys.readouterr().err


# --- 7. library arguments are checked ----------------------------------------------------


def test_library_entry_points_check_argument_types():
    from samplescale.aggregate import cluster, vote
    from samplescale.backends.llamacpp import LlamaCppBackend
    from samplescale.metrics import maj_at_k
    from samplescale.strategies import beam_search, best_of_n, self_consistency

    for run in (self_consistency, best_of_n, beam_search):
        with pytest.raises(ConfigError, match="backend must be a samplescale backend"):
            run(None, "What is 2 + 2?")
    with pytest.raises(ConfigError, match="prompt must be a Prompt or str, got int"):
        self_consistency(ScriptedBackend(["x"]), 42)
    with pytest.raises(ConfigError, match="params must be a SamplingParams or None, got dict"):
        self_consistency(ScriptedBackend(["x"]), "hi", {"n": 2})
    with pytest.raises(ConfigError, match="rng must be a numpy.random.Generator"):
        self_consistency(ScriptedBackend(["x"]), "hi", None, 7)
    with pytest.raises(ConfigError, match="model_path must be a path to a GGUF file"):
        LlamaCppBackend(123)
    with pytest.raises(ConfigError, match="labels must be a sequence .*a string is not a list"):
        maj_at_k("77", "7", 1)
    with pytest.raises(ConfigError, match="labels must be a sequence"):
        maj_at_k({"7": 1}, "7", 1)
    assert maj_at_k(["7", "7"], "7", 1) == 1.0
    with pytest.raises(ConfigError, match="answers must be a sequence"):
        cluster("77")
    with pytest.raises(ConfigError, match=r"answers\[1\] must be a str or None, got int"):
        vote(["7", 7])
    task = Task(name="t", problems=(Problem(id="a", question="q", gold="1"),))
    with pytest.raises(ConfigError, match="task must be a Task"):
        next(evaluate("arithmetic", ScriptedBackend(["x"]), SamplingParams()))
    with pytest.raises(ConfigError, match="params must be a SamplingParams, got NoneType"):
        next(evaluate(task, ScriptedBackend(["x"]), None))
    with pytest.raises(ConfigError, match="on_error must be 'record' or 'stop'"):
        next(evaluate(task, ScriptedBackend(["x"]), SamplingParams(), on_error="skip"))


def test_duplicate_keys_and_fifos_in_data_files(tmp_path):
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"question": "a", "answer": "1", "answer": "2"}\n')
    with pytest.raises(DataError, match=r"dup.jsonl:1: the JSON object names the key 'answer' twice"):
        load_task("jsonl", path=dup)
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"question": "a", "answer": "1", "meta": {"k": 1, "k": 2}}\n')
    with pytest.raises(DataError, match="names the key 'k' twice"):
        load_task("jsonl", path=nested)
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="is not a regular file"):
        load_task("gsm8k", path=fifo)


# --- 8. an empty API key never opens the server ------------------------------------------


def test_an_empty_api_key_is_refused(capsys, monkeypatch):
    pytest.importorskip("fastapi")
    from samplescale.server import create_app

    for argv in (["serve", "--api-key", ""], ["serve", "--api-key", "  "],
                 ["serve", "--upstream", "http://127.0.0.1:9/v1", "--upstream-api-key", ""]):
        assert main(argv) == 2
        assert "is empty" in capsys.readouterr().err
    monkeypatch.setenv("SAMPLESCALE_API_KEY", "")
    assert main(["serve"]) == 2
    assert "--api-key (or SAMPLESCALE_API_KEY) is empty" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="api_key must be a non-empty str"):
        create_app(ScriptedBackend(["x"]), "m", api_key="")


# --- 9. a result without an answer says why ----------------------------------------------


def test_why_no_answer_names_the_stop_reason_failures_and_scorer_errors():
    from samplescale.strategies import BestOfN, SelfConsistency
    from samplescale.verifiers.scorers import Scorer

    r = SelfConsistency().run(
        ScriptedBackend(["I am not sure.", RuntimeError("upstream timed out")]), "q",
        SamplingParams(n=2),
    )
    assert why_no_answer(r) == [
        "1 of 2 samples failed: RuntimeError: upstream timed out",
        "1 samples state no final answer that could be read",
    ]

    scorer = Scorer(name="judge", scale="probability", fn=lambda s, a: 1.5)  # off its scale
    r = BestOfN(scorer=scorer).run(ScriptedBackend(["The answer is 3."]), "q", SamplingParams(n=2))
    assert r.answer is None
    lines = why_no_answer(r)
    assert lines[0].startswith("the scorer failed on 2 samples: sample 0: ") and "judge" in lines[0]


# --- from the attack on the first version ------------------------------------------------


def test_a_grader_that_cannot_run_stops_the_evaluation(monkeypatch):
    import samplescale.evaluate_records as ev
    from samplescale.errors import MissingDependencyError, SamplescaleError

    task = Task(name="t", problems=(Problem(id="a", question="Say 3?", gold="3"),))
    for exc in (MissingDependencyError("math-verify is not importable"),
                SamplescaleError("could not start the math-verify worker process"),
                ImportError("x"), OSError(24, "Too many open files")):
        def broken(answer, gold, exc=exc):
            raise exc

        monkeypatch.setattr(ev, "is_equivalent", broken)
        with pytest.raises(type(exc)):
            list(evaluate(task, echo_backend(), SamplingParams(n=1)))


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda r: r.update(labels=[7, 7]), "labels[0] is 7, outside the classes [0, 2)"),
        (lambda r: r.update(labels=[1, 0], correct_label=1),
         "samples[1] is correct but its label 0 is not correct_label 1"),
        (lambda r: r.update(labels=[None, 0]), "labels[0] must be None exactly when"),
    ],
)
def test_labels_must_agree_with_the_samples(run_files, edit, reason):
    _, _, out, run = run_files
    assert run() == 0
    results = out / "results.jsonl"
    recs = [json.loads(x) for x in lines_of(results)]
    edit(recs[1])
    write_jsonl(results, recs)
    with pytest.raises(ConfigError) as exc:
        run()
    assert f"line 2: {reason}" in str(exc.value)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('"tokens": 16', '"tokens": 1' + "0" * 400, "has more than 18 digits"),
        ('"tokens": 16', '"tokens": 1' + "0" * 5000, "has more than 18 digits"),
        ('"mean_logprob": -0.1', '"mean_logprob": NaN', "NaN is not a JSON number"),
        ('"mean_logprob": -0.1', '"mean_logprob": -Infinity', "-Infinity is not a JSON number"),
        ('"mean_logprob": -0.1', '"mean_logprob": -1e400', "beyond the float range"),
    ],
)
def test_numbers_a_record_cannot_hold_are_bad_lines(run_files, old, new, reason):
    _, _, out, run = run_files
    assert run() == 0
    results = out / "results.jsonl"
    lines = lines_of(results)
    assert old in lines[1]
    lines[1] = lines[1].replace(old, new, 1)
    results.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as exc:
        run()
    assert "line 2: invalid record (" in str(exc.value) and reason in str(exc.value)


@pytest.mark.parametrize("kind", ["directory", "fifo", "device-link"])
@pytest.mark.parametrize("name", ["results.jsonl", "results.jsonl.torn"])
def test_a_results_file_that_is_not_a_regular_file_is_refused(tmp_path, kind, name):
    path = tmp_path / name
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_results(tmp_path / "results.jsonl", {}, "pool")


def test_more_library_misuse_gets_clear_errors():
    from samplescale.aggregate import argmax, cluster
    from samplescale.backends.fake import ToyLM
    from samplescale.errors import UnknownNameError
    from samplescale.strategies import get_strategy, self_consistency

    task = Task(name="t", problems=(Problem(id="a", question="q", gold="1"),))
    backend, params = ScriptedBackend(["x"]), SamplingParams()
    for seed in ("x", None, 1.5, True):
        with pytest.raises(ConfigError, match="seed must be an integer >= 0"):
            evaluate(task, backend, params, seed=seed)  # refused at the call, not on iteration
    with pytest.raises(ConfigError, match="seed must be an integer >= 0, got -1"):
        evaluate(task, backend, params, seed=-1)
    for skip in (None, 5, "a"):
        with pytest.raises(ConfigError, match="skip must be a container of problem ids"):
            evaluate(task, backend, params, skip=skip)
    with pytest.raises(ConfigError, match="on_start must be a callable"):
        evaluate(task, backend, params, on_start=5)
    with pytest.raises(UnknownNameError, match="strategy name must be a str, got NoneType"):
        get_strategy(None)
    with pytest.raises(ConfigError, match="got the class ToyLM; did you mean ToyLM\\(\\)"):
        self_consistency(ToyLM, "q")
    with pytest.raises(ConfigError, match="equivalent must be a callable"):
        cluster(["1"], 5)
    with pytest.raises(ConfigError, match="returned str 'no'; it must return a bool"):
        cluster(["1", "2"], lambda a, b: "no")
    for bad in (None, 7.5, "7", b"7"):
        with pytest.raises(ConfigError, match="scores must be a sequence"):
            argmax(bad)
    with pytest.raises(ConfigError, match=r"scores\[1\] must be a real number or None"):
        argmax([0.5, "7"])
    assert argmax([0.5, None, float("nan"), 0.7]) == 3
    with pytest.raises(ConfigError, match="digests must be a mapping"):
        load_results("x.jsonl", None, "pool")
    assert load_results("/nonexistent/results.jsonl", {}, "pool") == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "--top-k", str(10**23)], "top_k"),
        (["eval", "--seed", str(10**23)], "seed"),
        (["eval", "--kl-sigma", "1.5"], "needs a grounding document (generate --grounding FILE); eval has none"),
    ],
)
def test_more_flags_are_refused_before_anything_loads(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_full_disk_says_what_was_saved(run_files, monkeypatch):
    import samplescale.cli_eval as ce

    _, _, out, run = run_files
    calls = {"n": 0}
    real = ce.append_record

    def full(fh, rec):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real(fh, rec)

    monkeypatch.setattr(ce, "append_record", full)
    with pytest.raises(ConfigError, match=r"could not write .*results.jsonl \(No space left on "
                       r"device\); the 1 problems finished before are saved"):
        run()
    monkeypatch.setattr(ce, "append_record", real)
    assert run() == 0
    assert len(lines_of(out / "results.jsonl")) == 3


def test_a_run_written_before_a_sampling_field_existed_resumes(run_files):
    """A run.json without a later sampling field ran with its default: it resumes; the same
    field at another value, or a setting only one side has, is named in the refusal."""
    _, _, out, run = run_files
    assert run() == 0
    settings = json.loads((out / "run.json").read_text())
    assert settings["params"]["constraint"] is None
    del settings["params"]["constraint"]  # as written before issue 19 added the field
    (out / "run.json").write_text(json.dumps(settings))
    assert run() == 0
    settings["params"]["top_k"] = 7
    (out / "run.json").write_text(json.dumps(settings))
    with pytest.raises(ConfigError, match=r"other settings \(params\.top_k: 7 -> 0\)"):
        run()
    settings["params"]["top_k"] = 0
    settings["retired"] = 1
    (out / "run.json").write_text(json.dumps(settings))
    with pytest.raises(ConfigError, match=r"other settings \(retired: 1 -> '\(absent\)'\)"):
        run()


class GroupingEcho(ScriptedBackend):
    """echo_backend's replies, with per-row parameters (generate_groups) that it counts."""

    capabilities = ScriptedBackend.capabilities.model_copy(update={"groups": True})
    made: list[GroupingEcho] = []

    def __init__(self, args=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(echo_backend()._replies)
        self.layout = getattr(args, "greedy_layout", None)
        self.grouped = 0
        GroupingEcho.made.append(self)

    def generate_groups(self, prompt, groups, rng=None):  # type: ignore[no-untyped-def]
        self.grouped += 1
        return [self.generate(prompt, g, rng) for g in groups]


def test_a_run_written_before_the_greedy_setting_resumes_in_its_own_layout(run_files):
    """New runs decode the greedy row in the pool's call (run.json "greedy": "pool-call");
    a run whose run.json predates the setting resumes with the greedy call first, as it
    was written (its samples stay what they would have been), and keeps its run.json."""
    _, _, out, run = run_files
    GroupingEcho.made.clear()
    assert run(backend=GroupingEcho) == 0
    settings = json.loads((out / "run.json").read_text())
    assert settings["greedy"] == "pool-call"
    first = GroupingEcho.made[-1]
    assert (first.layout, first.grouped) == ("pool-call", 3)
    lines = lines_of(out / "results.jsonl")
    (out / "results.jsonl").write_text("\n".join(lines[:2]) + "\n")
    del settings["greedy"]  # as written before the setting existed
    (out / "run.json").write_text(json.dumps(settings))
    assert run(backend=GroupingEcho) == 0
    again = GroupingEcho.made[-1]
    assert (again.layout, again.grouped) == ("sequential", 0)
    assert [(p.temperature, p.n) for _, p in again.calls] == [(0.0, 1), (0.8, 2)]
    redone, was = (json.loads(x) for x in (lines_of(out / "results.jsonl")[2], lines[2]))
    assert redone["samples"] == was["samples"] and redone["greedy"]["text"] == was["greedy"]["text"]
    assert redone["greedy"]["usage"]["model_calls"] == 1  # a call of its own again
    assert "greedy" not in json.loads((out / "run.json").read_text())
