"""Refused logins: the message a person sees, and the short reason the hub's log records.

A person needs to know what to do next; an operator needs to know what happened, in one greppable line. The
reason is built from our own words plus the provider's error *code* and at most a sanitised claim value, so it
can never carry an authorization code, a state value or a token.
"""

from __future__ import annotations

from hubkit.errors import AuthFailed


class LoginRefused(AuthFailed):
    """An :class:`AuthFailed` that also says, for the log, why the login was refused."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def reason_of(exc: AuthFailed) -> str:
    """The log reason of a refusal: its ``reason`` when it has one, else its (secret-free) message."""
    reason = getattr(exc, "reason", None)
    return printable(reason if isinstance(reason, str) and reason else str(exc), 300)


def printable(text: str, limit: int = 100) -> str:
    """``text`` without control characters (no forged log lines), cut to ``limit`` characters."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])
