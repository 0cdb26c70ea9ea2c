"""``eval --offset``: a run over problems OFFSET .. OFFSET + limit - 1 draws exactly what a
run over all of them draws for those problems (same ids, same seeds), so runs over
consecutive ranges add up to one run; the offset is a setting of the run."""

from __future__ import annotations

import json

import pytest

from samplescale.cli import main
from samplescale.errors import ConfigError


@pytest.fixture(scope="module")
def model(llama_backend):
    return str(llama_backend.model_path)


def _records(out):
    """Records by id, without the wall-clock fields (which differ between any two runs)."""
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    for r in recs:
        r.pop("usage", None)
        for s in r.get("samples", []):
            s.pop("wall_time_s", None)
            s.pop("latency_s", None)
    return {r["id"]: r for r in recs}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", [[], ["--strategy", "self-consistency"]])
def test_an_offset_run_draws_what_the_whole_run_draws(tmp_path, capsys, model, strategy):
    common = ["eval", "--n", "2", "--max-tokens", "10", "--threads", "1", "--seed", "3",
              "--model", model, *strategy]
    whole, tail = tmp_path / "whole", tmp_path / "tail"
    assert main([*common, "--limit", "3", "--output", str(whole)]) == 0
    assert main([*common, "--offset", "1", "--limit", "2", "--output", str(tail)]) == 0
    capsys.readouterr()
    a, b = _records(whole), _records(tail)
    assert sorted(b) == ["arithmetic-L1-0001", "arithmetic-L1-0002"]
    for pid in b:
        assert [s["text"] for s in b[pid]["samples"]] == [s["text"] for s in a[pid]["samples"]]
        assert b[pid]["problem_digest"] == a[pid]["problem_digest"]
    assert json.loads((tail / "run.json").read_text())["offset"] == 1
    assert "offset" not in json.loads((whole / "run.json").read_text())
    assert json.loads((tail / "summary.json").read_text())["problems"] == 2


@pytest.mark.slow
def test_another_offset_is_another_run(tmp_path, capsys, model):
    common = ["eval", "--n", "2", "--max-tokens", "6", "--threads", "1", "--limit", "1",
              "--model", model, "--output", str(tmp_path / "run")]
    assert main([*common, "--offset", "2"]) == 0
    capsys.readouterr()
    assert main([*common, "--offset", "3"]) == 2
    assert "offset: 2 -> 3" in capsys.readouterr().err


@pytest.mark.parametrize("offset, limit, message", [
    ("-1", "2", "--offset must be an integer >= 0, got -1"),
    ("3", None, "--offset 3 leaves no problems: the task has 3"),
    ("5", "2", "--offset 5 leaves no problems: the task has 3"),
])
def test_a_bad_offset_is_refused(tmp_path, capsys, offset, limit, message):
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("".join(json.dumps({"question": f"{i} + 1?", "answer": f"#### {i + 1}"})
                            + "\n" for i in range(3)))
    argv = ["eval", "--task", "gsm8k", "--data", str(data), "--offset", offset,
            "--model", str(tmp_path / "absent.gguf"), "--output", str(tmp_path / "run")]
    assert main(argv + (["--limit", limit] if limit else [])) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_open_run_refuses_a_non_integer_offset(tmp_path):
    import argparse

    from samplescale.cli_eval import open_run
    from samplescale.config import SamplingParams

    args = argparse.Namespace(task="arithmetic", limit=2, data=None, level=1, seed=0,
                              question_field=None, answer_field=None, output=str(tmp_path))
    with pytest.raises(ConfigError, match="--offset must be an integer >= 0, got 1.5"):
        open_run(args, SamplingParams(), offset=1.5)


def test_an_offset_past_the_generated_problems_names_the_offset(tmp_path, capsys):
    # arithmetic level 1 has 100 problems: --offset 99 --limit 2 asks for problem 100
    argv = ["eval", "--offset", "99", "--limit", "2", "--output", str(tmp_path / "run"),
            "--model", str(tmp_path / "absent.gguf")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "limit=101" in err and "(the run loads --offset 99 + --limit 2 problems)" in err

