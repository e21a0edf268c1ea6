"""The OpenAPI document matches the app's real API routes, both ways."""

from __future__ import annotations

import pytest
from starlette.routing import Route

pytestmark = pytest.mark.anyio


async def test_openapi_matches_routes(client, app):
    doc = (await client.get("/hub/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    real = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/hub/api"):
            for method in route.methods or ():
                if method != "HEAD":
                    real.add((route.path, method))
    assert documented == real, {
        "undocumented": sorted(real - documented),
        "missing": sorted(documented - real),
    }
