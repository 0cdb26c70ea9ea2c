"""Constrained generation on the real embedded model (llama.cpp; transformers), and the CLI."""

from __future__ import annotations

import json
import math
import re

import pytest

pytest.importorskip("llguidance")
jsonschema = pytest.importorskip("jsonschema")

from samplescale.cli import main  # noqa: E402
from samplescale.config import Constraint, SamplingParams  # noqa: E402
from samplescale.types import Prompt  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}
PERSON = Prompt.user("Describe a person as JSON with name, age and tags.")


def check_person(samples):
    for s in samples:
        assert s.finish_reason == "stop", s.text
        jsonschema.validate(json.loads(s.text), SCHEMA)


@pytest.mark.llama
def test_llamacpp_samples_validate_against_the_schema(llama_backend):
    params = SamplingParams(n=2, seed=3, max_tokens=80,
                            constraint=Constraint(kind="json_schema", source=json.dumps(SCHEMA)))
    gen = llama_backend.generate(PERSON, params)
    check_person(gen.samples)
    s = gen.samples[0]
    assert len(s.logprobs) == len(s.sampling_logprobs) == s.num_tokens
    # before the mask <= after it: the mask only removes mass (temperature 1)
    assert all(lp <= lq + 1e-4 for lp, lq in zip(s.logprobs, s.sampling_logprobs))
    again = llama_backend.generate(PERSON, params)
    assert [x.text for x in again.samples] == [x.text for x in gen.samples]


@pytest.mark.llama
def test_llamacpp_regex_and_lark_grammar_with_greedy_and_top_p(llama_backend):
    regex = Constraint(kind="regex", source=r"(yes|no), because [a-z ]{5,40}\.")
    gen = llama_backend.generate(Prompt.user("Is the sky blue?"),
                                 SamplingParams(n=2, seed=1, max_tokens=50, top_p=0.9, constraint=regex))
    assert all(re.fullmatch(regex.source, s.text) for s in gen.samples), [s.text for s in gen.samples]
    lark = Constraint(kind="grammar", source='start: "The answer is " NUM "."\nNUM: /[0-9]{1,3}/')
    greedy = llama_backend.generate(Prompt.user("What is 7 + 5?"),
                                    SamplingParams(temperature=0.0, max_tokens=20, constraint=lark))
    assert re.fullmatch(r"The answer is [0-9]{1,3}\.", greedy.samples[0].text)
    assert greedy.samples[0].sampling_logprobs == (0.0,) * greedy.samples[0].num_tokens


@pytest.mark.transformers
@pytest.mark.slow
def test_transformers_backend_masks_through_the_same_loop(hf_backend):
    params = SamplingParams(n=2, seed=3, max_tokens=80,
                            constraint=Constraint(kind="json_schema", source=json.dumps(SCHEMA)))
    check_person(hf_backend.generate(PERSON, params).samples)


@pytest.mark.llama
def test_cli_generate_with_a_json_schema_votes_on_the_parsed_value(capsys, llama_backend, tmp_path):
    schema = tmp_path / "answer.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"answer": {"type": "integer"}},
                                  "required": ["answer"], "additionalProperties": False}))
    code = main(["generate", "What is 2 + 3? Reply in JSON.", "--json-schema", str(schema),
                 "-n", "4", "--seed", "1", "--max-tokens", "40", "--json",
                 "--model", str(llama_backend.model_path)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    values = [json.loads(s["text"]) for s in out["samples"]]
    assert all(isinstance(v["answer"], int) and set(v) == {"answer"} for v in values)
    canon = [json.dumps(v, sort_keys=True, separators=(",", ":")) for v in values]
    top = max(set(canon), key=canon.count)
    assert out["answer"] == top and math.isclose(out["vote_shares"][top], canon.count(top) / 4)


def test_cli_constraint_flags_give_one_line_errors(capsys, tmp_path):
    code = main(["generate", "q", "--json-schema", str(tmp_path / "missing.json")])
    err = capsys.readouterr().err
    assert code == 2 and "--json-schema" in err and "no such file" in err
    code = main(["generate", "q", "--regex", " "])
    assert code == 2 and "--regex must not be empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: the flags exclude each other
        main(["generate", "q", "--regex", "a", "--grammar", "g.lark"])
    code = main(["generate", "q", "--regex", "a", "--backend", "openai", "--base-url",
                 "http://127.0.0.1:9/v1", "--upstream-model", "m"])
    err = capsys.readouterr().err
    assert code == 2 and "regex constraint cannot be sent over the OpenAI API" in err, err
