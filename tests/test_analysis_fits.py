"""Scaling-law and saturation fits against curves and synthetic pools with known parameters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from samplescale.analysis.pools import maj_matrix, pass_matrix, pool_size
from samplescale.analysis.saturation import (
    empirical_saturation,
    fit_ttspm,
    saturation_budget,
    ttspm,
)
from samplescale.analysis.scaling import (
    bootstrap_fit,
    coverage_power_law,
    fit_coverage,
    fit_log_linear,
)
from samplescale.errors import ConfigError
from samplescale.metrics import pass_at_k


def pool_record(i: int, n: int, c: int) -> dict:
    """A minimal pool record: c correct samples (label 0) and n - c wrong ones (label 1)."""
    labels = [0] * c + [1] * (n - c)
    return {"status": "ok", "id": f"p{i}", "n": n, "c": c, "labels": labels,
            "correct_label": 0 if c else None}


def beta_coverage(a: float, b: float, k: np.ndarray) -> np.ndarray:
    """Exact population pass@k when per-problem rates are Beta(a, b): 1 - B(a, b+k)/B(a, b)."""
    return 1 - np.exp(special.betaln(a, b + k) - special.betaln(a, b))


def test_power_law_recovers_exact_parameters() -> None:
    ks = np.arange(1, 33)
    fit = fit_coverage(ks, coverage_power_law(ks, -1.3, -0.45))
    assert fit.params["a"] == pytest.approx(-1.3, rel=1e-10)
    assert fit.params["b"] == pytest.approx(-0.45, rel=1e-10)
    assert fit.rmse < 1e-12
    # hand check: 4**-0.45 = 0.535887; exp(-1.3 * 0.535887) = exp(-0.696653) = 0.498250
    assert float(fit.predict([4])[0]) == pytest.approx(0.498250, abs=1e-6)


def test_power_law_fits_on_the_rate_scale_and_refuses_too_few() -> None:
    # points at coverage 1 enter the final fit (not the start): the curve ends near 1
    fit = fit_coverage([1, 2, 4, 8], [0.2, 0.4, 1.0, 1.0])
    assert fit.x == [1.0, 2.0, 4.0, 8.0]
    assert float(fit.predict([8])[0]) > 0.95
    with pytest.raises(ConfigError, match="2 or more"):
        fit_coverage([1, 2, 4], [0.5, 1.0, 1.0])
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        fit_coverage([1, 2], [0.5, 1.5])


def test_log_linear_recovers_slope_per_decade() -> None:
    tokens = np.array([100.0, 200, 400, 800, 1600])
    fit = fit_log_linear(tokens, 0.1 + 0.2 * np.log10(tokens / 100))
    assert fit.params["slope"] == pytest.approx(0.2, abs=1e-12)
    assert fit.params["intercept"] == pytest.approx(-0.3, abs=1e-12)


@pytest.mark.slow
def test_bootstrap_fit_on_synthetic_pools_recovers_the_population_fit() -> None:
    """Pools of 300 problems with rates ~ Beta(0.4, 1.2), 32 samples each. The exact
    population curve fitted on k <= 8 has a = -1.391, b = -0.472. Over seeds 0-4 the fit
    from the pools had sd about 0.06 in a and 0.025 in b (seeded runs, see RESULTS (k)), so
    the tolerances are 0.15 and 0.05; the 95% bootstrap intervals contain both, and the
    true pass@32 (0.759) extrapolated from k <= 8 lies in the prediction interval."""
    rng = np.random.default_rng(0)
    a, b, n, size = 0.4, 1.2, 32, 300
    ks = np.arange(1, 9)
    truth = fit_coverage(ks, beta_coverage(a, b, ks))
    counts = rng.binomial(n, rng.beta(a, b, size))
    records = [pool_record(i, n, int(c)) for i, c in enumerate(counts)]
    mat = pass_matrix(records, ks.tolist())
    boot = bootstrap_fit(mat, ks, fit_coverage, rng=rng, predict_at=[32], n_resamples=300)
    for name, tol in (("a", 0.15), ("b", 0.05)):
        assert boot.fit.params[name] == pytest.approx(truth.params[name], abs=tol)
        lo, hi = boot.params_interval[name]
        assert lo <= truth.params[name] <= hi
    pred = boot.predictions[32.0]
    true32 = float(beta_coverage(a, b, np.array([32]))[0])
    assert pred["lo"] <= true32 <= pred["hi"]
    assert pred["hi"] - pred["lo"] < 0.12
    assert boot.failed == 0


def test_pass_and_maj_matrices_match_the_estimators_and_count_errors_as_zero() -> None:
    recs = [pool_record(0, 4, 1), {"status": "error", "id": "e"}, pool_record(2, 4, 3)]
    mat = pass_matrix(recs, [1, 2])
    assert mat.tolist() == [[0.25, 0.5], [0.0, 0.0], [0.75, 1.0]]
    assert mat[0, 1] == pass_at_k(4, 1, 2)
    maj = maj_matrix(recs, [1, 3])
    # one correct of 4 against three of one wrong class: maj@3 = 0; three correct: 1
    assert maj.tolist() == [[0.25, 0.0], [0.0, 0.0], [0.75, 1.0]]
    assert pool_size(recs) == 4
    with pytest.raises(ConfigError, match=r"\[1, 4\]"):
        pass_matrix(recs, [8])


def test_ttspm_recovers_plateau_and_rate_and_the_saturation_point() -> None:
    ks = np.array([1, 2, 4, 8, 16, 32])
    fit = fit_ttspm(ks, ttspm(ks, 0.8, 0.3))
    assert fit.f_max == pytest.approx(0.8, abs=1e-6)
    assert fit.p == pytest.approx(0.3, abs=1e-6)
    # gain of sample N+1 is 0.8 * 0.3 * 0.7**N: 0.24 * 0.7**6 = 0.0282, 0.24 * 0.7**7 = 0.0198
    assert saturation_budget(fit, 0.02) == 7
    assert saturation_budget(fit, 0.03) == 6
    assert saturation_budget(fit, 0.5) == 1
    with pytest.raises(ConfigError, match=r"\(0, 1\)"):
        saturation_budget(fit, 0.0)


def test_ttspm_on_synthetic_pools_with_known_parameters() -> None:
    """70% of 400 problems are solvable with per-sample rate 0.25, the rest never: the
    population pass@k is exactly TTSPM(0.7, 0.25); the fit from 16-sample pools is within
    0.04 of each parameter."""
    rng = np.random.default_rng(3)
    solvable = rng.random(400) < 0.7
    counts = np.where(solvable, rng.binomial(16, 0.25, 400), 0)
    recs = [pool_record(i, 16, int(c)) for i, c in enumerate(counts)]
    ks = [1, 2, 4, 8, 16]
    fit = fit_ttspm(ks, pass_matrix(recs, ks).mean(axis=0))
    assert fit.f_max == pytest.approx(0.7, abs=0.04)
    assert fit.p == pytest.approx(0.25, abs=0.04)


def test_empirical_saturation_reads_the_first_cheap_step() -> None:
    # gains per sample: (0.5-0.3)/1 = 0.2, (0.6-0.5)/2 = 0.05, (0.62-0.6)/4 = 0.005
    assert empirical_saturation([1, 2, 4, 8], [0.3, 0.5, 0.6, 0.62], 0.01) == 4
    assert empirical_saturation([1, 2, 4, 8], [0.3, 0.5, 0.6, 0.62], 0.1) == 2
    assert empirical_saturation([1, 2], [0.3, 0.5], 0.01) is None


def full_pool_record(i: int, n: int, c: int) -> dict:
    """A pool record as evaluate writes it (usage, greedy, samples), c of n correct."""
    usage = {"prompt_tokens": 20, "completion_tokens": 10 * n, "model_calls": 1,
             "scorer_calls": 0, "wall_time_s": 1.0}
    samples = [{"text": "", "answer": "1" if j < c else "2", "correct": j < c, "tokens": 10,
                "finish_reason": "stop", "status": "ok"} for j in range(n)]
    return {**pool_record(i, n, c), "question": "q", "gold": "1", "problem_digest": "d",
            "samples": samples, "usage": usage,
            "greedy": {"answer": "1", "correct": c > n // 2, "text": "", "usage": usage}}


def test_summary_json_carries_the_fits_and_the_clustered_interval() -> None:
    from samplescale.summary import INTERVALS, summarize_pool

    rng = np.random.default_rng(5)
    counts = rng.binomial(8, rng.beta(0.5, 1.0, 40))
    recs = [full_pool_record(i, 8, int(c)) for i, c in enumerate(counts)]
    s = summarize_pool(recs, seed=0)
    assert s["intervals"] is INTERVALS
    ks = list(range(1, 9))
    direct = fit_coverage(ks, pass_matrix(recs, ks).mean(axis=0))
    fit = s["fits"]["coverage_power_law"]
    assert (fit["a"], fit["b"]) == pytest.approx((direct.params["a"], direct.params["b"]))
    assert [e["k"] for e in fit["extrapolation"]] == [16, 80]
    assert fit["a_interval"][0] <= fit["a"] <= fit["a_interval"][1]
    sat = s["fits"]["saturation"]["pass"]
    assert sat["budget"] >= 1 and 0 < sat["f_max"] <= 1
    for c in s["curve"]:
        for key in ("pass", "maj"):
            assert c[key]["clustered_lo"] <= c[key]["mean"] <= c[key]["clustered_hi"]
    # every problem solved at every k: no power law can be fitted, and the summary says so
    solved = summarize_pool([full_pool_record(i, 4, 4) for i in range(3)])
    assert "error" in solved["fits"]["coverage_power_law"]
