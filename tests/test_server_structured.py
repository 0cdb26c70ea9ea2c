"""Structured outputs over the server: ``response_format`` on the embedded model (every
reply parses and validates), self-consistency voting on parsed JSON values, errors, and
the OpenAI HTTP backend passing the schema to an upstream (this server)."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("llguidance")
httpx = pytest.importorskip("httpx")
jsonschema = pytest.importorskip("jsonschema")
openai = pytest.importorskip("openai")

from _server_helpers import serve  # noqa: E402

from samplescale.backends.openai_http import OpenAIHTTPBackend  # noqa: E402
from samplescale.config import Constraint, SamplingParams  # noqa: E402
from samplescale.errors import ConfigError  # noqa: E402
from samplescale.server import create_app  # noqa: E402
from samplescale.types import Prompt  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 24},
                   "population": {"type": "integer", "minimum": 0}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}}
ASK = [{"role": "user", "content": "Name a big city and its population, as JSON."}]

pytestmark = pytest.mark.llama


@pytest.fixture(scope="module")
def url(llama_backend):
    with serve(create_app(llama_backend, "smol")) as u:
        yield u


def test_every_choice_parses_and_validates_against_the_schema(url):
    client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
    r = client.chat.completions.create(model="smol", messages=ASK, n=3, seed=7, max_tokens=60,
                                       response_format=FORMAT)
    assert len(r.choices) == 3
    for c in r.choices:
        assert c.finish_reason == "stop"
        jsonschema.validate(json.loads(c.message.content), SCHEMA)
    obj = client.chat.completions.create(model="smol", messages=ASK, seed=2, max_tokens=60,
                                         response_format={"type": "json_object"})
    assert isinstance(json.loads(obj.choices[0].message.content), dict)


def test_self_consistency_votes_on_the_parsed_json_value(url):
    r = httpx.post(url + "/chat/completions", timeout=300, json={
        "model": "self-consistency@4/smol", "messages": ASK, "seed": 3, "max_tokens": 60,
        "response_format": FORMAT}).json()
    ext = r["samplescale"]
    texts = [c["text"] for c in ext["candidates"]]
    values = [json.dumps(json.loads(t), sort_keys=True, separators=(",", ":")) for t in texts]
    for t in texts:
        jsonschema.validate(json.loads(t), SCHEMA)
    assert set(ext["vote_shares"]) == set(values)  # classes are canonical parsed values
    top = max(set(values), key=values.count)
    assert ext["vote_shares"][top] == pytest.approx(values.count(top) / 4)
    jsonschema.validate(json.loads(r["choices"][0]["message"]["content"]), SCHEMA)


@pytest.mark.parametrize(("fmt", "param", "fragment"), [
    ({"type": "json_schema", "json_schema": {"name": "x"}}, "response_format.json_schema.schema",
     "required for type json_schema"),
    ({"type": "json_schema", "json_schema": {"name": "x", "strict": True,
                                             "schema": {"type": "string", "format": "nope"}}},
     "response_format", "Unknown format"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "integer", "minimum": 3, "maximum": 1}}}, "response_format", "Unsatisfiable"),
    ({"type": "xml"}, "response_format.type", "Input should be"),
    ({"type": "json_schema", "json_schema": {"name": "bad name!", "schema": {}}},
     "response_format.json_schema.name", "should match pattern"),
])
def test_bad_response_formats_are_400_naming_the_field(url, fmt, param, fragment):
    r = httpx.post(url + "/chat/completions", timeout=30,
                   json={"model": "smol", "messages": ASK, "response_format": fmt})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and fragment in err["message"], err


def test_the_openai_backend_passes_the_schema_upstream(url):
    backend = OpenAIHTTPBackend(url, model="smol")
    c = Constraint(kind="json_schema", source=json.dumps(SCHEMA))
    gen = backend.generate(Prompt.user(ASK[0]["content"]),
                           SamplingParams(n=2, seed=5, max_tokens=60, constraint=c))
    for s in gen.samples:
        jsonschema.validate(json.loads(s.text), SCHEMA)
    body = backend.request_body(Prompt.user("q"), SamplingParams(constraint=c))
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "output", "schema": SCHEMA, "strict": True}}
    with pytest.raises(ConfigError, match="regex constraint cannot be sent over the OpenAI API"):
        backend.check_params(SamplingParams(constraint=Constraint(kind="regex", source="a")))
    with pytest.raises(ConfigError, match="use a chat prompt"):
        backend.request_body(Prompt(text="q"), SamplingParams(constraint=c))
    backend.close()


def test_the_constraint_extension_field_takes_a_regex_on_text_completions(url):
    regex = r"(Yes|No)\."
    r = httpx.post(url + "/completions", timeout=120, json={
        "model": "smol", "prompt": "Is water wet? Answer:", "n": 2, "seed": 1, "max_tokens": 8,
        "constraint": {"kind": "regex", "source": regex}})
    assert r.status_code == 200, r.text
    assert all(re.fullmatch(regex, c["text"]) for c in r.json()["choices"])
    both = httpx.post(url + "/chat/completions", timeout=30, json={
        "model": "smol", "messages": ASK, "response_format": {"type": "json_object"},
        "constraint": {"kind": "regex", "source": "a"}})
    assert both.status_code == 400 and both.json()["error"]["param"] == "constraint"
    bad = httpx.post(url + "/completions", timeout=30, json={
        "model": "smol", "prompt": "q", "constraint": {"kind": "regex", "source": "(a"}})
    assert bad.status_code == 400 and "invalid regex" in bad.json()["error"]["message"]
