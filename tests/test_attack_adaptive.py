"""Hostile inputs against the adaptive-compute features of issue 17 (stopping rules,
allocate, the adaptive server budget, pricing of stopping rules): each test pins a defect
found by attacking them, with the clear error or the right value expected."""

from __future__ import annotations

import json

import pytest
from test_allocation import write_pool

from samplescale.cli import main
from samplescale.errors import ConfigError
from samplescale.strategies import get_strategy

HUGE = 10**400  # an int no float holds (JSON and --option parse it as an int)


@pytest.mark.parametrize(("name", "option", "value"), [
    ("adaptive-consistency", "threshold", HUGE),
    ("adaptive-consistency", "threshold", -HUGE),
    ("adaptive-consistency", "prior", HUGE),
    ("semantic-entropy", "threshold", HUGE),
    ("confidence-stop", "keep", HUGE),
    ("confidence-stop", "consensus", -HUGE),
], ids=["ac-threshold", "ac-threshold-neg", "ac-prior", "se-threshold", "cs-keep",
        "cs-consensus-neg"])
def test_huge_integer_options_are_refused_with_the_field_named(name, option, value):
    with pytest.raises(ConfigError, match=rf"{option} must be"):
        get_strategy(name, **{option: value})


def test_osca_refuses_a_huge_integer_temperature_key():
    with pytest.raises(ConfigError, match=r"allocation key .* temperature in \[0, 100\]"):
        get_strategy("osca", allocation={HUGE: 4})


def test_server_answers_400_for_a_huge_negative_threshold():
    import httpx
    from _server_helpers import serve

    from samplescale.backends.fake import ScriptedBackend
    from samplescale.server.app import create_app

    app = create_app(ScriptedBackend(["\\boxed{1}"]), "m")
    body = {"model": "adaptive-consistency@4/m", "messages": [{"role": "user", "content": "q"}],
            "samplescale": {"options": {"threshold": -HUGE}}}
    with serve(app) as url:
        r = httpx.post(url + "/chat/completions", json=body, timeout=30)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "samplescale.options" and "threshold must be in (0, 1)" in err["message"]


@pytest.mark.parametrize(("model", "options", "message"), [
    ("osca@8/m", {"allocation": {"0.5": 2, "1.0": 3}},
     "the allocation spends 5 samples but n is 8"),
    ("esc@4/m", {"window": 8}, "window"),
])
def test_server_names_the_options_that_do_not_fit_n(model, options, message):
    import httpx
    from _server_helpers import serve

    from samplescale.backends.fake import ScriptedBackend
    from samplescale.server.app import create_app

    backend = ScriptedBackend(["\\boxed{1}"])
    app = create_app(backend, "m")
    body = {"model": model, "messages": [{"role": "user", "content": "q"}],
            "samplescale": {"options": options}}
    with serve(app) as url:
        r = httpx.post(url + "/chat/completions", json=body, timeout=30)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "samplescale.options" and message in err["message"]
    assert f"with N = {model.split('@')[1].split('/')[0]} samples" in err["message"]


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pools")
    return write_pool(tmp, "low", 0.3, {0, 1, 2, 3}), write_pool(tmp, "high", 1.0, {4, 5, 6, 7})


def test_allocate_refuses_a_negative_seed_and_draws(pools, capsys):
    low, high = pools
    assert main(["allocate", str(low), str(high), "--budget", "2", "--seed", "-1"]) == 2
    assert "--seed must be an integer >= 0, got -1" in capsys.readouterr().err
    assert main(["allocate", str(low), str(high), "--budget", "2", "--draws", "0"]) == 2
    assert "--draws must be an integer in [1, 100000], got 0" in capsys.readouterr().err
    assert main(["allocate", str(low), str(high), "--budget", "2", "--draws", "10000000"]) == 2
    assert "--draws must be an integer in [1, 100000], got 10000000" in capsys.readouterr().err


@pytest.mark.parametrize("settings", [[1, 2], {"task": ["jsonl"], "params": "hot"}])
def test_allocate_survives_a_corrupt_run_json(pools, capsys, settings):
    low, high = pools
    original = (high / "run.json").read_text()
    try:
        (high / "run.json").write_text(json.dumps(settings))
        code = main(["allocate", str(low), str(high), "--budget", "2", "--draws", "4"])
    finally:
        (high / "run.json").write_text(original)
    out = capsys.readouterr()
    if isinstance(settings, list):
        assert code == 2 and "run.json must hold a JSON object" in out.err
    else:  # the table, but no osca option built from a temperature that is not a number
        assert code == 0 and "apply it" not in out.out and "Traceback" not in out.err


def test_price_stopping_counts_an_empty_sample_as_a_dropped_trace():
    """One ok sample without tokens (hence without a confidence) used to skip pricing
    confidence-stop for the whole run; it is a trace of confidence -inf (never votes)."""
    from samplescale.analysis.stopping_records import price_records
    from samplescale.strategies.confidence_stop import ConfidenceStop

    def sample(tokens, conf):
        return {"status": "ok", "tokens": tokens, "lowest_group_confidence": conf}

    record = {"status": "ok", "n": 3, "labels": [0, 0, None], "correct_label": 0,
              "samples": [sample(3, -0.1), sample(3, -0.1), sample(0, None)]}
    rule = ConfidenceStop(warmup=1, keep=1.0, consensus=0.5)
    out = price_records([record], rules=[rule], seed=0, draws=400)
    assert out["skipped"] == []
    (row,) = out["rules"]
    # the empty sample first (p = 1/3): 2 samples drawn, else 1; always 3 tokens, correct
    assert row["accuracy"]["mean"] == 1.0 and row["tokens"] == 3.0
    assert abs(row["samples"] - 4 / 3) < 4 * row["samples_mc_se"] + 1e-12


@pytest.mark.parametrize("name", ["mur", "beam-search", "particle-filtering"])
def test_adaptive_budget_charges_searches_what_they_spend(name):
    """serve --adaptive-budget charged a strategy only its step records' completion_tokens,
    which searches (mur, beam-search, particle filtering) do not write: they ran free."""
    from samplescale.backends.fake import ScriptedBackend
    from samplescale.config import SamplingParams
    from samplescale.server.adaptive_budget import RateGated, TokenRate

    rate = TokenRate(10**6, clock=lambda: 0.0)  # a frozen clock: no refill
    inner = get_strategy(name, scorer=lambda prompt, steps: 0.5, scorer_scale="probability")
    backend = ScriptedBackend(["Step one.\n\nThe answer is \\boxed{1}.", "It is \\boxed{2}."])
    result = RateGated(inner=inner, rate=rate).run(
        backend, "q", SamplingParams(n=4, max_tokens=40, seed=1))
    assert result.usage.completion_tokens > 0
    assert rate.level() == 10**6 - result.usage.completion_tokens


@pytest.mark.slow
def test_pricing_adaptive_consistency_on_a_many_class_pool_finishes():
    """Pricing adaptive-consistency on a 64-sample pool of 20 answer classes (a hard problem
    for a small model) went through scipy.stats' gamma ppf / cdf in every quadrature
    step: ~2 s per ordering, hours for eval --price-stopping. Same values, far faster."""
    import random
    import time

    import numpy as np

    from samplescale.analysis.stopping_price import price_rule
    from samplescale.stopping import leader_probability
    from samplescale.strategies.adaptive import AdaptiveConsistency

    # the values themselves: closed form for two classes, 3 equal classes by symmetry
    assert leader_probability([3]) == pytest.approx(1 - 2**-4, abs=1e-12)
    assert leader_probability([2, 2, 2]) == pytest.approx(1 / 3, abs=1e-8)
    rnd = random.Random(1)
    labels = [rnd.randrange(20) for _ in range(64)]
    start = time.perf_counter()
    price = price_rule(AdaptiveConsistency(threshold=0.95), labels, 0,
                       rng=np.random.default_rng(0), draws=20)
    assert time.perf_counter() - start < 15.0  # was ~40 s
    assert price.method == "monte-carlo" and price.samples == 64.0  # never settled


def test_mur_momentum_is_never_nan_after_an_impossible_token():
    """A step holding a token of log-probability -inf has uncertainty inf; with alpha 0 the
    momentum update computed 0 * inf = NaN, and NaN thresholds never scale a step again."""
    import math

    from samplescale.backends.fake import ScriptedBackend
    from samplescale.config import SamplingParams

    steps = ["Step a.\n\n", "Step bb.\n\n", "Step c.\n\n"]
    backend = ScriptedBackend(steps, token_logprob=[-math.inf, -0.1, -3.0])
    mur = get_strategy("mur", scorer=lambda prompt, s: 0.5, scorer_scale="probability",
                       gamma=1.0, alpha=0, max_steps=3, width=1)
    result = mur.run(backend, "q", SamplingParams(n=2, max_tokens=30, seed=1))
    records = [t for t in result.trace if t.get("event") == "mur"]
    assert [r["uncertainty"] for r in records] == [math.inf, pytest.approx(0.1), 3.0]
    assert [r["momentum"] for r in records[:2]] == [math.inf, pytest.approx(0.1)]
    # 3.0 > momentum 0.1 + ln(1/1): scaled; its one candidate (the 4th reply) is kept
    assert [r["scaled"] for r in records] == [False, False, True]
    assert records[2]["momentum"] == math.inf


def test_osca_with_priority_decoding_ends_after_its_temperatures():
    """Priority sampling (without replacement) returns one sample at temperature 0 however
    many are asked: osca then asked for a temperature past its allocation (IndexError)."""
    from samplescale.backends.fake import ToyLM
    from samplescale.config import SamplingParams

    osca = get_strategy("osca", allocation={"0": 2, "1.0": 2})
    result = osca.run(ToyLM(), "q", SamplingParams(n=4, decoding="priority", max_tokens=3,
                                                   seed=1))
    steps = [t for t in result.trace if "temperature" in t]
    assert [(t["temperature"], t["samples"]) for t in steps] == [(0.0, 1), (1.0, 2)]
    assert len(result.samples) == 3


def test_price_stopping_with_no_problem_run_still_writes_the_summary(tmp_path, capsys):
    """eval --price-stopping where every problem failed (error records) exited 2 without
    summary.json, while the same eval without the flag succeeds."""
    from samplescale.backends.fake import ScriptedBackend
    from samplescale.cli import build_parser
    from samplescale.cli_eval import run_eval
    from samplescale.cli_sampling import sampling_params
    from samplescale.errors import ProblemError

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"Say {q}?", "answer": str(q)}) + "\n"
                            for q in range(2)))
    model = tmp_path / "m.gguf"
    model.write_bytes(b"scripted")

    def fail(prompt, i):
        raise ProblemError("this problem cannot run")

    out = tmp_path / "run"
    args = build_parser().parse_args(
        ["eval", "--task", "jsonl", "--data", str(data), "-n", "4", "--model", str(model),
         "--output", str(out), "--price-stopping"])
    assert run_eval(args, sampling_params(args), lambda _a=None: ScriptedBackend(fail),
                    None) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "at least one pool record with status 'ok'" in summary["stopping"]["error"]
    assert "stopping rules not priced" in capsys.readouterr().out


def test_semantic_entropy_with_one_sample_says_to_raise_n():
    """N = 1 left no valid round (``[2, 1]``): the error named an empty range."""
    from samplescale.backends.fake import ScriptedBackend
    from samplescale.config import SamplingParams

    with pytest.raises(ConfigError, match=r"round must be in \[2, N\], so N .* must be at "
                       r"least 2, got N = 1"):
        get_strategy("semantic-entropy", round=2).run(
            ScriptedBackend(["\\boxed{1}"]), "q", SamplingParams(n=1))


def test_exact_pricing_of_a_thousand_sample_pool_does_not_overflow_the_stack():
    """The exact programme recursed one level per draw: RecursionError on a pool of 1000
    (eval -n 1000 --price-stopping, default rule semantic-entropy threshold 0)."""
    from math import comb

    from samplescale.analysis.stopping_price import price_rule
    from samplescale.strategies.adaptive import SemanticEntropy

    price = price_rule(SemanticEntropy(threshold=0.0), [0] * 900 + [1] * 100, 0)
    # it stops at 4 when the first round is unanimous, else never (budget 1000)
    right, wrong = comb(900, 4) / comb(1000, 4), comb(100, 4) / comb(1000, 4)
    assert price.method == "exact"
    assert price.samples == pytest.approx(4 * (right + wrong) + 1000 * (1 - right - wrong))
    assert price.accuracy == pytest.approx(1 - wrong)


@pytest.mark.parametrize("name", ["esc", "adaptive-consistency", "self-consistency"])
def test_a_backend_returning_no_sample_ends_the_run(name):
    """A backend (a user's own) answering a call with no sample made every sampling
    strategy ask again forever: the run never progressed towards N."""
    from samplescale.backends.fake import ScriptedBackend
    from samplescale.config import SamplingParams
    from samplescale.errors import BackendError

    class Empty(ScriptedBackend):
        def generate(self, prompt, params, rng=None):
            gen = super().generate(prompt, params, rng)
            return gen.model_copy(update={"samples": ()})

    with pytest.raises(BackendError, match=r"backend .fake. returned no sample for n=[14]\b"):
        get_strategy(name).run(Empty(["\\boxed{1}"]), "q", SamplingParams(n=4))


def test_server_names_an_unknown_option_and_the_valid_ones():
    import httpx
    from _server_helpers import serve

    from samplescale.backends.fake import ScriptedBackend
    from samplescale.server.app import create_app

    app = create_app(ScriptedBackend(["\\boxed{1}"]), "m")
    body = {"model": "esc@8/m", "messages": [{"role": "user", "content": "q"}],
            "samplescale": {"options": {"windw": 2}}}
    with serve(app) as url:
        r = httpx.post(url + "/chat/completions", json=body, timeout=30)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "samplescale.options"
    assert "has no option 'windw'; valid: equivalent, extract, window" in err["message"]
