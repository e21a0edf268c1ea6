"""Issue 15 item 4: a spawn driven by replica A streams its progress from replica B, every event exactly once, in
order, ending with ``ready``; B is woken by A's change notices (it rereads the rows otherwise only every 5 s).

The test spawner starts each server 2 s after it was asked (``start_delay``), so B's stream is open while the
spawn runs on A. The events B sent are compared with the rows A stored.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.append(str(Path(__file__).parent))  # unique module names; never shadow others
from feedhubs import Replica, assert_within, json_of, seconds_until

pytestmark = [pytest.mark.timeout(120)]
WOKEN_WITHIN = 2.5  # seconds from A's commit to B's sending: half the 5 s reread, so only a notice explains it


def stored(cluster: Any, db: str, user: str) -> list[tuple[int, str, float]]:
    """(id, phase, written at) of the rows of ``user``'s latest spawn."""
    out = cluster.psql(
        "SELECT e.id, e.phase, extract(epoch FROM e.time) FROM spawn_events e "
        "JOIN servers s ON s.current_spawn_id = e.spawn_id JOIN users u ON u.id = s.user_id "
        f"WHERE u.name = '{user}' ORDER BY e.id",
        db,
    )
    rows = [line.split("|") for line in out.split()]
    return [(int(i), phase, float(t)) for i, phase, t in rows]


def read_stream(
    b: Replica, token: str, user: str, *, last_event_id: int | None = None, stop_after: int | None = None
) -> list[tuple[int, dict[str, Any], float]]:
    """The events of B's progress stream: (SSE id, data, wall time received), until ``ready``/``failed`` or
    ``stop_after`` events (then the connection is dropped, as a browser tab closed)."""
    headers = {"Authorization": f"token {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    got: list[tuple[int, dict[str, Any], float]] = []
    url = f"{b.url}/hub/api/users/{user}/server/progress"
    with httpx.stream("GET", url, headers=headers, timeout=30) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        data: dict[str, Any] = {}
        for line in r.iter_lines():
            if line.startswith("data: "):
                data = json.loads(line[len("data: ") :])
            elif line.startswith("id: "):
                got.append((int(line[len("id: ") :]), data, time.time()))
                if data.get("ready") or data.get("failed") or len(got) == stop_after:
                    break
    return got


def start_on_a(a: Replica, boss: str, user: str) -> threading.Thread:
    """``POST /users/{user}/server`` on A, in a thread: A answers once the server is ready (or after 10 s)."""
    json_of(a.api(boss, "POST", f"/users/{user}"))
    answer: list[int] = []
    t = threading.Thread(target=lambda: answer.append(a.api(boss, "POST", f"/users/{user}/server").status_code))
    t.start()
    t.answer = answer  # type: ignore[attr-defined]
    return t


def spawn_seen(b: Replica, boss: str, user: str) -> None:
    """Wait until B knows the spawn (the user's server is pending in the database)."""

    def pending() -> bool:
        servers = json_of(b.api(boss, "GET", f"/users/{user}"))["servers"]
        return bool(servers.get("", {}).get("pending"))

    seconds_until(pending, limit=10, step=0.02)


def stop(a: Replica, boss: str, user: str) -> None:
    """Servers outlive hubs: stop this one (its process) before the test ends."""
    assert a.api(boss, "DELETE", f"/users/{user}/server").status_code in (202, 204)

    def stopped() -> bool:
        return not json_of(a.api(boss, "GET", f"/users/{user}"))["servers"]

    seconds_until(stopped, limit=30, step=0.1)


def test_progress_of_a_spawn_on_a_streams_from_b(replicas: tuple[Replica, Replica], boss: str, cluster: Any, db: str) -> None:
    a, b = replicas
    post = start_on_a(a, boss, "walker")
    try:
        spawn_seen(b, boss, "walker")
        opened = time.time()
        got = read_stream(b, boss, "walker")
        rows = stored(cluster, db, "walker")
        assert [seq for seq, _d, _t in got] == [i for i, _p, _w in rows], (got, rows)  # each once, in order
        assert [d["phase"] for _s, d, _t in got] == [p for _i, p, _w in rows]
        assert got[-1][1].get("ready") is True and rows[-1][1] == "ready"
        live = [(t - w) for (_s, _d, t), (_i, _p, w) in zip(got, rows, strict=True) if w > opened]
        assert live, f"every event was written before B's stream opened: nothing was live ({rows})"
        what = f"B sent {len(live)} live event(s), at most this long after A stored them (woken by notices?)"
        assert_within(max(live), WOKEN_WITHIN, 4.5, what)
        post.join(30)
        assert post.answer == [201]  # type: ignore[attr-defined]
    finally:
        post.join(30)
        stop(a, boss, "walker")


def test_a_stream_resumed_on_b_after_last_event_id_misses_and_repeats_nothing(
    replicas: tuple[Replica, Replica], boss: str, cluster: Any, db: str
) -> None:
    """A browser that lost its stream after two events reconnects (to B, as a load balancer may send it) with
    ``Last-Event-ID``: the second stream starts right after, and the two together are the stored events."""
    a, b = replicas
    post = start_on_a(a, boss, "resumer")
    try:
        spawn_seen(b, boss, "resumer")
        first = read_stream(b, boss, "resumer", stop_after=2)
        assert len(first) == 2 and not first[-1][1].get("ready"), first
        rest = read_stream(b, boss, "resumer", last_event_id=first[-1][0])
        rows = stored(cluster, db, "resumer")
        assert [s for s, _d, _t in first + rest] == [i for i, _p, _w in rows]
        assert rest[-1][1].get("ready") is True
    finally:
        post.join(30)
        stop(a, boss, "resumer")
