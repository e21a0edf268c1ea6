from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def test_version_no_auth(client):
    for path in ("/hub/api", "/hub/api/"):
        r = await client.get(path)
        assert r.status_code == 200
        assert r.json()["version"] == "6.1.1"
        assert r.headers["x-jupyterhub-version"] == "6.1.1"
        assert "x-hubkit-version" in r.headers
