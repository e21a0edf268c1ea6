"""Label and field selectors as the API server parses them (``a=b,c!=d,e in (x,y),!f``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, str]], bool]

_SET_RE = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(\bin\b|\bnotin\b)\s*\(([^)]*)\))?\s*$")


class SelectorError(ValueError):
    """A selector the API server would refuse with 400."""


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> Predicate:
    if not text:
        return lambda labels: True
    preds: list[Predicate] = []
    for term in _split_top(text):
        preds.append(_parse_term(term, set_ops=True))
    return lambda labels: all(p(labels) for p in preds)


def parse_field_selector(text: str | None) -> Predicate:
    if not text:
        return lambda fields: True
    preds = [_parse_term(term, set_ops=False) for term in _split_top(text)]
    return lambda fields: all(p(fields) for p in preds)


def _parse_term(term: str, *, set_ops: bool) -> Predicate:
    for op in ("!=", "==", "="):
        if op in term:
            key, _, value = term.partition(op)
            key, value = key.strip(), value.strip()
            if not key:
                raise SelectorError(f"invalid selector term {term!r}")
            return _compare(key, value, negate=op == "!=")
    if not set_ops:
        raise SelectorError(f"invalid field selector term {term!r}: only =, == and != are supported")
    match = _SET_RE.match(term)
    if not match:
        raise SelectorError(f"invalid label selector term {term!r}")
    neg, key, op, values = match.groups()
    if op:
        if neg:
            raise SelectorError(f"invalid label selector term {term!r}")
        allowed = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda m: m.get(key) in allowed
        return lambda m: m.get(key) not in allowed
    if neg:
        return lambda m: key not in m
    return lambda m: key in m


def _compare(key: str, value: str, *, negate: bool) -> Predicate:
    def check(m: Mapping[str, str]) -> bool:
        return (m.get(key) == value) != negate

    return check


def pod_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    return {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.restartPolicy": spec.get("restartPolicy", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.phase": status.get("phase", ""),
        "status.podIP": status.get("podIP", ""),
    }


def event_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    meta, inv = obj.get("metadata", {}), obj.get("involvedObject", {})
    fields = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "reason": obj.get("reason", ""),
        "type": obj.get("type", ""),
        "source": obj.get("source", {}).get("component", ""),
    }
    for key in ("kind", "name", "namespace", "uid", "apiVersion", "resourceVersion", "fieldPath"):
        fields[f"involvedObject.{key}"] = str(inv.get(key, ""))
    return fields


def generic_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata", {})
    return {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", "")}
