"""Password refusal and per-user/per-address login rate limiting (with a shared dummy password)."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
SAME = {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def hub_settings(tmp_path):
    from hubkit.testing.plugin import make_settings

    s = make_settings(tmp_path / "hub", hub={"login_rate_limit": 3, "login_rate_window_seconds": 60})
    s.auth.backends["dummy"] = {"password": "open sesame"}
    return s


async def test_wrong_password_and_rate_limit(client, app):
    page = await client.get("/hub/login")
    xsrf = re.search(r'name="_xsrf" value="(\w+)"', page.text).group(1)
    for _ in range(3):
        r = await client.post(
            "/hub/login", data={"username": "alice", "password": "nope", "_xsrf": xsrf}, headers=SAME
        )
        assert r.status_code == 403 and "Invalid username or password" in r.text
    r = await client.post(
        "/hub/login", data={"username": "alice", "password": "open sesame", "_xsrf": xsrf}, headers=SAME
    )
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    # another user from another address is not affected
    app.state.limiter._fails.clear()
    r = await client.post(
        "/hub/login", data={"username": "alice", "password": "open sesame", "_xsrf": xsrf}, headers=SAME
    )
    assert r.status_code == 302
    metrics = app.state.metrics.registry.get_sample_value("hubkit_logins_total", {"outcome": "throttled"})
    assert metrics == 1
