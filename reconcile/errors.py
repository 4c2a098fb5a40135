"""Typed errors: the CLI maps each class to an exit status, so library code never exits."""

from __future__ import annotations

from pathlib import Path

#: Exit statuses. Each means one thing: 1 is only ever "findings at or above --fail-on".
EXIT_PASS = 0
EXIT_FINDINGS = 1
EXIT_INPUT = 2
EXIT_INCOMPLETE = 3
EXIT_INTERNAL = 70  # an unexpected error: a bug to report (sysexits' EX_SOFTWARE)


class ReconcileError(Exception):
    """Base of every error the CLI reports as one line without a traceback.

    Raised directly it means something the code did not expect, so it does not share a code
    with findings: subclasses say what went wrong and carry the status that means it.
    """

    exit_code = EXIT_INTERNAL


class InputError(ReconcileError):
    """Bad input or configuration: a file, row or field the user must fix (exit 2)."""

    exit_code = EXIT_INPUT

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

    exit_code = EXIT_INCOMPLETE

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        key_ref: str | None = None,
        window: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source  # token | self | admin | database
        self.key_ref = key_ref  # the credential's safe reference, never the secret
        self.window = window  # the time window being read, as text

    def with_message(self, message: str) -> GatewayError:
        """The same error (class and fields) with another text, e.g. redacted."""
        return type(self)(message, source=self.source, key_ref=self.key_ref, window=self.window)


class CredentialsRejected(GatewayError):
    """The gateway refused a credential (bad key, access token, user id, role): not retried."""


class IncompleteRead(GatewayError):
    """The period could not be proved complete: answers kept changing, or retries ran out."""


class IncompatibleGateway(GatewayError):
    """The gateway answers in a way the period cannot be read completely from (wrong units,
    ignored filters, a capped log list); the message says what was seen and what to use."""
