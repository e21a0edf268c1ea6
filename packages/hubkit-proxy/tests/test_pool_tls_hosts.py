"""Pool bound, TLS termination and host-based routing."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

import httpx
import pytest
import websockets
from conftest import Backend, ProxyProc, make_proxy
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from test_data_path import add_route

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


async def test_pool_bound_queues_requests_and_ignores_websockets(
    backend: Backend, proxy_factory: list[ProxyProc]
) -> None:
    p = make_proxy("hubkit", "--max-upstream-per-route", "2")
    p.start()
    proxy_factory.append(p)
    await add_route(p, "/", backend.url)
    # websockets do not use pool slots: three open tunnels must not block HTTP
    async with (
        websockets.connect(f"ws://127.0.0.1:{p.port}/ws") as w1,
        websockets.connect(f"ws://127.0.0.1:{p.port}/ws") as w2,
        websockets.connect(f"ws://127.0.0.1:{p.port}/ws") as w3,
    ):
        peak = 0.0
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=20)) as c:
            reqs = asyncio.gather(*(c.get(p.url + "/slow?ms=400") for _ in range(6)))
            task = asyncio.ensure_future(reqs)
            while not task.done():
                peak = max(peak, p.metric("hubkit_proxy_open_upstream_connections") - 3)
                await asyncio.sleep(0.05)
            results = await task
        assert [r.status_code for r in results] == [200] * 6
        assert peak <= 2
        for w in (w1, w2, w3):
            await w.send("still here")
            assert await w.recv() == "still here"


def self_signed(tmp: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp / "key.pem", tmp / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_path), str(cert_path)


async def test_tls_termination(backend: Backend, proxy_factory: list[ProxyProc], tmp_path: Path) -> None:
    key, cert = self_signed(tmp_path)
    p = make_proxy("hubkit", "--ssl-key", key, "--ssl-cert", cert)
    p.start()
    proxy_factory.append(p)
    await add_route(p, "/", backend.url)
    ctx = ssl.create_default_context(cafile=cert)
    async with httpx.AsyncClient(verify=ctx) as c:
        r = await c.get(f"https://localhost:{p.port}/secure")
    assert r.status_code == 200
    assert r.json()["headers"]["X-Forwarded-Proto"] == "https"
    async with websockets.connect(f"wss://localhost:{p.port}/ws", ssl=ctx) as ws:
        await ws.send("tls")
        assert await ws.recv() == "tls"


async def test_host_routing(backend: Backend, proxy_factory: list[ProxyProc]) -> None:
    p = make_proxy("hubkit", "--host-routing")
    p.start()
    proxy_factory.append(p)
    await add_route(p, "/alice.hub.example", backend.url)
    async with httpx.AsyncClient() as c:
        r = await c.get(p.url + "/user/alice/x", headers={"Host": "alice.hub.example:8000"})
        assert r.status_code == 200 and r.json()["path"] == "/user/alice/x"
        assert (await c.get(p.url + "/user/alice/x", headers={"Host": "bob.hub.example"})).status_code == 404
        routes = (await c.get(p.api_url + "/api/routes", headers=p.auth)).json()
    assert routes["/alice.hub.example"]["host"] == "alice.hub.example"
