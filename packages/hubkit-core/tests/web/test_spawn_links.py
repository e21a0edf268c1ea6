"""JupyterHub's URL behaviours that links in the wild rely on: ``GET /hub/spawn[/<user>[/<server>]]`` starts a
server without an options form at once, ``?next=`` survives the spawn, the "not running" page brings the
visitor back to the path they asked for, and the progress stream numbers its events so the pending page never
lists one twice. (With an options form, ``test_spawn_options.py``: the form is shown and nothing starts.)"""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import quote

import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
SAME = {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}
CROSS = {"Sec-Fetch-Site": "cross-site"}


@pytest.fixture
def hub_settings(tmp_path):
    from hubkit.testing.plugin import make_settings

    s = make_settings(tmp_path / "hub")
    s.spawner.backends["stand-in"] = {"start_delay": 0.8}
    return s


async def _server(client, admin_headers, user: str, name: str = "") -> dict:
    model = (await client.get(f"/hub/api/users/{user}", headers=admin_headers)).json()
    return dict(model["servers"].get(name) or {})


async def _wait_ready(hub, user: str, name: str = "") -> None:
    spawn_id = await hub.spawns.latest_spawn_id(user, name)
    assert spawn_id is not None, "no spawn was requested"
    assert await hub.spawns.wait(spawn_id, 20) == "ready"


def _sse_events(text: str) -> list[tuple[int | None, dict]]:
    """(id, data) per event, read as an EventSource does: fields until a blank line, in any order."""
    out: list[tuple[int | None, dict]] = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            out.append((int(fields["id"]) if "id" in fields else None, json.loads(fields["data"])))
    return out


async def test_get_spawn_starts_at_once_and_lands_on_next(client, hub, login, admin_headers):
    await login("alice")
    target = "/user/alice/lab/tree/x.ipynb"
    r = await client.get(f"/hub/spawn?next={quote(target, safe='')}", headers=CROSS)
    assert r.status_code == 302 and r.headers["location"] == f"/hub/spawn/alice?next={quote(target, safe='')}"
    r = await client.get(r.headers["location"], headers=CROSS)  # a course link, from another site
    assert r.status_code == 302
    assert r.headers["location"] == f"/hub/spawn-pending/alice?next={quote(target, safe='')}"
    assert (await _server(client, admin_headers, "alice"))["pending"] == "spawn"  # started without a click
    pending = await client.get(r.headers["location"])
    assert pending.status_code == 200 and f'data-next="{target}"' in pending.text
    await _wait_ready(hub, "alice")
    # ready: the pending page and the spawn URL both send the browser on to the link's path
    r = await client.get(f"/hub/spawn-pending/alice?next={quote(target, safe='')}")
    assert r.status_code == 302 and r.headers["location"] == target
    r = await client.get(f"/hub/spawn/alice?next={quote(target, safe='')}")
    assert r.status_code == 302 and r.headers["location"] == target
    # without next, a running server's spawn URL leads to the server
    r = await client.get("/hub/spawn/alice")
    assert r.status_code == 302 and r.headers["location"] == "/user/alice/"


async def test_get_spawn_refuses_foreign_next_and_named_servers_follow(client, hub, login, admin_headers):
    await login("alice")
    r = await client.get("/hub/spawn/alice/nb1?next=//evil.example/x")
    assert r.status_code == 302 and r.headers["location"] == "/hub/spawn-pending/alice/nb1"
    await _wait_ready(hub, "alice", "nb1")
    assert (await _server(client, admin_headers, "alice", "nb1"))["ready"] is True
    r = await client.get("/hub/spawn/alice/nb1?next=https://evil.example/")
    assert r.status_code == 302 and r.headers["location"] == "/user/alice/nb1/"


async def test_get_spawn_of_someone_else_needs_this_hubs_page(client, hub, login, admin_headers, make_user):
    await make_user("boss", admin=True)
    await make_user("bob")
    await login("boss")
    # a link on another site must not make an admin start bob's server: the Start button is shown instead
    page = await client.get("/hub/spawn/bob", headers=CROSS)
    assert page.status_code == 200 and 'id="spawn-form"' in page.text
    assert await _server(client, admin_headers, "bob") == {}
    # from the hub's own pages it starts, as for the owner
    r = await client.get("/hub/spawn/bob", headers={"Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 302 and r.headers["location"] == "/hub/spawn-pending/bob"
    await _wait_ready(hub, "bob")
    # a user without rights on bob's servers is refused whatever the headers say
    await login("carol")
    assert (await client.get("/hub/spawn/bob")).status_code == 404


async def test_not_running_page_keeps_the_path_through_the_spawn(client, hub, login):
    xsrf = await login("alice")
    r = await client.get("/hub/user/alice/lab/tree/x.ipynb?kernel=py")
    assert r.status_code == 424 and 'action="/hub/spawn/alice"' in r.text
    nxt = re.search(r'name="next" value="([^"]*)"', r.text).group(1)
    assert nxt == "/user/alice/lab/tree/x.ipynb?kernel=py"
    r = await client.post("/hub/spawn/alice", data={"_xsrf": xsrf, "next": nxt}, headers=SAME)
    assert r.status_code == 303
    assert r.headers["location"] == f"/hub/spawn-pending/alice?next={quote(nxt, safe='')}"
    await _wait_ready(hub, "alice")
    r = await client.get(r.headers["location"])
    assert r.status_code == 302 and r.headers["location"] == nxt


async def test_progress_ids_let_the_page_skip_what_it_shows(client, hub, login):
    xsrf = await login("alice")
    r = await client.post("/hub/spawn/alice", data={"_xsrf": xsrf}, headers=SAME)
    assert r.status_code == 303
    pending = await client.get("/hub/spawn-pending/alice")
    after = int(re.search(r'data-after="(\d+)"', pending.text).group(1))
    shown = re.findall(r"<li>([^<]*)</li>", pending.text)
    assert after > 0 and shown, "the page renders the events stored so far"
    url, same = "/hub/api/users/alice/server/progress", {"Sec-Fetch-Site": "same-origin"}
    full, resumed = await asyncio.gather(
        client.get(url, headers=same),
        # a reconnecting EventSource sends the last id it saw and resumes after it instead of replaying
        client.get(url, headers={**same, "Last-Event-ID": str(after)}),
    )
    events = _sse_events(full.text)
    ids = [i for i, _ in events]
    assert None not in ids and ids == sorted(set(ids)), ids  # every event numbered, increasing, once
    assert events[-1][1]["ready"] is True
    # the replay repeats what the page shows (ids <= data-after); pending.js drops exactly those
    assert [e["message"] for i, e in events if i <= after] == shown
    assert [i for i, _ in _sse_events(resumed.text)] == [i for i in ids if i > after]
