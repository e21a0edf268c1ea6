"""Activity posts: the JupyterHub body plus hubkit's kernel facts, sent at start and every interval."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from fakehub import FakeHub
from su_harness import Server

from hubkit_singleuser.testing import connect, execute, send_execute

pytestmark = pytest.mark.timeout(120)
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def wait_for(pred, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_activity_reports_kernels_busy_and_connections(server: Server, fakehub: FakeHub) -> None:
    body = wait_for(lambda: fakehub.activity and fakehub.activity[0])
    assert ISO.match(body["last_activity"])
    srv = body["servers"][""]
    assert ISO.match(srv["last_activity"])
    assert srv["hubkit"]["kernels"] == 0 and srv["hubkit"]["kernels_busy"] == 0
    posts = [h for m, p, h in fakehub.requests if m == "POST" and p.endswith("/activity")]
    assert posts[0]["Authorization"] == f"token {fakehub.server_token}"

    alice = fakehub.add_token("alice", ["access:servers!server=alice/"])
    auth = {"Authorization": f"token {alice}"}
    kid = httpx.post(server.url + "api/kernels", json={"name": "python3"}, headers=auth, timeout=30).json()[
        "id"
    ]
    ws = connect(server.url, kid, auth)
    try:
        assert execute(ws, "print(6*7)").strip() == "42"
        n = len(fakehub.activity)
        send_execute(ws, "import time; time.sleep(6)")
        busy_at = wait_for(
            lambda: next(
                (
                    i
                    for i, a in enumerate(fakehub.activity)
                    if i >= n and a["servers"][""]["hubkit"]["kernels_busy"] == 1
                ),
                None,
            )
        )
        busy = fakehub.activity[busy_at]
        facts = busy["servers"][""]["hubkit"]
        assert facts["kernels"] == 1
        assert facts["connections"] == 1
        assert ISO.match(facts["last_busy"])
    finally:
        ws.close()
    idle = wait_for(
        lambda: next(
            (
                a
                for a in fakehub.activity[busy_at:]
                if a["servers"][""]["hubkit"]["kernels_busy"] == 0
                and a["servers"][""]["hubkit"]["kernels"] == 1
                and a["servers"][""]["hubkit"]["connections"] == 0
            ),
            None,
        ),
        timeout=30,
    )
    # the kernel went idle after the sleep: last_busy is kept and is not older than the busy report
    assert idle["servers"][""]["hubkit"]["last_busy"] >= facts["last_busy"]


def test_activity_to_a_hub_that_fails_keeps_the_server_up(fakehub: FakeHub, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from su_harness import launch, shutdown

    s = launch(fakehub, tmp_path, interval="0.5", extra={"JUPYTERHUB_ACTIVITY_URL": f"{fakehub.url}/nowhere"})
    try:
        wait_for(lambda: any(p == "/nowhere" for m, p, h in fakehub.requests), timeout=20)
        alice = fakehub.add_token("alice", ["access:servers!server=alice/"])
        assert httpx.get(s.url + "api/status", headers={"Authorization": f"token {alice}"}).status_code == 200
        assert s.proc.poll() is None
    finally:
        shutdown(s)
