"""`hubkit import-jupyterhub` against databases written by a real JupyterHub 6.1.1 (on SQLite and on
PostgreSQL), then old JupyterHub tokens used against a running hubkit hub process."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubkit.testing import require
from hubkit.testing.processes import start_hub_port_zero
from jhrun import JupyterHubRun, populate, running_jupyterhub

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def hubkit_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubkit.cli", "-f", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def import_json(config: Path, source: str, *extra: str) -> dict[str, Any]:
    r = hubkit_cli(config, "import-jupyterhub", "--from", source, "--json", *extra)
    assert r.returncode == 0, r.stderr
    report: dict[str, Any] = json.loads(r.stdout)
    return report


def hub_config(tmp: Path, db_url: str) -> Path:
    config = tmp / "hubkit.toml"
    config.write_text(
        f"""
[hub]
ip = "127.0.0.1"
port = 0  # bound by the hub, reported in the data dir
data_dir = "{tmp / "data"}"
db_url = "{db_url}"

[spawner]
backend = "local"

[proxy]
backend = "none"
"""
    )
    return config


def api(port: int, token: str, path: str, method: str = "GET") -> httpx.Response:
    return httpx.request(
        method, f"http://127.0.0.1:{port}/hub/api{path}", headers={"Authorization": f"token {token}"}, timeout=30
    )


@pytest.fixture(params=["sqlite", "postgres"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(JupyterHub's URL, hubkit's URL): both SQLite files, or both PostgreSQL databases."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jh/jupyterhub.sqlite", f"sqlite:///{tmp_path}/data/hubkit.sqlite"
    cluster = request.getfixturevalue("postgres_cluster")
    require(importlib.util.find_spec("psycopg2") is not None, "JupyterHub needs psycopg2 (psycopg2-binary)")

    def url(db: str, driver: str) -> str:
        return f"postgresql{driver}://{cluster.user}@/{db}?host={cluster.sockdir}&port={cluster.port}"

    # JupyterHub runs on psycopg2 (SQLAlchemy 2.1's plain postgresql:// means psycopg 3); hubkit on asyncpg
    return url(cluster.create_database(), "+psycopg2"), url(cluster.create_database(), "")


def by_kind(report: dict[str, Any], kind: str) -> dict[str, str]:
    return {s["what"]: s["reason"] for s in report["skipped"] if s["kind"] == kind}


def test_import_from_real_jupyterhub(tmp_path: Path, databases: tuple[str, str]) -> None:
    jh_url, hub_url = databases
    with running_jupyterhub(tmp_path / "jh", jh_url) as jh:
        populate(jh)  # (no token listing afterwards: JupyterHub deletes expired tokens it lists)
    # JupyterHub is stopped now; its database is all that is left of it
    config = hub_config(tmp_path, hub_url)

    dry = import_json(config, jh_url, "--dry-run")
    assert dry["dry_run"] is True
    assert dry["counts"]["users"] == {"created": 6, "updated": 0, "unchanged": 0, "skipped": 1}
    assert "create user 'dana' (admin)" in dry["changes"]
    text = hubkit_cli(config, "import-jupyterhub", "--from", jh_url, "--dry-run")
    assert text.returncode == 0 and "would change:" in text.stdout and "dry run: nothing was written" in text.stdout
    if hub_url.startswith("sqlite"):
        assert not (tmp_path / "data" / "hubkit.sqlite").exists()  # a dry run writes nothing, not even a file

    first = import_json(config, jh_url)
    assert first["changes"] == dry["changes"], "the dry run said something else than the run did"
    assert first["counts"]["users"] == {"created": 6, "updated": 0, "unchanged": 0, "skipped": 1}
    assert first["counts"]["groups"] == {"created": 2, "updated": 0, "unchanged": 0, "skipped": 0}
    assert first["counts"]["servers"]["created"] == 1
    # alice's scoped token, carol's config token, bob's and dana's
    assert first["counts"]["tokens"]["created"] == 4
    users = by_kind(first, "user")
    assert "invalid user name" in users["o'brien"]
    tokens = by_kind(first, "token")
    reasons = " | ".join(tokens.values())
    assert "expired at" in reasons
    assert "service 'tester'" in reasons
    assert "user \"o'brien\" was skipped" in reasons
    notes = " ".join(first["notes"])
    assert "custom role 'tutors'" in notes and "read:users!group=students" in notes
    assert "o'brien" in notes  # not added to group staff

    again = import_json(config, jh_url)
    assert again["changes"] == []
    for kind in ("users", "groups", "servers", "tokens"):
        assert again["counts"][kind]["created"] == again["counts"][kind]["updated"] == 0
    assert again["counts"]["users"]["unchanged"] == 6
    assert again["counts"]["tokens"]["unchanged"] == 4

    proc, ports = start_hub_port_zero(config, tmp_path / "hub.log", data_dir=tmp_path / "data")
    port = ports["port"]
    try:
        _check_hub(port, jh)
        # a token revoked in hubkit is never brought back by importing again
        alice, dana = jh.tokens["alice-scoped"], jh.tokens["dana-all"]
        listed = api(port, dana, "/users/alice/tokens").json()["api_tokens"]
        (mine,) = [t for t in listed if t["note"] == "nbgitpuller"]
        assert api(port, dana, f"/users/alice/tokens/{mine['id']}", method="DELETE").status_code == 204
        assert api(port, alice, "/user").status_code == 403
        third = import_json(config, jh_url)
        assert third["changes"] == []
        assert any("revoked in hubkit" in r for r in by_kind(third, "token").values())
        assert api(port, alice, "/user").status_code == 403
    finally:
        proc.terminate()
        proc.wait(30)


def _check_hub(port: int, jh: JupyterHubRun) -> None:
    dana = jh.tokens["dana-all"]
    me = api(port, dana, "/user")
    assert me.status_code == 200, me.text
    assert me.json()["name"] == "dana" and me.json()["admin"] is True

    alice = api(port, dana, "/users/alice?include_stopped_servers=1").json()
    assert alice["groups"] == ["students"] and alice["admin"] is False
    assert alice["servers"]["nb1"]["user_options"] == {"profile": "gpu", "cpus": 2}
    assert api(port, dana, "/users/adm").json()["admin"] is True
    erin = api(port, dana, "/users/erin").json()
    assert erin["user_info"] == {"display_name": "Erin", "email": "erin@example.org"}
    students = api(port, dana, "/groups/students").json()
    assert students["properties"] == {"course": "physics", "term": 3}
    assert students["users"] == ["alice", "bob"]
    assert api(port, dana, "/groups/staff").json()["users"] == ["dana"]
    assert api(port, dana, "/users/o'brien").status_code in (400, 404)  # a name hubkit refuses: not there

    # alice's scoped token: exactly its JupyterHub scopes
    r = api(port, jh.tokens["alice-scoped"], "/user")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "alice"
    assert {"read:users!user=alice", "access:servers!user=alice"} <= set(r.json()["scopes"])
    assert api(port, jh.tokens["alice-scoped"], "/users").status_code == 403
    # carol's token from JupyterHub's config (16384 hash rounds) works too
    r = api(port, jh.config_token, "/user")
    assert r.status_code == 200 and r.json()["name"] == "carol"
    # bob's group-filtered scope came from a custom JupyterHub role: capped by what bob holds in hubkit
    bob = jh.tokens["bob-group"]
    assert api(port, bob, "/user").status_code == 200
    assert api(port, bob, "/users/alice").status_code in (403, 404)
    # not imported: the expired token, the service's token, the refused user's token
    for label in ("alice-short", "obrien"):
        assert api(port, jh.tokens[label], "/user").status_code == 403
    assert api(port, jh.service_token, "/user").status_code == 403
    # same prefix as a real imported token, wrong rest: refused
    fake = jh.tokens["alice-scoped"][:4] + "0" * 28
    assert api(port, fake, "/user").status_code == 403
