"""Who gets in, who is admin, and which hubkit groups a person has: one policy for every provider."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .config import OAuthConfig
from .identity import Identity
from .refusal import LoginRefused, printable

_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f\\?#%&\"'<>`]")


class AccessDenied(LoginRefused):
    """The provider vouched for the person but the hub's rules keep them out."""


@dataclass(frozen=True)
class Decision:
    admin: bool | None
    groups: tuple[str, ...] | None


class AccessPolicy:
    def __init__(self, config: OAuthConfig, *, extra_allowed_groups: tuple[str, ...] = (),
                 extra_admin_groups: tuple[str, ...] = ()) -> None:
        self.config = config
        self.blocked = {u.lower() if config.lowercase_username else u for u in config.blocked_users}
        self.allowed_users = {u.lower() if config.lowercase_username else u for u in config.allowed_users}
        self.admin_users = {u.lower() if config.lowercase_username else u for u in config.admin_users}
        self.allowed_groups = set(config.allowed_groups) | set(extra_allowed_groups)
        self.admin_groups = set(config.admin_groups) | set(extra_admin_groups)
        self.domains = set(config.allowed_email_domains)

    def has_allow_rule(self) -> bool:
        return bool(self.allowed_users or self.domains or self.allowed_groups or self.admin_users
                    or self.admin_groups)

    def decide(self, identity: Identity) -> Decision:
        """Raise :class:`AccessDenied` with the reason, or say whether the person is admin and their groups."""
        name = identity.username
        if name in self.blocked:
            raise AccessDenied(f"The account '{name}' is blocked on this hub.",
                               reason=f"policy: {printable(name)!r} is blocked")
        groups = set(identity.groups)
        is_admin = name in self.admin_users or bool(groups & self.admin_groups)
        if not (is_admin or self.config.allow_all or self._allowed(identity, groups)):
            why = self._why_not(identity)
            raise AccessDenied(f"Your account '{name}' is not allowed on this hub: {why}. "
                               "Ask the hub's administrator for access.",
                               reason=f"policy: {printable(name)!r} is not allowed: {why}")
        admin = is_admin if (self.admin_users or self.admin_groups) else None
        return Decision(admin=admin, groups=self.map_groups(identity.groups))

    def _allowed(self, identity: Identity, groups: set[str]) -> bool:
        if identity.username in self.allowed_users or groups & self.allowed_groups:
            return True
        return bool(self.domains) and identity.email_verified and _domain(identity.email) in self.domains

    def _why_not(self, identity: Identity) -> str:
        reasons = []
        if self.allowed_users:
            reasons.append("it is not on the list of allowed users")
        if self.domains:
            if identity.email and not identity.email_verified and _domain(identity.email) in self.domains:
                reasons.append("its e-mail address is not verified with the login provider")
            else:
                reasons.append("it has no verified e-mail address in an allowed domain")
        if self.allowed_groups:
            reasons.append("it is in none of the allowed groups")
        return "; ".join(reasons) or "no one is allowed in yet"

    def map_groups(self, provider_groups: tuple[str, ...]) -> tuple[str, ...] | None:
        """Provider group names -> hubkit group names (``group_map``, else prefix + name)."""
        if not self.config.manage_groups:
            return None
        out: list[str] = []
        for raw in provider_groups:
            mapped = self.config.group_map.get(raw)
            if mapped is None:
                if self.config.only_mapped_groups:
                    continue
                mapped = f"{self.config.group_prefix}{raw}"
            mapped = hub_group_name(mapped)
            if mapped and mapped not in out:
                out.append(mapped)
        return tuple(sorted(out))


def hub_group_name(name: str) -> str:
    """A provider group name made valid for hubkit (no slashes, spaces, URL metacharacters, leading dot):
    GitLab's ``team/sub`` becomes ``team:sub``, matching GitHub's ``org:team``."""
    name = name.strip().replace("/", ":")
    name = _UNSAFE.sub("_", name).lstrip(".")
    return name[:255]


def _domain(email: str | None) -> str:
    if not email or "@" not in email:
        return ""
    return email.rsplit("@", 1)[1].strip().lower()
