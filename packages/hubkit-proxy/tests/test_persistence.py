"""The route journal: replay, torn tails, compaction on SIGTERM, and exit when the hub's data dir is gone."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest
from conftest import ProxyProc, make_proxy

pytestmark = pytest.mark.timeout(60)


def routes(p: ProxyProc) -> dict[str, dict[str, object]]:
    return httpx.get(p.api_url + "/api/routes", headers=p.auth, timeout=5).json()  # type: ignore[no-any-return]


def test_torn_journal_tail_is_skipped(tmp_path: Path, proxy_factory: list[ProxyProc]) -> None:
    state = tmp_path / "routes.jsonl"
    state.write_text(
        json.dumps({"a": "/user/a", "d": {"target": "http://127.0.0.1:9", "jupyterhub": True}})
        + "\n"
        + json.dumps({"a": "/user/b", "d": {"target": "http://127.0.0.1:9"}})
        + "\n"
        + json.dumps({"r": "/user/b"})
        + "\n"
        + '{"a": "/user/c", "d": {"tar'  # killed mid-write
    )
    p = make_proxy("hubkit", "--state-file", str(state))
    p.start()
    proxy_factory.append(p)
    got = routes(p)
    assert set(got) == {"/user/a"}
    assert got["/user/a"]["jupyterhub"] is True
    # compacted at start: one line per live route
    assert len(state.read_text().splitlines()) == 1


def test_sigterm_keeps_activity(tmp_path: Path, proxy_factory: list[ProxyProc]) -> None:
    state = tmp_path / "routes.jsonl"
    p = make_proxy("hubkit", "--state-file", str(state))
    p.start()
    proxy_factory.append(p)
    httpx.post(p.api_url + "/api/routes/user/a", json={"target": "http://127.0.0.1:9"}, headers=p.auth)
    httpx.get(p.url + "/user/a/x")  # 503, but the route was used: activity moves
    seen = routes(p)["/user/a"]["last_activity"]
    p.kill(signal.SIGTERM)
    p.start()
    assert routes(p)["/user/a"]["last_activity"] == seen


def test_orphaned_proxy_exits_when_state_dir_removed(tmp_path: Path, proxy_factory: list[ProxyProc]) -> None:
    data = tmp_path / "hubdata"
    data.mkdir()
    p = make_proxy("hubkit", "--state-file", str(data / "routes.jsonl"))
    p.start()
    proxy_factory.append(p)
    shutil.rmtree(data)
    assert p.proc is not None
    deadline = time.monotonic() + 10
    while p.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert p.proc.poll() == 0
    assert not data.exists()  # and it did not recreate the directory on the way out
