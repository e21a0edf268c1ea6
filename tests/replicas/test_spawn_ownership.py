"""Spawn ownership across hub replicas (two real hub processes on one PostgreSQL database, the test spawner with a
start delay): the replica that drives a start is recorded on the server row; when it is killed -9 mid-spawn, or loses
its lease with its database session, another replica cleans the spawn up and fails it with a clear reason (never
left pending) and a retry succeeds; a stop or a delete that reaches the other replica stops the spawn where it
runs."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubkit.testing.processes import cli_token, hub_api, pid_alive

sys.path.append(str(Path(__file__).parent))  # unique module names; never shadow others
from replicahub import Replica, Replicas, kill_user_servers, replica_pair, wait_for

pytestmark = [pytest.mark.timeout(200)]
START_DELAY = 5  # seconds the test spawner's start() takes: the window in which a replica dies or a stop arrives


def _row(cluster: Any, db: str, user: str) -> tuple[str, str]:
    """(status, lease_owner) of ``user``'s default server."""
    out = cluster.psql(
        "SELECT s.status, coalesce(s.lease_owner, '') FROM servers s JOIN users u ON u.id = s.user_id "
        f"WHERE u.name = '{user}' AND s.name = ''",
        db,
    ).strip()
    status, _, owner = out.partition("|")
    return status, owner


def _last_spawn(cluster: Any, db: str, user: str) -> tuple[str, str, str]:
    """(outcome, reason_code, message) of ``user``'s latest spawn."""
    out = cluster.psql(
        "SELECT coalesce(p.outcome, ''), coalesce(p.reason_code, ''), coalesce(p.message, '') FROM spawns p "
        "JOIN servers s ON s.id = p.server_id JOIN users u ON u.id = s.user_id "
        f"WHERE u.name = '{user}' ORDER BY p.id DESC LIMIT 1",
        db,
    ).strip()
    outcome, code, message = out.split("|", 2)
    return outcome, code, message


def _server(rep: Replica, token: str, user: str) -> dict[str, Any]:
    servers: dict[str, Any] = hub_api(rep.port, token, "GET", f"/users/{user}").json()["servers"]
    return servers.get("", {})


def _start_in_background(rep: Replica, token: str, user: str, postgres_cluster: Any, db: str) -> list[int]:
    """POST a start (it waits up to 10 s for ready, longer than we want to) from a thread; return once the row
    is pending. The list gets the status code, if the request gets an answer."""
    got: list[int] = []

    def post() -> None:
        with contextlib.suppress(httpx.TransportError):  # the replica may be killed while it answers
            got.append(hub_api(rep.port, token, "POST", f"/users/{user}/server").status_code)

    threading.Thread(target=post, daemon=True).start()
    wait_for(f"{user}'s spawn is pending", lambda: _row(postgres_cluster, db, user)[0] in ("queued", "starting"), 10)
    return got


def _owned_by(rep: Replica) -> str:
    assert rep.proc is not None
    return f":{rep.proc.pid}"


@pytest.fixture
def pair(postgres_cluster: Any, tmp_path: Path) -> Any:
    with replica_pair(postgres_cluster, tmp_path, spawner=f"start_delay = {START_DELAY}") as made:
        yield made  # b holds the singleton duties, a drives the spawns


def test_a_spawn_whose_replica_dies_is_failed_by_another_and_a_retry_works(pair: Any, postgres_cluster: Any) -> None:
    _, a, b, db, token = pair
    assert hub_api(a.port, token, "POST", "/users/u1").status_code == 201
    _start_in_background(a, token, "u1", postgres_cluster, db)
    status, owner = _row(postgres_cluster, db, "u1")
    assert status in ("queued", "starting") and owner.endswith(_owned_by(a)), (status, owner)

    a.kill9()  # mid-spawn: the test spawner is still in its start delay
    wait_for("replica b fails the orphaned spawn", lambda: _last_spawn(postgres_cluster, db, "u1")[0] != "", 10)
    assert _row(postgres_cluster, db, "u1") == ("stopped", "")
    outcome, code, message = _last_spawn(postgres_cluster, db, "u1")
    assert (outcome, code) == ("failed", "replica-lost"), (outcome, code, message)
    assert "start again" in message
    assert not _server(b, token, "u1").get("pending")

    # the retry (on the surviving replica) succeeds
    assert hub_api(b.port, token, "POST", "/users/u1/server").status_code in (201, 202)
    wait_for("the retried spawn is ready", lambda: bool(_server(b, token, "u1").get("ready")), START_DELAY + 30)
    assert _row(postgres_cluster, db, "u1")[0] == "running"
    pid = (hub_api(b.port, token, "GET", "/users/u1/server").json().get("state") or {}).get("pid")
    assert isinstance(pid, int) and pid_alive(pid)
    assert hub_api(b.port, token, "DELETE", "/users/u1/server").status_code in (202, 204)
    wait_for("u1's server stops", lambda: _row(postgres_cluster, db, "u1")[0] == "stopped", 30)
    wait_for("u1's server process ends", lambda: not pid_alive(pid), 10)


def test_a_stop_or_delete_on_another_replica_stops_the_spawn_where_it_runs(pair: Any, postgres_cluster: Any) -> None:
    _, a, b, db, token = pair
    assert hub_api(a.port, token, "POST", "/users", {"usernames": ["u2", "u3"]}).status_code == 201
    answers = {user: _start_in_background(a, token, user, postgres_cluster, db) for user in ("u2", "u3")}
    for user in ("u2", "u3"):
        assert _row(postgres_cluster, db, user)[1].endswith(_owned_by(a))

    t0 = time.monotonic()
    r = hub_api(b.port, token, "DELETE", "/users/u2/server")  # b marks it; a's engine cancels its spawn
    assert r.status_code in (202, 204), r.text
    wait_for("u2's spawn is stopped", lambda: _last_spawn(postgres_cluster, db, "u2")[0] != "", 15)
    assert _row(postgres_cluster, db, "u2")[0] == "stopped"
    assert time.monotonic() - t0 < START_DELAY  # stopped mid-spawn, not after it finished
    outcome, code, _ = _last_spawn(postgres_cluster, db, "u2")
    assert (outcome, code) == ("cancelled", "cancelled")
    assert "stop requested on another replica" in a.text()
    wait_for("u2's start request is answered", lambda: bool(answers["u2"]), 15)
    assert answers["u2"] == [409]  # "the start was cancelled", as a local stop answers it

    r = hub_api(b.port, token, "DELETE", "/users/u3")  # deleting the user stops its spawn on a first
    assert r.status_code in (202, 204), r.text
    wait_for("u3 is gone", lambda: hub_api(a.port, token, "GET", "/users/u3").status_code == 404, 30)
    time.sleep(START_DELAY)  # a spawn left running on a would now come up and mark its server running
    assert postgres_cluster.psql("SELECT count(*) FROM servers WHERE status <> 'stopped'", db).strip() == "0"

    # a's lease is cut mid-spawn (its database session ends, the process lives): a abandons the spawn, b fails it
    assert hub_api(a.port, token, "POST", "/users/u4").status_code == 201
    _start_in_background(a, token, "u4", postgres_cluster, db)
    assert a.proc is not None
    postgres_cluster.psql(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'hubkit %:{a.proc.pid}'",
        db,
    )
    wait_for("u4's spawn is failed by b", lambda: _last_spawn(postgres_cluster, db, "u4")[0] != "", 15)
    assert _last_spawn(postgres_cluster, db, "u4")[:2] == ("failed", "replica-lost")
    time.sleep(START_DELAY)  # an abandoned spawn that went on would now bring its server up
    assert _row(postgres_cluster, db, "u4") == ("stopped", "")
    assert a.proc.poll() is None

    # both replicas still start servers afterwards
    assert hub_api(b.port, token, "POST", "/users/u2/server").status_code in (201, 202)
    assert hub_api(a.port, token, "POST", "/users/u4/server").status_code in (201, 202)
    wait_for("u2 ready", lambda: bool(_server(a, token, "u2").get("ready")), START_DELAY + 30)
    wait_for("u4 ready", lambda: bool(_server(b, token, "u4").get("ready")), START_DELAY + 30)
    assert _row(postgres_cluster, db, "u4")[1].endswith(_owned_by(a))  # a drives spawns again, as a new instance


def test_spawns_of_a_dead_duty_holder_fail_with_replica_lost(postgres_cluster: Any, tmp_path: Path) -> None:
    """The replica killed drove the spawns *and* held the duties: the other one takes the adoption duty and re-adopts
    at once, before its take-over duty looks. The spawns still fail with ``replica-lost`` (found by the chaos test:
    they were failed as "the hub restarted", which no hub did)."""
    db = postgres_cluster.create_database()
    reps = Replicas(tmp_path, postgres_cluster.url(db), spawner=f"start_delay = {START_DELAY}")
    a, b = reps.add("a"), reps.add("b")
    reps.upgrade()
    users = ["d1", "d2", "d3"]
    try:
        reps.start(a)  # a first: it holds every duty and drives the spawns
        wait_for("a holds the adoption duty", lambda: a.holds("adopt-and-reconcile-routes"), 30)
        reps.start(b)
        token = cli_token(a.config, "boss")
        assert hub_api(a.port, token, "POST", "/users", {"usernames": users}).status_code == 201
        for user in users:
            _start_in_background(a, token, user, postgres_cluster, db)
        a.kill9()
        for user in users:
            wait_for(f"{user}'s spawn is failed", lambda u=user: _last_spawn(postgres_cluster, db, u)[0] != "", 15)
            assert _last_spawn(postgres_cluster, db, user)[:2] == ("failed", "replica-lost"), user
            assert _row(postgres_cluster, db, user) == ("stopped", "")
        assert b.holds("adopt-and-reconcile-routes")
    finally:
        reps.stop_all()
        kill_user_servers(postgres_cluster, db)
