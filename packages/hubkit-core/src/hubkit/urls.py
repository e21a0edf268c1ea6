"""The hub's URL layout: the one place that normalises ``base_url`` and builds server and hub prefixes.

Pure functions and one frozen value (:class:`HubUrls`) built once per hub from its settings, so the spawn engine,
the route reconciler and the web layer cannot disagree about where a server or a hub page lives.

With per-user subdomains (``[hub] subdomain_host``, JupyterHub's) a server keeps its path prefix
(``/user/alice/``) but lives on its owner's host (``alice.hub.example``): its proxy route starts with that host
and the URLs browsers follow to it are absolute. Host names come from :func:`dns_label`, which follows
JupyterHub's ``idna`` subdomain rules so users keep their addresses when a hub moves over.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from urllib.parse import quote, urlsplit


def quote_name(name: str) -> str:
    """A user or server name as it appears in a URL path (JupyterHub keeps ``@`` and ``~`` readable)."""
    return quote(name, safe="@~")


def normalize_base_url(base_url: str) -> str:
    """``""``, ``"/"``, ``"jh"``, ``"/jh"`` and ``"/jh/"`` all become ``"/"`` or ``"/jh/"``."""
    return "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"


def server_prefix(base_url: str, user: str, server_name: str = "") -> str:
    prefix = f"{normalize_base_url(base_url)}user/{quote_name(user)}/"
    return f"{prefix}{quote_name(server_name)}/" if server_name else prefix


_DNS_SAFE = frozenset(string.ascii_lowercase + string.digits)
_LABEL = re.compile(r"^[a-z0-9-]{1,63}$")


def _label_ok(label: str) -> bool:
    return bool(_LABEL.match(label)) and not label.isdigit() and label[0] != "-" and label[-1] != "-"


def dns_label(name: str) -> str:
    """A user name as one DNS label (lower case): the name itself when it is a valid label, else its IDNA form,
    else ``u-<up to 8 safe characters>--<7 hex of its SHA-256>``. Names containing ``--`` always take the last
    form, so no name can collide with another's encoding (the same rules as JupyterHub's ``idna`` hook)."""
    lowered = name.lower()
    if "--" not in name:
        if _label_ok(lowered):
            return lowered
        try:
            encoded = name.encode("idna").decode("ascii").lower()
        except UnicodeError:
            encoded = ""
        if encoded and encoded != lowered and _label_ok(encoded):
            return encoded
    stub = "".join(c for c in lowered if c in _DNS_SAFE)[:8] or "x"
    return f"u-{stub}--{hashlib.sha256(name.encode('utf-8')).hexdigest()[:7]}"


@dataclass(frozen=True)
class HubUrls:
    """The hub's addresses: its URL prefix, how user servers reach it, and what browsers use."""

    base_url: str  # "/" or "/prefix/" (normalised by :meth:`build`)
    hub_connect_url: str  # e.g. http://127.0.0.1:8081 (no trailing slash)
    public_url: str = ""  # e.g. https://hub.example.org ("" when unset)
    default_url: str | None = None
    subdomain_host: str = ""  # the hub's origin when users have subdomains, e.g. https://hub.example.org

    @classmethod
    def build(
        cls,
        base_url: str,
        hub_connect_url: str,
        public_url: str = "",
        default_url: str | None = None,
        subdomain_host: str = "",
    ) -> HubUrls:
        return cls(
            normalize_base_url(base_url),
            hub_connect_url.rstrip("/"),
            public_url,
            default_url,
            subdomain_host.rstrip("/"),
        )

    # ---- per-user subdomains --------------------------------------------------------------------------------

    @property
    def subdomains(self) -> bool:
        return bool(self.subdomain_host)

    @property
    def hub_host(self) -> str:
        """The hub's own host (``hub.example.org``, no port) with subdomains, else ``""``."""
        return (urlsplit(self.subdomain_host).hostname or "") if self.subdomain_host else ""

    def user_host(self, user: str) -> str:
        """The host name of a user's servers (``alice.hub.example.org``), ``""`` without subdomains."""
        return f"{dns_label(user)}.{self.hub_host}" if self.subdomain_host else ""

    def user_origin(self, user: str) -> str:
        """``https://alice.hub.example.org[:port]`` with subdomains, else ``""`` (same origin as the hub)."""
        return self._origin_on(self.user_host(user)) if self.subdomain_host else ""

    @property
    def any_user_origin(self) -> str:
        """Every user's origin as a CSP source (``https://*.hub.example.org[:port]``); ``""`` without subdomains."""
        return self._origin_on(f"*.{self.hub_host}") if self.subdomain_host else ""

    def _origin_on(self, host: str) -> str:
        parts = urlsplit(self.subdomain_host)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}"

    def owner_of_host(self, host: str) -> bool:
        """Whether ``host`` (a Host header, port allowed) is some user's subdomain rather than the hub's host."""
        name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else ""
        return bool(self.subdomain_host) and name.endswith("." + self.hub_host)

    def routespec(self, user: str, server_name: str = "") -> str:
        """The server's proxy route: ``/user/alice/``, or ``alice.hub.example.org/user/alice/`` with subdomains."""
        return f"{self.user_host(user)}{self.server(user, server_name)}"

    def server_url(self, user: str, server_name: str = "") -> str:
        """Where browsers find the server: its prefix, absolute (on its owner's host) with subdomains."""
        return f"{self.user_origin(user)}{self.server(user, server_name)}"

    def hub_page(self, path: str) -> str:
        """A hub page (``path`` under ``/hub/``) as a link that works from any host: absolute with subdomains."""
        return f"{self.subdomain_host}{self.hub_prefix}{path}"

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

    def service_host(self, name: str) -> str:
        """With per-user subdomains a service has its own host too: ``culler--service.hub.example.org``
        (JupyterHub's naming); ``""`` without subdomains."""
        return f"{dns_label(name)}--service.{self.hub_host}" if self.subdomain_host else ""

    def service_routespec(self, name: str) -> str:
        return f"{self.service_host(name)}{self.service(name)}"

    def service_url(self, name: str) -> str:
        """Where browsers find a service: its prefix, absolute on its own host with subdomains."""
        origin = self._origin_on(self.service_host(name)) if self.subdomain_host else ""
        return f"{origin}{self.service(name)}"
