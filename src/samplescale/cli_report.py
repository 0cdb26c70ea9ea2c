"""``samplescale report RUN ... -o report.html``: one self-contained HTML report (CLI layer;
the page is built by :func:`samplescale.report.render_report`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from samplescale.cli_compare import add_cost_args, prices_per_run
from samplescale.cli_runs import load_runs
from samplescale.errors import ConfigError


def add_report_parser(sub: Any) -> None:
    """Register ``samplescale report``."""
    p = sub.add_parser(
        "report", help="one self-contained HTML report of runs: settings, pass@k / maj@k "
        "with intervals, scaling fit, saturation, verifier ceiling, comparisons, problems",
    )
    add_cost_args(p)
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                   help="the HTML file to write, e.g. report.html")


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report; returns the exit status."""
    from samplescale.report import render_report

    out: Path = args.output
    if out.is_dir():
        raise ConfigError(f"-o {out} is a directory; give a file name such as report.html")
    runs = load_runs(args.runs)
    html = render_report(
        [(r.name, r.settings, r.kind, r.records) for r in runs],
        seed=args.seed, axis=args.axis, prices=prices_per_run(args, len(runs)),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    print(f"wrote {out} ({len(html.encode()) / 1e6:.1f} MB, {len(runs)} run(s))")
    return 0
