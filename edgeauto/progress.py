"""Progress reporting decoupled from Rich: every job talks to a :class:`Reporter`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol


class Task(Protocol):
    def update(self, done: int, total: int) -> None: ...


class Reporter(Protocol):
    """Receives stage starts, progress and one-line messages."""

    def task(self, description: str, total: int) -> contextlib.AbstractContextManager[Task]: ...

    def log(self, message: str) -> None: ...


class _NullTask:
    def update(self, done: int, total: int) -> None:
        pass


class NullReporter:
    """Reports nothing (the Python API's default)."""

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Task]:
        yield _NullTask()

    def log(self, message: str) -> None:
        pass


class _RichTask:
    def __init__(self, progress: object, task_id: int) -> None:
        self.progress, self.task_id = progress, task_id

    def update(self, done: int, total: int) -> None:
        self.progress.update(self.task_id, completed=done, total=total)  # type: ignore[attr-defined]


class RichReporter:
    """Rich progress bars on stderr, one per long stage."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Task]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        columns = (
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as progress:
            task_id = progress.add_task(description, total=total)
            yield _RichTask(progress, task_id)

    def log(self, message: str) -> None:
        self.console.print(message, highlight=False)
