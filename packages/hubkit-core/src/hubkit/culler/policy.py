"""Which running servers to stop, as a pure function of their activity so it is easy to test.

* idle: ``now - (last_activity or started) >= timeout``; ``last_activity`` combines proxy traffic (copied by
  the route reconciler) and activity posts from the server.
* per-group timeouts: a user in groups with ``[culler] group_timeouts`` gets the *largest* matching timeout
  (the most generous policy wins); others get ``timeout``.
* rich activity from hubkit-singleuser (``Server.activity``): ``last_busy`` (when a kernel was last busy)
  counts as activity; a busy kernel reported within the idle window spares the server (``spare_busy_kernels``); open browser connections spare it only when
  ``ignore_open_connections`` is false.
* ``max_age`` > 0 stops servers older than that however busy they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..config.models import CullerConfig


@dataclass(frozen=True)
class Candidate:
    user: str
    server: str
    started: datetime | None
    last_activity: datetime | None
    activity: Mapping[str, Any]
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    user: str
    server: str
    why: str  # "idle" | "max-age"
    detail: str


def timeout_for(cfg: CullerConfig, groups: Iterable[str]) -> float:
    matched = [cfg.group_timeouts[g] for g in groups if g in cfg.group_timeouts]
    return max(matched) if matched else cfg.timeout


def _ts(activity: Mapping[str, Any], key: str) -> datetime | None:
    raw = activity.get(key)
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None


def _recent(activity: Mapping[str, Any], now: datetime, window: float) -> bool:
    t = _ts(activity, "reported")
    return t is not None and (now - t).total_seconds() < window


def decide(cfg: CullerConfig, c: Candidate, now: datetime) -> Decision | None:
    if c.started is not None and cfg.max_age and (now - c.started).total_seconds() >= cfg.max_age:
        age = (now - c.started).total_seconds()
        return Decision(c.user, c.server, "max-age", f"running for {age:.0f} s (max_age {cfg.max_age:.0f} s)")
    timeout = timeout_for(cfg, c.groups)
    last = c.last_activity or c.started
    busy = _ts(c.activity, "last_busy") if c.activity else None
    if busy is not None and (last is None or busy > last):
        last = busy  # a kernel computing without output is activity too
    if last is None:
        return None
    idle = (now - last).total_seconds()
    if idle < timeout:
        return None
    if c.activity and _recent(c.activity, now, timeout):
        if cfg.spare_busy_kernels and int(c.activity.get("kernels_busy", 0) or 0) > 0:
            return None
        if not cfg.ignore_open_connections and int(c.activity.get("connections", 0) or 0) > 0:
            return None
    return Decision(c.user, c.server, "idle", f"idle for {idle:.0f} s (timeout {timeout:.0f} s)")
