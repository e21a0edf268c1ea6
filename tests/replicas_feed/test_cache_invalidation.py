"""Issue 15 item 6: a change made through one hub replica is honoured by another within 1 s, although each
replica caches callers (token/session -> identity) and, on PostgreSQL, trusts a cached caller for 30 s.

Two real ``hubkit`` processes, A and B, on one real PostgreSQL database. Each test first makes B cache the
caller (and shows that B really trusts its copy beyond the old 1 s: a write that bypasses the hubs, made
with ``psql``, is not seen by B), then changes it through A's REST API and measures how long B keeps
answering the old way. The last test kills B's listening connection (``pg_terminate_backend``): B must drop
every cached caller at once and listen again.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.append(str(Path(__file__).parent))  # unique module names; never shadow others
from feedhubs import Replica, assert_within, json_of, seconds_until, status

pytestmark = [pytest.mark.timeout(180)]
LIMIT = 1.0  # issue 15: refused on B within 1 s
OVERLOADED_LIMIT = 5.0  # see assert_within; B trusts a copy 30 s, so even this shows the notice at work
LISTENER = "hubkit-changes"  # the application_name of a replica's listening connection


def new_user(
    a: Replica, boss: str, name: str, *, admin: bool = False, group: str = "", scopes: list[str] | None = None
) -> tuple[int, str]:
    """A user made through A (in ``group``), and an API token for it: (token id, secret)."""
    json_of(a.api(boss, "POST", f"/users/{name}", {"admin": admin} if admin else None))
    if group:
        json_of(a.api(boss, "POST", f"/groups/{group}", {"users": [name]}))
    body: dict[str, Any] = {"note": "feed"}
    if scopes is not None:
        body["scopes"] = scopes
    made = json_of(a.api(boss, "POST", f"/users/{name}/tokens", body))
    return int(str(made["id"]).removeprefix("a")), str(made["token"])


def test_b_trusts_its_copy_beyond_one_second(replicas: tuple[Replica, Replica], boss: str, cluster: Any, db: str) -> None:
    """The premise of the tests below: B caches and, listening, trusts a copy for longer than the 1 s they
    measure. A token deleted with psql (no hub saw it, so no notice) is still accepted by B after 1.5 s."""
    a, b = replicas
    tid, secret = new_user(a, boss, "trusty")
    assert status(b, secret) == 200
    cluster.psql(f"DELETE FROM api_tokens WHERE id = {tid}", db)
    time.sleep(1.5)
    assert status(b, secret) == 200, "B does not cache (or trusts a copy for 1 s only): the tests below prove nothing"


def test_token_revoked_on_a_is_refused_on_b(replicas: tuple[Replica, Replica], boss: str) -> None:
    a, b = replicas
    tid, secret = new_user(a, boss, "rev")
    assert status(b, secret) == 200 and status(b, secret) == 200  # cached on B
    assert a.api(boss, "DELETE", f"/users/rev/tokens/a{tid}").status_code == 204
    took = seconds_until(lambda: status(b, secret) == 403)
    assert_within(took, LIMIT, OVERLOADED_LIMIT, "how long B accepted the revoked token")


def test_user_made_non_admin_on_a_loses_admin_on_b(replicas: tuple[Replica, Replica], boss: str) -> None:
    a, b = replicas
    _tid, secret = new_user(a, boss, "chief", admin=True)
    assert status(b, secret, "/users") == 200 and status(b, secret, "/users") == 200  # an admin's listing
    json_of(a.api(boss, "PATCH", "/users/chief", {"admin": False}))
    took = seconds_until(lambda: status(b, secret, "/users") == 403)
    assert_within(took, LIMIT, OVERLOADED_LIMIT, "how long B still treated the user as an admin")
    assert status(b, secret) == 200  # the token itself still works


def test_group_change_on_a_removes_a_scope_on_b(replicas: tuple[Replica, Replica], boss: str) -> None:
    """Members of ``readers`` may log in to the service ``notes`` (access:services!service=notes); taken out
    of the group on A, the caller's scopes on B lose it."""
    a, b = replicas
    grant = "access:services!service=notes"
    new_user(a, boss, "reader", group="readers")
    # the REST API gives a user's token only what the user holds without the services' policies; this token,
    # like one the hub's OAuth provider issues for a login to ``notes``, asks for the policy's grant
    secret = asyncio.run(token_asking(a.db_url, "reader", [grant]))

    def scopes() -> list[str]:
        return list(json_of(b.api(secret, "GET", "/user"))["scopes"])

    assert grant in scopes() and grant in scopes()  # cached on B
    assert a.api(boss, "DELETE", "/groups/readers/users", {"users": ["reader"]}).status_code == 200
    took = seconds_until(lambda: grant not in scopes())
    assert_within(took, LIMIT, OVERLOADED_LIMIT, f"how long B kept {grant}")


def test_user_deleted_on_a_is_refused_on_b(replicas: tuple[Replica, Replica], boss: str) -> None:
    a, b = replicas
    _tid, secret = new_user(a, boss, "gone")
    assert status(b, secret) == 200 and status(b, secret) == 200
    assert a.api(boss, "DELETE", "/users/gone").status_code == 204
    took = seconds_until(lambda: status(b, secret) == 403)
    assert_within(took, LIMIT, OVERLOADED_LIMIT, "how long B accepted a deleted user's token")


async def token_asking(db_url: str, user: str, scopes: list[str]) -> str:
    from hubkit.auth.tokens import issue_token
    from hubkit.storage.engine import create_engine, create_sessionmaker, normalize_url
    from hubkit.storage.orm import User
    from sqlalchemy import select

    engine = create_engine(normalize_url(db_url))
    try:
        async with create_sessionmaker(engine)() as s:
            uid = (await s.execute(select(User.id).where(User.name == user))).scalar_one()
            secret, _row = await issue_token(s, user_id=uid, scopes=scopes, note="feed")
            await s.commit()
            return secret
    finally:
        await engine.dispose()


def listeners(cluster: Any, db: str) -> dict[int, int]:
    """The replicas' listening connections on ``db``: hub process id -> PostgreSQL backend pid."""
    out = cluster.psql(
        "SELECT application_name, pid FROM pg_stat_activity "
        f"WHERE application_name LIKE '{LISTENER}:%' AND datname = '{db}'"
    )
    found = {}
    for line in out.split():
        name, pid = line.split("|")
        found[int(name.rsplit(":", 1)[1])] = int(pid)
    return found


def test_lost_listener_drops_everything_and_recovers(
    replicas: tuple[Replica, Replica], boss: str, cluster: Any, db: str
) -> None:
    """B's listening connection killed: B may have missed notices, so it drops every cached caller (a token
    deleted behind its back with psql is refused at once, not 30 s later), listens again, and then hears A."""
    a, b = replicas
    assert a.proc is not None and b.proc is not None
    before = listeners(cluster, db)
    assert set(before) == {a.proc.pid, b.proc.pid}, before  # one per replica
    tid, secret = new_user(a, boss, "lost")
    assert status(b, secret) == 200 and status(b, secret) == 200
    cluster.psql(f"DELETE FROM api_tokens WHERE id = {tid}", db)  # no notice: B's copy stays
    assert status(b, secret) == 200
    cluster.psql(f"SELECT pg_terminate_backend({before[b.proc.pid]})", db)
    took = seconds_until(lambda: status(b, secret) == 403)
    assert_within(took, LIMIT, OVERLOADED_LIMIT, "how long B kept a copy after losing its listening connection")
    seconds_until(lambda: listeners(cluster, db).get(b.proc.pid, before[b.proc.pid]) != before[b.proc.pid], limit=10)
    assert listeners(cluster, db)[a.proc.pid] == before[a.proc.pid]  # A's was left alone
    # listening again: a revocation on A reaches B as before
    tid2, secret2 = new_user(a, boss, "after")
    assert status(b, secret2) == 200 and status(b, secret2) == 200
    assert a.api(boss, "DELETE", f"/users/after/tokens/a{tid2}").status_code == 204
    took = seconds_until(lambda: status(b, secret2) == 403)
    assert_within(took, LIMIT, OVERLOADED_LIMIT, "after reconnecting, how long B accepted a revoked token")
    assert "listening again" in b.log_text()
