"""What an import does to the hubkit database, one small value per change, each able to say what it does.

The planner only builds these (reading, never writing), so ``--dry-run`` prints exactly what a real run
would apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class CreateUser:
    name: str
    admin: bool
    created: datetime | None
    last_activity: datetime | None
    user_info: dict[str, Any] | None

    def describe(self) -> str:
        return f"create user {self.name!r}" + (" (admin)" if self.admin else "")


@dataclass(frozen=True)
class PromoteAdmin:
    name: str

    def describe(self) -> str:
        return f"make user {self.name!r} an admin"


@dataclass(frozen=True)
class SetUserInfo:
    name: str
    user_info: dict[str, Any]

    def describe(self) -> str:
        return f"set user_info of {self.name!r}: {sorted(self.user_info)}"


@dataclass(frozen=True)
class CreateGroup:
    name: str
    properties: dict[str, Any]

    def describe(self) -> str:
        return f"create group {self.name!r}" + (
            f" with properties {sorted(self.properties)}" if self.properties else ""
        )


@dataclass(frozen=True)
class SetGroupProperties:
    name: str
    properties: dict[str, Any]

    def describe(self) -> str:
        return f"set properties of group {self.name!r}: {sorted(self.properties)}"


@dataclass(frozen=True)
class AddMembers:
    group: str
    users: tuple[str, ...]

    def describe(self) -> str:
        return f"add {', '.join(map(repr, self.users))} to group {self.group!r}"


@dataclass(frozen=True)
class CreateServer:
    user: str
    name: str
    display_name: str
    user_options: dict[str, Any]

    def describe(self) -> str:
        what = f"named server {self.user}/{self.name}" if self.name else f"default server of {self.user!r}"
        return f"create {what}" + (
            f" with user_options {sorted(self.user_options)}" if self.user_options else ""
        )


@dataclass(frozen=True)
class SetServerOptions:
    user: str
    name: str
    user_options: dict[str, Any]

    def describe(self) -> str:
        return f"set user_options of server {self.user}/{self.name}: {sorted(self.user_options)}"


@dataclass(frozen=True)
class ImportToken:
    jupyterhub_id: int
    user: str
    hashed: str
    prefix: str
    scopes: tuple[str, ...]
    note: str
    created: datetime | None
    expires_at: datetime | None
    last_activity: datetime | None

    def describe(self) -> str:
        return f"import token #{self.jupyterhub_id} ({self.prefix}…) of {self.user!r}, scopes {list(self.scopes)}"


Action = (
    CreateUser
    | PromoteAdmin
    | SetUserInfo
    | CreateGroup
    | SetGroupProperties
    | AddMembers
    | CreateServer
    | SetServerOptions
    | ImportToken
)


@dataclass(frozen=True)
class Skipped:
    kind: str  # user | group | server | token
    what: str
    reason: str


KINDS = ("users", "groups", "servers", "tokens")


@dataclass
class Tally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0


@dataclass
class Plan:
    source: str
    revision: str
    actions: list[Action] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tally: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k in KINDS})

    def skip(self, kind: str, what: str, reason: str) -> None:
        self.skipped.append(Skipped(kind, what, reason))
        self.tally[kind + "s"].skipped += 1
