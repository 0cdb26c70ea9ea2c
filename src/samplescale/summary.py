"""Summaries of evaluation records: pass@k / maj@k curves with intervals, tokens and time.

Estimators (all from ONE pool of N samples per problem):

* pass@k: the unbiased estimator of Chen et al. (2021) per problem, averaged over problems.
* maj@k: the exact expectation, over uniformly random k-subsets of the pool, that the
  majority vote of the subset is correct (:func:`samplescale.metrics.maj_at_k`).
* intervals (every rate has all three; ``INTERVALS`` names them): ``lo``/``hi``, the
  95% Wilson score interval on the mean over problems (treating the sum of per-problem
  values as successes, conservative for fractional values), the one the eval prints;
  ``boot_lo``/``boot_hi``, a 95% percentile bootstrap over problems; and
  ``clustered_lo``/``clustered_hi``, the 95% problem-clustered Jeffreys interval of
  :func:`samplescale.analysis.small_sample.clustered_interval` (near or above nominal
  coverage at 20-100 problems, where the bootstrap and CLT intervals are too narrow).
* fits (pool runs, ``summary["fits"]``): coverage(k) = exp(a k^b) fitted to pass@k at
  every k = 1..N with a 1000-resample bootstrap over problems and pass@k extrapolated to
  2N and 10N (Brown et al. 2024); pass@k and maj@k log-linear in generated tokens; the
  TTSPM saturation budget for a marginal gain of 0.01 per sample (Wang et al. 2025).
* tokens at k: mean generated tokens per problem to draw k samples (k times the mean
  tokens per sample). Time at k: the pool's wall time scaled by k / N (the N samples are
  decoded together, so this is the cost share of k samples, not the latency of a
  k-sample run).

Problems that could not be run (error records, :mod:`samplescale.records`) count as wrong:
pass@k, maj@k, greedy and strategy accuracy are means over ALL problems, with 0 for each
error record, so an error never raises a rate. Tokens and time are means over the problems
that ran. ``problem_errors`` lists the errors (id and reason); ``sample_errors`` counts
failed samples (``Sample.status == "error"``) inside the problems that ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from samplescale.analysis.intervals import bootstrap_interval, mean_with_interval
from samplescale.analysis.pools import pass_matrix
from samplescale.analysis.saturation import fit_ttspm, saturation_budget
from samplescale.analysis.scaling import bootstrap_fit, fit_coverage, fit_log_linear
from samplescale.analysis.small_sample import clustered_interval
from samplescale.errors import ConfigError
from samplescale.metrics import maj_at_k, pass_at_k
from samplescale.summary_parts import by_part

Record = dict[str, Any]

INTERVALS = {
    "lo/hi": "95% Wilson score interval over problems (conservative for pass@k, maj@k)",
    "boot_lo/boot_hi": "95% percentile bootstrap over problems (too narrow below ~100)",
    "clustered_lo/clustered_hi": "95% problem-clustered Jeffreys interval (Korn-Graubard "
    "effective sample size, capped at the number of problems)",
}
SATURATION_EPSILON = 0.01  # marginal gain per extra sample that no longer pays


def k_values(n: int) -> list[int]:
    """1, 2, 4, ... up to ``n``, and ``n`` itself if it is not a power of two."""
    ks = [1]
    while ks[-1] * 2 <= n:
        ks.append(ks[-1] * 2)
    if ks[-1] != n:
        ks.append(n)
    return ks


def _interval(values: Sequence[float], rng: np.random.Generator) -> dict[str, float]:
    out = mean_with_interval(values)
    lo, hi = bootstrap_interval(values, rng=rng)
    clo, chi = clustered_interval(values) if len(values) > 1 else (0.0, 1.0)
    return {**out, "boot_lo": lo, "boot_hi": hi, "clustered_lo": clo, "clustered_hi": chi}


def by_id(records: Sequence[Record]) -> list[Record]:
    """``records`` sorted by problem id: the bootstraps resample problems in this order, so
    a summary does not depend on the order records were written in (a Ray run writes them
    as problems finish)."""
    return sorted(records, key=lambda r: str(r["id"]))


def _ran(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if r["status"] == "ok"]


def _errors(records: Sequence[Record]) -> dict[str, Any]:
    return {
        "problem_errors": [
            {"id": r["id"], "reason": r["error"]["message"]}
            for r in records
            if r["status"] == "error"
        ],
        "sample_errors": sum(s["status"] == "error" for r in _ran(records) for s in r["samples"]),
    }


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def _greedy_summary(records: Sequence[Record], rng: np.random.Generator) -> dict[str, Any]:
    ran = _ran(records)
    g = [float(r["status"] == "ok" and r["greedy"]["correct"]) for r in records]
    return {
        **_interval(g, rng),
        "tokens": _mean([r["greedy"]["usage"]["completion_tokens"] for r in ran]),
        "time_s": _mean([r["greedy"]["usage"]["wall_time_s"] for r in ran]),
    }


def summarize_pool(records: Sequence[Record], seed: int = 0) -> dict[str, Any]:
    """Summarise pool records (see the module docstring for the estimators).

    Parameters
    ----------
    records : sequence of dict
        Records from :func:`samplescale.evaluate.evaluate` without a strategy: pool
        records, all with the same N, and error records (counted as wrong).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    dict
        ``{"problems", "n", "greedy": {...}, "curve": [{"k", "pass": {...}, "maj": {...},
        "tokens", "time_s"}, ...], "fits": {...}, "intervals": INTERVALS, "usage": {...},
        "problem_errors": [{"id", "reason"}], "sample_errors"}``; every rate has
        ``mean`` and the intervals named in ``INTERVALS``. With no problem that ran, ``n``
        is None, the curve is empty and ``fits`` is ``{}``; a fit that cannot be made
        (e.g. every problem solved at every k) is ``{"error": reason}``.
    """
    rng = np.random.default_rng(seed)
    given, records = records, by_id(records)
    ran = _ran(records)
    n = min((r["n"] for r in ran), default=None)
    curve = [] if n is None else _curve(records, n, rng)
    return {
        "problems": len(records),
        "n": n,
        "greedy": _greedy_summary(records, rng),
        "curve": curve,
        "fits": {} if n is None else fits(records, n, curve, rng),
        "intervals": INTERVALS,
        "usage": _total_usage(ran),
        **_errors(given),
    }


def _fit_or_error(make: Any) -> dict[str, Any]:
    try:
        return dict(make())
    except ConfigError as exc:
        return {"error": str(exc)}


def fits(
    records: Sequence[Record], n: int, curve: Sequence[dict[str, Any]], rng: np.random.Generator
) -> dict[str, Any]:
    """Scaling fits of a pool run (module docstring): ``{"coverage_power_law",
    "log_linear_tokens", "saturation"}``, each a dict or ``{"error": reason}``."""
    ks = list(range(1, n + 1))

    def power_law() -> dict[str, Any]:
        boot = bootstrap_fit(pass_matrix(records, ks), ks, fit_coverage, rng=rng,
                             predict_at=[2 * n, 10 * n])
        return {
            "a": boot.fit.params["a"], "b": boot.fit.params["b"],
            "a_interval": boot.params_interval["a"], "b_interval": boot.params_interval["b"],
            "rmse": boot.fit.rmse, "fitted_k": [1, n], "bootstrap_failed": boot.failed,
            "extrapolation": [{"k": int(k), **v} for k, v in boot.predictions.items()],
        }

    tokens = [c["tokens"] for c in curve]

    def log_linear(key: str) -> dict[str, Any]:
        f = fit_log_linear(tokens, [c[key]["mean"] for c in curve])
        return {**f.params, "rmse": f.rmse}

    def saturation(key: str) -> dict[str, Any]:
        f = fit_ttspm([c["k"] for c in curve], [c[key]["mean"] for c in curve])
        return {"f_max": f.f_max, "p": f.p, "rmse": f.rmse, "epsilon": SATURATION_EPSILON,
                "budget": saturation_budget(f, SATURATION_EPSILON)}

    return {
        "coverage_power_law": _fit_or_error(power_law),
        "log_linear_tokens": {
            key: _fit_or_error(lambda key=key: log_linear(key)) for key in ("pass", "maj")
        },
        "saturation": {
            key: _fit_or_error(lambda key=key: saturation(key)) for key in ("pass", "maj")
        },
    }


def _curve(records: Sequence[Record], n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """pass@k and maj@k for k = 1, 2, 4, ..., n over all records (errors count 0)."""
    ran = _ran(records)
    tokens_per_sample = _mean([s["tokens"] for r in ran for s in r["samples"]])
    pool_time = _mean([r["usage"]["wall_time_s"] for r in ran])
    ok = [r["status"] == "ok" for r in records]
    curve = []
    for k in k_values(n):
        passes = [pass_at_k(r["n"], r["c"], k) if o else 0.0 for r, o in zip(records, ok)]
        majs = [
            maj_at_k(r["labels"], r["correct_label"], k) if o else 0.0
            for r, o in zip(records, ok)
        ]
        curve.append(
            {
                "k": k,
                "pass": _interval(passes, rng),
                "maj": _interval(majs, rng),
                "tokens": k * tokens_per_sample,
                "time_s": pool_time * k / n,
            }
        )
    return curve


def summarize_strategy(records: Sequence[Record], seed: int = 0) -> dict[str, Any]:
    """Summarise strategy records: accuracy with intervals, mean generated tokens, samples
    drawn (what an adaptive rule spent of its N) and time per problem, beside greedy; with
    several models or prompts, their parts (``by_model`` / ``by_prompt``,
    :func:`samplescale.summary_parts.by_part`).

    Error records count as wrong (module docstring); ``strategy`` is None when no problem ran.
    """
    rng = np.random.default_rng(seed)
    given, records = records, by_id(records)
    ran = _ran(records)
    acc = [float(r["status"] == "ok" and r["correct"]) for r in records]
    return {
        "problems": len(records),
        "strategy": ran[0]["strategy"] if ran else None,
        "accuracy": _interval(acc, rng),
        "tokens": _mean([r["usage"]["completion_tokens"] for r in ran]),
        "samples": _mean([len(r["samples"]) for r in ran]),
        "time_s": _mean([r["usage"]["wall_time_s"] for r in ran]),
        "greedy": _greedy_summary(records, rng),
        "intervals": INTERVALS,
        "usage": _total_usage(ran),
        **by_part(ran),
        **_errors(given),
    }


def _total_usage(records: Sequence[Record]) -> dict[str, Any]:
    keys = ("prompt_tokens", "completion_tokens", "model_calls", "wall_time_s")
    tot = {k: 0 for k in keys}
    for r in records:
        for part in (r["usage"], r["greedy"]["usage"]):
            for k in keys:
                tot[k] += part[k]
    return tot
