"""Resuming onto a record file (:mod:`samplescale.backends.record_resume`): recorded calls
served without the model, the rest live and appended, another model's file refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from samplescale.backends.fake import ScriptedBackend
from samplescale.backends.record_resume import ResumingBackend
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.types import Prompt

PARAMS = SamplingParams(n=1, seed=5)
ASKED = ("q", "q", "r")  # a repeated identical call: served in recorded order


def _texts(path):
    lines = path.read_text().splitlines()
    return [json.loads(x)["generation"]["samples"][0]["text"] for x in lines[1:]]


def _record(path):
    first = ScriptedBackend(["a1", "a2", "a3"])
    rec = ResumingBackend(first, path, identity="toy")
    rng = np.random.default_rng(3)
    got = [rec.generate(Prompt.user(q), PARAMS, rng).samples[0].text for q in ASKED]
    rec.close()
    assert got == ["a1", "a2", "a3"] and rec.served == 0 and len(first.calls) == 3


def test_resume_serves_the_recorded_calls_then_asks_the_model_and_appends(tmp_path):
    path = tmp_path / "calls.jsonl"
    _record(path)
    head = json.loads(path.read_text().splitlines()[0])
    assert head["backend"] == "fake" and head["identity"] == "toy"
    inner = ScriptedBackend(["b1", "b2"])
    res = ResumingBackend(inner, path, identity="toy")
    rng = np.random.default_rng(3)
    got = [res.generate(Prompt.user(q), PARAMS, rng).samples[0].text for q in ASKED]
    assert got == ["a1", "a2", "a3"] and res.served == 3
    assert inner.calls == []  # the model was asked none of the recorded calls
    fourth = res.generate(Prompt.user("s"), PARAMS, rng)
    assert fourth.samples[0].text == "b1" and inner.calls == [(Prompt.user("s"), PARAMS)]
    res.close()
    assert _texts(path) == ["a1", "a2", "a3", "b1"]  # appended after the recorded calls
    again = ScriptedBackend(["c1"])
    res = ResumingBackend(again, path, identity="toy")
    events = list(res.stream(Prompt.user("q"), PARAMS, np.random.default_rng(3)))
    assert events[-1].samples[0].text == "a1" and again.calls == [] and res.served == 1


def test_after_the_first_unrecorded_call_every_call_is_live(tmp_path):
    path = tmp_path / "calls.jsonl"
    _record(path)
    with path.open("a") as fh:
        fh.write('{"prompt": {"mess')  # a line cut short by an interruption: dropped
    inner = ScriptedBackend(["b1", "b2"])
    res = ResumingBackend(inner, path, identity="toy")
    rng = np.random.default_rng(3)
    assert res.generate(Prompt.user("q"), PARAMS, rng).samples[0].text == "a1"
    assert res.generate(Prompt.user("x"), PARAMS, rng).samples[0].text == "b1"
    # recorded (the second "q") but after the first unrecorded call: asked again
    assert res.generate(Prompt.user("q"), PARAMS, rng).samples[0].text == "b2"
    res.close()
    assert res.served == 1 and [p.messages[0].content for p, _ in inner.calls] == ["x", "q"]
    assert _texts(path) == ["a1", "a2", "a3", "b1", "b2"]


def test_a_file_of_another_backend_or_model_is_refused(tmp_path):
    path = tmp_path / "calls.jsonl"
    _record(path)
    before = path.read_text()

    class Other(ScriptedBackend):
        name = "other"

    with pytest.raises(ConfigError, match=f'{path}: the file holds the calls of another '
                       'model \\(model "toy" -> "gpt"\\)'):
        ResumingBackend(ScriptedBackend(["x"]), path, identity="gpt")
    with pytest.raises(ConfigError, match="backend 'fake' -> 'other'\\)"):
        ResumingBackend(Other(["x"]), path, identity="toy")
    assert path.read_text() == before  # nothing written
