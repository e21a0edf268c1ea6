"""The examples/vm nginx site under a real nginx with a self-signed certificate, in front of the example hub."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hubkit.testing import require

from .browser import chromium, login, new_page, run_cell, start_lab
from .conftest import PASSWORD
from .hubproc import EXAMPLE, HubProcess, free_port, running_hub, wait_http
from .nginxproc import Nginx, PortTaken, running_nginx

pytestmark = [pytest.mark.root, pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(400)]


def self_signed(dest: Path, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """The README's certificate step: examples/vm/self-signed-cert.sh."""
    require(shutil.which("openssl") is not None, "openssl is not installed")
    subprocess.run(
        ["bash", str(EXAMPLE / "self-signed-cert.sh"), name, str(dest)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert (dest / "key.pem").stat().st_mode & 0o077 == 0, "the private key must not be readable by others"
    return dest / "cert.pem", dest / "key.pem"


def test_login_start_and_kernel_over_https_through_nginx(
    make_hub: Callable[..., HubProcess], student: Callable[[str], str], tmp_path: Path
) -> None:
    eve = student("eve")
    cert, key = self_signed(tmp_path / "tls")
    stack = contextlib.ExitStack()
    for attempt in range(5):
        # nginx cannot report a port it chose: ports free a moment ago, everything again if one was taken
        http_port, https_port = free_port(), free_port()
        base = f"https://127.0.0.1:{https_port}"
        hub = make_hub(hub={"public_url": base})
        stack.enter_context(running_hub(hub))
        try:
            ngx: Nginx = stack.enter_context(
                running_nginx(
                    tmp_path / f"nginx{attempt}",
                    http_port=http_port,
                    https_port=https_port,
                    cert=cert,
                    key=key,
                    upstream=hub.url,
                )
            )
            break
        except PortTaken:
            stack.close()
    else:
        raise AssertionError("nginx found its ports taken five times")
    with stack, chromium() as browser:
        wait_http(f"{base}/hub/health", 30, verify=False)
        # the certificate nginx serves is the one the script made
        served = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{https_port}", "-servername", "127.0.0.1"],
            input="",
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert "CN = 127.0.0.1" in served.stdout
        # plain HTTP is sent to HTTPS
        r = httpx.get(f"http://127.0.0.1:{http_port}/hub/login", follow_redirects=False, timeout=10)
        assert r.status_code == 301 and r.headers["location"].startswith("https://127.0.0.1")

        page = new_page(browser, ignore_https_errors=True)
        login(page, base, eve, PASSWORD)
        session = [c for c in page.context.cookies() if c["name"] == "hubkit-session"]
        assert session and session[0]["secure"], "behind TLS the session cookie must be Secure"
        start_lab(page, base, eve)
        assert page.url.startswith(f"{base}/user/{eve}/lab")
        assert "TLS 42" in run_cell(page, "print('TLS', 6*7)", expect="TLS 42")

        # the kernel's websocket went through nginx (upgrade answered 101); nginx logs it once it closes
        page.context.close()
        pattern = re.compile(rf'"GET /user/{eve}/api/kernels/[^ ]+/channels[^"]*" 101 ')
        deadline = time.monotonic() + 15
        while not pattern.search(ngx.log("access.log")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pattern.search(ngx.log("access.log")), ngx.log("access.log")[-3000:]
