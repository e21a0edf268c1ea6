"""Who is really on the other end: ``X-Forwarded-*`` headers are believed only from trusted proxies.

Any client can send ``X-Forwarded-For``; a proxy appends the address it saw. So the list is read from the right,
skipping addresses of proxies the operator trusts (``[hub] trusted_proxies``; by default loopback when a proxy
backend is in front, nothing when the hub faces browsers itself), and the first address that is not a trusted
proxy is the client. The scheme and host a browser used are taken the same way. Login rate limits count per
client address, so a spoofed header must not be able to pick someone else's bucket.

Loopback is shared with every process on the machine, users' servers included. So when the proxy in front can
prove its hop (hubkit-proxy adds ``X-Hubkit-Forwarded: <mark>`` to what it sends the hub, and drops that header
from what clients send), the headers are believed only on requests carrying the mark, and only the proxy's own
entry plus entries of explicitly configured ``trusted_proxies`` are walked: a local process, whether it calls the
hub's port or goes through the proxy, is counted under the address it really has.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ("127.0.0.0/8", "::1/128")
MARK_HEADER = "x-hubkit-forwarded"


@dataclass(frozen=True)
class Client:
    addr: str
    scheme: str
    host: str | None  # the Host a trusted proxy reports the browser used, if any


def parse_networks(raw: Iterable[str], *, key: str = "hub.trusted_proxies") -> tuple[Network, ...]:
    out = []
    for item in raw:
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{item!r} is not an IP address or network (CIDR)", key=key) from None
    return tuple(out)


@dataclass(frozen=True)
class Trust:
    """Which connections' ``X-Forwarded-*`` to believe.

    ``nets``: peers whose headers are read (without a mark). ``mark``: when set, a request must carry it
    (constant-time compare) instead, and ``chain`` lists the proxies in front of the marking proxy whose own
    entries are skipped too (the operator's ``trusted_proxies``; empty by default)."""

    nets: tuple[Network, ...] = ()
    mark: str | None = None
    chain: tuple[Network, ...] = ()


def default_trusted(settings: Any) -> tuple[Network, ...]:
    configured = settings.hub.trusted_proxies
    if configured is not None:
        return parse_networks(configured)
    return parse_networks(LOOPBACK) if settings.proxy.backend != "none" else ()


def trust_for(settings: Any, mark: str | None) -> Trust:
    """The trust of a hub whose proxy marks its requests with ``mark`` (``None``: it cannot)."""
    if not mark:
        return Trust(default_trusted(settings))
    configured = settings.hub.trusted_proxies
    return Trust(
        default_trusted(settings), mark, parse_networks(configured) if configured is not None else ()
    )


def _trusted(addr: str, nets: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(addr.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in n for n in nets)


def _split(value: str | None) -> list[str]:
    return [p.strip() for p in value.split(",")] if value else []


def resolve(peer: str, scheme: str, headers: Any, trust: Trust | Sequence[Network]) -> Client:
    """``headers`` is any mapping with ``get`` (Starlette's headers, a dict of lower-case names)."""
    if not isinstance(trust, Trust):
        trust = Trust(tuple(trust))
    if trust.mark is not None:
        got = headers.get(MARK_HEADER)
        if not got or not hmac.compare_digest(got.encode("latin-1", "replace"), trust.mark.encode("latin-1")):
            return Client(peer, scheme, None)
        walk = trust.chain  # past the marking proxy's own entry, only proxies the operator named
    elif not trust.nets or not _trusted(peer, trust.nets):
        return Client(peer, scheme, None)
    else:
        walk = trust.nets
    hops = _split(headers.get("x-forwarded-for"))
    protos = _split(headers.get("x-forwarded-proto"))
    if not hops:  # a trusted peer that forwarded nothing
        return Client(peer, scheme, None)
    index = len(hops) - 1  # the entry the peer itself added
    client = hops[index]
    while index > 0 and _trusted(client, walk):
        index -= 1
        client = hops[index]
    if protos:
        proto = protos[min(index, len(protos) - 1)]
        scheme = {"wss": "https", "ws": "http"}.get(proto, proto)
    host = _split(headers.get("x-forwarded-host"))
    return Client(client, scheme if scheme in ("http", "https") else "http", host[0] if host else None)


def of(conn: Any) -> Client:
    """The client of a Starlette request/websocket, cached on its scope. The app stores its :class:`Trust`
    in ``app.state.trusted_proxies``."""
    cached = conn.scope.get("hubkit.client")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    nets = getattr(conn.app.state, "trusted_proxies", ())
    peer = conn.client.host if conn.client else ""
    client = resolve(peer, conn.url.scheme, conn.headers, nets)
    conn.scope["hubkit.client"] = client
    return client
