"""E8: the stock ``jupyterhub-idle-culler`` 2.0 (from PyPI) culls default and named servers through hubkit's
API, follows the pagination envelope, and with ``--cull-users`` deletes inactive users."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import httpx
import pytest
from hubkit.testing import require

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
CULLER = shutil.which("jupyterhub-idle-culler", path=str(Path(sys.executable).parent)) or shutil.which(
    "jupyterhub-idle-culler"
)


async def run_culler(api: str, token: str, *extra: str) -> str:
    env = {**os.environ, "JUPYTERHUB_API_TOKEN": token, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        CULLER,
        f"--url={api}",
        "--timeout=1",
        "--cull-every=100",
        "--IdleCuller.log_level=DEBUG",
        *extra,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 15)
    except TimeoutError:  # the culler loops forever; one round is all we need
        proc.terminate()
        out, _ = await proc.communicate()
    return out.decode(errors="replace")


async def wait_for(cond, log: str = "") -> None:
    for _ in range(100):
        if await cond():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met in time; culler log:\n{log}")


async def test_stock_culler_culls_default_and_named(live_hub_factory):
    require(CULLER is not None, "jupyterhub-idle-culler is not installed")
    live = await live_hub_factory()
    adm = {"Authorization": f"token {live.admin_token}"}
    async with httpx.AsyncClient(base_url=live.hub_url, timeout=30) as c:
        assert (
            await c.post("/hub/api/users", json={"usernames": ["alice", "bob"]}, headers=adm)
        ).status_code == 201
        assert (await c.post("/hub/api/users/alice/server", headers=adm)).status_code == 201
        assert (await c.post("/hub/api/users/alice/servers/nb1", headers=adm)).status_code == 201
        await asyncio.sleep(1.5)  # idle longer than --timeout=1
        token = await live.service_token(
            "culler", ["list:users", "read:users:activity", "read:servers", "delete:servers"]
        )
        log = await run_culler(live.api, token, "--remove-named-servers=true", "--api-page-size=1")
        assert "Traceback" not in log, log

        async def culled() -> bool:
            model = (await c.get("/hub/api/users/alice", headers=adm)).json()
            return model["servers"] == {}

        await wait_for(culled, log=log)
        model = (await c.get("/hub/api/users/alice", headers=adm)).json()
        assert model["servers"] == {} and model["server"] is None
        r = await c.get("/hub/api/users/alice/servers/nb1", headers=adm)
        assert r.status_code == 404  # removed, not just stopped
        # --cull-users: bob (never started anything) is inactive and gets deleted
        token = await live.service_token(
            "culler", ["list:users", "read:users:activity", "read:servers", "delete:servers", "admin:users"]
        )
        log = await run_culler(live.api, token, "--cull-users=true", "--cull-admin-users=false")
        assert "Traceback" not in log, log

        async def bob_gone() -> bool:
            return (await c.get("/hub/api/users/bob", headers=adm)).status_code == 404

        await wait_for(bob_gone, log=log)
        r = await c.get("/hub/api/users/admin", headers={"Authorization": f"token {token}"})
        assert r.status_code == 200  # admins were spared (--cull-admin-users=false)
