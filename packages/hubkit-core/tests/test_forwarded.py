"""Which client address the hub believes (auth/forwarded.py), with and without a proxy that marks its requests."""

from __future__ import annotations

from types import SimpleNamespace

from hubkit.auth.forwarded import MARK_HEADER, Trust, parse_networks, resolve, trust_for

LOOPBACK = parse_networks(["127.0.0.0/8", "::1"])
MARK = "b" * 64


def settings(trusted: list[str] | None, backend: str = "hubkit") -> SimpleNamespace:
    return SimpleNamespace(
        hub=SimpleNamespace(trusted_proxies=trusted), proxy=SimpleNamespace(backend=backend)
    )


def test_without_a_mark_a_loopback_peer_is_believed_as_before() -> None:
    trust = trust_for(settings(None), None)
    assert trust == Trust(LOOPBACK)
    got = resolve("127.0.0.1", "http", {"x-forwarded-for": "203.0.113.9, 127.0.0.5"}, trust)
    assert got.addr == "203.0.113.9"  # every loopback hop is skipped: any local process could say this


def test_with_a_mark_only_marked_requests_are_read() -> None:
    trust = trust_for(settings(None), MARK)
    headers = {"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"}
    # a local process talking to the hub's port: no mark, so its own address counts
    assert resolve("127.0.0.1", "http", headers, trust).addr == "127.0.0.1"
    assert resolve("127.0.0.1", "http", {**headers, MARK_HEADER: "b" * 63 + "c"}, trust).addr == "127.0.0.1"
    assert resolve("127.0.0.1", "http", {**headers, MARK_HEADER: ""}, trust).scheme == "http"
    marked = resolve("127.0.0.1", "http", {**headers, MARK_HEADER: MARK}, trust)
    assert (marked.addr, marked.scheme) == ("203.0.113.9", "https")


def test_with_a_mark_only_the_proxys_own_entry_is_taken_by_default() -> None:
    # through the proxy from 127.0.0.7, claiming 203.0.113.9: the proxy appends what it saw, and that is the client
    trust = trust_for(settings(None), MARK)
    headers = {"x-forwarded-for": "203.0.113.9, 127.0.0.7", MARK_HEADER: MARK}
    assert resolve("127.0.0.1", "http", headers, trust).addr == "127.0.0.7"


def test_with_a_mark_configured_proxies_in_front_are_walked() -> None:
    # nginx at 10.0.0.2 in front of hubkit-proxy, named by the operator: its entry is skipped, a client's is not
    trust = trust_for(settings(["10.0.0.2"]), MARK)
    headers = {"x-forwarded-for": "198.51.100.1, 203.0.113.9, 10.0.0.2", MARK_HEADER: MARK}
    assert resolve("127.0.0.1", "http", headers, trust).addr == "203.0.113.9"
    # the mark is what proves the proxy, wherever it connects from
    assert resolve("192.0.2.50", "http", headers, trust).addr == "203.0.113.9"


def test_the_hub_facing_browsers_believes_nothing() -> None:
    trust = trust_for(settings(None, backend="none"), None)
    assert resolve("127.0.0.1", "http", {"x-forwarded-for": "203.0.113.9"}, trust).addr == "127.0.0.1"
