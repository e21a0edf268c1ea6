"""The built-in idle culler: the pure policy, and a real round against a hub with running test servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hubkit.config.models import CullerConfig
from hubkit.culler.loop import cull_once
from hubkit.culler.policy import Candidate, decide, timeout_for
from hubkit.storage.orm import Group, Server, ServerStatus, User
from sqlalchemy import select

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cand(
    idle_s: float, activity: dict | None = None, groups: tuple[str, ...] = (), age_s: float = 0
) -> Candidate:
    return Candidate(
        "alice",
        "",
        NOW - timedelta(seconds=max(idle_s, age_s)),
        NOW - timedelta(seconds=idle_s),
        activity or {},
        groups,
    )


def test_idle_and_fresh():
    cfg = CullerConfig(timeout=600)
    assert decide(cfg, cand(599), NOW) is None
    d = decide(cfg, cand(601), NOW)
    assert d is not None and d.why == "idle"


def test_busy_kernel_spares_open_tab_does_not():
    cfg = CullerConfig(timeout=600, ignore_open_connections=True)
    reported = iso(NOW - timedelta(seconds=60))
    assert decide(cfg, cand(3600, {"kernels_busy": 1, "kernels": 1, "reported": reported}), NOW) is None
    assert (
        decide(cfg, cand(3600, {"kernels_busy": 0, "connections": 3, "reported": reported}), NOW) is not None
    )
    keep_tabs = CullerConfig(timeout=600, ignore_open_connections=False)
    assert (
        decide(keep_tabs, cand(3600, {"kernels_busy": 0, "connections": 3, "reported": reported}), NOW)
        is None
    )
    # a stale report (older than the idle window) does not keep a server alive forever
    stale = iso(NOW - timedelta(seconds=7200))
    assert decide(cfg, cand(3600, {"kernels_busy": 1, "reported": stale}), NOW) is not None
    # last_busy counts as activity
    assert (
        decide(
            cfg,
            cand(3600, {"kernels_busy": 0, "last_busy": iso(NOW - timedelta(seconds=30)), "reported": stale}),
            NOW,
        )
        is None
    )


def test_group_timeouts_and_max_age():
    cfg = CullerConfig(timeout=600, group_timeouts={"staff": 7200, "students": 300}, max_age=86400)
    assert timeout_for(cfg, ("students",)) == 300
    assert timeout_for(cfg, ("students", "staff")) == 7200  # the most generous matching group wins
    assert decide(cfg, cand(400, groups=("students",)), NOW) is not None
    assert decide(cfg, cand(400, groups=("staff",)), NOW) is None
    busy = {"kernels_busy": 2, "reported": iso(NOW)}
    d = decide(cfg, cand(10, busy, age_s=90000), NOW)
    assert d is not None and d.why == "max-age"


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_cull_round_stops_idle_servers(hub, make_user):
    for name in ("idle", "busy", "fresh", "staff"):
        await make_user(name)
    async with hub.db() as s:
        staff = Group(name="staff", properties={}, users=[])
        s.add(staff)
        staff.users = list((await s.execute(select(User).where(User.name == "staff"))).scalars())
        await s.commit()
    for name in ("idle", "busy", "fresh", "staff"):
        sid = await hub.spawns.request_start(name)
        assert await hub.spawns.wait(sid, 20) == "ready"
    now = datetime.now(UTC)
    async with hub.db() as s:
        rows = {u: srv for srv, u in (await s.execute(select(Server, User.name).join(User))).all()}
        for name, srv in rows.items():
            srv.last_activity = now - timedelta(seconds=30 if name == "fresh" else 4000)
        rows["busy"].activity = {"kernels": 1, "kernels_busy": 1, "reported": iso(now)}
        await s.commit()
    hub.settings.culler.timeout = 3600
    hub.settings.culler.group_timeouts = {"staff": 8000}
    decisions = await cull_once(hub)
    assert sorted((d.user, d.why) for d in decisions) == [("idle", "idle")]
    async with hub.db() as s:
        status = {u: st for st, u in (await s.execute(select(Server.status, User.name).join(User))).all()}
    assert status == {
        "idle": ServerStatus.STOPPED,
        "busy": ServerStatus.RUNNING,
        "fresh": ServerStatus.RUNNING,
        "staff": ServerStatus.RUNNING,
    }
