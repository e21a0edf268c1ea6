"""The README's alternative to nginx: the hub's own --ssl-key/--ssl-cert (hubkit-proxy terminates TLS)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from .browser import chromium, login, new_page, run_cell, start_lab
from .conftest import PASSWORD
from .hubproc import HubProcess, running_hub
from .test_nginx_tls import self_signed

pytestmark = [pytest.mark.root, pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(400)]


def test_hub_serves_https_itself(
    make_hub: Callable[..., HubProcess], student: Callable[[str], str], tmp_path: Path
) -> None:
    frank = student("frank")
    cert, key = self_signed(tmp_path / "tls")
    hub = make_hub()
    hub.config["hub"]["public_url"] = hub.config["hub"]["public_url"].replace("http://", "https://")
    hub.args = ["--ssl-key", str(key), "--ssl-cert", str(cert)]
    with running_hub(hub), chromium() as browser:
        assert hub.url.startswith("https://")
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the TLS port
            httpx.get(hub.url.replace("https://", "http://") + "/hub/health", timeout=5).raise_for_status()
        assert httpx.get(f"{hub.url}/hub/health", verify=str(cert), timeout=10).status_code == 200
        page = new_page(browser, ignore_https_errors=True)
        login(page, hub.url, frank, PASSWORD)
        start_lab(page, hub.url, frank)
        assert "TLS-DIRECT 7" in run_cell(page, "print('TLS-DIRECT', 3+4)", expect="TLS-DIRECT 7")
