"""Request bodies and query parameters are checked against the OpenAPI document the hub serves.

One source of truth: what ``/hub/api/openapi.json`` promises is what the hub accepts (an integer
``display_name`` or ``offset=-1`` is a 400, not something quietly stored or clamped). Only the JSON Schema
keywords that document uses are understood; an unknown keyword fails loudly in the tests, never silently at
run time. Unknown query parameters are ignored, as JupyterHub ignores them.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from ..inputs import BadInput

KNOWN = {
    "type",
    "properties",
    "additionalProperties",
    "required",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "enum",
    "format",
    "pattern",
    "description",
}
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
    "number": (int, float),
    "integer": (int,),
}


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def validate(schema: dict[str, Any], value: Any, where: str = "body") -> None:
    """Raise :class:`BadInput` naming the first place where ``value`` breaks ``schema``."""
    unknown = set(schema) - KNOWN
    if unknown:
        raise AssertionError(f"schema keyword(s) {sorted(unknown)} not supported at {where}")
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            raise BadInput(f"{where} must be {' or '.join(kinds)}")
    if "enum" in schema and value not in schema["enum"]:
        raise BadInput(f"{where} must be one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise BadInput(f"{where} must have at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise BadInput(f"{where} must have at most {schema['maxLength']} characters")
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            raise BadInput(f"{where} contains characters that are not allowed here")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise BadInput(f"{where} must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise BadInput(f"{where} must be at most {schema['maximum']}")
    elif isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise BadInput(f"{where} must have at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise BadInput(f"{where} must have at most {schema['maxItems']} items")
        items = schema.get("items")
        if items is not None:
            for i, v in enumerate(value):
                validate(items, v, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                raise BadInput(f"{where} is missing {key!r}")
        props: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, v in value.items():
            sub = props.get(key)
            if sub is not None:
                validate(sub, v, f"{where}.{key}")
            elif extra is False:
                raise BadInput(f"{where}: unknown field {str(key)[:64]!r}; allowed: {sorted(props)}")
            elif isinstance(extra, dict):
                validate(extra, v, f"{where}.{str(key)[:64]}")


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@functools.cache
def _operations(api: str) -> dict[tuple[str, str], dict[str, Any]]:
    from .openapi import document

    return {
        (path, method.upper()): op
        for path, ops in document(api)["paths"].items()
        for method, op in ops.items()
    }


def body_schema(api: str, route_path: str, method: str) -> tuple[dict[str, Any] | None, bool]:
    """The documented JSON body schema of one operation (``route_path`` is the route's template), and
    whether the body is required."""
    body = _operations(api).get((route_path, method.upper()), {}).get("requestBody") or {}
    schema = body.get("content", {}).get("application/json", {}).get("schema")
    return schema, bool(body.get("required"))


TRUE = {"", "1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}
_INT = re.compile(r"^[+-]?[0-9]{1,30}$")


def _coerce(raw: str, schema: dict[str, Any], where: str) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        if not _INT.match(raw):
            raise BadInput(f"{where} must be an integer")
        return int(raw)
    if kind == "boolean":
        low = raw.lower()
        if low not in TRUE | FALSE:
            raise BadInput(f"{where} must be true or false")
        return low in TRUE
    return raw


def check_query(api: str, route_path: str, method: str, query: Any) -> None:
    """Every documented query parameter present in ``query`` (a multi-dict with ``getlist``) must match."""
    op = _operations(api).get((route_path, method.upper()))
    if op is None:
        return
    for param in op.get("parameters", ()):
        if param.get("in") != "query":
            continue
        name = param["name"]
        for raw in query.getlist(name):
            where = f"query parameter {name}"
            validate(param["schema"], _coerce(raw, param["schema"], where), where)
