"""The login limiter's buckets: per (user, address) and per address, IPv6 counted by its /64."""

from __future__ import annotations

from hubkit.auth.ratelimit import LoginRateLimiter, bucket_address


def test_ipv6_addresses_count_by_their_64_and_ipv4_by_itself() -> None:
    assert (
        bucket_address("2001:db8:1:2:aaaa::1")
        == bucket_address("2001:db8:1:2:ffff::9")
        == "2001:db8:1:2::/64"
    )
    assert bucket_address("2001:db8:1:3::1") != bucket_address("2001:db8:1:2::1")
    assert bucket_address("::ffff:10.0.0.7") == "10.0.0.7"
    assert bucket_address("10.0.0.7") == "10.0.0.7"
    assert bucket_address("fe80::1%eth0") == "fe80::/64"
    assert bucket_address("unix-peer") == "unix-peer"


def test_rotating_addresses_inside_one_64_meets_the_same_limit() -> None:
    rl = LoginRateLimiter(limit=3, window=60, per_address=5)
    for i in range(3):
        assert rl.retry_after("alice", f"2001:db8::{i + 1}", now=0) == 0
        rl.failed("alice", f"2001:db8::{i + 1}", now=0)
    assert rl.retry_after("alice", "2001:db8::99", now=1) > 0  # same /64: refused for alice
    assert rl.retry_after("alice", "2001:db8:0:1::1", now=1) == 0  # another /64: not
    assert rl.retry_after("bob", "2001:db8::99", now=1) == 0  # per-address bucket not full yet (3 of 5)
    for i in range(2):
        rl.failed("bob", f"2001:db8::{i + 50}", now=1)
    assert rl.retry_after("carol", "2001:db8::7", now=2) > 0  # the /64 has spent its 5 attempts
    rl.succeeded("bob", "2001:db8::51")  # a success gives back one advance-counted attempt of the /64
    assert rl.retry_after("carol", "2001:db8::7", now=2) == 0
