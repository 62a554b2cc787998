"""What :func:`capjax.select` returns: a :class:`Selection`, saved and loaded as the CLI's files.

A Selection holds ``results.json``'s payload (the choice, the ranking rows, the compute,
the rounds, the per-epoch records the selection saw) and the winner's trained
parameters. :meth:`Selection.save` writes exactly what ``capjax select`` writes
(``results.json``, ``results.csv``, the figures, ``winner/``); :func:`load_selection`
reads it back. Figures are drawn on demand and returned, never through pyplot.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

from capjax.base.validation import CapjaxInputError
from capjax.training.backbones import Backbone
from capjax.workflows import report


class Selection:
    """The outcome of one selection.

    Attributes:
      payload: the contents of ``results.json``.
      params: the winner's trained parameters ``{"backbone", "probe", "head"}`` (NumPy).
    """

    def __init__(self, payload: dict, params: Any, backbone: Backbone | None = None):
        self.payload = payload
        self.params = params
        self._backbone = backbone

    @property
    def chosen(self) -> str:
        """The name of the chosen candidate (trained to the end)."""
        return self.payload["chosen"]

    @property
    def ranking(self) -> list[dict[str, Any]]:
        """One row per candidate, in rank order (keys :data:`capjax.workflows.report.COLUMNS`)."""
        return self.payload["ranking"]

    @property
    def compute_fraction(self) -> float:
        """Training passes spent over those of training every candidate fully (``compute.fraction``)."""
        return self.payload["compute"]["fraction"]

    @property
    def records(self) -> dict[str, dict[str, list[float | None]]]:
        """``{name: {field: values at epochs 0..trained}}``: the curves the selection saw."""
        return self.payload["records"]

    def backbone(self) -> Any:
        """The winner's backbone as your own kind of object, with its trained values.

        An ``nnx.Module`` for NNX, ``(module, variables)`` for Linen, ``(apply_fn,
        params)`` for a pure function. Only in the session that ran the selection (the
        Python objects are not saved); :attr:`params` holds the values everywhere.
        """
        if self._backbone is None:
            raise CapjaxInputError(
                "this selection's winner is not your own backbone from this session; read its values from .params"
            )
        return self._backbone.rebuild(self.params["backbone"])

    def table(self) -> Any:
        """The ranking as a ``rich.table.Table``."""
        return report.table(self.payload, f"final accuracy after {self.payload['full_epochs']} epochs "
                                          f"({self.payload['method']})")

    def plot(self, kind: str = "curves", path: str | os.PathLike[str] | None = None) -> Any:
        """``"curves"`` (learning curves and predicted intervals), ``"p_best"`` (over the rounds) or
        ``"predictions"`` (vs the truth when verified); a matplotlib Figure, or written to ``path``."""
        if kind not in report.FIGURES:
            raise CapjaxInputError(f"unknown plot {kind!r}; choose one of {report.FIGURES}")
        return report.figure(kind, self.payload, path)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the CLI's files into ``directory``; :func:`load_selection` reads them back."""
        report.write(Path(directory), self.payload, self.params)
        return Path(directory)

    def __repr__(self) -> str:
        return (f"Selection(chosen={self.chosen!r}, candidates={self.payload['n_candidates']}, "
                f"compute_fraction={self.compute_fraction:.3f}, method={self.payload['method']!r})")

    def _repr_html_(self) -> str:
        heads = ("rank", "name", "epochs", "mean", "lower", "upper", "p_best", "measured", "note", "true")
        cell = lambda v: "—" if v is None else f"{v:.3f}" if isinstance(v, float) else escape(str(v))  # noqa: E731
        rows = "".join("<tr>" + "".join(f"<td>{cell(r[h])}</td>" for h in heads) + "</tr>" for r in self.ranking)
        return (f"<p><b>chosen: {escape(self.chosen)}</b>, compute {self.compute_fraction:.1%} of training every "
                f"candidate for {self.payload['full_epochs']} epochs ({escape(self.payload['method'])})</p>"
                f"<table><tr>{''.join(f'<th>{h}</th>' for h in heads)}</tr>{rows}</table>")


def load_selection(directory: str | os.PathLike[str]) -> Selection:
    """The :class:`Selection` saved in ``directory`` (by :meth:`Selection.save` or ``capjax select``)."""
    directory = Path(directory)
    path = directory / "results.json"
    if not path.is_file():
        raise CapjaxInputError(f"{directory} holds no results.json; pass the folder of a saved selection")
    payload = json.loads(path.read_text())
    return Selection(payload, report.load_params(directory / "winner"))
