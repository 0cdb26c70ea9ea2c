"""``samplescale synth``: rejection-sampling data synthesis (the real embedded model)."""

from __future__ import annotations

import json

import pytest

from samplescale.cli import main
from samplescale.errors import ConfigError
from samplescale.synth import kept_indices, problem_yield
from samplescale.tasks import load_task
from samplescale.verifiers.extract import extract_answer
from samplescale.verifiers.math import is_equivalent


@pytest.fixture(scope="module")
def model(llama_backend):
    return str(llama_backend.model_path)


def _record(tokens, correct, status="ok"):
    samples = [
        {"text": "t", "answer": "1", "correct": c, "tokens": n, "finish_reason": "stop",
         "status": status}
        for n, c in zip(tokens, correct)
    ]
    return {"status": "ok", "id": "p", "samples": samples, "c": sum(correct)}


def test_kept_indices_all_and_shortest():
    rec = _record([9, 5, 7, 5], [True, False, True, True])
    assert kept_indices(rec, "all") == [0, 2, 3]
    assert kept_indices(rec, "shortest") == [3]  # 5 tokens; sample 1 is wrong
    assert kept_indices(_record([3, 3], [True, True]), "shortest") == [0]  # tie: first
    assert kept_indices(_record([3], [False]), "shortest") == []
    assert problem_yield(rec, "shortest") == {"id": "p", "drawn": 4, "correct": 3, "kept": 1}
    err = {"status": "error", "id": "q", "error": {"type": "PromptError", "message": "long"}}
    assert kept_indices(err, "all") == []
    assert problem_yield(err, "all")["error"] == "long"
    with pytest.raises(ConfigError, match="keep must be one of all, shortest"):
        kept_indices(rec, "longest")  # type: ignore[arg-type]


@pytest.mark.slow
def test_synth_writes_verified_rows_resumes_and_refuses_other_settings(capsys, tmp_path, model):
    out = tmp_path / "synth"
    args = ["synth", "--level", "1", "--limit", "3", "--n", "4", "--max-tokens", "32",
            "--output", str(out), "--model", model]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "total" in stdout and "problems gave at least one row" in stdout
    rows = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    results = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(results) == 3
    assert len(rows) == sum(r["c"] for r in results)  # keep all: every correct sample
    assert rows, "SmolLM2 solves some level-1 sums"
    task = load_task("arithmetic", level=1, limit=3, seed=0)
    gold = {p.id: p.gold for p in task.problems}
    run = json.loads((out / "run.json").read_text())
    for row in rows:
        prov = row["provenance"]
        assert [m["role"] for m in row["messages"]][-1] == "assistant"
        assert row["messages"][:-1] == [
            {"role": m.role, "content": m.content}
            for m in task.prompt(next(p for p in task.problems if p.id == prov["problem_id"]))
            .messages
        ]
        # re-graded from the written row alone: every kept row verifies
        assert is_equivalent(extract_answer(row["messages"][-1]["content"]), gold[prov["problem_id"]])
        assert prov["model"] == run["model"] and prov["model"]["sha256"]
        assert prov["seed"] == 0 and prov["params"]["temperature"] == 0.8
        assert prov["params"]["max_tokens"] == 32
        assert "is_equivalent" in prov["verifier"]
        assert 0 <= prov["sample_index"] < 4 and isinstance(prov["problem_seed"], int)
        assert prov["tokens"] == next(r for r in results if r["id"] == prov["problem_id"])[
            "samples"][prov["sample_index"]]["tokens"]
    summary = json.loads((out / "yield.json").read_text())
    assert summary["total"]["kept"] == len(rows) and summary["total"]["drawn"] == 12

    # interrupted after the rows of problem 3 but before its record: resume redraws it
    # and train.jsonl holds no row twice
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:2]) + "\n")
    assert main(args) == 0
    assert "2 of 3 problems already done" in capsys.readouterr().out
    again = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    assert again == rows  # same seed, same draws, no duplicates

    # a changed setting refuses to resume onto the old file
    assert main([*args[:-2], "--temperature", "0.5", "--model", model]) == 2
    assert "other settings (params.temperature: 0.8 -> 0.5)" in capsys.readouterr().err
    assert main([*args[:-2], "--keep", "shortest", "--model", model]) == 2
    assert "synth.keep: 'all' -> 'shortest'" in capsys.readouterr().err
    assert [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()] == rows


@pytest.mark.slow
def test_synth_shortest_and_refusals(capsys, tmp_path, model):
    out = tmp_path / "short"
    assert main(["synth", "--limit", "2", "--n", "3", "--max-tokens", "16", "--keep",
                 "shortest", "--output", str(out), "--model", model]) == 0
    capsys.readouterr()
    rows = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    ids = [r["provenance"]["problem_id"] for r in rows]
    assert len(ids) == len(set(ids))  # at most one per problem
    results = {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    for row in rows:
        rec = results[row["provenance"]["problem_id"]]
        shortest = min(s["tokens"] for s in rec["samples"] if s["correct"])
        assert row["provenance"]["tokens"] == shortest
    assert main(["synth", "--strategy", "self-consistency", "--model", model]) == 2
    assert "takes no --strategy" in capsys.readouterr().err
