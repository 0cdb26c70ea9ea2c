"""Adaptive-stopping strategies (esc, adaptive-consistency, semantic-entropy,
confidence-stop): decisions and spend on scripted backends, hostile parameters, the
server's ``strategy@N`` names, and the command line with the embedded model."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from samplescale.backends.base import Capabilities
from samplescale.backends.fake import ScriptedBackend
from samplescale.cli import main
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.strategies import (
    ConfidenceStop,
    adaptive_consistency,
    confidence_stop,
    esc,
    get_strategy,
    semantic_entropy,
)


def boxed(*answers):
    return [f"so \\boxed{{{a}}}" for a in answers]


def decisions(result):
    return [t["decision"] for t in result.trace]


def test_esc_stops_after_the_first_unanimous_window():
    backend = ScriptedBackend(boxed(1, 2, 3, 3, 9, 9))
    r = esc(backend, "q", SamplingParams(n=8, seed=0), window=2)
    assert decisions(r) == ["continue", "stop"] and len(r.samples) == 4
    assert [t["window_unanimous"] for t in r.trace] == [False, True]
    assert r.answer == "3" and r.vote_shares == {"1": 0.25, "2": 0.25, "3": 0.5}
    assert r.usage.model_calls == 2 and r.usage.completion_tokens == 4 * len("so \\boxed{1}")


def test_esc_spends_at_most_its_budget_and_says_so():
    r = esc(ScriptedBackend(boxed(1, 2, 3, 4, 5)), "q", SamplingParams(n=5), window=2)
    assert decisions(r) == ["continue", "continue", "budget"]
    assert [t["samples"] for t in r.trace] == [2, 2, 1] and len(r.samples) == 5


def test_adaptive_consistency_stops_when_the_beta_posterior_is_sure():
    r = adaptive_consistency(ScriptedBackend(boxed(4)), "q", SamplingParams(n=16), threshold=0.95)
    # unanimous: P = 1 - 2^-(v+1): 0.75, 0.875, 0.9375, 0.96875 -> stop at 4 samples
    assert [t["leader_probability"] for t in r.trace] == pytest.approx([0.75, 0.875, 0.9375,
                                                                        0.96875])
    assert decisions(r) == ["continue"] * 3 + ["stop"] and r.answer == "4"
    r = adaptive_consistency(ScriptedBackend(boxed(4)), "q", SamplingParams(n=16), threshold=0.99)
    assert len(r.samples) == 6  # 1 - 2^-7 = 0.992
    r = adaptive_consistency(ScriptedBackend(boxed(4, 5, 4, 4)), "q", SamplingParams(n=4),
                             round=2)
    # 1-1 (0.5), then 3-1 (13/16): never sure, the budget ends it
    assert [t["leader_probability"] for t in r.trace] == pytest.approx([0.5, 13 / 16])
    assert decisions(r) == ["continue", "budget"]


def test_semantic_entropy_stops_below_its_threshold():
    r = semantic_entropy(ScriptedBackend(boxed(1, 2, 1, 1, 1, 1, 3, 3)), "q",
                         SamplingParams(n=8), threshold=0.5, round=2)
    h = [math.log(2), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)),
         -(5 / 6 * math.log(5 / 6) + 1 / 6 * math.log(1 / 6))]  # 0.693, 0.562, 0.451
    assert [t["entropy"] for t in r.trace] == pytest.approx(h)
    assert decisions(r) == ["continue", "continue", "stop"] and len(r.samples) == 6


def test_confidence_stop_drops_low_confidence_traces_and_votes_by_confidence():
    # "8" traces have token log-probability -2, "7" traces -0.1; a plain vote ties 2-2 and
    # picks "8" (seen first); the threshold from the 4 warm-up traces (keep 0.25: the 0.75
    # quantile, "lower") is -0.1, so both "8" traces are dropped and "7" has all the vote.
    backend = ScriptedBackend(boxed(8, 7, 8, 7), token_logprob=[-2.0, -0.1, -2.0, -0.1])
    r = confidence_stop(backend, "q", SamplingParams(n=8), warmup=4, keep=0.25, window=2)
    (rec,) = r.trace
    assert rec["threshold"] == pytest.approx(-0.1) and rec["dropped"] == 2
    assert rec["consensus_share"] == 1.0 and rec["decision"] == "stop"
    # each dropped trace: 12 tokens, below the threshold from its first window of 2
    assert rec["tokens_after_cut"] == 2 * (12 - 2)
    assert r.answer == "7" and r.weights == pytest.approx((0.0, 0.5, 0.0, 0.5))
    assert r.scores == pytest.approx((-2.0, -0.1, -2.0, -0.1)) and len(r.samples) == 4


def test_confidence_stop_continues_until_consensus_or_budget():
    backend = ScriptedBackend(boxed(1, 2, 1, 2, 1), token_logprob=-0.2)
    r = confidence_stop(backend, "q", SamplingParams(n=5), warmup=2, consensus=0.9)
    assert decisions(r) == ["continue", "continue", "continue", "budget"]
    assert [t["samples"] for t in r.trace] == [2, 1, 1, 1]
    assert r.trace[-1]["consensus_share"] == pytest.approx(0.6)


class NoLogprobs(ScriptedBackend):
    capabilities = Capabilities(logits=False, seeds=True, parallel_n=True, chat=True,
                                logprobs=False)


def test_confidence_stop_needs_logprobs_and_says_so():
    with pytest.raises(ConfigError, match="strategy 'confidence-stop' needs per-token "
                       "log-probabilities"):
        ConfidenceStop().run(NoLogprobs(boxed(1)), "q", SamplingParams(n=8))


HOSTILE = [
    ("esc", {"window": 0}, r"window must be in \[1, N\] = \[1, 8\]"),
    ("esc", {"window": 9}, r"window must be in \[1, N\] = \[1, 8\]"),
    ("esc", {"window": 2.5}, "window must be an integer"),
    ("adaptive-consistency", {"threshold": 1.0}, r"threshold must be in \(0, 1\)"),
    ("adaptive-consistency", {"threshold": 0}, r"threshold must be in \(0, 1\)"),
    ("adaptive-consistency", {"threshold": float("nan")}, r"threshold must be in \(0, 1\)"),
    ("adaptive-consistency", {"prior": -1}, r"prior must be a finite number in \(0, inf\)"),
    ("adaptive-consistency", {"round": 0}, r"round must be in \[1, N\]"),
    ("semantic-entropy", {"threshold": -0.1}, r"threshold must be a finite number in \[0, inf\)"),
    ("semantic-entropy", {"threshold": float("inf")}, r"threshold must be a finite number"),
    ("semantic-entropy", {"round": 1}, r"round must be in \[2, N\] = \[2, 8\]"),
    ("confidence-stop", {"keep": 0}, r"keep must be in \(0, 1\]"),
    ("confidence-stop", {"consensus": 1.5}, r"consensus must be in \(0, 1\]"),
    ("confidence-stop", {"window": 0}, "window must be >= 1"),
    ("confidence-stop", {"warmup": 9}, r"warmup must be in \[1, N\] = \[1, 8\]"),
    ("confidence-stop", {"warmup": 0}, r"warmup must be in \[1, N\]"),
    ("confidence-stop", {"round": 100}, r"round must be in \[1, N\]"),
]


@pytest.mark.parametrize("name,options,match", HOSTILE)
def test_parameters_that_could_loop_or_overspend_are_refused(name, options, match):
    with pytest.raises(ConfigError, match=match):
        get_strategy(name, **options).run(ScriptedBackend(boxed(1)), "q", SamplingParams(n=8))


@pytest.mark.parametrize("name", ["esc", "adaptive-consistency", "semantic-entropy",
                                  "confidence-stop"])
def test_every_adaptive_strategy_never_draws_beyond_n(name):
    backend = ScriptedBackend(boxed(*range(20)), token_logprob=-0.3)  # never settles
    r = get_strategy(name).run(backend, "q", SamplingParams(n=8, seed=1))
    assert len(r.samples) == 8 and r.trace[-1]["decision"] == "budget"
    assert sum(t["samples"] for t in r.trace) == 8 == sum(p.n for _, p in backend.calls)
    assert r.usage.completion_tokens == sum(s.num_tokens for s in r.samples)


pytest.importorskip("fastapi")
from _server_helpers import serve  # noqa: E402

from samplescale.server import create_app  # noqa: E402

USER = [{"role": "user", "content": "What is 3 + 4?"}]


def _post(app, body):
    with serve(app) as url:
        return httpx.post(url + "/chat/completions", timeout=30,
                          json={"messages": USER, "max_tokens": 64, **body})


def test_server_runs_adaptive_strategies_by_name_and_refuses_what_cannot_run():
    app = create_app(ScriptedBackend(boxed(7)), "fake")
    with serve(app) as url:
        def post(body):
            return httpx.post(url + "/chat/completions", timeout=30,
                              json={"messages": USER, "max_tokens": 64, **body})

        r = post({"model": "adaptive-consistency@16/fake"})
        assert r.status_code == 200, r.text
        ext = r.json()["samplescale"]
        assert ext["strategy"] == "adaptive-consistency" and len(ext["candidates"]) == 4
        r = post({"model": "esc@8/fake", "samplescale": {"options": {"window": 2}}})
        assert r.status_code == 200 and len(r.json()["samplescale"]["candidates"]) == 2
        r = post({"model": "esc@2/fake"})  # default window 4 > N = 2
        assert r.status_code == 400 and "window must be in [1, N] = [1, 2]" in r.text
        assert r.json()["error"]["param"] == "samplescale.options"
    r = _post(create_app(NoLogprobs(boxed(7)), "fake"), {"model": "confidence-stop@8/fake"})
    assert r.status_code == 400 and "'confidence-stop' needs logprobs" in r.text


@pytest.fixture(scope="module")
def model(llama_backend):
    return str(llama_backend.model_path)


@pytest.mark.slow
def test_cli_generate_and_eval_with_adaptive_strategies_and_pricing(capsys, tmp_path, model):
    code = main(["generate", "What is 2 + 3?", "-n", "4", "--max-tokens", "16", "--seed", "1",
                 "--strategy", "adaptive-consistency", "--option", "round=2", "--json",
                 "--model", model])
    body = json.loads(capsys.readouterr().out)
    assert code == 0 and body["strategy"] == "adaptive-consistency"
    assert 2 <= len(body["samples"]) <= 4 and body["trace"][-1]["decision"] in ("stop", "budget")
    assert body["usage"]["completion_tokens"] == sum(
        len(s["token_ids"]) for s in body["samples"])
    code = main(["generate", "What is 2 + 2?", "-n", "4", "--max-tokens", "16", "--seed", "3",
                 "--strategy", "esc", "--option", "window=2", "--model", model])
    stdout = capsys.readouterr().out
    assert code == 0 and "of at most 4 samples" in stdout and "stopping: the " in stdout
    out = tmp_path / "pool"
    code = main(["eval", "--limit", "1", "--n", "4", "--max-tokens", "16", "--price-stopping",
                 "--output", str(out), "--model", model])
    stdout = capsys.readouterr().out
    assert code == 0 and "stopping rules priced on the pool (budget 4)" in stdout
    summary = json.loads((out / "summary.json").read_text())
    rules = {(r["rule"], r.get("window"), r.get("threshold")) for r in summary["stopping"]["rules"]}
    assert ("esc", 2, None) in rules and ("adaptive-consistency", None, 0.95) in rules
    assert any(r["rule"] == "confidence-stop" and r["method"] == "monte-carlo"
               for r in summary["stopping"]["rules"])
    assert {s["rule"] for s in summary["stopping"]["skipped"]} == {"esc"}  # window 8 > 4
    code = main(["eval", "--limit", "1", "--n", "4", "--max-tokens", "24", "--strategy", "esc",
                 "--option", "window=9", "--output", str(tmp_path / "bad"), "--model", model])
    assert code != 0 and "window must be in [1, N] = [1, 4]" in capsys.readouterr().err


def test_seeded_rounds_draw_fresh_samples_and_reproduce(llama_backend):
    """With a run seed every round draws its own stream (before the fix each round of a
    seeded run repeated the first one, so ESC windows were copies of window 1); the first
    round is the self-consistency pool of that seed, and a rerun reproduces every round."""
    from samplescale.strategies import self_consistency

    params = SamplingParams(n=6, seed=3, temperature=1.2, max_tokens=12)
    r = esc(llama_backend, "What is 17 + 25?", params, window=2)
    texts = [s.text for s in r.samples]
    assert len(texts) == 6 and decisions(r) == ["continue", "continue", "budget"]
    assert texts[0:2] != texts[2:4] and texts[2:4] != texts[4:6]
    assert len(set(texts)) >= 5  # six draws at temperature 1.2 of 12 tokens
    again = esc(llama_backend, "What is 17 + 25?", params, window=2)
    assert [s.text for s in again.samples] == texts
    sc = self_consistency(llama_backend, "What is 17 + 25?", params.replace(n=2))
    assert [s.text for s in sc.samples] == texts[:2]


@pytest.mark.parametrize("name", ["esc", "adaptive-consistency", "semantic-entropy"])
def test_a_round_of_only_errors_stops_the_rule_instead_of_filling_n(name):
    from samplescale.backends.budget import TokenBudgetBackend

    # split votes never settle; the prompt costs 7 tokens a call, a reply 12: round 1 draws
    # 2 (31 tokens), round 2 affords 1 of 2 (19 more, 10 left), round 3 none: it stops there
    replies = boxed(1, 2, 3, 4, 5, 6, 7, 8)
    backend = TokenBudgetBackend(ScriptedBackend(replies), 60)
    strategy = get_strategy(name, **({"window": 2} if name == "esc" else {"round": 2}))
    r = strategy.run(backend, "q", SamplingParams(n=16, max_tokens=12, seed=0))
    ok = [s for s in r.samples if s.status == "ok"]
    assert decisions(r)[-1] == "failed" and "continue" in decisions(r)
    assert len(ok) == 3 and len(r.samples) == 6 and backend.spent == 57
    assert "budget" in r.trace[-1]["error"] and backend.spent <= 60
    # a dead upstream: the first round fails, nothing is voted on, no further rounds
    r = strategy.run(ScriptedBackend([RuntimeError("connection refused")]), "q",
                     SamplingParams(n=16, seed=0))
    assert decisions(r) == ["failed"] and len(r.samples) == 2 and r.answer is None
    assert "connection refused" in r.trace[0]["error"]


def test_a_round_with_some_errors_goes_on():
    replies = [RuntimeError("flaky"), *boxed(3, 3)]
    r = esc(ScriptedBackend(replies), "q", SamplingParams(n=8, seed=0), window=2)
    assert decisions(r)[0] == "continue" and r.answer == "3"
