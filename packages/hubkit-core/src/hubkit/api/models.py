"""JupyterHub-shaped JSON models built from ORM rows, filtered by what the caller's scopes may see."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..auth import scopes as sc
from ..auth.identity import Identity
from ..storage.orm import APIToken, Group, Server, ServerStatus, Service, User

if TYPE_CHECKING:
    from ..runtime.hub import Hub
    from .userrows import UserRow

PENDING = {
    ServerStatus.QUEUED: "spawn",
    ServerStatus.STARTING: "spawn",
    ServerStatus.STOPPING: "stop",
}


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def server_url(hub: Hub, user: str, name: str = "") -> str:
    return hub.server_url(user, name)


def api_prefix(hub: Hub) -> str:
    from ..auth.sessions import hub_prefix

    return hub_prefix(hub) + "api/"


def server_model(hub: Hub, user: str, server: Server, *, with_state: bool = False) -> dict[str, Any]:
    name = server.name
    progress = api_prefix(hub) + f"users/{quote(user, safe='')}/"
    progress += f"servers/{quote(name, safe='')}/progress" if name else "server/progress"
    model: dict[str, Any] = {
        "name": name,
        "display_name": server.display_name or name,
        "full_name": f"{user}/{name}",
        "last_activity": iso(server.last_activity or server.started),
        "started": iso(server.started),
        "pending": PENDING.get(server.status),
        "ready": server.status == ServerStatus.RUNNING,
        "stopped": server.status == ServerStatus.STOPPED,
        "url": server_url(hub, user, name),
        "user_options": server.user_options or {},
        "progress_url": progress,
        "full_url": None,
        "full_progress_url": None,
    }
    if server.activity:
        model["hubkit_activity"] = server.activity
    if with_state:
        model["state"] = server.state or {}
    return model


def user_model(
    hub: Hub,
    user: User | UserRow,
    ident: Identity | None,
    *,
    include_stopped: bool = False,
    full: bool = False,
) -> dict[str, Any]:
    """``full`` = everything (admin pages); otherwise fields per scope as in JupyterHub."""
    groups = tuple(g.name for g in user.groups)

    def may(scope: str) -> bool:
        return full or (
            ident is not None and sc.allows(ident.scopes, scope, user=user.name, user_groups=groups)
        )

    model: dict[str, Any] = {"kind": "user", "name": user.name}
    if may("read:users:name"):
        model.update(admin=user.admin, user_info=user.user_info)
    if may("read:users:groups"):
        model["groups"] = sorted(groups)
    if may("read:roles:users"):
        model["roles"] = ["admin", "user"] if user.admin else ["user"]
        model["admin"] = user.admin
    if may("read:users:activity") or may("read:users"):
        model["last_activity"] = iso(user.last_activity)
    if may("read:users"):
        model["created"] = iso(user.created)
    if may("read:servers"):
        with_state = may("admin:server_state")
        servers = {}
        for s in user.servers:
            if s.status == ServerStatus.STOPPED and not include_stopped:
                continue
            servers[s.name] = server_model(hub, user.name, s, with_state=with_state)
        model["servers"] = servers
        default = next((s for s in user.servers if s.name == ""), None)
        model["server"] = (
            server_url(hub, user.name)
            if default is not None and default.status == ServerStatus.RUNNING
            else None
        )
        model["pending"] = PENDING.get(default.status) if default is not None else None
    if may("admin:auth_state") and ident is not None:
        model["auth_state"] = None  # only read on the single-user endpoint (decrypting is costly)
    return model


def token_model(token: APIToken, owner: str, *, owner_kind: str = "user") -> dict[str, Any]:
    return {
        owner_kind: owner,
        "id": f"a{token.id}",
        "kind": "api_token",
        "roles": [],
        "scopes": sorted(token.scopes or []),
        "created": iso(token.created),
        "last_activity": iso(token.last_activity),
        "expires_at": iso(token.expires_at),
        "note": token.note,
        "session_id": token.session_id,
        "oauth_client": token.oauth_client or "JupyterHub",
    }


def group_model(group: Group, *, with_users: bool = True) -> dict[str, Any]:
    model: dict[str, Any] = {
        "kind": "group",
        "name": group.name,
        "roles": [],
        "properties": group.properties or {},
    }
    if with_users:
        model["users"] = sorted(u.name for u in group.users)
    return model


def service_model(svc: Service) -> dict[str, Any]:
    return {
        "kind": "service",
        "name": svc.name,
        "admin": svc.admin,
        "roles": ["admin"] if svc.admin else [],
        "url": svc.url,
        "prefix": f"/services/{quote(svc.name, safe='')}/" if svc.url else "",
        "command": [],
        "pid": 0,
        "info": svc.info or {},
        "display": svc.display,
    }
