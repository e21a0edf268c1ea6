"""The routing plugin against real hubkit-proxy and real CHP processes: add/delete/list, restarts, reuse."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import os
import signal
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from conftest import ADDRESS_IN_USE, Backend, ProxyProc, chp_bin, free_port, make_proxy, require
from hubkit.interfaces import ProxyBackend, Route
from hubkit.plugins.registry import BackendRegistry, HubInfo
from hubkit_proxy import launcher
from hubkit_proxy.chpclient import ProxyApiError
from hubkit_proxy.plugin import (
    ChpBackend,
    ChpConfig,
    HubkitProxyBackend,
    HubkitProxyConfig,
    hubkit_register_proxies,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

ALICE = Route("/user/alice/", "", {"user": "alice", "server_name": ""})


def build(
    kind: str, tmp: Path, backend: Backend, *, subdomain_host: str = "", **options: object
) -> ChpBackend:
    """hubkit-proxy binds port 0 for both listeners and reports them; CHP cannot, so it gets ports that were
    free a moment ago (``started`` retries those on EADDRINUSE)."""
    registry: BackendRegistry[object] = BackendRegistry("proxy")
    hubkit_register_proxies(registry)
    entry = registry.get(kind)
    chp = kind == "chp"
    if chp:
        binary = chp_bin()
        require(binary is not None, "configurable-http-proxy not installed")
        options.setdefault("command", [binary])
    options.setdefault("api_url", f"http://127.0.0.1:{free_port() if chp else 0}")
    options.setdefault("restart_on_exit", False)
    config = entry.config_model(**options)
    hub = HubInfo(
        hub_id="t",
        data_dir=str(tmp),
        hub_api_url=backend.url + "/hub/api",
        hub_url=backend.url,
        public_url="",
        public_ip="127.0.0.1",
        public_port=free_port() if chp else 0,
        subdomain_host=subdomain_host,
    )
    made = entry.factory(config=config, hub=hub)
    assert isinstance(made, ChpBackend)
    assert isinstance(made, ProxyBackend)
    return made


def take_log(path: str) -> str:
    """The log's text, removing the file so a retry starts a fresh one."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""
    Path(path).unlink()
    return text


async def started(kind: str, tmp: Path, backend: Backend, **options: object) -> ChpBackend:
    """``build`` + ``startup``; a CHP that lost its ports to another program is rebuilt on new ones."""
    for _ in range(5):
        b = build(kind, tmp, backend, **options)
        try:
            await b.startup()
            return b
        except ProxyApiError:
            await b.shutdown()
            b.stop_proxy()
            if kind != "chp" or ADDRESS_IN_USE not in take_log(b.log_file).lower():
                raise
    raise AssertionError("CHP never found free ports")


def alice(backend: Backend) -> Route:
    return Route(ALICE.routespec, backend.url, ALICE.data)


@pytest.fixture(params=["hubkit-proxy", "chp"])
async def embedded(
    request: pytest.FixtureRequest, tmp_path: Path, backend: Backend
) -> AsyncIterator[ChpBackend]:
    b = await started(str(request.param), tmp_path, backend)
    yield b
    await b.shutdown()
    b.stop_proxy()


async def reconcile(backend: ChpBackend, desired: dict[str, Route]) -> None:
    """The core's reconcile in miniature: make the proxy table equal the desired one."""
    actual = await backend.get_routes()
    for spec, route in desired.items():
        if spec not in actual or actual[spec].target != route.target:
            await backend.add_route(route)
    for spec in actual:
        if spec not in desired:
            await backend.delete_route(spec)


async def get_public(b: ChpBackend, path: str, host: str | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as c:
        headers = {"Host": host} if host else {}
        return await c.get(f"http://127.0.0.1:{b.public_port}{path}", headers=headers)


def test_entry_point_registers_both_backends() -> None:
    eps = [ep for ep in importlib.metadata.entry_points(group="hubkit") if ep.value == "hubkit_proxy.plugin"]
    assert eps, "hubkit entry point missing"
    registry: BackendRegistry[object] = BackendRegistry("proxy")
    hubkit_register_proxies(registry)
    assert registry.names() == ["chp", "hubkit-proxy"]
    with pytest.raises(Exception, match="extra"):
        HubkitProxyConfig(nonsense=1)  # type: ignore[call-arg]
    for model in (ChpConfig, HubkitProxyConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} is undocumented"


async def test_add_get_delete(embedded: ChpBackend, backend: Backend) -> None:
    await embedded.add_route(alice(backend))
    routes = await embedded.get_routes()
    assert set(routes) == {"/user/alice/"}  # the untagged default route "/" is not the hub's
    got = routes["/user/alice/"]
    assert got.target == backend.url
    assert got.data["user"] == "alice" and got.data["server_name"] == ""
    assert "jupyterhub" not in got.data and "target" not in got.data
    assert "last_activity" in got.data
    r = await get_public(embedded, "/user/alice/api")
    assert r.status_code == 200 and r.json()["path"] == "/user/alice/api"
    await embedded.delete_route("/user/alice/")
    await embedded.delete_route("/user/alice/")  # idempotent
    assert await embedded.get_routes() == {}
    # unknown paths fall to the default target (the hub)
    r = await get_public(embedded, "/user/alice/api")
    assert r.json()["path"] == "/user/alice/api"
    assert backend.hits[-1] == "/user/alice/api"


@pytest.mark.parametrize("kind", ["hubkit-proxy", "chp"])
async def test_subdomain_hub_routes_by_host(kind: str, tmp_path: Path, backend: Backend) -> None:
    """A hub with per-user subdomains gets host routing without configuring it, in JupyterHub's (CHP's) form:
    the route ``alice.hub.example/user/alice/`` is the CHP path ``/alice.hub.example/user/alice``."""
    b = await started(kind, tmp_path, backend, subdomain_host="https://hub.example:8443")
    assert b.host_routing and "--host-routing" in b.command(*b.wanted_ports)
    try:
        route = Route("alice.hub.example/user/alice/", backend.url + "/on-alice", {"user": "alice"})
        await b.add_route(route)
        assert set(await b.get_routes()) == {"alice.hub.example/user/alice/"}
        assert "/alice.hub.example/user/alice" in await b.primary.all()
        # the host decides (not its port): alice's host reaches her target, others the default (the hub)
        r = await get_public(b, "/user/alice/api", host="alice.hub.example:8443")
        assert r.json()["path"] == "/on-alice/user/alice/api"
        for other in ("hub.example:8443", "bob.hub.example"):
            r = await get_public(b, "/user/alice/api", host=other)
            assert r.json()["path"] == "/user/alice/api", other
        await b.delete_route("alice.hub.example/user/alice/")
        assert await b.get_routes() == {}
    finally:
        await b.shutdown()
        b.stop_proxy()


async def test_token_generated_private(embedded: ChpBackend) -> None:
    if os.environ.get("CONFIGPROXY_AUTH_TOKEN"):
        pytest.skip("token comes from the environment here")
    path = Path(embedded.hub.data_dir) / "proxy-auth-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == embedded.token


async def test_hub_restart_reuses_running_proxy(
    embedded: ChpBackend, backend: Backend, tmp_path: Path
) -> None:
    await embedded.add_route(alice(backend))
    pid = launcher.read_pid(embedded.pid_file)
    await embedded.shutdown()
    assert pid is not None and launcher.pid_alive(pid)  # shutdown never kills it
    again = build(embedded.name, tmp_path, backend, api_url=embedded.config.api_url)
    again.hub = embedded.hub
    await again.startup()
    try:
        assert launcher.read_pid(again.pid_file) == pid
        assert "/user/alice/" in await again.get_routes()
    finally:
        await again.shutdown()


async def test_killed_proxy_restarted_and_routes_reconciled(embedded: ChpBackend, backend: Backend) -> None:
    desired = {
        "/user/alice/": alice(backend),
        "/services/x/": Route("/services/x/", backend.url, {"service": "x"}),
    }
    await reconcile(embedded, desired)
    pid = launcher.read_pid(embedded.pid_file)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.2)
    # the next check notices the dead process and starts a new one
    assert await embedded.ensure_running() is True
    restored = await embedded.get_routes()
    if embedded.name == "hubkit-proxy":
        assert set(restored) == set(desired)  # journal: back at once, before any reconcile
    else:
        assert restored == {}  # CHP keeps routes in memory only
    await reconcile(embedded, desired)
    assert set(await embedded.get_routes()) == set(desired)
    assert (await get_public(embedded, "/user/alice/x")).status_code == 200


@pytest.mark.parametrize(
    ("name", "standby"),
    [("hubkit-proxy", True), ("hubkit-proxy", False), ("chp", False)],
    ids=["hubkit-proxy-warm-standby", "hubkit-proxy-cold", "chp"],
)
async def test_proxy_restarted_the_moment_it_exits(
    tmp_path: Path, backend: Backend, name: str, standby: bool
) -> None:
    """kill -9: the exit is observed (pidfd), the proxy is relaunched on the same public port at once (hubkit-proxy:
    its warm standby takes over, or a new process starts), and its routes are back (hubkit-proxy: journal) or
    empty until the core's reconcile (CHP keeps none)."""
    options: dict[str, object] = {"restart_on_exit": True}
    if name == "hubkit-proxy":
        options["standby"] = standby
    b = await started(name, tmp_path, backend, **options)
    try:
        await b.add_route(alice(backend))
        port = b.public_port
        pid = launcher.read_pid(b.pid_file)
        assert pid is not None
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(b.restarted.wait(), 10)
        elapsed = loop.time() - t0
        assert b.restarts == 1 and launcher.read_pid(b.pid_file) != pid
        assert b.public_port == port  # browsers keep their URL
        # event-driven, not the 5 s poll it replaces (the time itself is a benchmark figure, not asserted tight)
        assert elapsed < 4.0, f"restarted after {elapsed:.2f}s"
        if b.name == "hubkit-proxy":
            assert (await get_public(b, "/user/alice/x")).status_code == 200  # journal: no reconcile needed
        else:
            assert await b.get_routes() == {}
            await reconcile(b, {"/user/alice/": alice(backend)})
            assert (await get_public(b, "/user/alice/x")).status_code == 200
    finally:
        await b.shutdown()
        b.stop_proxy()


async def test_explicit_stop_is_not_restarted(tmp_path: Path, backend: Backend) -> None:
    b = await started("hubkit-proxy", tmp_path, backend, restart_on_exit=True)
    pid = launcher.read_pid(b.pid_file)
    assert isinstance(b, HubkitProxyBackend) and b.standby is not None
    standby = b.standby.proc
    assert b.stop_proxy() is True
    await asyncio.sleep(0.5)
    assert b.restarts == 0 and launcher.read_pid(b.pid_file) is None
    assert pid is not None and not launcher.pid_alive(pid)
    assert standby.wait(15) == 0  # the standby left with it
    await b.shutdown()


async def test_standby_leaves_with_the_hub(tmp_path: Path, backend: Backend) -> None:
    """The proxy outlives the hub; its warm standby does not (it would only ever serve this hub's plugin)."""
    b = await started("hubkit-proxy", tmp_path, backend, restart_on_exit=True)
    try:
        assert isinstance(b, HubkitProxyBackend) and b.standby is not None
        standby = b.standby.proc
        await b.shutdown()
        assert standby.wait(15) == 0  # it reads EOF once its imports are done, and exits
        pid = launcher.read_pid(b.pid_file)
        assert pid is not None and launcher.pid_alive(pid)
    finally:
        b.stop_proxy()


async def test_reused_proxy_gets_the_new_hub_address(tmp_path: Path, backend: Backend) -> None:
    """A hub restarted on another port (its own port 0) repoints the running proxy's default route."""
    first = await started("hubkit-proxy", tmp_path, backend)
    try:
        await first.shutdown()
        again = build("hubkit-proxy", tmp_path, backend)
        moved = dataclasses.replace(first.hub, hub_url=backend.url + "/moved")
        again.hub = moved
        await again.startup()
        assert launcher.read_pid(again.pid_file) == launcher.read_pid(first.pid_file)
        r = await get_public(again, "/anything")
        assert r.json()["path"] == "/moved/anything"
        await again.shutdown()
    finally:
        first.stop_proxy()


async def test_replicas_share_the_table(
    tmp_path: Path, backend: Backend, proxy_factory: list[ProxyProc]
) -> None:
    a = make_proxy("hubkit", "--state-file", str(tmp_path / "a.jsonl"))
    a.start()
    proxy_factory.append(a)
    b = make_proxy("hubkit", "--state-file", str(tmp_path / "b.jsonl"), "--peer", a.api_url, token=a.token)
    b.start()
    proxy_factory.append(b)
    plugin = build(
        "hubkit-proxy",
        tmp_path,
        backend,
        should_start=False,
        api_url=a.api_url,
        replicas=[b.api_url],
        auth_token=a.token,
    )
    await plugin.startup()
    try:
        await plugin.add_route(alice(backend))
        for p in (a, b):
            async with httpx.AsyncClient() as c:
                assert (await c.get(p.url + "/user/alice/x")).status_code == 200
        b.kill()
        bob = Route("/user/bob/", backend.url, {"user": "bob", "server_name": ""})
        await plugin.add_route(bob)  # replica down: logged, not fatal
        t0 = asyncio.get_running_loop().time()
        b.start()  # comes back with its stale journal, then copies the table from its peer
        async with httpx.AsyncClient() as c:
            routes = (await c.get(b.api_url + "/api/routes", headers=b.auth)).json()
        assert asyncio.get_running_loop().time() - t0 < 5
        assert "/user/bob" in routes and "/user/alice" in routes
        # a replica restarted with peers down still has its journal
        a.kill()
        a.start(timeout=5)
        async with httpx.AsyncClient() as c:
            assert "/user/alice" in (await c.get(a.api_url + "/api/routes", headers=a.auth)).json()
        # a live replica that lost a route: get_routes reports it missing, and the core's reconcile (here in
        # miniature) pushes it to every replica; no second repair loop in the plugin
        async with httpx.AsyncClient() as c:
            assert (await c.delete(b.api_url + "/api/routes/user/bob", headers=b.auth)).status_code == 204
        seen = await plugin.get_routes()
        assert seen["/user/bob/"].target == "" and seen["/user/alice/"].target == backend.url
        await reconcile(plugin, {"/user/alice/": alice(backend), "/user/bob/": bob})
        async with httpx.AsyncClient() as c:
            assert "/user/bob" in (await c.get(b.api_url + "/api/routes", headers=b.auth)).json()
        assert (await plugin.get_routes())["/user/bob/"].target == backend.url
    finally:
        await plugin.shutdown()


async def test_restarted_hubkit_proxy_has_its_routes_when_it_is_back(tmp_path: Path, backend: Backend) -> None:
    """Its journal, not a reconcile, restores the routes: all there the moment ``ensure_running`` returns (how
    soon that is: benchmarks/proxy, the restart rows)."""
    b = build("hubkit-proxy", tmp_path, backend)
    await b.startup()
    try:
        for i in range(200):
            await b.add_route(Route(f"/user/u{i}/", backend.url, {"user": f"u{i}", "server_name": ""}))
        pid = launcher.read_pid(b.pid_file)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.1)
        await b.ensure_running()
        routes = await b.get_routes()
        assert len(routes) == 200
    finally:
        await b.shutdown()
        b.stop_proxy()


def test_chp_binary_present_in_ci() -> None:
    require(chp_bin() is not None, "configurable-http-proxy not installed")


async def test_hub_targets_make_a_several_target_default_route(tmp_path: Path, backend: Backend) -> None:
    """[proxy.hubkit-proxy] hub_targets: the default route names every hub process, probed on /hub/health."""
    second = backend.url + "/second"  # another "hub": same server, told apart by the path it forwards to
    b = await started("hubkit-proxy", tmp_path, backend, hub_targets=[second], health_check_interval_ms=200)
    try:
        cmd = b.command(0, 0)
        assert cmd[cmd.index("--health-check-path") + 1] == "/hub/health"
        async with httpx.AsyncClient(headers={"Authorization": f"token {b.token}"}) as c:
            route = (await c.get(f"{b.primary.api_url}/api/routes")).json()["/"]
        assert route["targets"] == [backend.url, second]
        paths = {(await get_public(b, "/hub/login")).json()["path"] for _ in range(6)}
        assert paths == {"/hub/login", "/second/hub/login"}
    finally:
        await b.shutdown()
        b.stop_proxy()


async def test_a_taken_port_is_named_in_the_hubs_error(tmp_path: Path, backend: Backend) -> None:
    """The proxy's own reason reaches the hub's error (and so its log), e.g. for helpers that retry ports."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        b = build("hubkit-proxy", tmp_path, backend)
        b.hub = dataclasses.replace(b.hub, public_port=taken.getsockname()[1])
        b.wanted_ports = (b.hub.public_port, 0)
        with pytest.raises(ProxyApiError, match=r"(?i)address already in use"):
            await b.startup()
        await b.shutdown()
    finally:
        taken.close()
