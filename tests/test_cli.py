"""The command line end to end, with the embedded model: files, resume, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from samplescale.cli import main
from samplescale.types import Result


@pytest.fixture(scope="module")
def model(llama_backend):
    return str(llama_backend.model_path)


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_writes_files_and_resumes(capsys, tmp_path, model):
    out = tmp_path / "run"
    args = (
        "eval",
        "--limit",
        "3",
        "--n",
        "4",
        "--max-tokens",
        "24",
        "--output",
        str(out),
        "--model",
        model,
    )
    code, stdout, _ = run(capsys, *args)
    assert code == 0
    assert "pass@k" in stdout and "maj@k" in stdout and "greedy" in stdout
    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == [f"arithmetic-L1-{i:04d}" for i in range(3)]
    summary = json.loads((out / "summary.json").read_text())
    assert [c["k"] for c in summary["curve"]] == [1, 2, 4]
    assert summary["problems"] == 3 and summary["n"] == 4
    assert (out / "scaling.png").stat().st_size > 10_000
    # a torn last line (an interrupted write) is dropped and the problem is redone
    (out / "results.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])
    code, stdout, _ = run(capsys, *args)
    assert code == 0 and "2 of 3 problems already done" in stdout
    again = (out / "results.jsonl").read_text().splitlines()
    assert len(again) == 3 and again[:2] == lines[:2]
    assert (
        json.loads(again[2])["samples"] == json.loads(lines[2])["samples"]
    )  # same seed, same draws
    # other settings into the same directory are refused
    code, _, err = run(capsys, *args[:-2], "--temperature", "0.5", "--model", model)
    assert code == 2 and "other settings (params.temperature: 0.8 -> 0.5)" in err


def test_eval_with_a_strategy(capsys, tmp_path, model):
    code, stdout, _ = run(
        capsys,
        "eval",
        "--limit",
        "2",
        "--n",
        "3",
        "--max-tokens",
        "24",
        "--strategy",
        "self_consistency",
        "--output",
        str(tmp_path / "sc"),
        "--model",
        model,
    )
    assert code == 0 and "self-consistency" in stdout and "greedy" in stdout
    rec = json.loads((tmp_path / "sc" / "results.jsonl").read_text().splitlines()[0])
    assert rec["strategy"] == "self-consistency" and len(rec["samples"]) == 3


def test_generate_prints_answer_and_votes(capsys, model):
    # long enough for the samples to end: a sample cut by --max-tokens has no answer
    # unless it stated one (test_generate_without_an_answer_shows_the_samples_...)
    prompt = "What is 7 + 5? End with 'The answer is N'."
    code, stdout, _ = run(capsys, "generate", prompt, "-n", "4", "--max-tokens", "64", "--model", model)
    assert code == 0
    assert stdout.startswith("answer: 13") and "votes:  13 50%, 12 50%" in stdout
    assert "4 samples" in stdout and "cut by" not in stdout


def test_generate_with_named_samplers_and_grounding(capsys, model, tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("The vault code is 4721.", encoding="utf-8")
    code, stdout, _ = run(
        capsys,
        "generate",
        "What is the vault code?",
        "-n",
        "2",
        "--max-tokens",
        "12",
        "--model",
        model,
        "--sampler",
        "top-n-sigma:1.0",
        "--sampler",
        "kl:0.5",
        "--grounding",
        str(source),
        "--repetition-penalty",
        "1.1",
    )
    assert code == 0 and "2 samples" in stdout


def test_generate_with_a_draft_model_reports_acceptance(capsys, model):
    code, stdout, _ = run(
        capsys,
        "generate",
        "What is 2 + 3?",
        "-n",
        "1",
        "--max-tokens",
        "8",
        "--model",
        model,
        "--draft-model",
        model,
        "--draft-k",
        "3",
        "--temperature",
        "0",
    )
    assert code == 0 and "speculative: acceptance rate 1.000" in stdout
    code, stdout, _ = run(capsys, "generate", "What is 2 + 3?", "-n", "1", "--max-tokens", "8",
                          "--model", model, "--draft-model", model, "--draft-k", "3",
                          "--temperature", "0", "--json")
    body = json.loads(stdout)
    spec, tokens = body.pop("speculative"), body["usage"]["completion_tokens"]
    assert code == 0 and Result.model_validate(body).strategy == "self-consistency"
    # the model drafting for itself at T=0: every draft token is accepted
    assert spec["acceptance_rate"] == 1.0 and spec["accepted"] == spec["verified"] > 0
    assert spec["tokens"] == tokens and spec["tokens_per_target_call"] == tokens / spec["target_calls"]


def test_strategy_options_from_the_command_line(capsys, model):
    from samplescale.cli_sampling import strategy_options

    assert strategy_options(["beam_width=4", "how=min", "prior=[1, 2]", "x=a=b"]) == {
        "beam_width": 4,
        "how": "min",
        "prior": [1, 2],
        "x": "a=b",
    }
    code, stdout, _ = run(
        capsys,
        "generate",
        "What is 2 + 3?",
        "-n",
        "2",
        "--max-tokens",
        "8",
        "--model",
        model,
        "--strategy",
        "best-of-n",
        "--option",
        "scorer=sum-logprob",
    )
    assert code == 0 and "2 samples" in stdout


def test_grounding_file_must_be_utf8(capsys, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe source")
    code, _, err = run(capsys, "generate", "q", "--grounding", str(bad), "--kl-sigma", "1")
    assert code == 2 and "is not UTF-8 text" in err and err.count("\n") == 1


def test_sampler_specs_map_onto_params():
    from samplescale.cli import build_parser
    from samplescale.cli_sampling import sampling_params

    args = build_parser().parse_args(
        [
            "generate",
            "q",
            "--sampler",
            "fire:1.5:3",
            "--sampler",
            "arithmetic",
            "--eta",
            "0.01",
            "--sampler",
            "top-k:7",
        ]
    )
    p = sampling_params(args)
    assert (p.fire_temperature, p.fire_tokens, p.decoding, p.eta, p.top_k) == (
        1.5,
        3,
        "arithmetic",
        0.01,
        7,
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ("generate", "q", "--strategy", "beam"),
            "unknown strategy 'beam'; valid: ab-mcts, adaptive-consistency, aggregate, batch-prompting, beam-search, best-first, best-of-n, ",
        ),
        (
            ("generate", "q", "-n", "0"),
            "n: Input should be greater than or equal to 1 (got 0); valid range [1, 100000]",
        ),
        (("generate", "q", "--seed", "-1"), "seed: Input should be greater than or equal to 0"),
        (("generate", "   "), "prompt must not be empty"),
        (("generate", "q", "--strategy", ""), "unknown strategy ''"),
        (("eval", "--output", ""), "--output must be a directory path"),
        (("eval", "--output", "/dev/null"), "exists and is not a directory"),
        (
            ("generate", "q", "--temperature", "-1"),
            "temperature: Input should be greater than or equal to 0",
        ),
        (("generate", "q", "--top-p", "1.5"), "top_p: Input should be less than or equal to 1"),
        (("generate", "q", "--sampler", "bogus:1"), "unknown sampler 'bogus'; valid: arithmetic"),
        (("generate", "q", "--sampler", "top-n-sigma:abc"), "top_n_sigma must be a number"),
        (("generate", "q", "--sampler", "fire:1:2:3"), "form: NAME:FIRE_TEMPERATURE:FIRE_TOKENS"),
        (("generate", "q", "--sampler", "top-n-sigma:-1"), "top_n_sigma: Input should be greater"),
        (
            ("generate", "q", "--eta", "1.0"),
            "eta: Input should be less than 1 (got 1.0); valid range [0.0, 1.0)",
        ),
        (("generate", "q", "--sampler", "kl:1"), "needs --grounding FILE"),
        (("generate", "q", "--option", "x"), "--option must look like KEY=VALUE, got 'x'"),
        (
            (
                "generate",
                "q",
                "--strategy",
                "best-of-n",
                "--option",
                "scorer=sum-logprob",
                "--option",
                "scorer=mean-logprob",
            ),
            "--option scorer is given twice",
        ),
        (
            ("generate", "q", "--sampler", "arithmetic", "--sampler", "priority"),
            "sampler 'priority' sets decoding='priority' but 'arithmetic' set decoding='arithmetic'",
        ),
        (
            ("generate", "q", "--decoding", "priority", "--sampler", "arithmetic"),
            "but a flag set decoding='priority'",
        ),
        (("generate", "q", "--fire-tokens", "3"), "error: fire_tokens needs fire_temperature"),
        (("generate", "q", "--draft-k", "2"), "--draft-k and --drafts need --draft-model PATH"),
        (
            ("generate", "q", "-n", "16", "--max-tokens", "12000"),
            "max_tokens must be below the model's trained context of 8192 tokens",
        ),
        (("eval", "--option", "a=1"), "--option needs --strategy"),
        (
            ("generate", "q", "--strategy", "beam-search", "--option", "beam_wdth=2"),
            "strategy 'beam-search' has no option 'beam_wdth'; valid: beam_width, delimiter",
        ),
        (
            ("generate", "q", "--strategy", "beam-search", "--option", "beam_width=0"),
            "beam_width must be an integer >= 1",
        ),
        (
            ("generate", "q", "--repetition-penalty", "0"),
            "repetition_penalty: Input should be greater than 0 (got 0.0); valid range (0.0, 100.0]",
        ),
        (("eval", "--task", "gsm8k"), "task 'gsm8k' needs a data path (--data PATH)"),
        (
            ("eval", "--task", "nope"),
            "unknown task 'nope'; valid: arithmetic, code-jsonl, code-jsonl-completion, gsm8k, "
            "humaneval, humaneval-completion, jsonl, math, mbpp, mbpp-completion",
        ),
        (("eval", "--level", "7"), "level"),
        (("eval", "--task", "gsm8k", "--data", "/nonexistent.jsonl"), "/nonexistent.jsonl"),
        (
            ("generate", "q", "--model", "/nonexistent.gguf"),
            "model file not found: /nonexistent.gguf",
        ),
        (("generate", "q", "--threads", "0"), "--threads must be in [1, "),
        (
            ("generate", "q", "--draft-model", "/nonexistent-draft.gguf"),
            "--draft-model: file not found: /nonexistent-draft.gguf",
        ),
        (("eval", "--threads", "-2"), "--threads must be in [1, "),
        (("serve", "--threads", "0"), "--threads must be in [1, "),
        (("serve", "--max-body-bytes", "0"), "--max-body-bytes must be in [1, 1073741824], got 0"),
        (("serve", "--upstream-stream"), "--upstream-stream streams from an upstream; give --upstream URL"),
    ],
)
def test_bad_input_gets_one_line_error(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and err.startswith("samplescale: error: ")


def test_list_and_console_script(capsys):
    code, stdout, _ = run(capsys, "list")
    assert code == 0 and "self-consistency" in stdout and "gsm8k" in stdout
    assert "top-n-sigma" in stdout and "arithmetic" in stdout and "Vilnis" in stdout
    proc = subprocess.run(
        [sys.executable, "-m", "samplescale.cli", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "best-of-n" in proc.stdout


def test_results_file_damage_and_duplicates(capsys, tmp_path, model):
    out = tmp_path / "run"
    args = (
        "eval",
        "--limit",
        "3",
        "--n",
        "2",
        "--max-tokens",
        "8",
        "--output",
        str(out),
        "--model",
        model,
    )
    assert run(capsys, *args)[0] == 0
    results = out / "results.jsonl"
    lines = results.read_text().splitlines()
    # a duplicated line counts once
    results.write_text("\n".join(lines + lines[:1]) + "\n")
    code, stdout, _ = run(capsys, *args)
    assert code == 0 and "3 problems" in stdout
    assert json.loads((out / "summary.json").read_text())["problems"] == 3
    # damage in the middle is refused, and nothing is deleted
    damaged = "\n".join([lines[0], lines[1][:30], lines[2]]) + "\n"
    results.write_text(damaged)
    code, _, err = run(capsys, *args)
    assert code == 2 and "results.jsonl has 1 line(s) that are not valid records" in err
    assert "line 2: not valid JSON (Unterminated string" in err
    assert results.read_text() == damaged
    # a record of another task is refused
    results.write_text(lines[0].replace("arithmetic-L1-0000", "gsm8k-0000") + "\n")
    code, _, err = run(capsys, *args)
    assert code == 2 and "not in this task" in err
    # the task name is canonical, so a differently spelled rerun is the same run
    results.write_text("\n".join(lines) + "\n")
    code, _, err = run(capsys, *args[:1], "--task", "Arithmetic", *args[1:])
    assert code == 0
    code, _, err = run(capsys, *args, "--level", "2")
    assert code == 2 and "level" in err
    (out / "run.json").write_text("{not json")
    code, _, err = run(capsys, *args)
    assert code == 2 and "run.json is corrupt" in err


def test_two_runs_never_write_to_one_directory(tmp_path):
    from samplescale.cli_results import exclusive as _exclusive
    from samplescale.errors import ConfigError

    with _exclusive(tmp_path):
        with pytest.raises(ConfigError, match="another samplescale run is writing"):
            with _exclusive(tmp_path):
                pass
    with _exclusive(tmp_path):  # released after the first run ends
        pass


def test_version(capsys):
    from samplescale import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"samplescale {__version__}\n"


def test_generate_json_and_threads(capsys, model):
    code, stdout, _ = run(
        capsys,
        "generate",
        "What is 7 + 5?",
        "-n",
        "3",
        "--max-tokens",
        "8",
        "--threads",
        "1",
        "--model",
        model,
        "--json",
    )
    assert code == 0
    result = json.loads(stdout)
    assert len(result["samples"]) == 3 and len(result["answers"]) == 3
    assert result["usage"]["completion_tokens"] == sum(
        len(s["token_ids"]) for s in result["samples"]
    )


def test_default_output_is_one_directory_per_settings(capsys, tmp_path, monkeypatch, model):
    monkeypatch.chdir(tmp_path)
    args = ("eval", "--limit", "1", "-n", "2", "--max-tokens", "6", "--model", model)
    assert run(capsys, *args)[0] == 0
    assert run(capsys, *args, "--temperature", "0.5")[0] == 0  # not refused: its own directory
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(r.startswith("arithmetic-L1-n2-seed0-") for r in runs)
    assert len({r.rsplit("-", 1)[1] for r in runs}) == 2
    code, stdout, _ = run(capsys, *args)  # the same command resumes its own run
    assert code == 0 and "1 of 1 problems already done" in stdout
    code, stdout, _ = run(capsys, *args[:2], "1", *args[3:], "--draft-model", model)
    assert code == 0 and "resuming" not in stdout  # speculative sampling: its own directory
    assert len(list((tmp_path / "runs").iterdir())) == 3


def test_the_effective_limit_names_the_run(tmp_path):
    from samplescale.cli import build_parser
    from samplescale.cli_eval import _settings, default_output, effective_limit
    from samplescale.config import SamplingParams

    def out(*argv):
        args = build_parser().parse_args(["eval", *argv])
        limit = effective_limit("arithmetic", args.limit)
        return default_output(
            "arithmetic", args, _settings("arithmetic", args, SamplingParams(), "m", limit)
        )

    assert out() == out("--limit", "50") != out("--limit", "49")


def test_a_run_that_failed_before_any_result_does_not_block_its_directory(capsys, tmp_path, model):
    out = tmp_path / "run"
    args = ("eval", "--limit", "1", "-n", "2", "--max-tokens", "6", "--output", str(out))
    code, _, err = run(capsys, *args, "--model", str(tmp_path / "missing.gguf"))
    assert code == 2 and f"--model {tmp_path / 'missing.gguf'} does not exist" in err
    out.mkdir()
    (out / "run.json").write_text('{"left": "by a run that failed to load its model"}')
    assert run(capsys, *args, "--model", model)[0] == 0  # no results yet: replaced
    settings = json.loads((out / "run.json").read_text())
    assert settings["model"]["file"] == Path(model).name
    assert settings["model"]["bytes"] == Path(model).stat().st_size
    (out / "run.json").unlink()  # results whose settings are unknown are never adopted
    code, _, err = run(capsys, *args, "--model", model)
    assert code == 2 and "has results but run.json (their settings) is missing" in err


def test_generate_without_an_answer_shows_the_samples_and_what_cut_them(capsys, model):
    code, stdout, _ = run(
        capsys, "generate", "Say hello to Ada.", "-n", "2", "--max-tokens", "6", "--model", model
    )
    assert code == 0 and "answer: None" in stdout
    assert "no answer found in any sample" in stdout and "2 of 2 samples:" in stdout
    assert "  [0] " in stdout and "  [1] " in stdout
    assert "note:   2 of 2 samples were cut by --max-tokens (6)" in stdout


def test_interrupt_messages_fit_the_command(capsys, monkeypatch):
    import samplescale.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_serve", interrupted)
    monkeypatch.setattr(cli, "cmd_list", interrupted)
    assert main(["serve"]) == 130
    assert "the server stopped" in capsys.readouterr().err
    assert main(["list"]) == 130
    assert "resume" not in capsys.readouterr().err


def test_list_names_the_process_scorers(capsys):
    code, stdout, _ = run(capsys, "list")
    assert code == 0 and "process:    judge, p-true" in stdout
