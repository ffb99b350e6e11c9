"""Errors shared by every layer.

`BadInput` is the one exception the command line turns into exit status 2: a single line that
names the file (when there is one), the key and what is allowed. Anything else is a bug or an
environment failure and exits 1.
"""

from __future__ import annotations


class BadInput(ValueError):
    """Invalid user input: a key with a value outside what is allowed."""

    def __init__(self, key: str, message: str, file: str | None = None):
        self.key = key
        self.message = message
        self.file = file
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"

    def within(self, prefix: str | None = None, file: str | None = None) -> BadInput:
        """The same error with its key placed under `prefix` (e.g. 'code') and/or a file attached."""
        key = self.key
        if prefix:
            key = f"{prefix}.{key}" if key else prefix
        return BadInput(key, self.message, file or self.file)


class SimulationError(RuntimeError):
    """A run that cannot go on (an iteration that can never decode): one line, exit status 1."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what was kept and how to go on: the command line prints it as one line and
    exits with status 130."""
