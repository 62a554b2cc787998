"""A rich progress bar for long work (a sweep's pretraining and epochs)."""

from __future__ import annotations

from typing import Any


def progress_bar(enabled: bool) -> Any:
    """A ``rich.progress.Progress`` with elapsed and remaining time; silent when not ``enabled``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled,
    )
