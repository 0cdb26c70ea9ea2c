"""One self-contained HTML report of one or more runs (no I/O: returns the HTML text).

Per run: the settings, the pass@k / maj@k table with its three intervals (or a
strategy's accuracy), the scaling plot, the coverage fit exp(a k^b) with its
extrapolation, the saturation budget, the verifier ceiling when the samples carry
verdicts (a ``verdict`` boolean per sample row), and the per-problem table (problem,
gold, greedy answer, answer votes, maj@N) with a search box. Across runs: accuracy
against compute with the Pareto front and the paired tests (:mod:`samplescale.comparison`).

The page is rendered by a Jinja2 template (``templates/report.html.j2``) with
autoescaping on, so every text from the records (questions, answers, settings) is
escaped; plots are PNG data URIs; the only script is the search box's filter (it also
reads ``?q=...`` from the address so a search can be linked).
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Sequence
from typing import Any

import jinja2
import numpy as np

from samplescale.analysis.compute import AXES
from samplescale.analysis.pools import maj_matrix, pass_matrix, pool_size
from samplescale.analysis.scaling import Fit
from samplescale.analysis.verifier import (
    best_of_n_model,
    best_of_n_pool,
    optimal_n,
    verifier_rates,
)
from samplescale.comparison import pairwise, pareto_front, run_points
from samplescale.summary import summarize_pool, summarize_strategy

__all__ = ["render_report"]

Record = dict[str, Any]
FALSE_POSITIVE_COST = 1.0  # utility of the verifier section: -1 for a wrong answer returned


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        out: list[tuple[str, str]] = []
        for k, v in value.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, "" if value is None else str(value))]


def _votes(record: Record) -> str:
    answers = Counter(
        "(no answer)" if s["answer"] is None else s["answer"] for s in record["samples"]
    )
    return ", ".join(f"{a} x{c}" for a, c in answers.most_common())


def _problems(records: Sequence[Record], kind: str) -> list[dict[str, Any]]:
    rows = []
    maj = None
    if kind == "pool":
        n = pool_size(records)
        maj = maj_matrix(records, [n])[:, 0]
    for i, r in enumerate(records):
        if r["status"] != "ok":
            rows.append({"id": r["id"], "question": "", "gold": "", "greedy": "",
                         "answers": f"error: {r['error']['message']}", "result": "error"})
            continue
        result = (f"{r['c']}/{r['n']} correct, maj@{r['n']} {maj[i]:.2f}" if maj is not None
                  else f"{r['answer']} ({'correct' if r['correct'] else 'wrong'})")
        rows.append({
            "id": r["id"], "question": r["question"], "gold": r["gold"],
            "greedy": f"{r['greedy']['answer']} ({'correct' if r['greedy']['correct'] else 'wrong'})",
            "answers": _votes(r), "result": result,
        })
    return rows


def _verifier(records: Sequence[Record]) -> dict[str, Any] | None:
    """The verifier ceiling from per-sample ``verdict`` booleans, or None without them."""
    ran = [r for r in records if r["status"] == "ok" and "n" in r]
    if not ran or not all(isinstance(s.get("verdict"), bool) for r in ran for s in r["samples"]):
        return None
    correct = [s["correct"] for r in ran for s in r["samples"]]
    accepted = [s["verdict"] for r in ran for s in r["samples"]]
    rates = verifier_rates(correct, accepted)
    ns = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= min(r["n"] for r in ran)]
    pool = best_of_n_pool(
        [r["n"] for r in ran],
        [sum(s["correct"] and s["verdict"] for s in r["samples"]) for r in ran],
        [sum(not s["correct"] and s["verdict"] for s in r["samples"]) for r in ran],
        ns,
    )
    p = [r["c"] / r["n"] for r in ran]
    tpr = 0.0 if np.isnan(rates.tpr) else rates.tpr
    fpr = 0.0 if np.isnan(rates.fpr) else rates.fpr
    model, limit = best_of_n_model(p, tpr, fpr, ns)
    n_star, _ = optimal_n(p, tpr, fpr, FALSE_POSITIVE_COST)
    return {"rates": rates, "curve": list(zip(ns, pool.tolist(), model.tolist())),
            "limit": limit, "n_star": n_star, "cost": FALSE_POSITIVE_COST}


def _run_section(name: str, settings: dict[str, Any] | None, kind: str,
                 records: Sequence[Record], seed: int) -> dict[str, Any]:
    from samplescale.plots import data_uri, fit_figure, scaling_figure

    out: dict[str, Any] = {
        "name": name, "kind": kind, "problems": _problems(records, kind),
        "settings": _flatten(settings) if settings else [],
    }
    if kind == "strategy":
        out["summary"] = summarize_strategy(records, seed=seed)
        return out
    s = summarize_pool(records, seed=seed)
    out["summary"] = s
    if not s["curve"]:
        return out
    out["scaling_png"] = data_uri(scaling_figure(s, name))
    fit = s["fits"]["coverage_power_law"]
    if "a" in fit:
        n = s["n"]
        ks = list(range(1, n + 1))
        measured = pass_matrix(records, ks).mean(axis=0).tolist()
        curve = Fit("power_law", {"a": fit["a"], "b": fit["b"]}, [], [], fit["rmse"])
        out["fit_png"] = data_uri(fit_figure(ks, measured, curve, fit["extrapolation"]))
    out["verifier"] = _verifier(records)
    return out


def render_report(
    runs: Sequence[tuple[str, dict[str, Any] | None, str, Sequence[Record]]],
    *,
    seed: int = 0,
    axis: str = "tokens",
    prices: Sequence[dict[str, float | None]] | None = None,
) -> str:
    """The report of ``runs`` as one HTML document.

    Parameters
    ----------
    runs : sequence of (name, settings, kind, records)
        Each run's name, its ``run.json`` settings (or None), ``"pool"`` or
        ``"strategy"``, and its records.
    seed : int
        Seed of the bootstraps and posterior draws.
    axis : str
        Compute axis of the comparison (a key of :data:`samplescale.analysis.compute.AXES`).
    prices : sequence of dict, optional
        Per run, ``params`` / ``price_prompt`` / ``price_completion`` for the costs.

    Returns
    -------
    str
        The HTML text (UTF-8), self-contained.
    """
    from samplescale import __version__
    from samplescale.plots import compare_figure, data_uri

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("samplescale", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True,
    )
    sections = [_run_section(n, s, k, r, seed) for n, s, k, r in runs]
    compare = None
    if len(runs) > 1:
        costs = list(prices) if prices else [{}] * len(runs)
        points = [p for (n, _, k, r), pr in zip(runs, costs)
                  for p in run_points(n, r, k, **pr)]  # type: ignore[arg-type]
        front = pareto_front(points, axis)
        compare = {
            "points": points, "front": {(p.run, p.method) for p in front},
            "png": data_uri(compare_figure(points, front, axis, AXES[axis])),
            "axis": AXES[axis],
            "tests": pairwise([(n, r, k) for n, _, k, r in runs],  # type: ignore[misc]
                              rng=np.random.default_rng(seed)),
        }
    return env.get_template("report.html.j2").render(
        sections=sections, compare=compare, version=__version__,
        created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
