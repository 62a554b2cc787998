"""PNG figures people would rather look at than read: trajectories, predictions with intervals.

Every function takes plain arrays, draws on its own ``matplotlib.figure.Figure`` (the
object API, no pyplot), writes one PNG and returns the path written, or, given no path,
returns the ``Figure`` itself (drawn on demand, e.g. in a notebook). No backend is
chosen for the process, so a notebook's own plots are left alone, and matplotlib is
imported only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _figure(figsize: tuple[float, float]):
    """A new figure and its one axes, drawn by the Agg canvas whatever the global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def _save(fig, path: str | Path | None) -> Path | Any:
    if path is None:  # drawn on demand: the Figure itself, for a notebook or fig.savefig
        return fig
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_trajectories(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path | None = None,
    *,
    ylabel: str = "beta_eff",
    title: str = "beta_eff during fine-tuning",
    highlight: Sequence[str] = (),
) -> Path | Any:
    """One line per candidate: ``curves[name] = (epochs, values)``; ``highlight`` drawn bold."""
    fig, ax = _figure((7, 4))
    cmap = _cmap("viridis")
    for k, (name, (x, y)) in enumerate(curves.items()):
        bold = name in highlight
        ax.plot(
            x,
            y,
            "-o" if bold else "-",
            lw=2.2 if bold else 0.9,
            ms=3,
            alpha=1.0 if bold else 0.55,
            color="C3" if bold else cmap(k / max(len(curves) - 1, 1)),
            label=name if bold or len(curves) <= 10 else None,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def plot_predictions(
    names: Sequence[str],
    mean: Sequence[float],
    lower: Sequence[float],
    upper: Sequence[float],
    path: str | Path | None = None,
    *,
    truth: Sequence[float] | None = None,
    level: float = 0.9,
    title: str = "predicted final accuracy",
) -> Path | Any:
    """Candidates sorted by predicted mean, with their ``level`` intervals (and truth if known)."""
    mean, lower, upper = (np.asarray(a, float) for a in (mean, lower, upper))
    order = np.argsort(-np.where(np.isfinite(mean), mean, -np.inf))
    y = np.arange(len(order))
    fig, ax = _figure((7, 0.28 * len(order) + 1.6))
    err = np.stack([mean[order] - lower[order], upper[order] - mean[order]])
    label = f"predicted ({level:.0%} interval)"
    ax.errorbar(mean[order], y, xerr=err, fmt="o", color="C0", ms=4, capsize=2, label=label)
    if truth is not None:
        ax.plot(np.asarray(truth, float)[order], y, "x", color="C3", ms=6, label="true final")
    ax.set_yticks(y, [names[i] for i in order], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("final accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def plot_predicted_vs_true(
    predicted: Sequence[float],
    true: Sequence[float],
    path: str | Path | None = None,
    *,
    lower: Sequence[float] | None = None,
    upper: Sequence[float] | None = None,
    title: str = "predicted vs true final accuracy",
) -> Path | Any:
    """Scatter of predicted against true final accuracy, with interval bars when given."""
    p, t = np.asarray(predicted, float), np.asarray(true, float)
    fig, ax = _figure((4.5, 4.5))
    if lower is not None and upper is not None:
        err = np.stack([p - np.asarray(lower, float), np.asarray(upper, float) - p])
        ax.errorbar(t, p, yerr=err, fmt="o", ms=3, alpha=0.7, capsize=1.5)
    else:
        ax.plot(t, p, "o", ms=3, alpha=0.7)
    finite = np.concatenate([p[np.isfinite(p)], t[np.isfinite(t)]])
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    lo, hi = max(0.0, lo - 0.02), min(1.0, hi + 0.02)  # accuracies: the axes stay inside [0, 1]
    ax.plot([lo, hi], [lo, hi], "--", color="gray", lw=0.8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("true final accuracy")
    ax.set_ylabel("predicted")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_score_vs_budget(
    scores: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float], Sequence[float]]],
    path: str | Path | None = None,
    *,
    ylabel: str = "Kendall tau (test split)",
    title: str = "ranking quality vs budget",
    xlabel: str = "budget (% of full training epochs)",
    logx: bool = True,
    legend: str = "lower right",
) -> Path | Any:
    """``scores[name] = (budgets_percent, value, lo, hi)``: one line with a band per predictor or policy."""
    fig, ax = _figure((7.5, 4.5))
    markers = "osD^v<>Pxh"
    for k, (name, (b, v, lo, hi)) in enumerate(scores.items()):
        color = _cmap("tab10")(k % 10)
        ax.plot(b, v, "-", marker=markers[k % len(markers)], ms=4, color=color, label=name)
        ax.fill_between(b, lo, hi, color=color, alpha=0.07)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, loc=legend)
    return _save(fig, path)


def _distinct(n: int):
    """``n`` distinct colours: tab10/tab20 while they last, then evenly spaced hues."""
    if n <= 10:
        return [_cmap("tab10")(k) for k in range(n)]
    if n <= 20:  # tab20's dark shades first: neighbours in the legend stay far apart
        return [_cmap("tab20")(2 * k + (k >= 10) - 20 * (k >= 10)) for k in range(n)]
    return [_cmap("hsv")(k / n) for k in range(n)]


def _legend_outside(fig, ax, n: int) -> None:
    """A legend right of the axes, off the data, in as many columns as it needs."""
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=max(1, -(-n // 30)),
              borderaxespad=0.0, frameon=False)


def plot_learning_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    final: Mapping[str, tuple[float, float, float]],
    full_epochs: int,
    path: str | Path | None = None,
    *,
    chosen: str | None = None,
    level: float = 0.9,
    title: str = "learning curves and predicted final accuracy",
) -> Path | Any:
    """Each candidate's ``curves[name] = (epochs, accuracy)`` and, at ``full_epochs``, its
    predicted final ``final[name] = (mean, lower, upper)`` as an interval bar in its colour.

    Bars are spread a little along x so that they do not hide each other; ``chosen`` is bold.
    """
    names = list(curves)
    colors = _distinct(len(names))
    fig, ax = _figure((9, 5))
    spread = 0.2 * full_epochs  # room for one bar per candidate right of the last epoch
    for k, name in enumerate(names):
        x, y = (np.asarray(a, float) for a in curves[name])
        bold = name == chosen
        ax.plot(x, y, "-", lw=2.2 if bold else 0.9, color=colors[k], alpha=1.0 if bold else 0.75,
                label=f"{name} (chosen)" if bold else name)
        if name in final:
            m, lo, hi = final[name]
            xf = full_epochs + spread * (0.1 + k / max(len(names) - 1, 1))
            ax.errorbar([xf], [m], yerr=[[m - lo], [hi - m]], fmt="o", ms=3, color=colors[k], capsize=1.5,
                        lw=0.8)
    ax.axvline(full_epochs, color="gray", lw=0.6, ls=":")
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel(f"epoch (bars right of {full_epochs}: predicted final accuracy, {level:.0%} interval)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title)
    _legend_outside(fig, ax, len(names))
    return _save(fig, path)


def plot_p_best(
    fractions: Sequence[float],
    p_best: np.ndarray,
    names: Sequence[str],
    path: str | Path | None = None,
    *,
    title: str = "P(best) over the rounds",
    min_p: float = 0.02,
) -> Path | Any:
    """P(best) ``(rounds, C)`` per candidate against the compute spent after each round.

    Candidates whose P(best) never reaches ``min_p`` are drawn together in grey, unlabelled.
    """
    p_best = np.asarray(p_best, float)
    x = 100 * np.asarray(fractions, float)
    shown = [c for c in range(p_best.shape[1]) if p_best[:, c].max() >= min_p]
    colors = _distinct(len(shown))
    fig, ax = _figure((8, 4.5))
    for c in range(p_best.shape[1]):
        if c not in shown:
            ax.plot(x, p_best[:, c], "-", color="0.8", lw=0.6)
    for k, c in enumerate(shown):
        ax.plot(x, p_best[:, c], "-o", ms=3, color=colors[k], lw=1.2, label=names[c])
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("compute spent (% of training every candidate fully)")
    ax.set_ylabel("P(best)")
    ax.set_title(title + (f" (grey: P(best) < {min_p:g} throughout)" if len(shown) < p_best.shape[1] else ""),
                 fontsize=9)
    if shown:
        _legend_outside(fig, ax, len(shown))
    return _save(fig, path)
