"""Plots for report.html, drawn with matplotlib's object API on the Agg canvas and inlined as PNG.

Why the object API (``Figure`` + ``FigureCanvasAgg``) rather than pyplot: it never touches the global
backend or figure registry, so making a report inside a notebook or a thread changes nothing for the
caller. matplotlib is the optional ``report`` extra; :func:`available` says whether plots can be drawn.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

from cloudderm.report.common import dig, flags, provider_names

__all__ = [
    "accuracy_vs_cost",
    "available",
    "calibration",
    "confusions",
    "latency",
    "subgroup_gaps",
]

_DPI = 96


def available() -> bool:
    """Whether matplotlib can be imported (the ``cloudderm[report]`` extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (nothing is written to disk)."""
    buf = io.BytesIO()
    # "tight" grows the canvas to every artist: a long label or an outside legend is never cut off.
    fig.savefig(buf, format="png", metadata={"Software": None}, bbox_inches="tight", pad_inches=0.1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _tex(text: Any) -> str:
    """Text matplotlib prints literally: a ``$`` would otherwise start mathtext (and may fail to parse)."""
    return str(text).replace("$", r"\$")


def _short(name: str, summary: Mapping[str, Any]) -> str:
    return _tex(f"{name} ⚠" if flags(summary, name) else name)


def accuracy_vs_cost(summary: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """Balanced accuracy against cost per 1,000 images; returns (image, providers left out and why).

    The cost is ``cost_usd.projected.per_1k``, the projection at the user's monthly volume (it includes the
    fixed cost of always-on endpoints, which per-call costs miss), the figure the reports label
    "projected"; without a projection, what this run's answers cost ("measured").
    """
    points, left_out = [], []
    volume = dig(summary, "volume.images_per_month")
    projections = False
    for name in provider_names(summary):
        p = summary["providers"][name]
        acc = p.get("balanced_accuracy")
        cost = dig(p, "cost_usd.projected.per_1k")
        if cost is not None:
            projections = True
        else:
            cost = dig(p, "cost_usd.per_1k")
        if acc is None or cost is None:
            why = "no labelled answers" if acc is None else "cost unknown"
            left_out.append(f"{name} ({why})")
            continue
        points.append((name, float(cost), float(acc)))
    if not points:
        return None, left_out
    fig = _figure(6.0, 3.6)
    ax = fig.subplots()
    right = max(c for _, c, _ in points) * 1.25 or 1.0
    for name, cost, acc in points:
        ax.scatter([cost], [acc * 100], s=50)
        # A label right of a point near the right edge would run off the axes: put it on the left there.
        near_edge = cost > 0.6 * right
        ax.annotate(
            _short(name, summary),
            (cost, acc * 100),
            textcoords="offset points",
            xytext=(-6, 4) if near_edge else (6, 4),
            ha="right" if near_edge else "left",
        )
    basis = f"projected at {int(volume):,} images/month" if projections and volume else "measured in this run"
    ax.set_xlabel(f"cost per 1,000 images, {basis} (USD)")
    ax.set_ylabel("balanced accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_xlim(left=0, right=right)
    ax.grid(alpha=0.3)
    return _png(fig), left_out


def latency(summary: Mapping[str, Any], samples: Mapping[str, Sequence[float]]) -> str | None:
    """Box plots of per-image latency for each provider (log scale when they span orders of magnitude)."""
    import numpy as np

    names = [n for n in provider_names(summary) if len(samples.get(n, ())) > 0]
    if not names:
        return None
    data = [np.asarray(samples[n], dtype=float) for n in names]
    fig = _figure(6.5, 0.5 + 0.45 * len(names) + 1.0)
    ax = fig.subplots()
    try:
        ax.boxplot(data, orientation="horizontal")
    except TypeError:  # matplotlib < 3.10 names it vert=False
        ax.boxplot(data, vert=False)
    ax.set_yticks(range(1, len(names) + 1), [_short(n, summary) for n in names])
    lo = min(min(d) for d in data)
    hi = max(max(d) for d in data)
    if lo > 0 and hi / lo > 50:
        ax.set_xscale("log")
    ax.set_xlabel("latency per image (ms)")
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def confusions(summary: Mapping[str, Any]) -> str | None:
    """Heat maps of every provider's confusion matrix in one figure, shaded by row share, with counts."""
    import numpy as np

    names = [n for n in provider_names(summary) if summary["providers"][n].get("confusion")]
    if not names:
        return None
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = _figure(4.2 * cols, 3.7 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax, name in zip(axes, names):
        info = summary["providers"][name]["confusion"]
        counts = np.asarray(info["matrix"], dtype=float)
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(
            range(counts.shape[1]), [_tex(c) if c != "out-of-domain" else "OOD" for c in info["columns"]]
        )
        ax.set_yticks(range(counts.shape[0]), [_tex(r) for r in info["rows"]])
        ax.tick_params(axis="x", labelrotation=45)
        for (i, j), value in np.ndenumerate(counts):
            if value:
                colour = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, f"{int(value)}", ha="center", va="center", color=colour, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(_short(name, summary), fontsize=10)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    return _png(fig)


def calibration(summary: Mapping[str, Any]) -> str | None:
    """Reliability diagram: accuracy per top-label confidence bin against the diagonal."""
    series = []
    for name in provider_names(summary):
        bins = summary["providers"][name].get("calibration") or []
        xs = [b["confidence"] for b in bins if b.get("n")]
        ys = [b["accuracy"] for b in bins if b.get("n")]
        if xs:
            series.append((name, xs, ys))
    if not series:
        return None
    fig = _figure(4.8, 3.8)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    for name, xs, ys in series:
        ax.plot(xs, ys, marker="o", label=_short(name, summary))
    ax.set_xlabel("mean top-label confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return _png(fig)


def subgroup_gaps(summary: Mapping[str, Any], column: str) -> str | None:
    """Balanced accuracy per subgroup value and provider, with the bootstrap 95% intervals as error bars."""
    import numpy as np

    names = provider_names(summary)
    table: dict[str, dict[str, Mapping[str, Any]]] = {
        name: dig(summary["providers"][name], f"subgroups.{column}") or {} for name in names
    }
    values: list[str] = []
    for groups in table.values():
        values += [v for v, g in groups.items() if v not in values and g.get("balanced_accuracy") is not None]
    if not values:
        return None
    fig = _figure(min(14.0, max(6.5, 0.5 * len(values) * max(1, len(names)))), 3.8)
    ax = fig.subplots()
    width = 0.8 / len(names)
    x = np.arange(len(values))
    for i, name in enumerate(names):
        rows = [table[name].get(v) or {} for v in values]
        ba = np.array(
            [np.nan if r.get("balanced_accuracy") is None else r["balanced_accuracy"] for r in rows]
        )
        ci = [r.get("balanced_accuracy_ci") or [np.nan, np.nan] for r in rows]
        err = np.array([[b - c[0] for b, c in zip(ba, ci)], [c[1] - b for b, c in zip(ba, ci)]])
        bars = ax.bar(
            x - 0.4 + width * (i + 0.5),
            ba * 100,
            width,
            yerr=np.nan_to_num(err.clip(min=0)) * 100,
            capsize=3,
            label=_short(name, summary),
        )
        tops = np.nan_to_num(ba + err.clip(min=0)[1], nan=0.0) * 100  # above the whisker, never on it
        for bar, value, top in zip(bars, ba, tops):
            if not np.isnan(value):
                ax.annotate(
                    f"{value * 100:.0f}%",
                    (bar.get_x() + bar.get_width() / 2, top),
                    textcoords="offset points",
                    xytext=(0, 2),
                    ha="center",
                    fontsize=7,
                )
    ax.set_xticks(x, [_tex(v) for v in values], rotation=45 if len(values) > 4 else 0, ha="right")
    if len(values) <= 4:
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("center")
    ax.set_ylabel("balanced accuracy (%)")
    ax.set_ylim(0, 115)
    ax.set_title(f"subgroups by {_tex(column)} (whiskers: 95% bootstrap intervals)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never over a bar
    return _png(fig)
