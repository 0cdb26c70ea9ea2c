"""Particle filtering and particle Gibbs (step-level SMC) against exact targets.

The exact target: the toy bigram LM generates steps (delimiter "3", at most ``M`` tokens per
step, at most ``MAX_STEPS`` steps); a process scorer gives each partial solution a
probability; the target over terminal solutions is ``q(x) * potential(x)`` with potential
the product (or the last) of the step scores. Every terminal solution and its probability is
enumerated. Statistical tests use fixed seeds; levels are stated in each test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from samplescale.backends.fake import DEFAULT_TOY_TABLE, ScriptedBackend, ToyLM
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, UnknownNameError
from samplescale.strategies import (
    ParticleFiltering,
    ParticleGibbs,
    get_strategy,
    particle_filtering,
)
from samplescale.types import Prompt
from samplescale.verifiers.process import CallableScorer, ScorerError

TOY = ToyLM()
M = 3  # tokens per step at most
MAX_STEPS = 3
PROMPT = Prompt(text="q")
ALPHA = 0.001


def score(prompt: Prompt, steps: tuple[str, ...]) -> float:
    """Probability-scale process score: favours "2" over "1"."""
    text = "".join(steps)
    return (1 + text.count("2")) / (2 + text.count("2") + text.count("1"))


def potential(steps: list[str], how: str) -> float:
    s = [score(PROMPT, tuple(steps[: i + 1])) for i in range(len(steps))]
    return math.prod(s) if how == "product" else s[-1]


def exact_target(how: str, fn=potential) -> dict[tuple[str, bool], float]:
    """Unnormalised target ``q(x) potential(x)`` of every terminal (text, complete) pair."""
    out: dict[tuple[str, bool], float] = {}

    def steps_from(prev: int, seq: str, k: int, q: float):
        for t in range(4):
            pt = float(DEFAULT_TOY_TABLE[prev, t])
            if t == 0:
                yield seq, True, q * pt  # end of sequence
            elif t == 3:
                yield seq + "3", False, q * pt  # delimiter: the solution continues
            elif k + 1 >= M:
                yield seq + str(t), True, q * pt  # per-step length limit ends the solution
            else:
                yield from steps_from(t, seq + str(t), k + 1, q * pt)

    def rec(steps: list[str], q: float) -> None:
        text = "".join(steps)
        last = int(text[-1]) if text else 0
        for s, done, p in steps_from(last, "", 0, q):
            new = [*steps, s]
            if done or len(new) >= MAX_STEPS:
                key = ("".join(new), done)
                out[key] = out.get(key, 0.0) + p * fn(new, how)
            else:
                rec(new, p)

    rec([], 1.0)
    return out


def pf(**options) -> ParticleFiltering:
    base = dict(scorer=score, scorer_scale="probability", delimiter="3", max_steps=MAX_STEPS)
    return ParticleFiltering(**{**base, **options})


def params(n: int, seed: int | None = None) -> SamplingParams:
    return SamplingParams(temperature=1.0, max_tokens=M, n=n, seed=seed)


def complete(text: str) -> bool:
    """A PF solution is complete unless it was cut after MAX_STEPS delimited steps (a
    complete one has at most MAX_STEPS - 1 delimiters)."""
    return text.count("3") < MAX_STEPS


def test_exact_target_table():
    """Hand-computed cells: EOS first (q = 0.1; one empty step scored 1/2); "2" then EOS
    (q = 0.3 * 0.3; one step "2" scored 2/3); "3" "" (q = 0.1 * 0.6; steps "3" scored 1/2
    and "" scored 1/2, product 1/4)."""
    g = exact_target("product")
    assert g[("", True)] == pytest.approx(0.1 * 0.5)
    assert g[("2", True)] == pytest.approx(0.3 * 0.3 * 2 / 3)
    assert g[("3", True)] == pytest.approx(0.1 * 0.6 * 0.25)
    assert sum(exact_target("product", fn=lambda s, h: 1.0).values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "how, resampling, ess",
    [("product", "systematic", 1.0), ("product", "multinomial", 0.5), ("last", "residual", 0.7)],
)
def test_log_evidence_is_unbiased(how, resampling, ess):
    """Mean of exp(log Z_hat) over 600 runs of N = 6 particles vs the exact Z: |error| < 4
    standard errors (z-test, alpha about 6e-5)."""
    z = math.fsum(exact_target(how).values())
    strategy = pf(how=how, resampling=resampling, ess_threshold=ess)
    rng = np.random.default_rng(12)
    est = [math.exp(strategy.run(TOY, PROMPT, params(6), rng).log_evidence) for _ in range(600)]
    se = np.std(est, ddof=1) / math.sqrt(len(est))
    assert abs(np.mean(est) - z) < 4 * se, (np.mean(est), z, se)


def test_weighted_particles_match_the_exact_target():
    """The Z_hat-weighted particle measure is unbiased for the unnormalised target:
    E[Z_hat * sum_i W_i 1{x_i = x}] = Z pi(x) for every x. Over R i.i.d. runs the cell means
    are asymptotically normal; Wald chi-square test with the sample covariance on the 8
    likeliest cells plus the rest, alpha 0.001."""
    g = exact_target("product")
    cells = sorted(g, key=g.get, reverse=True)[:8]
    strategy = pf(how="product")
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(2000):
        r = strategy.run(TOY, PROMPT, params(8), rng)
        zhat = math.exp(r.log_evidence)
        row = np.zeros(len(cells) + 1)
        for s, w in zip(r.samples, r.weights):
            k = (s.text, complete(s.text))
            row[cells.index(k) if k in cells else len(cells)] += zhat * w
        rows.append(row)
    x = np.array(rows)
    expected = np.array([g[c] for c in cells] + [math.fsum(g.values()) - sum(g[c] for c in cells)])
    diff = x.mean(axis=0) - expected
    cov = np.cov(x, rowvar=False) / len(x)
    stat = float(diff @ np.linalg.solve(cov, diff))
    assert stats.chi2.sf(stat, df=len(expected)) > ALPHA, stat


def test_more_particles_reduce_the_error():
    """MSE of Z_hat / Z over 300 runs: N = 32 is at least 4x smaller than N = 2 (SMC
    variance falls like 1/N, so the expected ratio is about 16)."""
    z = math.fsum(exact_target("product").values())
    rng = np.random.default_rng(5)
    mse = {}
    for n in (2, 32):
        est = [math.exp(pf().run(TOY, PROMPT, params(n), rng).log_evidence) / z for _ in range(300)]
        mse[n] = float(np.mean((np.array(est) - 1.0) ** 2))
    assert mse[32] < mse[2] / 4, mse


def test_coverage_is_calibrated_tarp_style():
    """Coverage check in the spirit of TARP (Lemos et al., 2023, "Sampling-Based Accuracy
    Testing of Posterior Estimators"). Per trial: draw a solution x* from the prior (the step
    process), observe y = f(x*) + N(0, 1) with f(x) = number of "2" minus number of "1", and
    run particle filtering (N = 32) on the posterior q(x) g(y | x), with
    g(y | x) = exp(-(y - f(x))^2 / 2) as a probability-scale scorer of the partial solution
    (how="last": a partial solution's twist is its own g). As in TARP, credible regions are
    balls around a reference point, here r = y + N(0, 1): the credibility of x* is the
    posterior mass closer to r than x* (randomised over ties). It is U(0, 1) when the
    posterior is right, so every credible level has its nominal coverage; the prior (no
    likelihood) or a too sharp / too flat likelihood fails. Test over R = 1000 trials:
    KS p > 0.001, and the coverage at levels 0.1, ..., 0.9 is within 0.05 of the level
    (binomial sd <= 0.016)."""
    prior = exact_target("product", fn=lambda steps, how: 1.0)
    xs = list(prior)
    probs = np.array([prior[x] for x in xs])
    rng = np.random.default_rng(2024)

    def f(text: str) -> int:
        return text.count("2") - text.count("1")

    levels = []
    for _ in range(1000):
        text, _done = xs[rng.choice(len(xs), p=probs / probs.sum())]
        y = f(text) + rng.normal()
        ref = y + rng.normal()

        def likelihood(prompt, steps, y=y):
            return math.exp(-((y - f("".join(steps))) ** 2) / 2)

        r = pf(scorer=likelihood, how="last").run(TOY, PROMPT, params(32), rng)
        dist = np.array([abs(f(s.text) - ref) for s in r.samples])
        w = np.array(r.weights)
        d_star = abs(f(text) - ref)
        closer, tied = w[dist < d_star].sum(), w[dist == d_star].sum()
        levels.append(closer + rng.random() * tied)
    levels = np.array(levels)
    assert stats.kstest(levels, "uniform").pvalue > ALPHA
    for level in np.arange(0.1, 1.0, 0.1):
        assert abs(np.mean(levels <= level) - level) < 0.05


# ----------------------------------------------------------------------------- budgets
@pytest.mark.parametrize("budget", [1, 2, 5, 9, 17, 40])
def test_token_budget_never_exceeded(budget):
    for seed in range(8):
        r = pf(token_budget=budget, max_steps=10).run(TOY, PROMPT, params(5, seed))
        end = r.trace[-1]
        assert r.usage.completion_tokens == end["policy_tokens"] <= budget
        assert end["event"] == "end" and end["token_budget"] == budget
        steps = [t for t in r.trace if t.get("event") == "smc-step"]
        assert sum(t["step_tokens"] for t in steps) == end["policy_tokens"]
        if end["stop_reason"] == "token-budget":  # not one token left per active particle
            assert budget - end["policy_tokens"] < 5


@pytest.mark.parametrize("budget", [1, 4, 5, 11, 30])
def test_scorer_budget_never_exceeded(budget):
    for seed in range(8):
        scorer = CallableScorer(score, "probability")
        r = pf(scorer=scorer, scorer_budget=budget, max_steps=10).run(TOY, PROMPT, params(5, seed))
        assert scorer.usage.calls == r.trace[-1]["scorer_calls"] <= budget
        if budget < 5:  # not one step can be scored: nothing is drawn
            assert r.trace[-1]["stop_reason"] == "scorer-budget"
            assert r.usage.completion_tokens == 0 and r.weights == (0.2,) * 5


def test_particle_gibbs_budgets_cover_all_sweeps():
    for seed in range(6):
        r = ParticleGibbs(
            scorer=score,
            scorer_scale="probability",
            delimiter="3",
            iterations=5,
            token_budget=30,
            scorer_budget=25,
            max_steps=MAX_STEPS,
        ).run(TOY, PROMPT, params(4, seed))
        end = r.trace[-1]
        assert end["policy_tokens"] <= 30 and end["scorer_calls"] <= 25
        assert r.usage.completion_tokens == end["policy_tokens"]


# ----------------------------------------------------------------------------- selection
def scripted(replies: dict[str, list[str]]) -> ScriptedBackend:
    """Replies chosen by the partial solution (``prompt.prefix``), i-th sample of that prefix."""
    seen: dict[str, int] = {}

    def reply(prompt: Prompt, i: int) -> str | Exception:
        k = seen.get(prompt.prefix, 0)
        seen[prompt.prefix] = k + 1
        r = replies[prompt.prefix][k % len(replies[prompt.prefix])]
        return ValueError(r[4:]) if r.startswith("ERR:") else r

    return ScriptedBackend(reply)


SCORES = {"The answer is 7": 0.5, "It is 7": 0.5, "The answer is 9": 0.9, "Maybe 3": 0.1}


def table_scorer(prompt, steps):
    return SCORES["".join(steps)]


@pytest.mark.parametrize(
    "select, answer, shares",
    [("vote", "7", {"7": 1.0 / 2.0, "9": 0.9 / 2.0, "3": 0.1 / 2.0}), ("weight", "9", {})],
)
def test_selection_by_weighted_vote_or_by_weight(select, answer, shares):
    """One-step solutions, no resampling: weights are the scores normalised (C20 table):
    7 has 0.5 + 0.5 = 1.0 of the vote against 0.9 for 9; the heaviest particle says 9."""
    backend = scripted({"": list(SCORES)})
    r = ParticleFiltering(
        scorer=table_scorer, scorer_scale="probability", ess_threshold=0.0, select=select
    ).run(backend, PROMPT, SamplingParams(n=4, seed=0))
    assert r.weights == pytest.approx((0.25, 0.25, 0.45, 0.05))
    assert r.answer == answer and r.scores == (0.5, 0.5, 0.9, 0.1)
    assert r.vote_shares == pytest.approx(shares)
    assert r.log_evidence == pytest.approx(math.log(2.0 / 4))  # mean of the scores
    assert r.score_scale == "probability"


def test_reward_scale_uses_a_boltzmann_likelihood():
    rewards = {"The answer is 7": 2.0, "The answer is 9": -1.0}
    backend = scripted({"": list(rewards)})
    r = ParticleFiltering(
        scorer=lambda p, s: rewards["".join(s)],
        scorer_scale="reward",
        how="last",
        reward_temperature=2.0,
        ess_threshold=0.0,
        select="weight",
    ).run(backend, PROMPT, SamplingParams(n=2, seed=0))
    w = np.exp(np.array([2.0, -1.0]) / 2.0)
    assert r.weights == pytest.approx(tuple(w / w.sum()))
    assert r.log_evidence == pytest.approx(math.log(w.mean()))


def test_failed_calls_and_scorer_errors_get_weight_zero_and_never_vote():
    backend = scripted({"": ["The answer is 7", "ERR:boom", "The answer is 9", "bad"]})

    def picky(prompt, steps):
        if "".join(steps) == "bad":
            raise ScorerError("cannot score 'bad'")
        return table_scorer(prompt, steps)

    r = ParticleFiltering(scorer=CallableScorer(picky, "probability"), ess_threshold=0.0).run(
        backend, PROMPT, SamplingParams(n=4, seed=0)
    )
    assert [s.status for s in r.samples] == ["ok", "error", "ok", "error"]
    assert r.weights == pytest.approx((0.5 / 1.4, 0.0, 0.9 / 1.4, 0.0))
    assert r.answers[1] is None and r.answers[3] is None
    errors = r.trace[0]["errors"]
    assert any("boom" in e for e in errors) and any("cannot score" in e for e in errors)
    assert r.vote_shares == pytest.approx({"7": 0.5 / 1.4, "9": 0.9 / 1.4})


def test_all_particles_failing_gives_no_selection_and_minus_inf_evidence():
    backend = scripted({"": ["ERR:down"]})
    r = pf().run(backend, PROMPT, SamplingParams(n=3, seed=0))
    assert r.weights == () and r.selected is None and r.answer is None
    assert r.log_evidence == -math.inf
    assert all(s.status == "error" for s in r.samples)


# ----------------------------------------------------------------------------- steps
def test_multi_step_solutions_continue_from_their_prefix_and_resample():
    """Two-step scripted tree; resampling after every step keeps only good first steps."""
    backend = scripted(
        {
            "": ["Good start\n\n", "Bad start\n\n"],
            "Good start\n\n": ["The answer is 7"],
            "Bad start\n\n": ["The answer is 9"],
        }
    )
    first = {"Good start\n\n": 0.99, "Bad start\n\n": 1e-9}

    def s(prompt, steps):
        return first[steps[0]] if len(steps) == 1 else 0.5

    r = ParticleFiltering(scorer=s, scorer_scale="probability", resampling="systematic").run(
        backend, PROMPT, SamplingParams(n=4, seed=1)
    )
    assert all(x.text == "Good start\n\nThe answer is 7" for x in r.samples)
    assert r.answer == "7" and r.trace[0]["resampled"] is True
    # the 2 surviving-prefix groups are served by one backend call each
    assert [c[0].prefix for c in backend.calls] == ["", "Good start\n\n"]
    assert backend.calls[1][1].n == 4


def test_seed_reproduces_the_run_and_rng_varies_it():
    a = pf().run(TOY, PROMPT, params(5, seed=9))
    b = pf().run(TOY, PROMPT, params(5, seed=9))
    assert a.model_copy(update={"usage": b.usage}) == b
    c = pf().run(TOY, PROMPT, params(5, seed=10))
    assert (a.samples, a.weights) != (c.samples, c.weights)


# ----------------------------------------------------------------------------- particle Gibbs
def test_particle_gibbs_retraces_the_reference_at_no_cost():
    r = ParticleGibbs(
        scorer=score,
        scorer_scale="probability",
        delimiter="3",
        iterations=3,
        max_steps=MAX_STEPS,
        ess_threshold=0.0,
    ).run(TOY, PROMPT, params(4, seed=2))
    assert len(r.samples) == 12 and math.fsum(r.weights) == pytest.approx(1.0)
    steps = [t for t in r.trace if t.get("event") == "smc-step"]
    for prev, rec in zip(steps, steps[1:]):
        if rec["sweep"] > prev["sweep"]:
            # first step of a conditional sweep: 4 particles move, but particle 0 retraces
            # the reference, so only 3 steps are generated and scored
            assert rec["extended"] == 4
            assert rec["scorer_calls"] - prev["scorer_calls"] == 3
    assert steps[0]["extended"] == 4 and steps[0]["scorer_calls"] == 4
    # particle 0 of sweep k is the reference: a whole particle of sweep k - 1
    for k in (1, 2):
        ref = r.samples[4 * k]
        assert any(ref == s for s in r.samples[4 * (k - 1) : 4 * k])
    first = [t for t in r.trace if t.get("event") == "smc-step" and t["sweep"] == 0]
    assert r.log_evidence == pytest.approx(first[-1]["log_evidence"])


def test_particle_gibbs_evidence_is_the_unbiased_first_sweep():
    z = math.fsum(exact_target("product").values())
    strategy = ParticleGibbs(
        scorer=score,
        scorer_scale="probability",
        delimiter="3",
        iterations=2,
        max_steps=MAX_STEPS,
    )
    rng = np.random.default_rng(8)
    est = [math.exp(strategy.run(TOY, PROMPT, params(5), rng).log_evidence) for _ in range(500)]
    assert abs(np.mean(est) - z) < 4 * np.std(est, ddof=1) / math.sqrt(len(est))


# ----------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"ess_threshold": 1.5}, ConfigError, r"ess_threshold must be in \[0, 1\]"),
        ({"how": "sum"}, ConfigError, "how must be one of last, min, mean, product"),
        ({"select": "best"}, ConfigError, "select must be 'vote' or 'weight'"),
        ({"reward_temperature": 0.0}, ConfigError, r"reward_temperature .* \(0, inf\)"),
        ({"token_budget": 0}, ConfigError, "token_budget must be an integer >= 1"),
        ({"scorer_budget": 2.5}, ConfigError, "scorer_budget must be an integer >= 1"),
        ({"max_steps": 0}, ConfigError, "max_steps must be an integer >= 1"),
        ({"delimiter": ""}, ConfigError, "delimiter must be a non-empty string"),
        ({"resampling": "bootstrap"}, UnknownNameError, "systematic"),
        ({"scorer": "oracle"}, UnknownNameError, "judge, p-true"),
        ({"scorer": lambda p, s: 1.0}, ConfigError, "needs scorer_scale"),
        ({"scorer": 3}, ConfigError, "scorer must be a ProcessScorer"),
    ],
)
def test_bad_options_raise_naming_the_field(options, error, match):
    with pytest.raises(error, match=match):
        ParticleFiltering(**options)


def test_bad_run_settings_raise():
    with pytest.raises(ConfigError, match="iterations must be an integer >= 1"):
        ParticleGibbs(iterations=0)
    with pytest.raises(ConfigError, match=r"params.n >= 2"):
        ParticleGibbs(scorer=score, scorer_scale="probability").run(TOY, PROMPT, params(1))
    with pytest.raises(ConfigError, match="decoding must be 'independent'"):
        pf().run(TOY, PROMPT, params(2).replace(decoding="arithmetic"))
    with pytest.raises(ConfigError, match="needs a process scorer"):
        ParticleFiltering().run(scripted({"": ["x"]}), PROMPT, SamplingParams(n=2))


def test_registered_and_convenience_function():
    assert isinstance(get_strategy("particle-filtering"), ParticleFiltering)
    assert isinstance(get_strategy("particle_gibbs", iterations=2), ParticleGibbs)
    r = particle_filtering(
        TOY, PROMPT, params(3, seed=0), scorer=score, scorer_scale="probability", delimiter="3"
    )
    assert r.strategy == "particle-filtering" and len(r.samples) == 3


# ----------------------------------------------------------------------------- real model
@pytest.mark.llama
def test_particle_filtering_end_to_end_on_the_embedded_model(llama_backend):
    """P(True) self-evaluation (the default scorer) on SmolLM2; budgets respected."""
    r = ParticleFiltering(max_steps=2, token_budget=24, scorer_budget=4).run(
        llama_backend,
        Prompt.user("What is 2 + 3? Think step by step, then give the answer."),
        SamplingParams(n=2, temperature=0.8, max_tokens=10, seed=0),
    )
    end = r.trace[-1]
    assert end["policy_tokens"] <= 24 and end["scorer_calls"] <= 4
    assert len(r.samples) == 2 and math.isfinite(r.log_evidence)
    assert math.fsum(r.weights) == pytest.approx(1.0) and r.score_scale == "probability"
    assert all(0.0 < s <= 1.0 for s in r.scores if s is not None)
    # the scorer's prompt tokens are part of the usage, beyond the policy's
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens == end["policy_tokens"]
