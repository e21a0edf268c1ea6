"""Prometheus text metrics kept as plain counters, so the hot path pays one dict increment per request."""

from __future__ import annotations

import bisect
import os
import resource
from typing import Any

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[int, int] = {}
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_n = 0
        self.client_conns = 0
        self.upstream_conns = 0
        self.websockets = 0
        self.websockets_total = 0
        self.upstream_errors = 0
        self.bad_requests = 0
        self.raw_bodies = 0

    def snapshot(self) -> dict[str, Any]:
        """Counters and gauges as JSON (a worker's report to its master)."""
        return {k: v for k, v in vars(self).items()}

    @classmethod
    def merged(cls, snapshots: list[dict[str, Any]]) -> Metrics:
        """The sum of several workers' snapshots."""
        total = cls()
        for snap in snapshots:
            for code, n in snap.get("requests", {}).items():
                total.requests[int(code)] = total.requests.get(int(code), 0) + n
            total.latency_counts = [
                a + b for a, b in zip(total.latency_counts, snap.get("latency_counts", []), strict=False)
            ]
            for name in (
                "latency_sum",
                "latency_n",
                "client_conns",
                "upstream_conns",
                "websockets",
                "websockets_total",
                "upstream_errors",
                "bad_requests",
                "raw_bodies",
            ):
                setattr(total, name, getattr(total, name) + snap.get(name, 0))
        return total

    def count(self, status: int) -> None:
        self.requests[status] = self.requests.get(status, 0) + 1

    def observe_upstream(self, seconds: float) -> None:
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        self.latency_n += 1

    def render(self, extra: dict[str, Any] | None = None, info: dict[str, str] | None = None) -> str:
        lines = [
            "# HELP hubkit_proxy_requests_total Proxied HTTP requests by response status.",
            "# TYPE hubkit_proxy_requests_total counter",
        ]
        for code in sorted(self.requests):
            lines.append(f'hubkit_proxy_requests_total{{code="{code}"}} {self.requests[code]}')
        lines += [
            "# HELP hubkit_proxy_upstream_latency_seconds Time from sending a request upstream to its response head.",
            "# TYPE hubkit_proxy_upstream_latency_seconds histogram",
        ]
        cumulative = 0
        for bound, n in zip(LATENCY_BUCKETS, self.latency_counts, strict=False):
            cumulative += n
            lines.append(f'hubkit_proxy_upstream_latency_seconds_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'hubkit_proxy_upstream_latency_seconds_bucket{{le="+Inf"}} {self.latency_n}')
        lines.append(f"hubkit_proxy_upstream_latency_seconds_sum {self.latency_sum:.6f}")
        lines.append(f"hubkit_proxy_upstream_latency_seconds_count {self.latency_n}")
        gauges = {
            "hubkit_proxy_open_client_connections": ("Open client connections.", self.client_conns),
            "hubkit_proxy_open_upstream_connections": ("Open upstream connections.", self.upstream_conns),
            "hubkit_proxy_open_websockets": ("Open websocket tunnels.", self.websockets),
            "process_open_fds": ("Open file descriptors.", open_fds()),
            "process_resident_memory_bytes": ("Resident memory.", rss_bytes()),
        }
        for name, (help_, value) in {**gauges, **(extra or {})}.items():
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} gauge", f"{name} {value}"]
        counters = {
            "hubkit_proxy_websockets_total": ("Websocket tunnels opened.", self.websockets_total),
            "hubkit_proxy_upstream_errors_total": (
                "Upstream connect/reset/timeout errors.",
                self.upstream_errors,
            ),
            "hubkit_proxy_bad_requests_total": ("Malformed or oversized client requests.", self.bad_requests),
            "hubkit_proxy_passthrough_bodies_total": (
                "Large fixed-length response bodies passed through unparsed.",
                self.raw_bodies,
            ),
        }
        for name, (help_, value) in counters.items():
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} counter", f"{name} {value}"]
        if info:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(info.items()))
            lines += [
                "# HELP hubkit_proxy_info How this proxy process runs (event loop, heap tuning).",
                "# TYPE hubkit_proxy_info gauge",
                f"hubkit_proxy_info{{{labels}}} 1",
            ]
        return "\n".join(lines) + "\n"
