"""A start racing the removal or renaming of its owner (found by outside probing, issue 12).

Each race runs a start and a change of the user at the same instant (a barrier) against the real hub process
on SQLite and PostgreSQL, with the process spawner, so a server's identity is read where a real server has it.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
from hardhub import HardHub

pytestmark = [pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def boss(process_hub: HardHub) -> str:
    return process_hub.token("boss")


def _at_once(*calls: Any) -> None:
    gate = threading.Barrier(len(calls))

    def run(call: Any) -> None:
        gate.wait()
        call()

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def test_deleting_a_user_while_their_server_starts_is_not_a_500(process_hub: HardHub, boss: str) -> None:
    hub = process_hub
    mark = len(hub.log_text())
    outcomes: list[tuple[int, int]] = []
    for i in range(6):
        name = f"pgdel{i}"
        assert hub.api("POST", f"/users/{name}", boss).status_code == 201
        out: dict[str, int] = {}

        def start(name: str = name, out: dict[str, int] = out) -> None:
            out["start"] = hub.api("POST", f"/users/{name}/server", boss).status_code

        def delete(name: str = name, out: dict[str, int] = out) -> None:
            out["delete"] = hub.api("DELETE", f"/users/{name}", boss).status_code

        _at_once(start, delete)
        outcomes.append((out.get("start", 0), out.get("delete", 0)))
        if hub.api("GET", f"/users/{name}", boss).status_code == 200:  # the start won: clean up
            hub.api("DELETE", f"/users/{name}", boss)
    time.sleep(1)
    new = hub.log_text()[mark:]
    assert all(0 < s < 500 and 0 < d < 500 for s, d in outcomes), f"(start, delete) statuses: {outcomes}"
    assert "Task exception was never retrieved" not in new, re.findall(r".*Error.*", new)[:5]
    # the hub still starts servers
    assert hub.api("POST", "/users/pgdelafter", boss).status_code == 201
    assert hub.api("POST", "/users/pgdelafter/server", boss).status_code in (201, 202)


def test_a_rename_racing_a_start_never_leaves_a_server_with_the_old_identity(
    process_hub: HardHub, boss: str
) -> None:
    """A start that had already looked its user up must not run a server under the old name (its environment,
    prefix and OAuth client bound to a name the next person to sign up as ``<old>`` will hold) while the proxy
    routes ``/user/<new>/`` to it."""
    hub = process_hub
    mismatches: list[tuple[str, str]] = []
    deadline = time.monotonic() + 120
    races = 0
    while races < 24 and time.monotonic() < deadline and not mismatches:
        pairs = [(f"pgren{races + k}", f"pgren{races + k}new") for k in range(4)]  # four races at a time
        races += len(pairs)
        for old, _ in pairs:
            assert hub.api("POST", f"/users/{old}", boss).status_code == 201
        out: dict[str, int] = {}

        def start(old: str, out: dict[str, int] = out) -> None:
            out[f"start {old}"] = hub.api("POST", f"/users/{old}/server", boss).status_code

        def rename(old: str, new: str, out: dict[str, int] = out) -> None:
            out[f"rename {old}"] = hub.api("PATCH", f"/users/{old}", boss, json={"name": new}).status_code

        calls = [lambda old=old: start(old) for old, _ in pairs]
        calls += [lambda old=old, new=new: rename(old, new) for old, new in pairs]
        _at_once(*calls)
        for old, new in pairs:
            assert out.get(f"start {old}", 500) < 500 and out.get(f"rename {old}", 500) < 500, out
            if out.get(f"rename {old}") != 200 or out.get(f"start {old}") not in (201, 202):
                continue
            env = hub.server_env(boss, new, start=False)
            if env["JUPYTERHUB_USER"] != new:
                mismatches.append((new, env["JUPYTERHUB_USER"]))
    assert not mismatches, f"(owner, identity the running server was given): {mismatches}"
