"""The decision: P(best), expected regret and one ranking of candidates (docs/method.md §2.4).

Every ranking capjax shows (the CLI's table, ``results.json``, the markdown, a
notebook's display) is a :class:`Ranking` built by :func:`ranking`: candidates ordered by
score (highest first, unscored ones last), with each one's predicted final accuracy and
interval where the predictor gives them, and P(best) and expected regret from joint
posterior draws where it has them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from capjax.base.validation import CapjaxInputError
from capjax.plots import plot_predictions


def prob_best(samples: Any) -> np.ndarray:
    """P(candidate is best) from joint posterior draws ``samples`` of shape (S, C).

    Each row must be one joint draw of every candidate's final accuracy. ``-inf`` marks a
    candidate that cannot be best (e.g. one that failed); it gets probability 0.
    """
    s = check_draws(samples)
    best = np.argmax(s, axis=1)
    return np.bincount(best, minlength=s.shape[1]) / s.shape[0]


def expected_regret(samples: Any) -> np.ndarray:
    """Expected regret of choosing each candidate: E[max_j acc_j - acc_c]. Shape (C,).

    A candidate marked ``-inf`` (see :func:`prob_best`) has infinite regret.
    """
    s = check_draws(samples)
    return (s.max(axis=1, keepdims=True) - s).mean(axis=0)


def check_draws(samples: Any) -> np.ndarray:
    s = np.asarray(samples, dtype=float)
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise CapjaxInputError(
            f"samples has shape {s.shape}; pass joint draws shaped (n_draws, n_candidates)"
        )
    if np.isnan(s).any() or np.isposinf(s).any():
        raise CapjaxInputError(
            "samples holds NaN or +inf; draws of final accuracy must be finite, or -inf for "
            "a candidate that cannot be best"
        )
    if not np.isfinite(s).any(axis=1).all():
        raise CapjaxInputError("a row of samples is all -inf: no candidate can be best there")
    return s


@dataclasses.dataclass(frozen=True)
class Ranking:
    """Candidates ranked by a score, with the decision-relevant numbers.

    All per-candidate arrays are in candidate order (index c), not rank order.

    Attributes:
      order: (C,) candidate indices, best score first, unscored candidates last.
      names: one name per candidate.
      score: (C,) what the order sorts by (higher = predicted better); NaN if unscored.
      mean, lower, upper: (C,) predicted final accuracy and its central ``level``
        interval (NaN where the predictor gives none).
      level: the intervals' nominal coverage.
      p_best: (C,) P(candidate ends up best) from joint draws (0 for unscored
        candidates), or None without draws.
      expected_regret: (C,) E[best final accuracy - this candidate's] if it is chosen
        (inf for unscored candidates), or None without draws.
      valid: (C,) whether the candidate has a finite score.
      reasons: candidate name -> why it has no score.
    """

    order: np.ndarray
    names: tuple[str, ...]
    score: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float
    p_best: np.ndarray | None
    expected_regret: np.ndarray | None
    valid: np.ndarray
    reasons: Mapping[str, str]

    def table(self, extra: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """One dict per candidate in rank order, JSON-ready (non-finite numbers are None).

        Keys: rank (None if unscored), name, score, mean, lower, upper, p_best,
        expected_regret, reason, then one key per ``extra`` column (``{key: (C,) values}``
        in candidate order, e.g. early accuracy or the verified truth).
        """
        extra = dict(extra or {})
        for key, values in extra.items():
            if np.shape(values) != (len(self.names),):
                raise CapjaxInputError(
                    f"extra column {key!r} has shape {np.shape(values)}; pass one value per candidate"
                )
        rows = []
        for r, c in enumerate(self.order):
            row = {
                "rank": r + 1 if self.valid[c] else None,
                "name": self.names[c],
                "score": _finite_or_none(self.score[c]),
                "mean": _finite_or_none(self.mean[c]),
                "lower": _finite_or_none(self.lower[c]),
                "upper": _finite_or_none(self.upper[c]),
                "p_best": None if self.p_best is None else float(self.p_best[c]),
                "expected_regret": None if self.expected_regret is None else _finite_or_none(self.expected_regret[c]),
                "reason": self.reasons.get(self.names[c]),
            }
            row.update({key: _finite_or_none(values[c]) for key, values in extra.items()})
            rows.append(row)
        return rows

    def markdown(self, extra: Mapping[str, Any] | None = None) -> str:
        """The ranking as a markdown table (the columns of :meth:`rich_table`)."""
        cells = _cells(self.table(extra), self.level, list(extra or {}))
        head, rows = cells[0], cells[1:]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)

    def rich_table(self, title: str = "", extra: Mapping[str, Any] | None = None):
        """The ranking as a ``rich.table.Table`` for the terminal (rich is imported here)."""
        from rich.table import Table

        cells = _cells(self.table(extra), self.level, list(extra or {}), rich=True)
        table = Table(title=title or None, title_justify="left")
        for col in cells[0]:
            table.add_column(col, justify="left" if col == "candidate" else "right")
        for row in cells[1:]:
            table.add_row(*row)
        return table

    def _repr_markdown_(self) -> str:
        return self.markdown()


def _cells(rows: list[dict], level: float, extra: list[str], rich: bool = False) -> list[list[str]]:
    """Header and formatted cells of a ranking's rows (three decimals, a dash for nothing)."""

    def fmt(v: Any, spec: str = ".3f") -> str:
        return "—" if v is None else format(v, spec)

    head = ["rank", "candidate", "predicted final acc", f"{level:.0%} interval", "P(best)", *extra]
    out = [head]
    for r in rows:
        name = r["name"]
        if r["reason"]:
            name += f"  [red](failed: {r['reason']})[/red]" if rich else f" (failed: {r['reason']})"
        interval = "—" if r["lower"] is None else f"[{r['lower']:.3f}, {r['upper']:.3f}]"
        out.append([fmt(r["rank"], "d"), name, fmt(r["mean"]), interval, fmt(r["p_best"], ".2f"),
                    *(fmt(r[k]) for k in extra)])
    return out


def ranking(
    names: Sequence[str],
    score: Any,
    *,
    mean: Any = None,
    lower: Any = None,
    upper: Any = None,
    samples: Any = None,
    level: float = 0.9,
    reasons: Mapping[str, str] | None = None,
) -> Ranking:
    """Rank candidates by ``score`` (higher first; NaN last, in input order).

    Args:
      names: one name per candidate.
      score: (C,) higher = predicted better; NaN for a candidate that has no score.
      mean, lower, upper: (C,) predicted final accuracy and interval, if any.
      samples: (S, C) joint draws of final accuracy, if any; an unscored candidate's column
        is read as ``-inf`` (never best).
      level: the intervals' nominal coverage.
      reasons: candidate name -> why it has no score.
    """
    names = tuple(map(str, names))
    score = np.asarray(score, dtype=float)
    C = len(names)
    if score.shape != (C,):
        raise CapjaxInputError(f"{len(names)} names for a score of shape {score.shape}: pass one per candidate")
    nan = np.full(C, np.nan)
    mean, lower, upper = (nan if v is None else np.asarray(v, dtype=float) for v in (mean, lower, upper))
    valid = np.isfinite(score)
    p_best = regret = None
    if samples is not None and valid.any():
        # an unscored candidate can be neither best nor chosen: -inf in every draw
        draws = np.where(valid, np.asarray(samples, dtype=float), -np.inf)
        p_best, regret = prob_best(draws), expected_regret(draws)
    return Ranking(
        order=np.argsort(-np.where(valid, score, -np.inf), kind="stable"),
        names=names,
        score=score,
        mean=mean,
        lower=lower,
        upper=upper,
        level=float(level),
        p_best=p_best,
        expected_regret=regret,
        valid=valid,
        reasons=dict(reasons or {}),
    )


def rank(prediction: Any, names: Any = None) -> Ranking:
    """Rank the candidates of a :class:`~capjax.bayes.predict.Prediction` by posterior mean.

    Args:
      prediction: from :func:`~capjax.bayes.predict.predict_final` (anything with ``mean``,
        ``lower``, ``upper``, ``samples``, ``level``, ``valid`` and ``reasons`` by index).
      names: one name per candidate (default: their indices as strings).

    Returns:
      A :class:`Ranking` with P(best) and expected regret from the joint draws;
      ``ranking.table()`` lists it row by row, :func:`plot_ranking` draws it.
    """
    C = prediction.mean.shape[0]
    names = tuple(str(c) for c in range(C)) if names is None else tuple(map(str, names))
    if len(names) != C:
        raise CapjaxInputError(f"{len(names)} names for {C} candidates: pass one per candidate")
    return ranking(
        names,
        np.where(prediction.valid, prediction.mean, np.nan),
        mean=prediction.mean,
        lower=prediction.lower,
        upper=prediction.upper,
        samples=prediction.samples,
        level=prediction.level,
        reasons={names[c]: why for c, why in prediction.reasons.items()},
    )


def plot_ranking(
    ranking: Ranking,
    path: str | Path,
    *,
    truth: Any = None,
    title: str = "predicted final accuracy",
) -> Path:
    """PNG of each candidate's predicted final accuracy and interval, best first.

    Args:
      ranking: from :func:`rank` or :func:`ranking`.
      path: where to write the PNG.
      truth: (C,) true final accuracies in candidate order, drawn as crosses when known.
      title: the figure's title.

    Returns:
      The path written.
    """
    if truth is not None and np.shape(truth) != ranking.mean.shape:
        raise CapjaxInputError(
            f"truth has shape {np.shape(truth)}; pass one final accuracy per candidate "
            f"{ranking.mean.shape}, in candidate order"
        )
    p_best = ranking.p_best if ranking.p_best is not None else np.full(len(ranking.names), np.nan)
    labels = [
        f"{n}  P(best)={p:.2f}" if ok else f"{n}  (invalid)"
        for n, p, ok in zip(ranking.names, p_best, ranking.valid, strict=True)
    ]
    return plot_predictions(
        labels,
        ranking.mean,
        ranking.lower,
        ranking.upper,
        path,
        truth=truth,
        level=ranking.level,
        title=title,
    )


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
