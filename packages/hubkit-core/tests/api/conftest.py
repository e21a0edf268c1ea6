"""Fixtures for the web/API tests: the real app on a real started Hub (temp SQLite, test spawner)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from hubkit.auth.tokens import issue_token
from hubkit.runtime.app import create_app
from hubkit.storage.orm import User

BASE = "http://127.0.0.1:8000"


@pytest.fixture
def app(hub: Any) -> Any:
    return create_app(hub)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


@pytest.fixture
def make_token(hub: Any, make_user: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[str]]:
    """``await make_token("alice", admin=True, scopes=[...])``: creates the user if needed, returns a secret."""

    async def make(name: str, *, admin: bool = False, scopes: list[str] | None = None, **kw: Any) -> str:
        from sqlalchemy import select

        async with hub.db() as s:
            user = (await s.execute(select(User).where(User.name == name))).scalar_one_or_none()
        if user is None:
            await make_user(name, admin=admin)
        async with hub.db() as s:
            user = (await s.execute(select(User).where(User.name == name))).scalar_one()
            secret, _ = await issue_token(s, user_id=user.id, scopes=scopes or ["inherit"], **kw)
            await s.commit()
        return secret

    return make


@pytest.fixture
async def admin_headers(make_token: Callable[..., Awaitable[str]]) -> dict[str, str]:
    return {"Authorization": f"token {await make_token('admin', admin=True)}"}


def xsrf_of(html: str) -> str:
    m = re.search(r'name="_xsrf" value="([0-9a-f]+)"', html)
    assert m, "no _xsrf field on the page"
    return m.group(1)


async def browser_login(client: httpx.AsyncClient, name: str, password: str = "") -> str:
    """Log in through the form like a browser; returns the XSRF token for later form posts."""
    await client.get("/hub/logout")  # start from a logged-out browser
    page = await client.get("/hub/login")
    assert page.status_code == 200
    token = xsrf_of(page.text)
    r = await client.post(
        "/hub/login",
        data={"username": name, "password": password, "_xsrf": token},
        headers={"Origin": BASE, "Sec-Fetch-Site": "same-origin"},
    )
    assert r.status_code == 302, r.text
    return token


@pytest.fixture
def login(client: httpx.AsyncClient) -> Callable[..., Awaitable[str]]:
    """``xsrf = await login("alice")``: a browser-style form login on ``client``."""

    async def do(name: str, password: str = "") -> str:
        return await browser_login(client, name, password)

    return do
