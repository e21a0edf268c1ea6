"""The route table: CHP-style keys, longest segment-prefix lookup, per-route upstream pool state.

Lookup walks the request path upward one segment at a time with a dict probe per level, so its cost depends
on the path's depth, never on the number of routes (10,000 routes cost the same as one).
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit


class RouteError(ValueError):
    """A route body the API must refuse with 400."""


def normalize_path(path: str) -> str:
    """CHP's key form: leading ``/`` added, trailing ``/`` removed, root stays ``/``."""
    if not path.startswith("/"):
        path = "/" + path
    stripped = path.rstrip("/")
    return stripped or "/"


def iso_ms(ts: float) -> str:
    """``last_activity`` the way CHP prints a JS Date: ISO 8601 with milliseconds and ``Z``."""
    total_ms = round(ts * 1000)  # whole ms, like a JS Date; rounding keeps parse -> print stable
    t = time.gmtime(total_ms // 1000)
    ms = total_ms % 1000
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{ms:03d}Z"


def parse_iso(value: str) -> float:
    """Parse an ISO 8601 time (naive means UTC, like a JS Date) to epoch seconds; ValueError if invalid."""
    dt = datetime.fromisoformat(value.strip())
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


class Target:
    """A parsed upstream URL. ``unix_path`` is set for ``http+unix://`` / ``unix+http://`` targets."""

    __slots__ = ("base_path", "host", "port", "scheme", "ssl", "unix_path", "url")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme in ("ws", "wss"):
            scheme = "http" if scheme == "ws" else "https"
        self.url = url
        self.unix_path: str | None = None
        if scheme in ("http+unix", "unix+http"):
            self.unix_path = unquote(parts.netloc)
            scheme = "http"
        if scheme not in ("http", "https"):
            raise RouteError(f"unsupported target scheme {parts.scheme!r}")
        self.scheme = scheme
        self.ssl = scheme == "https"
        self.host = parts.hostname or ""
        if not self.host and self.unix_path is None:
            raise RouteError(f"target {url!r} has no host")
        try:
            port = parts.port
        except ValueError as exc:
            raise RouteError(f"target {url!r} has an invalid port") from exc
        self.port = port or (443 if self.ssl else 80)
        self.base_path = parts.path.rstrip("/")


def parse_targets(data: dict[str, Any]) -> list[Target]:
    """``target`` (CHP), plus hubkit-proxy's optional ``targets``: further URLs serving the same route.

    ``target`` comes first; requests go to healthy targets in turn (see ``health.py``).
    """
    target = data.get("target")
    if not isinstance(target, str):
        raise RouteError("Must specify 'target' as string")
    urls = [target]
    more = data.get("targets")
    if more is not None:
        if not isinstance(more, list) or not all(isinstance(u, str) for u in more):
            raise RouteError("'targets' must be a list of strings")
        urls += [u for u in more if u not in urls]
    return [Target(u) for u in urls]


class Route:
    """One route plus its live upstream state: idle pooled connections, every open one, and waiters."""

    __slots__ = (
        "_conns",
        "_data_json",
        "_idle",
        "_iso",
        "_waiting",
        "_wall",
        "data",
        "path",
        "path_json",
        "pooled",
        "rr",
        "seen",
        "target",
        "targets",
    )

    def __init__(self, path: str, data: dict[str, Any], last_activity: float | None = None) -> None:
        self.targets = parse_targets(data)
        self.target = self.targets[0]
        self.rr = 0  # round-robin position over several targets
        self.path = path
        self.path_json = json.dumps(path)
        self.data = data
        self._data_json = json.dumps(data)[:-1]  # '{..."target": ...' without the closing brace
        self._wall = last_activity if last_activity is not None else time.time()
        # Websocket tunnels stamp ``seen`` (time.monotonic()) per chunk: one float store, no wall-clock call.
        # It is turned into wall-clock ``last_activity`` only when something reads it (the API, the journal).
        self.seen = 0.0
        # Pool containers are created on first use: most routes of a big table are idle, and every container
        # is one more object for each full cyclic-GC pass to scan (a pause for all connections).
        self._idle: list[Any] | None = None  # idle keep-alive upstream connections (UpstreamProtocol)
        self._conns: set[Any] | None = None  # every open upstream connection of this route (pooled or tunnel)
        self._waiting: deque[Callable[[Any], None]] | None = None  # requests waiting for a pool slot
        self.pooled = 0  # pool connections open or opening (websocket tunnels are not counted: not reusable)
        self._iso = (0.0, "")  # last_activity formatted, cached: most routes are idle between API reads

    @property
    def last_activity(self) -> float:
        """Epoch seconds of the latest traffic, folding in the tunnels' monotonic stamp (see ``seen``)."""
        seen = self.seen
        if seen:
            self.seen = 0.0
            wall = time.time() - (time.monotonic() - seen)
            if wall > self._wall:
                self._wall = wall
        return self._wall

    @last_activity.setter
    def last_activity(self, value: float) -> None:
        self.seen = 0.0
        self._wall = value

    @property
    def idle(self) -> list[Any]:
        if self._idle is None:
            self._idle = []
        return self._idle

    @property
    def conns(self) -> set[Any]:
        if self._conns is None:
            self._conns = set()
        return self._conns

    @property
    def waiting(self) -> deque[Callable[[Any], None]]:
        if self._waiting is None:
            self._waiting = deque()
        return self._waiting

    @property
    def target_urls(self) -> list[str]:
        return [t.url for t in self.targets]

    def set_data(self, data: dict[str, Any]) -> None:
        self.data = data
        self._data_json = json.dumps(data)[:-1]

    def activity_text(self) -> str:
        ts, text = self._iso
        if ts != self.last_activity:
            ts = self.last_activity
            text = iso_ms(ts)
            self._iso = (ts, text)
        return text

    def as_json(self) -> dict[str, Any]:
        out = dict(self.data)
        out["last_activity"] = self.activity_text()
        return out

    def json_text(self) -> str:
        """``as_json()`` already encoded: the data part is encoded once per change, not once per listing."""
        return f'{self._data_json}, "last_activity": "{self.activity_text()}"}}'

    def close_connections(self) -> None:
        """Drop every upstream connection of this route (called when it is deleted or replaced)."""
        conns, idle, waiting = self._conns, self._idle, self._waiting
        self._conns = self._idle = self._waiting = None
        for conn in list(conns or ()):
            conn.abort()
        if idle:
            idle.clear()
        for cb in waiting or ():
            cb(None)


class RouteTable:
    """Routes keyed by normalised path. ``listeners`` hear every change (journal, worker fan-out)."""

    def __init__(self, host_routing: bool = False) -> None:
        self.routes: dict[str, Route] = {}
        self.host_routing = host_routing
        self.listeners: list[Callable[[str, str, dict[str, Any] | None], None]] = []
        self.multi: dict[str, Route] = {}  # routes with several targets: the health checker watches these

    def __len__(self) -> int:
        return len(self.routes)

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes.values())

    def get(self, path: str) -> Route | None:
        return self.routes.get(normalize_path(path))

    def add(
        self, path: str, data: dict[str, Any], last_activity: float | None = None, notify: bool = True
    ) -> Route:
        key = normalize_path(path)
        data = dict(data)
        data.pop("last_activity", None)
        if self.host_routing and key != "/":
            data["host"] = key.split("/")[1]
        old = self.routes.get(key)
        if old is not None and old.target_urls == [t.url for t in parse_targets(data)]:
            # Same target: keep the Route object and its warm pool, swap the data (CHP replaces it whole).
            old.set_data(data)
            old.last_activity = last_activity if last_activity is not None else time.time()
            route = old
        else:
            route = Route(key, data, last_activity)
            self.routes[key] = route
            if old is not None:
                old.close_connections()
        if len(route.targets) > 1:
            self.multi[key] = route
        else:
            self.multi.pop(key, None)
        if notify:
            for cb in self.listeners:
                cb("add", key, route.as_json())
        return route

    def remove(self, path: str, notify: bool = True) -> bool:
        key = normalize_path(path)
        route = self.routes.pop(key, None)
        self.multi.pop(key, None)
        if route is None:
            return False
        route.close_connections()
        if notify:
            for cb in self.listeners:
                cb("remove", key, None)
        return True

    def lookup(self, path: str, host: str | None = None) -> Route | None:
        """Longest matching route on segment boundaries. ``path`` excludes the query string."""
        routes = self.routes
        if "%" in path:
            path = unquote(path)
        if self.host_routing and host:
            path = "/" + host.split(":", 1)[0].lower() + path
        p = path.rstrip("/") or "/"
        while True:
            route = routes.get(p)
            if route is not None:
                return route
            if p == "/":
                return None
            i = p.rfind("/")
            p = p[:i] if i > 0 else "/"

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {path: route.as_json() for path, route in self.routes.items()}

    def snapshot_text(self, inactive_since: float | None = None) -> str:
        """The ``GET /api/routes`` body, built from per-route cached JSON (10,000 routes in a few ms)."""
        parts = [
            f"{r.path_json}: {r.json_text()}"
            for r in self.routes.values()
            if inactive_since is None or r.last_activity < inactive_since
        ]
        return "{" + ", ".join(parts) + "}"
