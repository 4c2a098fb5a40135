"""Typed errors: the CLI maps each class to an exit status, so library code never exits."""

from __future__ import annotations

from pathlib import Path


class ReconcileError(Exception):
    """Base of every error the CLI reports as one line without a traceback."""

    exit_code = 1


class InputError(ReconcileError):
    """Bad input or configuration: a file, row or field the user must fix (exit 2)."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class GatewayError(ReconcileError):
    """The gateway could not be read completely, even after retries (exit 3)."""

    exit_code = 3
