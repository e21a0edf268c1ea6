"""The heap does not grow and shrink per large body (issue 14: 370 minor page faults per 1 MiB response before).

Counts, not times: the kernel's minor-fault counter of the proxy process over 40 large responses.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import Backend, ProxyProc

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


def minor_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
async def test_large_responses_reuse_heap_memory(backend: Backend, hproxy: ProxyProc) -> None:
    async with httpx.AsyncClient() as c:
        r = await c.post(hproxy.api_url + "/api/routes/", json={"target": backend.url}, headers=hproxy.auth)
        assert r.status_code == 201
        url = hproxy.url + "/download?size=1048576"
        for _ in range(5):  # warm up: the heap reaches its working size
            assert len((await c.get(url)).content) == 1 << 20
        assert hproxy.proc is not None
        before = minor_faults(hproxy.proc.pid)
        for _ in range(40):
            assert len((await c.get(url)).content) == 1 << 20
        per_response = (minor_faults(hproxy.proc.pid) - before) / 40
    # glibc's default thresholds gave ~250-370 per response (a 1 MiB body is 256 pages, faulted in afresh)
    assert per_response < 32, f"{per_response:.1f} minor page faults per 1 MiB response"
