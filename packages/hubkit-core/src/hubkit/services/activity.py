"""Activity reports from user servers (JupyterHub C6 rules): the newest report wins, never one from the future.

Besides ``last_activity`` a server entry may carry ``"hubkit": {...}``: rich activity from hubkit-singleuser
(``kernels``, ``kernels_busy``, ``connections``, ``terminals``) that the built-in culler reads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ..auth.identity import Identity
from ..errors import BadRequest, NotFound
from . import access
from .access import HIDDEN
from .context import ServiceContext
from .users import get_user

MAX_FUTURE = timedelta(minutes=59)
RICH_KEYS = {"kernels", "kernels_busy", "connections", "terminals", "last_busy"}


def parse_ts(value: Any, what: str) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise BadRequest(f"{what} must be an ISO 8601 timestamp string")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{what} is not an ISO 8601 timestamp: {value[:40]!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        dt = dt.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 and 9999-12-31T23:59-14:00 have no UTC time
        raise BadRequest(f"{what} is outside the range of representable times: {value[:40]!r}") from None
    if dt > datetime.now(UTC) + MAX_FUTURE:
        raise BadRequest(f"{what} is too far in the future: {value}")
    return dt


def parse_rich(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("hubkit activity must be an object")
    unknown = set(value) - RICH_KEYS
    if unknown:
        raise BadRequest(f"Unknown hubkit activity keys: {sorted(unknown)[:10]}")
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k == "last_busy":
            out[k] = parse_ts(v, "hubkit.last_busy").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif isinstance(v, bool) or not isinstance(v, int) or v < 0 or v > 1_000_000:
            raise BadRequest(f"hubkit.{k} must be a non-negative integer")
        else:
            out[k] = v
    out["reported"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out


def _newer(old: datetime | None, new: datetime) -> datetime:
    return new if old is None or new > old else old


def parse_report(
    body: dict[str, Any],
) -> tuple[datetime | None, dict[str, tuple[datetime | None, dict[str, Any] | None]]]:
    """The user's and each server's reported times (and rich activity) from a report body."""
    if not body:
        raise BadRequest("body must include last_activity and/or servers")
    user_ts = parse_ts(body["last_activity"], "last_activity") if "last_activity" in body else None
    servers_in = body.get("servers", {})
    if not isinstance(servers_in, dict):
        raise BadRequest("servers must be an object keyed by server name")
    parsed: dict[str, tuple[datetime | None, dict[str, Any] | None]] = {}
    for sname, entry in servers_in.items():
        if not isinstance(entry, dict):
            raise BadRequest(f"servers[{sname[:40]!r}] must be an object")
        unknown = set(entry) - {"last_activity", "hubkit"}
        if unknown:
            raise BadRequest(f"Invalid keys for server {sname[:40]!r}: {sorted(unknown)[:10]}")
        ts = (
            parse_ts(entry["last_activity"], f"servers[{sname[:40]!r}].last_activity")
            if "last_activity" in entry
            else None
        )
        rich = parse_rich(entry["hubkit"]) if "hubkit" in entry else None
        parsed[sname] = (ts, rich)
    return user_ts, parsed


async def record(ctx: ServiceContext, caller: Identity, name: str, body: dict[str, Any]) -> None:
    """``POST /users/{name}/activity``."""
    access.require(caller, ("users:activity",))
    user_ts, parsed = parse_report(body)
    async with ctx.storage.session() as session:
        user = await get_user(session, name)
        if user is None:
            raise NotFound(HIDDEN)
        access.require(caller, ("users:activity",), user=user.name, user_groups=[g.name for g in user.groups])
        by_name = {s.name: s for s in user.servers}
        for sname in parsed:
            if sname not in by_name:
                raise BadRequest(f"No such server {sname[:40]!r} for user {user.name}")
        latest = user_ts
        for sname, (ts, rich) in parsed.items():
            row = by_name[sname]
            if ts is not None:
                row.last_activity = _newer(row.last_activity, ts)
                latest = _newer(latest, ts)
            if rich is not None:
                row.activity = rich
        if latest is not None:
            user.last_activity = _newer(user.last_activity, latest)
        await session.commit()
