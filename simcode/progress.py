"""A progress bar with an ETA (rich), or nothing when it is off or the output is not a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress_bar(total: int, description: str, enabled: bool = True,
                 completed: int = 0) -> Iterator[Callable[..., None]]:
    """Yields `advance(n=1, completed=None, status=None)`: add n, or set the count to `completed`, and
    show `status` (e.g. the latest reward) after the bar. The bar, with elapsed time and ETA, goes to
    stderr when enabled and stderr is a terminal."""
    if not enabled:
        yield lambda n=1, completed=None, status=None: None
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
               TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=total, completed=completed, status="")

        def advance(n: float = 1, completed: float | None = None, status: str | None = None) -> None:
            fields = {} if status is None else {"status": status}
            if completed is None:
                bar.update(task, advance=n, **fields)
            else:
                bar.update(task, completed=completed, **fields)

        yield advance
