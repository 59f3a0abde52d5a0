"""The one error hierarchy of Vigil."""

from __future__ import annotations


class VigilError(Exception):
    """Base of every error Vigil raises on purpose; the CLI prints it without a traceback."""


class ConfigError(VigilError):
    """A project configuration is invalid; the message names file, line, key and expectation."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class SourceError(VigilError):
    """A source failed to deliver data (connection, SQL, or a user function).

    `permanent`: retrying cannot help (the engine rejected the SQL itself), so the cycle
    reports it at once instead of retrying with backoff.
    """

    def __init__(self, *args: object, permanent: bool = False) -> None:
        super().__init__(*args)
        self.permanent = permanent


class StoreError(VigilError):
    """The metric store could not be read or written."""


class NotFoundError(VigilError):
    """A metric, series or record that was asked for does not exist."""


class AnalysisError(VigilError):
    """An analyzer could not evaluate a batch of series."""


class NotifyError(VigilError):
    """A channel failed to deliver a notification."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        parts_sent: int = 0,
        retry_after: float | None = None,
    ) -> None:
        self.retryable = retryable
        self.parts_sent = parts_sent
        self.retry_after = retry_after
        super().__init__(message)
