"""The server-wide adaptive budget (``serve --adaptive-budget``): the token bucket, the
gate on adaptive strategies' rounds, and the server with it."""

from __future__ import annotations

import httpx
import pytest
from _server_helpers import serve

from samplescale.backends.fake import ScriptedBackend
from samplescale.cli import main
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.server.adaptive_budget import RateGated, TokenRate
from samplescale.server.app import create_app
from samplescale.strategies import ESC, AdaptiveConsistency, SelfConsistency

USER = [{"role": "user", "content": "What is 3 + 4?"}]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def boxed(*answers):
    return [f"so \\boxed{{{a}}}" for a in answers]  # 12 characters = 12 tokens each


def test_bucket_refills_at_its_rate_up_to_one_minute():
    clock = Clock()
    rate = TokenRate(600, clock)  # 10 tokens per second
    assert rate.level() == 600
    rate.charge(500)
    assert rate.level() == 100
    clock.t = 10.0
    assert rate.level() == 200
    rate.charge(450)
    assert rate.level() == -250  # overdrawn by requests running at once
    clock.t = 200.0
    assert rate.level() == 600  # capped at one minute's worth


def test_grant_rule_table():
    clock = Clock()
    rate = TokenRate(600, clock)
    rate.charge(300)  # level 300 = half full
    # need = cost + 300 * max(0, 1 - 2 * split)
    assert rate.grant(50, 0.0) == {"granted": False, "level": 300.0, "cost": 50.0,
                                   "split": 0.0, "need": 350.0}
    assert rate.grant(50, 0.25)["need"] == 200.0 and rate.grant(50, 0.25)["granted"]
    assert rate.grant(50, 0.5)["need"] == 50.0
    assert not rate.grant(301, 0.5)["granted"]  # a split vote still pays for its round
    with pytest.raises(ConfigError, match=r"must be an integer in \[1, 1000000000\], got 0"):
        TokenRate(0)


def gated(strategy, rate):
    return RateGated(inner=strategy, rate=rate)


def test_a_split_vote_continues_where_a_settled_one_is_stopped():
    """Bucket at 150 of 600: a 3-1 vote (split 0.25) needs cost + 150 = 198, a 2-2 vote
    (split 0.5) only the cost, 48; adaptive-consistency at threshold 0.999 would continue
    both."""
    strategy = AdaptiveConsistency(threshold=0.999, round=4)
    params = SamplingParams(n=8, seed=0)
    for replies, granted, samples in ((boxed(1, 1, 1, 2), False, 4),
                                      (boxed(1, 2, 1, 2), True, 8)):
        clock = Clock()
        rate = TokenRate(600, clock)
        rate.charge(600 - 150 - 48)  # the first round's 4 x 12 tokens bring it to 150
        r = gated(strategy, rate).run(ScriptedBackend(replies), "q", params)
        assert r.strategy == "adaptive-consistency" and len(r.samples) == samples
        first = r.trace[0]
        assert first["global_budget"]["granted"] is granted
        assert first["global_budget"]["level"] == 150.0 and first["global_budget"]["cost"] == 48.0
        assert first["global_budget"]["need"] == (48.0 if granted else 198.0)
        assert first["decision"] == ("continue" if granted else "stop")
        assert rate.level() == 150 - 48 * (samples // 4 - 1)


def test_an_empty_bucket_leaves_every_request_its_first_round():
    clock = Clock()
    rate = TokenRate(1, clock)
    r = gated(ESC(window=2), rate).run(ScriptedBackend(boxed(1, 2)), "q", SamplingParams(n=8))
    assert len(r.samples) == 2 and r.answer is not None
    assert r.trace[-1]["decision"] == "stop" and not r.trace[-1]["global_budget"]["granted"]
    assert rate.level() == 1 - 24


def test_rules_stop_as_before_and_other_strategies_are_only_charged():
    rate = TokenRate(10**6, Clock())
    r = gated(ESC(window=2), rate).run(ScriptedBackend(boxed(3, 3)), "q", SamplingParams(n=8))
    assert len(r.samples) == 2 and "global_budget" not in r.trace[-1]  # unanimous: ESC's stop
    r = gated(SelfConsistency(), rate).run(ScriptedBackend(boxed(1, 2)), "q", SamplingParams(n=4))
    assert len(r.samples) == 4 and rate.level() == 10**6 - 24 - 48


def test_server_with_an_adaptive_budget_reports_the_gate():
    app = create_app(ScriptedBackend(boxed(1, 2)), "fake", adaptive_budget=1)
    with serve(app) as url:
        resp = httpx.post(url + "/chat/completions", timeout=30, json={
            "model": "esc@8/fake", "messages": USER, "max_tokens": 64,
            "samplescale": {"options": {"window": 2}}})
    assert resp.status_code == 200, resp.text
    ext = resp.json()["samplescale"]
    assert ext["n"] == 2 and ext["usage"]["completion_tokens"] == 24
    assert [s["decision"] for s in ext["stopping"]] == ["stop"]
    assert ext["stopping"][0]["global_budget"]["granted"] is False
    app = create_app(ScriptedBackend(boxed(1, 2)), "fake")  # no shared budget: all 8
    with serve(app) as url:
        resp = httpx.post(url + "/chat/completions", timeout=30, json={
            "model": "esc@8/fake", "messages": USER, "max_tokens": 64,
            "samplescale": {"options": {"window": 2}}})
    ext = resp.json()["samplescale"]
    assert ext["n"] == 8 and [s["decision"] for s in ext["stopping"]][-1] == "budget"


def test_serve_refuses_an_adaptive_budget_out_of_range(capsys):
    assert main(["serve", "--adaptive-budget", "0"]) == 2
    assert "--adaptive-budget must be in [1, 1000000000], got 0" in capsys.readouterr().err
