"""Tunnels stamp a monotonic ``seen`` per chunk; readers get it back as wall-clock ``last_activity``."""

from __future__ import annotations

import time

from hubkit_proxy.routing import Route


def test_seen_stamp_becomes_wall_clock_on_read() -> None:
    route = Route("/user/a", {"target": "http://127.0.0.1:1"}, last_activity=1_000.0)
    assert route.last_activity == 1_000.0
    route.seen = time.monotonic() - 2.0  # traffic two seconds ago
    got = route.last_activity
    assert abs(got - (time.time() - 2.0)) < 0.5
    assert route.seen == 0.0  # folded once, not on every read
    assert route.last_activity == got


def test_older_stamp_never_moves_activity_back() -> None:
    now = time.time()
    route = Route("/user/a", {"target": "http://127.0.0.1:1"}, last_activity=now)
    route.seen = time.monotonic() - 60.0
    assert route.last_activity == now


def test_explicit_set_wins_over_pending_stamp() -> None:
    route = Route("/user/a", {"target": "http://127.0.0.1:1"})
    route.seen = time.monotonic()
    route.last_activity = 5.0  # e.g. a route replaced with a given last_activity
    assert route.last_activity == 5.0
    assert route.activity_text() == "1970-01-01T00:00:05.000Z"
