"""Stopping rules priced on the pool records of an evaluation run
(``samplescale eval --price-stopping``): the rules priced by default, and their means over
problems with intervals. The pricing of one pool is :mod:`samplescale.analysis.stopping_price`.
No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from samplescale.analysis.intervals import mean_with_interval
from samplescale.analysis.short_m_price import price_short_m
from samplescale.analysis.stopping_price import Price, price_rule
from samplescale.errors import ConfigError
from samplescale.stopping import GROUP_WINDOW
from samplescale.strategies.adaptive import (
    ESC,
    AdaptiveConsistency,
    AdaptiveStrategy,
    SemanticEntropy,
)
from samplescale.strategies.confidence_stop import ConfidenceStop
from samplescale.strategies.short_m import ShortMAtK

Rule = AdaptiveStrategy | ShortMAtK

__all__ = ["default_rules", "describe", "price_records"]


def describe(strategy: Rule) -> dict[str, Any]:
    """The rule's name and parameters (the strategy's non-default-callable fields)."""
    import dataclasses

    params = {f.name: getattr(strategy, f.name) for f in dataclasses.fields(strategy)
              if f.name not in ("extract", "equivalent")}
    return {"rule": strategy.name, **params}


def default_rules() -> list[Rule]:
    """The rules ``samplescale eval --price-stopping`` prices: ESC windows 2, 4, 8;
    Adaptive-Consistency thresholds 0.8, 0.9, 0.95, 0.99; semantic entropy (rounds of 4)
    at 0, 0.4 and 0.7 nats; confidence-stop (warm-up 4, consensus 0.95) keeping 90 % and
    10 % of the warm-up traces; short-1@k and short-3@k (k = the budget)."""
    return [
        *(ESC(window=w) for w in (2, 4, 8)),
        *(AdaptiveConsistency(threshold=t) for t in (0.8, 0.9, 0.95, 0.99)),
        *(SemanticEntropy(threshold=t) for t in (0.0, 0.4, 0.7)),
        *(ConfidenceStop(keep=k) for k in (0.9, 0.1)),
        *(ShortMAtK(m=m) for m in (1, 3)),
    ]


def price_records(
    records: Sequence[dict[str, Any]],
    rules: Sequence[Rule] | None = None,
    seed: int = 0,
    draws: int = 1000,
) -> dict[str, Any]:
    """Price stopping rules on the pool records of one evaluation run.

    The budget is the smallest pool (``B = min n``). Accuracy is the mean over ALL
    problems of each problem's expected accuracy (0 for an error record) with a 95 %
    Wilson interval over problems (:func:`~samplescale.analysis.intervals.mean_with_interval`);
    samples and tokens are means over the problems that ran. ``*_mc_se`` is the Monte Carlo
    standard error of a mean (0 when every problem was priced exactly).

    Returns
    -------
    dict
        ``{"budget", "problems", "rules": [...], "skipped": [{"rule", "reason"}]}``; each
        rule: its parameters, ``method``, ``accuracy`` (``mean``, ``lo``, ``hi``),
        ``accuracy_mc_se``, ``samples``, ``samples_mc_se``, ``tokens``, ``tokens_mc_se``.

    Raises
    ------
    ConfigError
        If no record is a pool record that ran.
    """
    ran = [r for r in records if r.get("status") == "ok" and "labels" in r]
    if not ran:
        raise ConfigError("records must hold at least one pool record with status 'ok'")
    budget = min(int(r["n"]) for r in ran)
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for rule in default_rules() if rules is None else rules:
        info = describe(rule)
        try:
            rule.check_budget(budget)
            if isinstance(rule, ConfidenceStop) and rule.window != GROUP_WINDOW:
                raise ConfigError(f"pool records hold confidences at window {GROUP_WINDOW} "
                                  f"only, not {rule.window}")
            prices = [_price_record(rule, r, budget, rng, draws) for r in ran]
        except ConfigError as exc:
            skipped.append({**info, "reason": str(exc)})
            continue
        acc = [p.accuracy for p in prices] + [0.0] * (len(records) - len(ran))
        methods = sorted({p.method for p in prices})
        out.append({
            **info,
            "method": methods[0] if len(methods) == 1 else "mixed",
            "accuracy": mean_with_interval(acc),
            "accuracy_mc_se": math.sqrt(sum(p.accuracy_se**2 for p in prices)) / len(acc),
            "samples": float(np.mean([p.samples for p in prices])),
            "samples_mc_se": math.sqrt(sum(p.samples_se**2 for p in prices)) / len(prices),
            "tokens": float(np.mean([p.tokens for p in prices])),
            "tokens_mc_se": math.sqrt(sum(p.tokens_se**2 for p in prices)) / len(prices),
        })
    return {"budget": budget, "problems": len(records), "rules": out, "skipped": skipped}


def _price_record(
    rule: Rule, r: dict[str, Any], budget: int, rng: np.random.Generator,
    draws: int,
) -> Price:
    if isinstance(rule, ShortMAtK):
        rows = r["samples"]
        if any("finish_reason" not in s for s in rows):
            raise ConfigError("the pool records have no finish_reason (a run made before "
                              "they were recorded)")
        return price_short_m(rule, r["labels"], r["correct_label"], [s["tokens"] for s in rows],
                             [s["finish_reason"] for s in rows], budget, rng=rng, draws=draws)
    conf = None
    if isinstance(rule, ConfidenceStop):
        rows = r["samples"]
        if any(s["status"] == "ok" and s.get("lowest_group_confidence") is None for s in rows):
            raise ConfigError("the pool records have no lowest_group_confidence (a backend "
                              "without log-probabilities, or a run made before they were "
                              "recorded)")
        conf = [s["lowest_group_confidence"] if s["status"] == "ok" else -math.inf
                for s in rows]
    return price_rule(rule, r["labels"], r["correct_label"], [s["tokens"] for s in r["samples"]],
                      conf, budget, rng=rng, draws=draws)
