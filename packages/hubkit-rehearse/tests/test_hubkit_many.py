"""Hundreds of users against a real hubkit hub (hubkit-proxy, dummy auth with a shared password, the built-in
``test`` spawner with a 1 s start and a concurrent spawn limit of 10, so spawns queue): the whole session per
user, the report files, compare, Ctrl-C, and the live view on a terminal."""

from __future__ import annotations

import itertools
import os
import pty
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rehearse_helpers import (
    PASSWORD,
    HubkitHub,
    have_hubkit,
    hub_process,
    rehearse_cmd,
    require,
    run_rehearse,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubkitHub]:
    require(have_hubkit(), "hubkit (hubkit-core + hubkit-proxy) is not installed")
    h = HubkitHub(
        tmp_path_factory.mktemp("hubkit-test-spawner"),
        spawner="test",
        spawner_cfg={"start_delay": 1.0},
        limit=10,
    )
    with hub_process(h):
        yield h


def test_two_hundred_users_through_login_start_queue_and_stop(hub: HubkitHub, tmp_path: Path) -> None:
    before = hub.user_names()
    r = run_rehearse(
        [
            hub.url,
            "--users",
            "200",
            "--yes",
            "--ramp",
            "5",
            "--ramp-shape",
            "bell",
            "--open",
            "api",
            "--think",
            "0.5",
        ],
        tmp_path / "out",
        admin_token=hub.admin_token,
    )
    assert r.code == 0, r.out[-3000:] + r.err[-3000:]
    s = r.data["summary"]
    assert s["outcomes"] == {"ok": 200}
    for phase in ("login", "start", "spawn", "open", "stop", "session"):
        assert s["phases"][phase]["n"] == 200, phase
    # 200 spawns of 1 s each through 10 slots take at least 20 s: the queue must have shown itself
    assert s["phases"]["spawn"]["max"] >= 10
    assert s["queue"]["users_queued"] > 0 and s["queue"]["max_position"] > 10
    for u in r.users():
        assert [st["phase"] for st in u["steps"]] == ["login", "start", "spawn", "open", "think", "stop"]
        pos = u["queue_positions"]
        assert pos == sorted(pos, reverse=True), "a queue position went up"
    # left as found: every server stopped, every created user removed
    assert hub.running_servers() == {}
    assert hub.user_names() == before
    assert r.data["cleanup"]["users_created"] == 200 and r.data["cleanup"]["users_deleted"] == 200
    # the report files, the PNG inside the HTML, the plain live lines (stdout is not a terminal here)
    html = (r.outdir / "report.html").read_text()
    assert 'src="data:image/png;base64,' in html and "Latency per phase" in html
    assert (r.outdir / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[rehearse] t=" in r.out and "arrived 200/200" in r.out
    assert PASSWORD not in (r.outdir / "result.json").read_text()


def test_user_file_and_the_concurrency_bound(hub: HubkitHub, tmp_path: Path) -> None:
    """Tokens from a file (made here through the admin API, as an operator would for OAuth users); with
    --concurrency 1 the second and third user wait for the first to finish, and the wait is recorded."""
    names = ["file-1", "file-2", "file-3"]
    assert hub.api("POST", "users", json={"usernames": names}).status_code == 201
    try:
        tokens = [hub.api("POST", f"users/{n}/tokens", json={"note": "test"}).json()["token"] for n in names]
        userfile = tmp_path / "users.txt"
        userfile.write_text(
            "".join(f"{n} {t}\n" for n, t in zip(names, tokens, strict=True)) + f"intruder {tokens[0]}\n"
        )
        r = run_rehearse(
            [
                hub.url,
                "--login",
                "file",
                "--user-file",
                str(userfile),
                "--users",
                "4",
                "--concurrency",
                "1",
                "--open",
                "api",
                "--think",
                "0.3",
            ],
            tmp_path / "out",
            password=None,
        )
        assert r.code == 1, r.err  # the fourth line's token is file-1's: refused, not used as someone else
        by_name = {u["name"]: u for u in r.users()}
        assert [by_name[n]["outcome"] for n in names] == ["ok", "ok", "ok"]
        assert by_name["intruder"]["outcome"] == "failed"
        assert "belongs to 'file-1'" in r.data["summary"]["failures"][0]["example"]
        sessions = sorted(
            (next(st["t0"] for st in u["steps"] if st["phase"] != "wait"), u["end"]) for u in r.users()
        )
        for (_, end), (start, _) in itertools.pairwise(sessions):
            assert start >= end - 0.01, "two sessions ran at once despite --concurrency 1"
        assert [u["steps"][0]["phase"] for u in r.users()][1:] == ["wait", "wait", "wait"]
        assert r.data["cleanup"]["users_created"] == 0 and hub.running_servers() == {}
        assert all(t not in (r.outdir / "result.json").read_text() for t in tokens)
    finally:
        for n in names:
            hub.api("DELETE", f"users/{n}")


def test_max_duration_stops_everything(hub: HubkitHub, tmp_path: Path) -> None:
    before = hub.user_names()
    r = run_rehearse(
        [
            hub.url,
            "--users",
            "3",
            "--user-pattern",
            "late-{i}",
            "--open",
            "api",
            "--think",
            "120",
            "--max-duration",
            "8",
        ],
        tmp_path / "out",
        admin_token=hub.admin_token,
    )
    assert r.code == 1
    assert r.data["interrupted"] == "--max-duration 8 s reached"
    assert {u["outcome"] for u in r.users()} == {"cancelled"}
    assert r.data["cleanup"]["servers_stopped"] == 3
    assert hub.running_servers() == {} and hub.user_names() == before


def test_compare_and_rerender(hub: HubkitHub, tmp_path: Path) -> None:
    a = run_rehearse(
        [hub.url, "--users", "6", "--open", "api", "--tag", "label=first"],
        tmp_path / "a",
        admin_token=hub.admin_token,
    )
    b = run_rehearse(
        [hub.url, "--users", "6", "--open", "api", "--login", "token", "--tag", "label=second"],
        tmp_path / "b",
        admin_token=hub.admin_token,
    )
    assert a.code == 0 and b.code == 0, a.err + b.err
    assert b.data["tags"] == {"label": "second"} and b.data["plan"]["login"] == "token"
    assert (
        b.data["plan"]["admin_token"] == "(set)"
        and hub.admin_token not in (tmp_path / "b" / "result.json").read_text()
    )
    out = subprocess.run(
        [*rehearse_cmd(), "--compare", str(a.outdir / "result.json"), str(b.outdir / "result.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "A = first" in out.stdout and "B = second" in out.stdout
    # the ratio printed is the ratio of the two files' medians
    pa, pb = a.data["summary"]["phases"]["spawn"]["p50"], b.data["summary"]["phases"]["spawn"]["p50"]
    assert f"{pb / pa:.2f}x" in out.stdout
    (a.outdir / "timeline.png").unlink()
    again = subprocess.run(
        [*rehearse_cmd(), "--from-json", str(a.outdir / "result.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0 and (a.outdir / "timeline.png").exists()
    (tmp_path / "junk.json").write_text("[1, 2]")
    bad = subprocess.run(
        [*rehearse_cmd(), "--compare", str(tmp_path / "junk.json"), str(a.outdir / "result.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "not a hubkit rehearse result" in bad.stderr


def _ports_of(hub: HubkitHub, names: list[str]) -> list[int]:
    ports = []
    for n in names:
        model = hub.api("GET", f"users/{n}").json()
        ports.append(int(model["servers"][""]["state"]["port"]))
    return ports


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_ctrl_c_stops_the_servers_it_started_and_removes_its_users(hub: HubkitHub, tmp_path: Path) -> None:
    before = hub.user_names()
    names = [f"sigint-{i}" for i in range(1, 9)]
    env = {**os.environ, "HUBKIT_REHEARSE_ADMIN_TOKEN": hub.admin_token, "HUBKIT_REHEARSE_PASSWORD": PASSWORD}
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            *rehearse_cmd(),
            hub.url,
            "--users",
            "8",
            "--user-pattern",
            "sigint-{i}",
            "--open",
            "api",
            "--think",
            "600",
            "--out",
            str(out),
            "--live",
            "plain",
            "--progress-every",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            running = hub.running_servers()
            if all(f"{n}/" in running and running[f"{n}/"].get("ready") for n in names):
                break
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.3)
        else:
            raise AssertionError("the 8 servers never became ready")
        ports = _ports_of(hub, names)
        assert all(_listening(p) for p in ports)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output[-3000:]
    assert "Ctrl-C" in output
    assert not any(_listening(p) for p in ports), "a server the run started is still listening"
    assert hub.running_servers() == {}
    assert hub.user_names() == before
    import json

    data = json.loads((out / "result.json").read_text())
    assert data["interrupted"] == "Ctrl-C"
    assert {u["outcome"] for u in data["users"]} == {"cancelled"}
    assert data["cleanup"]["servers_stopped"] == 8 and data["cleanup"]["users_deleted"] == 8


def test_live_view_on_a_terminal(hub: HubkitHub, tmp_path: Path) -> None:
    """Under a pseudo-terminal ``--live auto`` draws the rich table (escape codes, the phase column)."""
    master, slave = pty.openpty()
    env = {**os.environ, "HUBKIT_REHEARSE_PASSWORD": PASSWORD, "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("HUBKIT_REHEARSE_ADMIN_TOKEN", None)
    proc = subprocess.Popen(
        [
            *rehearse_cmd(),
            hub.url,
            "--users",
            "3",
            "--user-pattern",
            "tty-{i}",
            "--open",
            "api",
            "--think",
            "2",
            "--out",
            str(tmp_path / "out"),
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "\x1b[" in text  # drawn, not printed line by line
    assert "hubkit rehearse" in text and "think" in text and "p95" in text
    assert "[rehearse] t=" not in text
    # without an admin token the users that logging in created stay, and the report says so
    assert "users created by logging in are not removed" in text
    for i in range(1, 4):
        assert hub.api("DELETE", f"users/tty-{i}").status_code == 204
