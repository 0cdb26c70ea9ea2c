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


def compare_figure(points: list[Any], front: list[Any], axis: str, label: str) -> Figure:
    """Accuracy against compute: each run's maj@k or strategy points joined in cost order,
    its greedy point as a square (error bars: 95% clustered intervals), and the Pareto
    front as a dashed step line.

    Parameters
    ----------
    points, front : list of samplescale.comparison.Point
        All points, and those on the Pareto front (:func:`samplescale.comparison.pareto_front`).
    axis : str
        The cost axis (a key of :data:`samplescale.analysis.compute.AXES`).
    label : str
        The x axis label.
    """
    fig, ax = plt.subplots(figsize=(8, 5))
    runs = sorted({p.run for p in points})
    for run in runs:
        mine = sorted((p for p in points if p.run == run and p.x(axis) is not None),
                      key=lambda p: p.x(axis))
        color = None
        for greedy, marker, suffix in ((False, "o", ""), (True, "s", " greedy")):
            part = [p for p in mine if (p.method == "greedy") == greedy]
            if not part:
                continue
            err = [[p.accuracy - p.lo for p in part], [p.hi - p.accuracy for p in part]]
            bars = ax.errorbar([p.x(axis) for p in part], [p.accuracy for p in part], yerr=err,
                               marker=marker, capsize=3, label=run + suffix, color=color,
                               linestyle="none" if greedy else "-")
            color = bars.lines[0].get_color()
    if front:
        ax.step([p.x(axis) for p in front], [p.accuracy for p in front], where="post",
                color="black", linestyle="--", linewidth=1, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("accuracy (maj@k, greedy, strategy)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig


def data_uri(fig: Figure, dpi: int = 100) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (for self-contained HTML); the
    figure is closed."""
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def fit_figure(
    ks: list[int], measured: list[float], fit: Any, extrapolation: list[dict[str, float]]
) -> Figure:
    """Measured pass@k against k with the fitted exp(a k^b) curve continued to the
    furthest extrapolation, whose 95% bootstrap intervals are drawn as error bars.

    Parameters
    ----------
    ks, measured : list
        The measured curve (mean pass@k over problems at each k).
    fit : samplescale.analysis.scaling.Fit
        The power-law fit.
    extrapolation : list of dict
        ``{"k", "value", "lo", "hi"}`` per extrapolated k.
    """
    import numpy as np

    top = max([*ks, *(e["k"] for e in extrapolation)])
    grid = np.geomspace(1, top, 200)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, measured, "o", label="measured pass@k")
    ax.plot(grid, fit.predict(grid), "-", label=f"exp(a k^b): a={fit.params['a']:.2f}, "
            f"b={fit.params['b']:.2f}")
    if extrapolation:
        ax.errorbar([e["k"] for e in extrapolation], [e["value"] for e in extrapolation],
                    yerr=[[e["value"] - e["lo"] for e in extrapolation],
                          [e["hi"] - e["value"] for e in extrapolation]],
                    fmt="s", capsize=4, label="extrapolated (95% bootstrap)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("coverage (pass@k)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig
