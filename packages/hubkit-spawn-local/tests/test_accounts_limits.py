"""As-user mode, missing accounts, limits and shared data, with real OS accounts and real cgroups."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from hubkit.errors import ConfigError, SpawnFailed
from hubkit.testing import require
from local_harness import Ctx, make_spec, poll_until_dead
from pydantic import ValidationError

from hubkit_spawn_local import LocalSpawnerConfig, limits, procinfo

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
SLEEP = (sys.executable, "-c", "import time; time.sleep(600)")
# the dev venv's interpreter lives under /root (0700); a user account runs the system one
USER_PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


@pytest.fixture
def request_cleanup():  # type: ignore[no-untyped-def]
    fns: list = []
    yield fns
    for fn in fns:
        fn()


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


async def test_missing_os_user_is_a_clear_failure(make_spawner) -> None:  # type: ignore[no-untyped-def]
    require(os.geteuid() == 0, "run_as_user needs root")
    sp = make_spawner(run_as_user=True, home_dir=None)
    await sp.startup()
    with pytest.raises(SpawnFailed) as e:
        await sp.start(make_spec("no-such-user-hk"), Ctx())
    assert e.value.reason_code == "no-such-os-user"
    assert "no OS account named 'no-such-user-hk'" in str(e.value)
    assert sp.index.load() == {}


async def test_run_as_user_needs_root(make_spawner, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    sp = make_spawner(run_as_user=True)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ConfigError, match="run_as_user"):
        await sp.startup()


async def test_runs_as_the_users_account_with_home_and_umask(
    make_spawner, os_user: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import pwd

    pw = pwd.getpwnam(os_user)
    sp = make_spawner(run_as_user=True, home_dir=None, umask=0o077)
    code = "import os, time; open('made-by-server', 'w').close(); print('ok', os.getcwd(), flush=True); time.sleep(600)"
    spec = make_spec(os_user, cmd=(USER_PY, "-c", code))
    state = (await sp.start(spec, Ctx())).state
    try:
        import anyio

        with anyio.fail_after(20):
            while not any(line.startswith("ok") for line in await sp.log_tail(spec, state)):
                await anyio.sleep(0.05)
        st = proc_status(state["pid"])
        assert st["Uid"].split()[0] == str(pw.pw_uid)
        assert st["Gid"].split()[0] == str(pw.pw_gid)
        assert state["uid"] == pw.pw_uid
        assert f"ok {pw.pw_dir}" in "\n".join(await sp.log_tail(spec, state))
        made = Path(pw.pw_dir) / "made-by-server"
        assert made.stat().st_uid == pw.pw_uid
        assert stat.S_IMODE(made.stat().st_mode) == 0o600  # umask 077 applied
        env = Path(f"/proc/{state['pid']}/environ").read_bytes()
        assert f"HOME={pw.pw_dir}".encode() in env and f"USER={os_user}".encode() in env
    finally:
        await sp.stop(spec, state)
    assert not procinfo.group_alive(state["pgid"])


async def test_allow_root_added_only_for_root(make_spawner) -> None:  # type: ignore[no-untyped-def]
    sp = make_spawner()
    spec = make_spec(cmd=("sh", "-c", 'echo "args:$*"', "sh"))
    state = (await sp.start(spec, Ctx())).state
    await poll_until_dead(sp, spec, state)
    tail = await sp.log_tail(spec, state)
    assert ("args:--allow-root" in tail) == (os.geteuid() == 0)


async def test_shared_data_linked_read_only(make_spawner, os_user: str, request_cleanup: list) -> None:  # type: ignore[no-untyped-def]
    import pwd
    import shutil
    import tempfile

    # pytest's tmp_path sits under a 0700 directory; a share must be reachable by the user's account
    shared = Path(tempfile.mkdtemp(prefix="hubkit-share-"))
    request_cleanup.append(lambda: shutil.rmtree(shared, ignore_errors=True))
    (shared / "lesson.txt").write_text("hello")
    os.chmod(shared, 0o755)
    sp = make_spawner(run_as_user=True, home_dir=None, shared_data_dir=str(shared))
    probe = (
        "import os\n"
        "print('read', open(os.path.expanduser('~/shared/lesson.txt')).read())\n"
        "try:\n    open(os.path.expanduser('~/shared/new.txt'), 'w')\n    print('WROTE')\n"
        "except PermissionError:\n    print('denied')\n"
    )
    spec = make_spec(os_user, cmd=(USER_PY, "-c", probe))
    ctx = Ctx()
    state = (await sp.start(spec, ctx)).state
    await poll_until_dead(sp, spec, state)
    tail = await sp.log_tail(spec, state)
    assert "read hello" in tail and "denied" in tail and "WROTE" not in tail
    link = Path(pwd.getpwnam(os_user).pw_dir) / "shared"
    assert link.is_symlink() and os.readlink(link) == str(shared)
    assert not (shared / "new.txt").exists()
    assert not any("writable" in e.message for e in ctx.events)


async def test_shared_data_writable_is_reported(make_spawner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shared = tmp_path / "open-share"
    shared.mkdir()
    sp = make_spawner(shared_data_dir=str(shared))
    ctx = Ctx()
    spec = make_spec(cmd=("true",))
    state = (await sp.start(spec, ctx)).state
    await poll_until_dead(sp, spec, state)
    assert any("is writable by" in e.message for e in ctx.events)
    assert (tmp_path / "home-alice" / "shared").is_symlink()
    # a second start leaves the existing link alone and does not fail
    state = (await sp.start(spec, Ctx())).state
    await poll_until_dead(sp, spec, state)


async def test_limits_with_cgroups(make_spawner) -> None:  # type: ignore[no-untyped-def]
    require(
        os.geteuid() == 0
        and (
            os.access("/sys/fs/cgroup/memory", os.W_OK) or os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        ),
        "needs root and a writable cgroup hierarchy",
    )
    sp = make_spawner(mem_limit="256M", cpu_limit=0.5)
    spec = make_spec(cmd=SLEEP)
    ctx = Ctx()
    state = (await sp.start(spec, ctx)).state
    try:
        assert state["cgroups"], state
        assert any("memory 268435456 bytes via cgroup" in a for a in state["limits"])
        cg = Path(f"/proc/{state['pid']}/cgroup").read_text()
        name = limits.cgroup_name(sp.hub.hub_id, "alice", "")
        assert name in cg
        for d in state["cgroups"]:
            if "memory" in d:
                assert Path(d, "memory.limit_in_bytes").read_text().strip() == "268435456"
            if "/cpu/" in d:
                assert Path(d, "cpu.cfs_quota_us").read_text().strip() == "50000"
    finally:
        await sp.stop(spec, state)
    assert not any(os.path.exists(d) for d in state["cgroups"])


async def test_limits_fallback_and_unsupported(
    make_spawner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(limits, "CGROUP_ROOT", str(tmp_path / "no-cgroups"))
    sp = make_spawner(mem_limit="1G", cpu_limit=1)
    code = "import resource; print('AS', resource.getrlimit(resource.RLIMIT_AS)[0])"
    spec = make_spec(cmd=(sys.executable, "-c", code))
    ctx = Ctx()
    state = (await sp.start(spec, ctx)).state
    await poll_until_dead(sp, spec, state)
    assert f"AS {1024**3}" in await sp.log_tail(spec, state)
    assert any("cpu_limit=1.0 cannot be enforced" in e.message for e in ctx.events)
    strict = make_spawner(cpu_limit=1, limits_required=True)
    with pytest.raises(SpawnFailed) as e:
        await strict.start(make_spec(cmd=SLEEP), Ctx())
    assert e.value.reason_code == "limits-unsupported"


def test_bad_config_is_rejected() -> None:
    for bad in (
        {"mem_limit": "lots"},
        {"cpu_limit": 0},
        {"cmd": []},
        {"shared_data_link": "../x"},
        {"typo": 1},
    ):
        with pytest.raises(ValidationError):
            LocalSpawnerConfig(**bad)  # type: ignore[arg-type]
    assert LocalSpawnerConfig(mem_limit="1.5G").mem_limit_bytes == int(1.5 * 1024**3)
