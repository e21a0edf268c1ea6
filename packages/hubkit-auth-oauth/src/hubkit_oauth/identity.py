"""What a provider told us about a person, in one shape for every provider, and the claim helpers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .refusal import LoginRefused


@dataclass(frozen=True)
class Identity:
    """A provider identity before hubkit's rules are applied.

    ``groups`` are the provider's own names (GitHub: ``org`` and ``org:team``; OIDC: the groups claim).
    """

    username: str
    email: str | None = None
    email_verified: bool = False
    groups: tuple[str, ...] = ()
    claims: dict[str, Any] = field(default_factory=dict)


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by exact name (``https://example.org/groups``) or else by dotted path (``realm_access.roles``)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def group_names(value: Any) -> tuple[str, ...]:
    """Normalise a groups claim: a list of names, a space/comma separated string, or objects with a name."""
    if value is None:
        return ()
    items: list[Any]
    if isinstance(value, str):
        items = value.replace(",", " ").split()
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return ()
    out: list[str] = []
    for item in items:
        if isinstance(item, Mapping):
            item = item.get("name") or item.get("full_path") or item.get("path")
        if isinstance(item, str | int) and str(item).strip():
            name = str(item).strip()
            if name not in out:
                out.append(name)
    return tuple(out)


def username_from(claims: Mapping[str, Any], path: str, *, lowercase: bool) -> str:
    value = claim(claims, path)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise LoginRefused(
            f"The login provider did not send the '{path}' claim that names your hub account. "
            "Ask the hub's administrator to check username_claim.",
            reason=f"no usable {path!r} claim (username_claim)",
        )
    name = value.strip()
    return name.lower() if lowercase else name


def verified(value: Any) -> bool:
    """``email_verified`` arrives as a bool, or as "true" from some providers."""
    return value is True or (isinstance(value, str) and value.lower() == "true")
