"""``Status`` objects shaped like the real API server's error replies."""

from __future__ import annotations

from typing import Any

_KIND_NAMES = {"pods": "Pod", "persistentvolumeclaims": "PersistentVolumeClaim", "services": "Service",
               "events": "Event", "namespaces": "Namespace"}


def kind_of(resource: str) -> str:
    return _KIND_NAMES.get(resource, resource)


def status_object(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        obj["details"] = details
    return obj


class ApiError(Exception):
    """Raised inside the fake server; rendered as a Status body with ``code`` as the HTTP status."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status_object(code, reason, message, details)
        self.code = code


def not_found(resource: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource})


def already_exists(resource: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{resource} "{name}" already exists', {"name": name, "kind": resource})


def invalid(resource: str, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """``causes`` are (field, message) pairs, e.g. ("metadata.name", 'Invalid value: "A": ...')."""
    text = ", ".join(f"{f}: {m}" for f, m in causes)
    return ApiError(
        422,
        "Invalid",
        f'{kind_of(resource)} "{name}" is invalid: {text}',
        {
            "name": name,
            "kind": kind_of(resource),
            "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes],
        },
    )


def gone(message: str) -> dict[str, Any]:
    return status_object(410, "Expired", message)
