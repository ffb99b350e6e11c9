"""A progress bar with an ETA (rich), or nothing when it is off or the output is not a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yields `advance(n)` (or `advance(completed=c)` to set the count); shows a bar with elapsed time
    and ETA on stderr when enabled."""
    if not enabled:
        yield lambda n=1, completed=None: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(file=sys.stderr)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: float = 1, completed: float | None = None) -> None:
            if completed is None:
                bar.advance(task, n)
            else:
                bar.update(task, completed=completed)

        yield advance
