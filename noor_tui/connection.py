"""Whether the daemon answers, in words a person can act on, and how long to wait before trying again."""

from __future__ import annotations

from dataclasses import dataclass

from noor_daemon.client import AdminApiError, DaemonUnreachable

CONNECTION_ERRORS = (AdminApiError, DaemonUnreachable)
"""What a poll may fail with and the dashboard explains; anything else is a bug, reported as one."""

BACKOFF = (1.0, 2.0, 3.0, 5.0, 8.0, 10.0)


@dataclass(frozen=True)
class Connection:
    state: str
    """connecting, ok, unreachable, unauthorized, forbidden, error."""
    message: str = ""
    failures: int = 0

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    @property
    def retry_in(self) -> float:
        return BACKOFF[min(self.failures, len(BACKOFF)) - 1] if self.failures else 0.0


def is_connection_problem(error: Exception) -> bool:
    """Unreachable, refused credentials or a failing daemon: the banner's business. A 404 or 400 is the screen's."""
    if isinstance(error, DaemonUnreachable):
        return True
    return isinstance(error, AdminApiError) and (error.status in (401, 403) or error.status >= 500)


def describe(error: Exception, url: str, *, self_service: bool, failures: int) -> Connection:
    """The banner's state and text for a failed call."""
    if isinstance(error, DaemonUnreachable):
        return Connection(
            "unreachable",
            f"No NoorAPI daemon answers at {url} ({error.reason}). "
            "Start it with `noor daemon`, or point --url at it. Reconnecting…",
            failures,
        )
    if isinstance(error, AdminApiError) and error.status == 401:
        if self_service:
            text = "The daemon refused this API key (401): it may be revoked, expired, suspended or mistyped."
        else:
            text = (
                "The daemon refused the admin token (401). Set NOOR_ADMIN_TOKEN, or run `noor tui` "
                "as the user whose keyring or data dir holds it (`noor doctor` shows where)."
            )
        return Connection("unauthorized", text + " Retrying…", failures)
    if isinstance(error, AdminApiError) and error.status == 403:
        return Connection("forbidden", f"{error.message} (403). Retrying…", failures)
    if isinstance(error, AdminApiError):
        return Connection("error", f"The daemon answered {error.status} {error.code}: {error.message}", failures)
    return Connection("error", f"Unexpected {type(error).__name__}; the dashboard keeps trying.", failures)
