"""The hub's URL layout: the one place that normalises ``base_url`` and builds server and hub prefixes.

Pure functions and one frozen value (:class:`HubUrls`) built once per hub from its settings, so the spawn engine,
the route reconciler and the web layer cannot disagree about where a server or a hub page lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


def quote_name(name: str) -> str:
    """A user or server name as it appears in a URL path (JupyterHub keeps ``@`` and ``~`` readable)."""
    return quote(name, safe="@~")


def normalize_base_url(base_url: str) -> str:
    """``""``, ``"/"``, ``"jh"``, ``"/jh"`` and ``"/jh/"`` all become ``"/"`` or ``"/jh/"``."""
    return "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"


def server_prefix(base_url: str, user: str, server_name: str = "") -> str:
    prefix = f"{normalize_base_url(base_url)}user/{quote_name(user)}/"
    return f"{prefix}{quote_name(server_name)}/" if server_name else prefix


@dataclass(frozen=True)
class HubUrls:
    """The hub's addresses: its URL prefix, how user servers reach it, and what browsers use."""

    base_url: str  # "/" or "/prefix/" (normalised by :meth:`build`)
    hub_connect_url: str  # e.g. http://127.0.0.1:8081 (no trailing slash)
    public_url: str = ""  # e.g. https://hub.example.org ("" when unset)
    default_url: str | None = None

    @classmethod
    def build(
        cls, base_url: str, hub_connect_url: str, public_url: str = "", default_url: str | None = None
    ) -> HubUrls:
        return cls(normalize_base_url(base_url), hub_connect_url.rstrip("/"), public_url, default_url)

    @property
    def hub_prefix(self) -> str:
        """``/hub/`` under the base URL: pages, the API and the OAuth provider live below it."""
        return f"{self.base_url}hub/"

    @property
    def api_prefix(self) -> str:
        """The REST API prefix without a trailing slash, e.g. ``/hub/api``."""
        return f"{self.hub_prefix}api"

    @property
    def hub_api_url(self) -> str:
        """The API as user servers reach it."""
        return f"{self.hub_connect_url.rstrip('/')}{self.base_url}hub/api"

    def server(self, user: str, server_name: str = "") -> str:
        """A server's URL prefix, e.g. ``/user/alice/`` or ``/user/alice/nb1/``."""
        return server_prefix(self.base_url, user, server_name)

    def service(self, name: str) -> str:
        """A hub service's URL prefix, e.g. ``/services/culler/``."""
        return f"{self.base_url}services/{quote_name(name)}/"
