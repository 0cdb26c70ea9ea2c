"""``samplescale eval --price-stopping``: the table of stopping rules priced on a pool (CLI
layer; the numbers come from :mod:`samplescale.analysis.stopping_records`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from samplescale.cli_eval import _ci as _interval


def print_stopping(console: Console, s: dict[str, Any], title: str) -> None:
    """Print the rules of ``s`` (:func:`~samplescale.analysis.stopping_records.price_records`)."""
    t = Table(
        title=f"{title}: stopping rules priced on the pool (budget {s['budget']})",
        caption="expected over random orderings of each pool: exact, or Monte Carlo with "
        "its standard error (MC se); 95% Wilson interval over problems; samples and tokens "
        "per problem",
    )
    t.add_column("rule")
    for col in ("accuracy", "95% Wilson", "MC se", "samples", "tokens"):
        t.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    for r in s["rules"]:
        params = " ".join(f"{k}={r[k]}" for k in _RULE_PARAMS.get(r["rule"], ()))
        se = f"{r['accuracy_mc_se']:.4f}" if r["method"] != "exact" else "exact"
        t.add_row(f"{r['rule']} {params}", f"{r['accuracy']['mean']:.3f}", _interval(r["accuracy"]),
                  se, f"{r['samples']:.2f}", f"{r['tokens']:.0f}")
    console.print(t)
    for sk in s["skipped"]:
        params = " ".join(f"{k}={sk[k]}" for k in _RULE_PARAMS.get(sk["rule"], ()) if k in sk)
        console.print(f"not priced: {sk['rule']} {params}: {sk['reason']}", markup=False)


# the parameters the default rules vary (summary.json has them all)
_RULE_PARAMS = {"esc": ("window",), "adaptive-consistency": ("threshold",),
                "semantic-entropy": ("threshold",), "confidence-stop": ("keep", "consensus"),
                "short-m-at-k": ("m",)}
