"""What the fake API server refuses with ``422 Invalid``: bad names, bad labels, and (when enabled) anything
the Kubernetes OpenAPI schema rejects (via ``kubernetes-validate``)."""

from __future__ import annotations

import re
from typing import Any

from ..quantity import parse_quantity
from .status import ApiError, invalid, kind_of

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

SCHEMA_VERSION = "1.32"


def _name_rule(resource: str) -> tuple[re.Pattern[str], int, str]:
    if resource == "services":
        return _DNS_1035, 63, "a DNS-1035 label must consist of lower case alphanumeric characters or '-'"
    if resource == "namespaces":
        return _DNS_LABEL, 63, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"
    return (
        _DNS_SUBDOMAIN,
        253,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
    )


def validate_object(resource: str, obj: dict[str, Any], *, schema: bool) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    causes: list[tuple[str, str]] = []
    pattern, limit, words = _name_rule(resource)
    if not name:
        causes.append(("metadata.name", "Required value: name or generateName is required"))
    elif len(name) > limit or not pattern.match(name):
        causes.append(("metadata.name", f'Invalid value: "{name}": {words}'))
    for key, value in (meta.get("labels") or {}).items():
        prefix, _, short = key.rpartition("/")
        if not _LABEL_NAME.match(short) or len(short) > 63 or (prefix and not _DNS_SUBDOMAIN.match(prefix)):
            causes.append(("metadata.labels", f'Invalid value: "{key}": name part must consist of alphanumeric characters'))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                ("metadata.labels", f'Invalid value: "{value}": a valid label must be an empty string or consist of '
                 "alphanumeric characters, '-', '_' or '.', at most 63 characters")
            )
    if resource == "pods":
        containers = (obj.get("spec") or {}).get("containers") or []
        if not containers:
            causes.append(("spec.containers", "Required value"))
        for i, c in enumerate(containers):
            if not c.get("image"):
                causes.append((f"spec.containers[{i}].image", "Required value"))
            if not _DNS_LABEL.match(c.get("name") or ""):
                causes.append((f"spec.containers[{i}].name", f'Invalid value: "{c.get("name")}"'))
            for part in ("limits", "requests"):
                for res, value in ((c.get("resources") or {}).get(part) or {}).items():
                    try:
                        parse_quantity(value)
                    except (ValueError, TypeError, ArithmeticError) as exc:
                        causes.append((f"spec.containers[{i}].resources.{part}[{res}]", f'Invalid value: "{value}": {exc}'))
    if causes:
        raise invalid(resource, name, causes)
    if schema:
        _schema_check(resource, name, obj)


def _schema_check(resource: str, name: str, obj: dict[str, Any]) -> None:
    import kubernetes_validate

    body = dict(obj)
    body.setdefault("apiVersion", "v1")
    body.setdefault("kind", kind_of(resource))
    body.pop("status", None)
    try:
        kubernetes_validate.validate(body, SCHEMA_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path) or "<root>"
        raise invalid(resource, name, [(path, exc.message)]) from None


def check_kind(resource: str, obj: dict[str, Any]) -> None:
    kind = obj.get("kind")
    if kind and kind != kind_of(resource):
        raise ApiError(400, "BadRequest", f"the kind {kind!r} does not match the resource {resource!r}")
