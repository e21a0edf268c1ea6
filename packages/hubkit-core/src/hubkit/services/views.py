"""What the hub shows of users, servers, tokens, groups and services: JupyterHub-shaped models built from rows,
filtered by what the caller's scopes may see. The REST API sends them as JSON; the pages render the same
values, so both say the same about a server."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..auth import scopes as sc
from ..auth.identity import Identity
from ..interfaces import ProgressEvent
from ..storage.orm import APIToken, Group, Server, ServerStatus, Service, User
from ..urls import HubUrls

if TYPE_CHECKING:
    from .userrows import ServerRow, UserRow

PENDING = {
    ServerStatus.QUEUED: "spawn",
    ServerStatus.STARTING: "spawn",
    ServerStatus.STOPPING: "stop",
}


def iso(dt: datetime | None) -> str | None:
    """``2026-01-02T03:04:05.000006Z`` (UTC, microseconds), as JupyterHub writes times."""
    if dt is None:
        return None
    if dt.tzinfo is not None and dt.utcoffset():
        dt = dt.astimezone(UTC)
    # isoformat is C code; strftime was a tenth of a users page's CPU
    return dt.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def progress_url(urls: HubUrls, user: str, name: str = "") -> str:
    url = f"{urls.api_prefix}/users/{quote(user, safe='')}/"
    return url + (f"servers/{quote(name, safe='')}/progress" if name else "server/progress")


def server_model(
    urls: HubUrls, user: str, server: Server | ServerRow, *, with_state: bool = False
) -> dict[str, Any]:
    name = server.name
    progress = progress_url(urls, user, name)
    model: dict[str, Any] = {
        "name": name,
        "display_name": server.display_name or name,
        "full_name": f"{user}/{name}",
        "last_activity": iso(server.last_activity or server.started),
        "started": iso(server.started),
        "pending": PENDING.get(server.status),
        "ready": server.status == ServerStatus.RUNNING,
        "stopped": server.status == ServerStatus.STOPPED,
        "url": urls.server_url(user, name),  # absolute on the owner's host with subdomains, as JupyterHub
        "user_options": server.user_options or {},
        "progress_url": progress,
        "full_url": urls.server_url(user, name) if urls.subdomains else None,
        "full_progress_url": urls.subdomain_host + progress if urls.subdomains else None,
    }
    if server.activity:
        model["hubkit_activity"] = server.activity
    if with_state:
        model["state"] = server.state or {}
    return model


def server_row(urls: HubUrls, user: str, name: str, s: Server | None) -> dict[str, Any]:
    """A server as the home page lists it (``s`` ``None``: the default server, never started)."""
    suffix = quote(user, safe="") + (f"/{quote(name, safe='')}" if name else "")
    return {
        "name": name,
        "label": (s.display_name if s is not None else "") or name or "default",
        "status": str(s.status) if s is not None else "stopped",
        "pending": PENDING.get(s.status) if s is not None else None,
        "ready": s is not None and s.status == ServerStatus.RUNNING,
        "url": urls.server_url(user, name),
        "spawn_url": f"{urls.hub_prefix}spawn/{suffix}",
        "pending_url": f"{urls.hub_prefix}spawn-pending/{suffix}",
        "last_activity": iso(s.last_activity) if s is not None else None,
        "started": iso(s.started) if s is not None else None,
    }


def user_model(
    urls: HubUrls,
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
            servers[s.name] = server_model(urls, user.name, s, with_state=with_state)
        model["servers"] = servers
        default = next((s for s in user.servers if s.name == ""), None)
        model["server"] = (
            urls.server_url(user.name)
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


SERVICE_FIELDS = {  # what each scope shows of a service (JupyterHub's access map)
    "read:services": ("kind", "name", "admin", "url", "prefix", "command", "pid", "info", "display"),
    "read:services:name": ("kind", "name", "admin"),
    "read:roles:services": ("kind", "name", "roles", "admin"),
}


def service_model(urls: HubUrls, svc: Service, ident: Identity | None = None) -> dict[str, Any]:
    """``ident`` ``None``: every field. ``hubkit_process`` (what the supervisor of a managed service last
    recorded) comes with ``read:services``."""
    process = svc.process or {}
    running = process.get("state") == "running"
    model: dict[str, Any] = {
        "kind": "service",
        "name": svc.name,
        "admin": svc.admin,
        "roles": ["admin"] if svc.admin else [],
        "url": svc.url,
        "prefix": urls.service(svc.name) if svc.url else "",
        "command": list(svc.command or []),
        "pid": (process.get("pid") or 0) if running else 0,
        "info": svc.info or {},
        "display": svc.display,
    }
    if svc.command:
        model["hubkit_process"] = {
            k: process.get(k) for k in ("state", "host", "started", "restarts", "last_exit", "error")
        }
    if ident is None:
        return model
    keys: set[str] = set()
    for scope, fields in SERVICE_FIELDS.items():
        if sc.allows(ident.scopes, scope, service=svc.name):
            keys.update(fields)
            if scope == "read:services":
                keys.add("hubkit_process")
    return {k: v for k, v in model.items() if k in keys}


def ready_event(url: str) -> dict[str, Any]:
    return {
        "progress": 100,
        "ready": True,
        "message": f"Server ready at {url}",
        "html_message": f'Server ready at <a href="{html.escape(url)}">{html.escape(url)}</a>',
        "url": url,
        "phase": "ready",
    }


def event_json(ev: ProgressEvent, url: str) -> dict[str, Any]:
    if ev.ready:
        return ready_event(url)
    out: dict[str, Any]
    if ev.failed:
        msg = ev.message if ev.message.startswith("Spawn failed") else f"Spawn failed: {ev.message}"
        out = {"progress": 100, "failed": True, "message": msg}
    else:
        out = {"progress": ev.progress if ev.progress is not None else 0, "message": ev.message}
    out["phase"] = str(ev.phase)
    if ev.reason_code:
        out["reason_code"] = ev.reason_code
    if ev.queue_position is not None:
        out["queue_position"] = ev.queue_position
    return out
