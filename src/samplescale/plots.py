"""Scaling plots: pass@k and maj@k against k and against generated tokens."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def scaling_figure(summary: dict[str, Any], title: str = "") -> Figure:
    """Two panels: rates vs k (log2 axis) and vs mean generated tokens per problem.

    Shaded bands are the 95% Wilson intervals; the dashed line is greedy accuracy.

    Parameters
    ----------
    summary : dict
        Output of :func:`samplescale.summary.summarize_pool`.
    """
    curve = summary["curve"]
    ks = [c["k"] for c in curve]
    toks = [c["tokens"] for c in curve]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, xs, label in (
        (axes[0], ks, "k (samples)"),
        (axes[1], toks, "generated tokens per problem"),
    ):
        for key, name in (("pass", "pass@k"), ("maj", "maj@k")):
            mean = [c[key]["mean"] for c in curve]
            ax.plot(xs, mean, marker="o", label=name)
            ax.fill_between(
                xs, [c[key]["lo"] for c in curve], [c[key]["hi"] for c in curve], alpha=0.2
            )
        ax.axhline(summary["greedy"]["mean"], color="gray", linestyle="--", label="greedy")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(label)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="lower right")
    fig.suptitle(title or f"{summary['problems']} problems, N = {summary['n']}")
    fig.tight_layout()
    return fig
