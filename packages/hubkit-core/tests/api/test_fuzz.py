"""Schema-driven fuzzing: schemathesis generates requests from /hub/api/openapi.json against a live hub
(uvicorn, real socket) with an admin token; no generated request may produce a 5xx."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from pathlib import Path

import pytest
from hubkit.testing import require
from hubkit.testing.processes import bound_socket

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600), pytest.mark.slow]
ST = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")


async def test_schemathesis_finds_no_server_errors(app, admin_headers, tmp_path):
    require(ST is not None, "schemathesis is not installed")
    import uvicorn

    sock = bound_socket()  # uvicorn gets the socket itself: no race for a "free" port
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.02)
    try:
        proc = await asyncio.create_subprocess_exec(
            ST,
            "run",
            f"http://127.0.0.1:{port}/hub/api/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--header",
            f"Authorization: {admin_headers['Authorization']}",
            "--request-timeout",
            "20",
            "--suppress-health-check",
            "all",
            "--report",
            "junit",
            "--report-junit-path",
            str(tmp_path / "junit.xml"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={"NO_COLOR": "1", "PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)},
        )
        out, _ = await proc.communicate()
    finally:
        server.should_exit = True
        await task
    text = out.decode(errors="replace")
    print(text[-4000:])
    m = re.search(r"(\d+) generated", text)
    assert m, text[-3000:]
    assert int(m.group(1)) >= 500, text[-3000:]
    assert proc.returncode == 0, text[-6000:]
