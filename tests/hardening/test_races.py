"""Issue 12 item 9: identical creates at the same moment end as one success and the documented 409 (or the
idempotent success) for the rest, never a 500, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

import pytest
from hardhub import HardHub, login

T = TypeVar("T")

pytestmark = [pytest.mark.timeout(240)]


def _at_once(n: int, work: Callable[[int], T]) -> Counter[T]:
    """Run ``work(i)`` in ``n`` threads released together; count the status codes."""
    barrier = threading.Barrier(n)
    codes: list[T] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait(30)
        code = work(i)
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(codes) == n
    return Counter(codes)


def test_thirty_simultaneous_first_logins_of_one_new_user(hub: HardHub, boss: str) -> None:
    def work(i: int) -> int:
        with hub.client(f"127.0.1.{i + 1}") as c:
            return login(c, "crowd1").status_code

    codes = _at_once(30, work)
    assert codes == Counter({302: 30}), codes
    users = [u["name"] for u in hub.api("GET", "/users", boss).json()]
    assert users.count("crowd1") == 1
    assert "Traceback" not in hub.log_text()


def test_thirty_first_logins_bringing_the_same_new_group(hub: HardHub, boss: str) -> None:
    """Different new users, one new group name each brings (as an OAuth login with groups would)."""
    r = hub.api("POST", "/users", boss, json={"usernames": [f"grp{i}" for i in range(10)]})
    assert r.status_code == 201

    def work(i: int) -> int:
        return hub.api("PATCH", f"/users/grp{i}", boss, json={"groups": []}).status_code

    assert set(_at_once(10, work)) == {200}


@pytest.mark.parametrize(
    ("method", "path", "body", "ok", "lost"),
    [
        ("POST", "/users/race1", None, 201, {409}),
        ("POST", "/users", {"usernames": ["race2"]}, 201, {409}),
        ("POST", "/groups/race3", None, 201, {409}),
        ("POST", "/groups", {"groups": ["race4"]}, 201, {409}),
        ("PUT", "/users/racer/servers/s1", None, 201, {409}),
        # a start that arrives once a faster one has made the server ready is told so (JupyterHub's 400)
        ("POST", "/users/racer/servers/s2", None, 202, {201, 202, "400 already running"}),
        ("POST", "/groups/race5/users", {"users": ["racer"]}, 200, {200}),
    ],
)
def test_identical_creates_at_once_never_answer_500(
    hub: HardHub, boss: str, method: str, path: str, body: object, ok: int, lost: set[int | str]
) -> None:
    hub.api("POST", "/users/racer", boss)
    if path.startswith("/groups/race5"):
        hub.api("POST", "/groups/race5", boss)

    def work(i: int) -> int | str:
        kw = {} if body is None else {"json": body}
        r = hub.api(method, path, boss, **kw)
        if r.status_code == 400 and "is already running" in r.text:
            return "400 already running"
        return r.status_code

    codes = _at_once(20, work)
    assert 500 not in codes, codes
    assert set(codes) <= {ok, 201} | lost, codes
    if ok != 200 and lost == {409}:
        assert codes[ok] == 1, codes  # exactly one winner
    assert "Traceback" not in hub.log_text()
