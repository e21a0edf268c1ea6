"""Runtime settings of one proxy process, filled from the CHP-compatible command line."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Settings:
    ip: str = ""
    port: int = 8000
    api_ip: str = "localhost"
    api_port: int | None = None  # default: port + 1, as CHP
    metrics_ip: str = ""
    metrics_port: int | None = (
        None  # extra listener for /metrics (CHP flag); /metrics is always on the API port too
    )
    default_targets: list[str] = field(default_factory=list)  # route "/": the first, then alternatives
    error_target: str | None = None
    error_path: str | None = None
    ssl_key: str | None = None
    ssl_cert: str | None = None
    ssl_ca: str | None = None
    api_ssl_key: str | None = None
    api_ssl_cert: str | None = None
    log_level: str = "info"
    timeout: float | None = None  # seconds of client inactivity on an open request (CHP --timeout)
    proxy_timeout: float | None = None  # seconds to wait for the upstream's response (CHP --proxy-timeout)
    keep_alive_timeout: float = 5.0  # idle client keep-alive connections are closed after this
    request_head_timeout: float = 20.0  # a request head not complete this long after it began: 408, closed
    upstream_idle_timeout: float = 4.0  # idle pooled upstream connections are closed after this
    connect_timeout: float = 10.0
    fail_timeout: float = (
        10.0  # a target that refused a connection is skipped this long (several-target routes)
    )
    health_check_interval: float = 1.0  # seconds between probes of several-target routes' targets
    health_check_timeout: float = 1.0
    health_check_path: str = ""  # "" = a TCP connect is the probe; else GET this path, < 500 = healthy
    host_routing: bool = False
    x_forward: bool = True
    prepend_path: bool = True
    include_prefix: bool = True
    custom_headers: list[tuple[str, str]] = field(default_factory=list)
    # sent as X-Hubkit-Forwarded on requests the "/" route (the hub's) forwards, so the hub can tell this proxy
    # from other local processes; from the environment (HUBKIT_PROXY_HUB_MARK), never the command line
    hub_mark: str | None = field(default=None, repr=False)
    pid_file: str | None = None
    ports_file: str | None = None  # JSON with the ports actually bound (what port 0 became), written at start
    auth_token: str | None = None
    state_file: str | None = None  # route journal: a restarted proxy has its routes back at once
    peers: list[str] = field(default_factory=list)  # other replicas' API URLs to copy the table from at start
    nginx_routes: str | None = None  # experimental: render the table into this nginx include (nginxplane.py)
    nginx_pid: str | None = None  # ... and SIGHUP this nginx master after changes
    nginx_listen: str = "127.0.0.1:8080"  # ... where the rendered server block listens
    workers: int = 1  # >1: a master (API, journal) plus this many SO_REUSEPORT data-plane processes
    no_uvloop: bool = False
    max_upstream_per_route: int = 256
    max_header_bytes: int = 64 * 1024
    max_api_body: int = 1024 * 1024

    @property
    def effective_api_port(self) -> int:
        """CHP's default is ``port + 1``; with ``port`` 0 the API gets a kernel-chosen port too."""
        if self.api_port is not None:
            return self.api_port
        return self.port + 1 if self.port else 0
