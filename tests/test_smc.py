"""Resampling schemes, effective sample size, and the generic SMC engine.

Statistical tests use fixed seeds and state their level: each offspring-count test is a
two-sided z-test per particle at overall alpha = 0.001 (Bonferroni over particles), the
variance tests compare against the exact variance of each scheme, and the SMC tests compare
with exact enumeration on the toy LM (chi-square at alpha = 0.001).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from samplescale.backends.fake import ToyLM
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, UnknownNameError
from samplescale.smc import engine
from samplescale.smc.engine import Extension
from samplescale.smc.resampling import (
    RESAMPLERS,
    effective_sample_size,
    multinomial,
    normalise,
    resample,
    residual,
    stratified,
    systematic,
)
from samplescale.smc.token import TokenProposal, TokenState, token_potential, token_smc
from samplescale.types import Prompt

SCHEMES = ["multinomial", "residual", "stratified", "systematic"]
WEIGHTS = np.array([0.05, 0.3, 0.0, 0.125, 0.2, 0.025, 0.3])  # N = 7, one zero weight
ALPHA = 0.001


def exact_count_variance(scheme: str, w: np.ndarray) -> np.ndarray:
    """Exact Var[count_i] of each scheme (module docstring of smc.resampling)."""
    n = w.size
    nw = n * w
    if scheme == "multinomial":
        return n * w * (1 - w)
    if scheme == "systematic":
        f = nw - np.floor(nw)
        return f * (1 - f)
    if scheme == "residual":
        frac = nw - np.floor(nw)
        rest = frac.sum()
        r = frac / rest
        return rest * r * (1 - r)
    # stratified: one independent Bernoulli per stratum k, success prob N * overlap
    cdf = np.concatenate([[0.0], np.cumsum(w)])
    var = np.zeros(n)
    for i in range(n):
        for k in range(n):
            lo, hi = max(cdf[i], k / n), min(cdf[i + 1], (k + 1) / n)
            p = n * max(0.0, hi - lo)
            var[i] += p * (1 - p)
    return var


def counts(ancestors: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(ancestors, minlength=n)


# ----------------------------------------------------------------------------- resampling
def test_registry_names_and_unknown_scheme():
    assert RESAMPLERS.names() == sorted(SCHEMES)
    with pytest.raises(UnknownNameError, match="multinomial, residual, stratified, systematic"):
        resample("bootstrap", WEIGHTS, np.random.default_rng(0))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_expected_offspring_counts_equal_n_times_weights(scheme):
    """Mean count over R draws vs N w_i: z-test with the exact variance, alpha 0.001."""
    rng = np.random.default_rng(20240501)
    n, reps = WEIGHTS.size, 20_000
    total = np.zeros(n)
    for _ in range(reps):
        a = resample(scheme, WEIGHTS, rng)
        assert a.dtype == np.int64 and a.shape == (n,)
        assert np.all(np.diff(a) >= 0)
        total += counts(a, n)
    mean = total / reps
    var = exact_count_variance(scheme, WEIGHTS)
    expected = n * WEIGHTS
    crit = stats.norm.ppf(1 - ALPHA / (2 * n))
    for i in range(n):
        if var[i] == 0:  # deterministic count
            assert mean[i] == expected[i]
        else:
            assert abs(mean[i] - expected[i]) / math.sqrt(var[i] / reps) < crit


def test_multinomial_counts_pass_chi_square():
    """All ancestors pooled over R draws are multinomial(R N, w): Pearson chi-square."""
    rng = np.random.default_rng(7)
    n, reps = WEIGHTS.size, 5_000
    pooled = sum(counts(multinomial(WEIGHTS, rng), n) for _ in range(reps))
    keep = WEIGHTS > 0
    assert pooled[~keep].sum() == 0
    _, p = stats.chisquare(pooled[keep], reps * n * WEIGHTS[keep])
    assert p > ALPHA


@pytest.mark.parametrize("scheme", SCHEMES)
def test_count_variance_matches_exact_variance(scheme):
    """Sample variance of counts vs the exact variance: chi-square variance test per
    particle (normal approximation of the sample variance), alpha 0.001 overall."""
    rng = np.random.default_rng(99)
    n, reps = WEIGHTS.size, 20_000
    c = np.array([counts(resample(scheme, WEIGHTS, rng), n) for _ in range(reps)], dtype=float)
    exact = exact_count_variance(scheme, WEIGHTS)
    for i in range(n):
        if exact[i] == 0:
            assert c[:, i].var() == 0
            continue
        m4 = np.mean((c[:, i] - c[:, i].mean()) ** 4)
        se = math.sqrt((m4 - exact[i] ** 2) / reps)
        assert abs(c[:, i].var(ddof=1) - exact[i]) < stats.norm.ppf(1 - ALPHA / (2 * n)) * se


def test_lower_variance_schemes_never_exceed_multinomial():
    """Residual, stratified and systematic counts have at most the multinomial variance."""
    multi = exact_count_variance("multinomial", WEIGHTS)
    for scheme in ("residual", "stratified", "systematic"):
        assert np.all(exact_count_variance(scheme, WEIGHTS) <= multi + 1e-12)
    # table value: N w = (0.35, 2.1, 0, 0.875, 1.4, 0.175, 2.1), sum of f (1 - f) = 0.90125
    assert exact_count_variance("systematic", WEIGHTS).sum() == pytest.approx(0.90125)
    assert exact_count_variance("multinomial", WEIGHTS).sum() == pytest.approx(
        7 * (1 - np.square(WEIGHTS).sum())
    )


weight_vectors = st.lists(
    st.floats(min_value=0.0, max_value=10.0, allow_nan=False), min_size=1, max_size=20
).filter(lambda v: sum(v) > 0)


@settings(max_examples=200, deadline=None)
@given(weight_vectors, st.integers(0, 2**32 - 1))
def test_structural_properties_of_counts(raw, seed):
    w = np.asarray(raw) / np.sum(raw)
    n = w.size
    nw = n * w
    rng = np.random.default_rng(seed)
    for scheme in SCHEMES:
        c = counts(resample(scheme, w, rng), n)
        assert c.sum() == n
        assert np.all(c[w == 0] == 0)  # a zero-weight particle never survives
    c = counts(systematic(w, rng), n)
    assert np.all((c >= np.floor(nw - 1e-9)) & (c <= np.ceil(nw + 1e-9)))
    c = counts(residual(w, rng), n)
    assert np.all(c >= np.floor(nw))  # the deterministic copies survive
    c = counts(stratified(w, rng), n)
    assert np.all((c >= np.floor(nw) - 1) & (c <= np.ceil(nw) + 1))


def test_input_not_mutated_and_seeded_draws_reproduce():
    w = WEIGHTS.copy()
    for scheme in SCHEMES:
        a = resample(scheme, w, np.random.default_rng(3))
        b = resample(scheme, w, np.random.default_rng(3))
        assert np.array_equal(a, b)
    assert np.array_equal(w, WEIGHTS)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([0.5, 0.6]), "sum to 1"),
        (np.array([1.2, -0.2]), ">= 0"),
        (np.array([np.nan, 1.0]), "finite"),
        (np.array([]), "N >= 1"),
        (np.ones((2, 2)) / 4, "shape"),
    ],
)
def test_bad_weights_raise(bad, match):
    for scheme in SCHEMES:
        with pytest.raises(ConfigError, match=match):
            resample(scheme, bad, np.random.default_rng(0))


def test_single_particle():
    for scheme in SCHEMES:
        assert resample(scheme, np.array([1.0]), np.random.default_rng(0)).tolist() == [0]


# ----------------------------------------------------------------------------- ESS
@pytest.mark.parametrize(
    "log_weights, ess",
    [
        ([0.0, 0.0, 0.0, 0.0], 4.0),
        ([0.0, -math.inf, -math.inf], 1.0),
        (np.log([1.0, 2.0, 3.0, 4.0]), 100 / 30),  # (sum w)^2 / sum w^2 = 100 / 30
        ([1000.0, 1000.0], 2.0),  # no overflow
        ([-1000.0, -1000.0, -1000.0], 3.0),  # no underflow
        (np.log([0.5, 0.25, 0.25]), 1 / 0.375),
        ([-math.inf, -math.inf], 0.0),
    ],
)
def test_ess_table(log_weights, ess):
    assert effective_sample_size(np.asarray(log_weights)) == pytest.approx(ess, rel=1e-12)


def test_ess_rejects_nan_and_posinf():
    with pytest.raises(ConfigError, match="NaN or \\+inf"):
        effective_sample_size(np.array([0.0, np.nan]))
    with pytest.raises(ConfigError, match="NaN or \\+inf"):
        effective_sample_size(np.array([0.0, np.inf]))
    with pytest.raises(ConfigError, match="every log-weight is -inf"):
        normalise(np.array([-np.inf]))


# ----------------------------------------------------------------------------- engine
def coin_proposal(rng, states):
    """Toy proposal on integer states: +1 with prob 0.25, +2 with prob 0.75; done at >= 3."""
    out = []
    for s in states:
        up = 1 if rng.random() < 0.25 else 2
        lq = math.log(0.25 if up == 1 else 0.75)
        new = s + up
        out.append(Extension(new, math.log(0.5), lq, new >= 3))
    return out


def zero_potential(states):
    return [0.0] * len(states)


def test_engine_weights_are_p_over_q_and_log_evidence_is_exact_without_resampling():
    """Base p = fair coin, proposal q = (0.25, 0.75): one step from 2 ends at 3 or 4.
    Weight of +1 is log(0.5/0.25), of +2 log(0.5/0.75); with Phi = 1 the estimate is the
    sample mean of p/q, and Z = 1."""
    system = engine.start(2, 4, zero_potential)
    new, info = engine.step(
        system, coin_proposal, zero_potential, np.random.default_rng(1), ess_threshold=0.0
    )
    assert system.steps == 0 and new.steps == 1 and new.finished
    for path, lw in zip(new.paths, new.log_weights):
        expect = math.log(2.0) if path[-1].state == 3 else math.log(2 / 3)
        assert lw == pytest.approx(expect)
    mean_ratio = np.mean(np.exp(new.log_weights))
    assert new.log_evidence == pytest.approx(math.log(mean_ratio))
    assert info["resampled"] is False and info["extended"] == 4
    with pytest.raises(ConfigError, match="finished"):
        engine.step(new, coin_proposal, zero_potential, np.random.default_rng(1))


def test_engine_validates_inputs():
    with pytest.raises(ConfigError, match="integer >= 1"):
        engine.start(0, 0, zero_potential)
    with pytest.raises(ConfigError, match="initial state must be finite"):
        engine.start(0, 2, lambda s: [-math.inf] * len(s))
    system = engine.start(0, 2, zero_potential)
    with pytest.raises(ConfigError, match=r"ess_threshold must be in \[0, 1\]"):
        engine.step(
            system, coin_proposal, zero_potential, np.random.default_rng(0), ess_threshold=1.5
        )
    with pytest.raises(UnknownNameError, match="systematic"):
        engine.step(system, coin_proposal, zero_potential, np.random.default_rng(0), resampling="x")
    with pytest.raises(ConfigError, match="1 extensions for 2 states"):
        engine.step(
            system, lambda r, s: coin_proposal(r, s[:1]), zero_potential, np.random.default_rng(0)
        )
    with pytest.raises(ConfigError, match="finite or -inf"):
        engine.step(system, coin_proposal, lambda s: [math.nan] * len(s), np.random.default_rng(0))
    bad_q = lambda r, s: [Extension(x + 1, -1.0, 0.5, True) for x in s]  # noqa: E731
    with pytest.raises(ConfigError, match="log_q must be a natural-log probability"):
        engine.step(system, bad_q, zero_potential, np.random.default_rng(0))


def test_zero_potential_kills_particles_and_all_dead_gives_minus_inf_evidence():
    kill = lambda states: [-math.inf if s >= 3 else 0.0 for s in states]  # noqa: E731
    system, infos = engine.run(2, 3, coin_proposal, kill, np.random.default_rng(0))
    assert system.finished and not any(system.alive)
    assert system.log_evidence == -math.inf and system.ess == 0.0
    with pytest.raises(ConfigError, match="every log-weight is -inf"):
        system.weights()


def test_system_is_immutable():
    system = engine.start(0, 3, zero_potential)
    new, _ = engine.step(system, coin_proposal, zero_potential, np.random.default_rng(0))
    assert system.paths == ((), (), ()) and system.log_weights == (0.0, 0.0, 0.0)
    with pytest.raises(AttributeError):
        new.steps = 5  # type: ignore[misc]


# ----------------------------------------------------------------------------- toy LM target
TOY = ToyLM()
BASE = SamplingParams(temperature=1.0, max_tokens=4)


def log_phi(tokens: tuple[int, ...], done: bool) -> float:
    """Final potential: 1 + number of "2" tokens; twist: the same on the prefix (a guess)."""
    return math.log(1.0 + sum(t == 2 for t in tokens))


def exact_target() -> tuple[dict[tuple[int, ...], float], float]:
    p = TOY.exact_distribution(BASE)
    unnorm = {x: px * math.exp(log_phi(x, True)) for x, px in p.items()}
    z = math.fsum(unnorm.values())
    return {x: v / z for x, v in unnorm.items()}, z


def test_exact_target_table():
    """Z = E_p[1 + #"2"] = 1 + sum over positions of P(token t is "2"); by hand from the
    bigram table: 0.3 + 0.29 + 0.157 + 0.1139 = 0.8609."""
    target, z = exact_target()
    assert z == pytest.approx(1.8609)
    assert math.fsum(target.values()) == pytest.approx(1.0)


def test_conditional_smc_leaves_the_exact_target_invariant():
    """Particle Gibbs kernel: a reference drawn from the exact target, one conditional SMC
    sweep (tempered proposal, resampling every step), then a particle drawn by weight. The
    new reference must again be distributed as the target: chi-square, alpha 0.001."""
    target, _ = exact_target()
    seqs = list(target)
    probs = np.array([target[x] for x in seqs])
    rng = np.random.default_rng(2025)
    proposal = TokenProposal(TOY, [], SamplingParams(temperature=1.3, max_tokens=4))
    pot = token_potential(log_phi)
    reps, n = 6000, 3
    hits: dict[tuple[int, ...], int] = {}
    for _ in range(reps):
        ref_tokens = seqs[rng.choice(len(seqs), p=probs)]
        ref = reference_path(ref_tokens, proposal.params)
        system, _ = engine.run(
            TokenState(), n, proposal, pot, rng, ess_threshold=1.0, reference=ref
        )
        new = system.states[engine.select(system, rng)].tokens
        hits[new] = hits.get(new, 0) + 1
    assert_matches(hits, target, reps)


def reference_path(tokens: tuple[int, ...], params: SamplingParams) -> list[Extension]:
    """The extensions a TokenProposal would have produced along ``tokens``."""
    from samplescale.sampling import functional as F
    from samplescale.sampling import pipeline

    path, state = [], TokenState()
    for t, tok in enumerate(tokens):
        logits = TOY.logits_at(list(state.tokens), 1)
        lp = float(F.log_softmax(logits)[0, tok])
        lq = float(F.log_softmax(pipeline.process(logits, params))[0, tok])
        end = TOY.is_end(tok)
        full = t + 1 >= params.max_tokens
        state = TokenState(
            (*state.tokens, tok),
            (*state.logprobs, lp),
            (*state.sampling_logprobs, lq),
            "stop" if end else ("length" if full else None),
        )
        path.append(Extension(state, lp, lq, state.done))
    return path


def assert_matches(hits: dict, target: dict, reps: int) -> None:
    """Pearson chi-square of counts vs target probabilities (cells with expected < 5 pooled)."""
    assert set(hits) <= set(target)
    big = [x for x in target if reps * target[x] >= 5]
    obs = [hits.get(x, 0) for x in big]
    exp = [reps * target[x] for x in big]
    rest_obs = reps - sum(obs)
    rest_exp = reps - sum(exp)
    if rest_exp > 0:
        obs.append(rest_obs)
        exp.append(rest_exp)
    _, p = stats.chisquare(obs, exp)
    assert p > ALPHA, p


@pytest.mark.parametrize("scheme", SCHEMES)
def test_token_smc_evidence_is_unbiased(scheme):
    """Mean of exp(log Z_hat) over R runs matches the exact Z within 4 standard errors
    (z-test, alpha about 6e-5), for every scheme with adaptive resampling."""
    _, z = exact_target()
    rng = np.random.default_rng(11)
    params = SamplingParams(temperature=1.4, top_k=0, max_tokens=4)
    est = [
        math.exp(
            token_smc(
                TOY,
                Prompt(text=""),
                params,
                6,
                log_phi,
                rng=rng,
                resampling=scheme,
                ess_threshold=0.7,
            ).log_evidence
        )
        for _ in range(1500)
    ]
    se = np.std(est, ddof=1) / math.sqrt(len(est))
    assert abs(np.mean(est) - z) < 4 * se


def test_token_smc_result_fields_and_seed_reproducibility():
    params = SamplingParams(temperature=1.2, max_tokens=4, seed=5)
    a = token_smc(TOY, Prompt(text=""), params, 5, log_phi)
    b = token_smc(TOY, Prompt(text=""), params, 5, log_phi)
    assert a == b.model_copy(update={"usage": a.usage})
    assert a.strategy == "token-smc" and len(a.samples) == 5 and len(a.weights) == 5
    assert math.fsum(a.weights) == pytest.approx(1.0)
    assert a.selected == int(np.argmax(a.weights))
    assert a.usage.completion_tokens == sum(r["extended"] for r in a.trace)
    assert all(s.finish_reason in ("stop", "length") for s in a.samples)


@pytest.mark.parametrize(
    "params, match",
    [
        (SamplingParams(temperature=0.0), "temperature must be > 0"),
        (SamplingParams(stop=("1",)), "stop strings are not supported"),
        (SamplingParams(decoding="arithmetic"), "decoding must be 'independent'"),
    ],
)
def test_token_smc_rejects_unweightable_proposals(params, match):
    with pytest.raises(ConfigError, match=match):
        token_smc(TOY, Prompt(text=""), params, 4)


@pytest.mark.llama
def test_token_smc_weights_on_the_embedded_model(llama_backend):
    """Tempered proposal, no potential, no resampling: each weight is the importance ratio
    exp(sum log p - sum log q) of its own tokens, and log Z_hat is their log mean."""
    params = SamplingParams(temperature=1.5, top_k=50, max_tokens=4, seed=1)
    r = token_smc(llama_backend, Prompt.user("Say hi."), params, 3, ess_threshold=0.0)
    ratios = np.array([math.fsum(s.logprobs) - math.fsum(s.sampling_logprobs) for s in r.samples])
    w = np.exp(ratios - ratios.max())
    assert r.weights == pytest.approx(tuple(w / w.sum()), rel=1e-9)
    assert r.log_evidence == pytest.approx(math.log(np.mean(np.exp(ratios))), rel=1e-9)
    assert all(s.num_tokens <= 4 for s in r.samples)
    assert r.usage.completion_tokens == sum(s.num_tokens for s in r.samples)
