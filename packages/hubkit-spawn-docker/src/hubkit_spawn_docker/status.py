"""Read a container's inspect data as "running" or a plain-language :class:`ExitStatus`."""

from __future__ import annotations

from typing import Any

from hubkit.interfaces import ExitStatus

_EXEC_CODES = {
    126: ("the command is not executable", "command-not-executable"),
    127: ("the command was not found", "command-not-found"),
}


def exit_status(attrs: dict[str, Any], *, name: str, mem_limit: str | None = None) -> ExitStatus | None:
    """``None`` while the container runs; otherwise why it is not running (OOM kill, exit code, never started)."""
    state = attrs.get("State") or {}
    status = state.get("Status", "")
    if state.get("Running") or status in ("running", "restarting"):
        return None
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        limit = f" (memory limit {mem_limit})" if mem_limit else ""
        return ExitStatus(
            code=code,
            reason=f"container {name} was killed because it ran out of memory{limit}",
            reason_code="oom-killed",
        )
    if status == "created":
        return ExitStatus(
            code=None, reason=f"container {name} was created but never started", reason_code="not-started"
        )
    error = state.get("Error") or ""
    if error:
        return ExitStatus(
            code=code, reason=f"container {name} failed: {error}", reason_code="container-error"
        )
    if code in _EXEC_CODES:  # what shells and init shims (tini, docker-init) exit with when exec fails
        hint, reason_code = _EXEC_CODES[code]
        return ExitStatus(
            code=code, reason=f"container {name} exited with code {code} ({hint})", reason_code=reason_code
        )
    return ExitStatus(code=code, reason=f"container {name} exited with code {code}", reason_code="exited")
