"""One admission queue for the whole hub (two real hub processes on one PostgreSQL database, the test spawner with a
start delay): ``concurrent_spawn_limit`` holds across both replicas, admission is first come first served across
them, the positions users are shown only go down, and the places of a replica killed -9 are freed for the others.

What happened is read from the progress events the replicas stored (the events every progress stream replays):
a spawn holds its slot from before its ``starting`` event until after its ``ready`` event."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubkit.testing.processes import hub_api

sys.path.append(str(Path(__file__).parent))  # unique module names; never shadow others
from replicahub import Replica, replica_pair, wait_for

pytestmark = [pytest.mark.timeout(240)]
LIMIT = 3


def _events(cluster: Any, db: str) -> dict[str, list[tuple[str, float, int | None]]]:
    """Per user: (phase, epoch seconds, queue position) of their latest spawn's events, in order."""
    out = cluster.psql(
        "SELECT u.name, e.phase, extract(epoch FROM e.time), coalesce(e.queue_position, -1) FROM spawn_events e "
        "JOIN spawns p ON p.id = e.spawn_id JOIN servers s ON s.id = p.server_id JOIN users u ON u.id = s.user_id "
        "WHERE p.id = s.current_spawn_id ORDER BY e.id",
        db,
    )
    found: dict[str, list[tuple[str, float, int | None]]] = defaultdict(list)
    for line in out.splitlines():
        user, phase, at, pos = line.split("|")
        found[user].append((phase, float(at), None if pos == "-1" else int(pos)))
    return found


def _outcomes(cluster: Any, db: str) -> dict[str, tuple[str, str]]:
    """Per user: (outcome, reason_code) of their latest spawn."""
    out = cluster.psql(
        "SELECT u.name, coalesce(p.outcome, ''), coalesce(p.reason_code, '') FROM spawns p "
        "JOIN servers s ON s.id = p.server_id JOIN users u ON u.id = s.user_id WHERE p.id = s.current_spawn_id",
        db,
    )
    return {u: (o, r) for u, o, r in (line.split("|") for line in out.splitlines())}


def _in_queue(cluster: Any, db: str, user: str) -> bool:
    """Has ``user``'s spawn taken its place (a position reported, or admitted at once)?"""
    return any(phase in ("queued", "starting") for phase, _, _ in _events(cluster, db).get(user, []))


def _request(rep: Replica, token: str, user: str) -> None:
    """POST a start from a thread (the request waits a while for ready; the test watches the database)."""

    def post() -> None:
        with contextlib.suppress(httpx.TransportError):
            hub_api(rep.port, token, "POST", f"/users/{user}/server")

    threading.Thread(target=post, daemon=True).start()


def _request_in_order(reps: list[Replica], token: str, users: list[str], cluster: Any, db: str) -> None:
    """Spawns for ``users`` through the replicas in turn, each once the one before has its place in the queue."""
    for i, user in enumerate(users):
        _request(reps[i % len(reps)], token, user)
        wait_for(f"{user}'s spawn is in the queue", lambda u=user: _in_queue(cluster, db, u), 15)


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(t0, 1) for t0, _ in intervals] + [(t1, -1) for _, t1 in intervals])
    now = most = 0
    for _, step in edges:  # an end at the same instant as a start counts first (-1 sorts before 1)
        now += step
        most = max(most, now)
    return most


@pytest.fixture
def pair(postgres_cluster: Any, tmp_path: Path, request: Any) -> Any:
    """Replicas a and b; the test spawner's start delay is the test's parameter: long enough that every spawn has
    its place before the first slot frees."""
    with replica_pair(postgres_cluster, tmp_path, spawner=f"start_delay = {request.param}", spawn_limit=LIMIT) as made:
        yield made


@pytest.mark.parametrize("pair", [6], indirect=True)
def test_the_limit_order_and_positions_hold_across_replicas(pair: Any, postgres_cluster: Any) -> None:
    _, a, b, db, token = pair
    users = [f"q{i}" for i in range(12)]
    assert hub_api(a.port, token, "POST", "/users", {"usernames": users}).status_code == 201
    t0 = time.monotonic()
    _request_in_order([a, b], token, users, postgres_cluster, db)  # q0 on a, q1 on b, q2 on a, ...
    wait_for("every spawn ends", lambda: all(o for o, _ in _outcomes(postgres_cluster, db).values())
             and len(_outcomes(postgres_cluster, db)) == 12, 120)
    took = time.monotonic() - t0
    assert _outcomes(postgres_cluster, db) == {u: ("ready", "") for u in users}
    running = postgres_cluster.psql("SELECT count(*) FROM servers WHERE status = 'running'", db).strip()
    assert running == "12"

    events = _events(postgres_cluster, db)
    start = {u: min(t for p, t, _ in events[u] if p == "starting") for u in users}
    ready = {u: max(t for p, t, _ in events[u] if p == "ready") for u in users}
    most = _max_overlap([(start[u], ready[u]) for u in users])
    assert most == LIMIT, most  # never more at once across both replicas; and the limit was used

    # the queue is global: each later spawn was told its place among both replicas' waiters (3 admitted at once)
    positions = {u: [q for p, _, q in events[u] if p == "queued" and q is not None] for u in users}
    for i, u in enumerate(users):
        if i < LIMIT:
            assert positions[u] == [], (u, positions[u])
            continue
        assert positions[u] and positions[u][0] == i - LIMIT + 1, (u, positions[u])
        assert all(x > y for x, y in zip(positions[u], positions[u][1:], strict=False)), (u, positions[u])

    # first come, first served across replicas: nobody started a start delay (6 s) before someone ahead of them
    # (spawns admitted by one release start within a moment of each other, in any order)
    late = [(u, v) for i, u in enumerate(users) for v in users[i + 1:] if start[u] > start[v] + 2.0]
    assert not late, late
    assert postgres_cluster.psql("SELECT count(*) FROM spawn_queue", db).strip() == "0"
    print(f"\n12 spawns (start delay 6 s, limit {LIMIT}) through 2 replicas: all ready in {took:.1f} s; "
          f"at most {most} starting at once")


@pytest.mark.parametrize("pair", [8], indirect=True)
def test_the_places_of_a_replica_killed_9_go_to_the_others(pair: Any, postgres_cluster: Any) -> None:
    _, a, b, db, token = pair
    users = [f"k{i}" for i in range(6)]
    assert hub_api(a.port, token, "POST", "/users", {"usernames": users}).status_code == 201
    # a holds the 3 slots and the first waiter; b's two waiters are behind it
    _request_in_order([a], token, users[:4], postgres_cluster, db)
    _request_in_order([b], token, users[4:], postgres_cluster, db)
    assert postgres_cluster.psql("SELECT count(*) FROM spawn_queue", db).strip() == "6"

    a.kill9()
    killed = time.time()
    wait_for("b's waiters are admitted", lambda: all(
        any(p == "starting" for p, _, _ in _events(postgres_cluster, db)[u]) for u in users[4:]), 20)
    admitted_after = max(min(t for p, t, _ in _events(postgres_cluster, db)[u] if p == "starting")
                         for u in users[4:]) - killed
    wait_for("every spawn ends", lambda: all(o for o, _ in _outcomes(postgres_cluster, db).values()), 60)
    outcomes = _outcomes(postgres_cluster, db)
    assert {u: outcomes[u] for u in users[4:]} == {u: ("ready", "") for u in users[4:]}
    # a's spawns were in their start delay or waiting: another replica failed them with a reason a retry fixes
    assert {u: outcomes[u] for u in users[:4]} == {u: ("failed", "replica-lost") for u in users[:4]}
    assert postgres_cluster.psql("SELECT count(*) FROM spawn_queue", db).strip() == "0"
    assert "admission queue: removed" in b.text()
    print(f"\nafter kill -9 of the replica holding the slots, the other's waiters started within {admitted_after:.1f} s")
