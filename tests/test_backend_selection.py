"""``--backend`` on eval / generate / serve, the capability checks made before a model
loads, record / replay, and the vLLM sampler mapping (which needs no GPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from samplescale.backends.catalog import BACKENDS, having
from samplescale.backends.fake import ScriptedBackend, ToyLM
from samplescale.backends.record import NotRecorded, RecordingBackend, ReplayBackend
from samplescale.backends.vllm import vllm_sampling_kwargs
from samplescale.cli import main
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.types import Prompt

DEAD = "http://127.0.0.1:9/v1"  # nothing listens: the checks must fail before any request


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("generate", "q", "--backend", "openai"), "--backend openai needs --base-url URL"),
        (
            ("generate", "q", "--backend", "llamacpp", "--base-url", DEAD),
            "--base-url is for --backend openai, not --backend llamacpp",
        ),
        (
            ("eval", "--base-url", DEAD, "--model", "x.gguf"),
            "with --backend openai use --upstream-model NAME",
        ),
        (
            ("eval", "--base-url", DEAD, "--threads", "2"),
            "--threads sets CPU threads of a local model; not with --backend openai",
        ),
        (
            ("eval", "--backend", "transformers", "--upstream-model", "m"),
            "--upstream-model is for --backend openai",
        ),
        (("generate", "q", "--backend", "vllm"), "--backend vllm needs --model"),
        (
            ("generate", "q", "--record", "a", "--replay", "b"),
            "--record and --replay exclude each other",
        ),
        (
            ("generate", "q", "--base-url", DEAD, "--decoding", "priority"),
            "decoding='priority' needs next-token logits (samplescale's own samplers, logits_at); "
            "backend 'openai' has none (backends with it: llamacpp, transformers)",
        ),
        (
            ("generate", "q", "--base-url", DEAD, "--sampler", "kl:1.0", "--grounding", __file__),
            "kl_sigma (KL-guided temperature) needs next-token logits",
        ),
        (
            ("generate", "q", "--base-url", DEAD, "--draft-model", "d.gguf"),
            "--draft-model (speculative sampling) needs next-token logits",
        ),
        (
            ("eval", "--base-url", DEAD, "--strategy", "beam-search"),
            "strategy 'beam-search' with the default P(True) scorer needs next-token logits",
        ),
        (
            ("eval", "--base-url", DEAD, "--strategy", "mcts", "--option", "scorer=judge"),
            "strategy 'mcts' needs continuing a partial chat reply (Prompt.prefix); backend "
            "'openai' has none (backends with it: llamacpp, transformers, vllm)",
        ),
        (
            ("generate", "q", "--backend", "vllm", "--model", "m", "--sampler", "typical:0.9"),
            "typical_p=0.9 is refused on vllm: vLLM has no locally typical sampling",
        ),
        (
            ("generate", "q", "--backend", "vllm", "--model", "m", "--top-p", "0.9"),
            "top_p=0.9 with temperature=0.8 is refused on vllm",
        ),
        (
            (
                "generate",
                "q",
                "--backend",
                "llamacpp",
                "--record",
                "/nonexistent-dir/r.jsonl",
                "--decoding",
                "priority",
            ),
            "backend 'llamacpp with --record' has none",
        ),
        (
            ("generate", "q", "--replay", "/nonexistent.jsonl"),
            "--replay /nonexistent.jsonl: cannot read a record file",
        ),
        (
            ("serve", "--backend", "transformers", "--upstream", DEAD),
            "--base-url is for --backend openai",
        ),
    ],
)
def test_bad_backend_options_get_one_line_errors(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_catalog_lists_who_has_what():
    assert list(BACKENDS) == ["llamacpp", "openai", "transformers", "vllm"]
    assert having("logits") == ["llamacpp", "transformers"]
    assert having("prefix_caching") == ["llamacpp", "transformers", "vllm"]
    assert having("groups") == ["llamacpp"]
    assert having("streaming") == ["llamacpp", "openai", "transformers"]


# ------------------------------------------------------------------ the vLLM mapping
def test_vllm_mapping_passes_exact_samplers_on():
    kw = vllm_sampling_kwargs(
        SamplingParams(
            n=4, temperature=1.0, top_k=20, top_p=0.9, seed=3, stop=("\n",), max_tokens=7
        )
    )
    assert kw == {
        "n": 4,
        "temperature": 1.0,
        "top_k": 20,
        "top_p": 0.9,
        "min_p": 0.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "max_tokens": 7,
        "stop": ["\n"],
        "seed": 3,
        "logprobs": 0,
    }
    assert vllm_sampling_kwargs(SamplingParams(temperature=0.6, top_k=0))["top_k"] == -1
    assert (
        vllm_sampling_kwargs(SamplingParams(temperature=0.5, top_k=5, presence_penalty=0.5))[
            "presence_penalty"
        ]
        == 0.5
    )  # top-k and the OpenAI penalties are exact at any temperature
    assert vllm_sampling_kwargs(SamplingParams(temperature=0, min_p=0.1))["min_p"] == 0.1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            SamplingParams(repetition_penalty=1.2),
            "repetition_penalty=1.2 is refused on vllm: vLLM's repetition penalty also counts prompt tokens",
        ),
        (SamplingParams(temperature=0.005), "temperature=0.005 is refused on vllm"),
        (SamplingParams(temperature=0.7, min_p=0.1), "min_p=0.1 with temperature=0.7 is refused"),
        (SamplingParams(min_p=0.1, top_p=0.9), "min_p=0.1 with top_p=0.9 is refused"),
        (SamplingParams(decoding="arithmetic"), "decoding='arithmetic' needs next-token logits"),
        (SamplingParams(epsilon=0.01), "epsilon=0.01 is refused on vllm"),
        (SamplingParams(fire_temperature=1.5), "fire_temperature=1.5 is refused on vllm"),
    ],
)
def test_vllm_mapping_refuses_what_it_cannot_compute_exactly(params, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as exc:
        vllm_sampling_kwargs(params)
    assert "use --backend transformers or llamacpp" in str(
        exc.value
    ) or "refused on vllm: it samples" in str(exc.value)


# ------------------------------------------------------------------ record / replay
def _no_time(result):
    return result.model_copy(update={"usage": result.usage.model_copy(update={"wall_time_s": 0.0})})


@pytest.mark.parametrize("strategy", ["self-consistency", "particle-filtering"])
def test_replay_gives_the_same_result_without_the_model(tmp_path, strategy):
    from samplescale.strategies import get_strategy

    path = tmp_path / "calls.jsonl"
    options = (
        {"scorer": lambda prompt, steps: 0.5, "scorer_scale": "probability"}
        if strategy == "particle-filtering"
        else {}
    )
    s = get_strategy(strategy, **options)
    params = SamplingParams(n=4, max_tokens=6, seed=5)
    model = ScriptedBackend(["First\n\nThe answer is 2", "so 3"]) if options else ToyLM()
    rec = RecordingBackend(model, path, identity="toy")
    first = s.run(rec, Prompt(text="q"), params)
    rec.close()
    replayed = s.run(ReplayBackend(path), Prompt(text="q"), params)
    assert _no_time(replayed) == _no_time(first)
    lines = path.read_text().splitlines()
    head = json.loads(lines[0])
    assert head["samplescale_record"] == 1 and head["backend"] == model.name
    assert head["identity"] == "toy"
    assert head["capabilities"]["logits"] is False  # logits_at calls are not recorded
    assert len(lines) - 1 == first.usage.model_calls


def test_replay_restores_the_callers_generator_and_refuses_unrecorded_calls(tmp_path):
    path = tmp_path / "calls.jsonl"
    backend = RecordingBackend(ScriptedBackend(["The answer is 2", "so 3"]), path)
    rng = np.random.default_rng(7)
    params = SamplingParams(n=2, max_tokens=20)
    gen = backend.generate(Prompt.user("q"), params, rng)
    after = (rng.random(), rng.spawn(1)[0].random())
    backend.close()
    replay = ReplayBackend(path)
    rng2 = np.random.default_rng(7)
    assert replay.generate(Prompt.user("q"), params, rng2) == gen
    assert (rng2.random(), rng2.spawn(1)[0].random()) == after
    with pytest.raises(NotRecorded, match="this call was not recorded"):
        replay.generate(Prompt.user("q"), params, np.random.default_rng(7))  # used up
    with pytest.raises(NotRecorded):
        replay.generate(Prompt.user("other"), params.replace(seed=1))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(path.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(ConfigError, match="line 2 is not a recorded call"):
        ReplayBackend(bad)


def _untimed(obj):
    """``obj`` without its wall times (they measure the run, not what it drew)."""
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if "time" not in k}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def _records(path):
    return [_untimed(json.loads(line)) for line in path.read_text().splitlines()]


def test_eval_on_an_openai_server_then_replayed_without_it(capsys, tmp_path, own_server):
    """The main job over --backend openai (samplescale's own server, scripted), recorded;
    the replay needs no server and writes the same results."""
    rec = tmp_path / "calls.jsonl"
    common = ("eval", "--limit", "3", "--n", "4", "--max-tokens", "16")
    code, out, _ = run(
        capsys,
        *common,
        "--base-url",
        own_server,
        "--upstream-model",
        "fake",
        "--record",
        str(rec),
        "--output",
        str(tmp_path / "a"),
    )
    assert code == 0 and "maj@k" in out
    run_json = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run_json["model"] == {"backend": "openai", "base_url": own_server, "model": "fake"}
    code, out, _ = run(capsys, *common, "--replay", str(rec), "--output", str(tmp_path / "b"))
    assert code == 0 and "maj@k" in out
    assert json.loads((tmp_path / "b" / "run.json").read_text()) == run_json
    first, second = (
        _records(tmp_path / "a" / "results.jsonl"),
        _records(tmp_path / "b" / "results.jsonl"),
    )
    assert len(first) == 3 and first == second
    # another seed is not in the file: a loud failure naming the call
    code, _, err = run(
        capsys, *common, "--seed", "1", "--replay", str(rec), "--output", str(tmp_path / "c")
    )
    assert code == 2 and "this call was not recorded" in err


def test_generate_and_serve_take_the_openai_backend(capsys, own_server):
    code, out, _ = run(
        capsys,
        "generate",
        "What is 3 + 4?",
        "--backend",
        "openai",
        "--base-url",
        own_server,
        "-n",
        "4",
        "--max-tokens",
        "20",
    )
    # the scripted server replies "... 7." and "... 9." in turn: two of each
    assert code == 0 and "9 50%" in out and "7 50%" in out and "usage:  4 samples" in out
    from samplescale.cli import build_parser
    from samplescale.cli_serve import _backend

    args = build_parser().parse_args(["serve", "--upstream", own_server])  # the old spelling
    backend, name = _backend(args)
    assert backend.name == "openai-http" and name == "fake" and args.base_url == own_server
    backend.close()


@pytest.mark.transformers
@pytest.mark.slow
def test_generate_on_the_transformers_backend(capsys):
    pytest.importorskip("transformers")
    code, out, _ = run(
        capsys,
        "generate",
        "What is 2 + 3? Answer with the number.",
        "--backend",
        "transformers",
        "-n",
        "2",
        "--max-tokens",
        "12",
        "--threads",
        "1",
        "--json",
    )
    assert code == 0
    body = json.loads(out)
    assert len(body["samples"]) == 2 and body["usage"]["model_calls"] == 1
    assert all(
        s["token_ids"] and len(s["logprobs"]) == len(s["token_ids"]) for s in body["samples"]
    )
