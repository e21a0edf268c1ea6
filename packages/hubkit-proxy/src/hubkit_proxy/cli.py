"""``hubkit-proxy`` command line: configurable-http-proxy's flags (so JupyterHub can launch it) plus a few own.

CHP flags this proxy does not implement are accepted with a warning rather than refused, so a stock
JupyterHub config that passes them still starts; they are listed in ``UNSUPPORTED``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable

from . import __version__
from .server import Proxy
from .settings import Settings

UNSUPPORTED_VALUE = (
    "--socket",
    "--api-socket",
    "--metrics-socket",
    "--ssl-protocol",
    "--ssl-ciphers",
    "--ssl-dhparam",
    "--api-ssl-ca",
    "--client-ssl-key",
    "--client-ssl-cert",
    "--client-ssl-ca",
    "--redirect-port",
    "--redirect-to",
    "--protocol-rewrite",
    "--storage-backend",
)
UNSUPPORTED_FLAG = (
    "--ssl-request-cert",
    "--ssl-reject-unauthorized",
    "--ssl-allow-rc4",
    "--api-ssl-request-cert",
    "--api-ssl-reject-unauthorized",
    "--client-ssl-request-cert",
    "--client-ssl-reject-unauthorized",
    "--auto-rewrite",
    "--change-origin",
    "--insecure",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hubkit-proxy", description="Fast CHP-compatible HTTP/websocket proxy.")
    p.add_argument("--version", action="version", version=__version__)
    p.add_argument("--ip", default="", help="public interface ('' or '*' = all)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-ip", default="localhost")
    p.add_argument("--api-port", type=int, default=None, help="default: --port + 1")
    p.add_argument("--metrics-ip", default="")
    p.add_argument("--metrics-port", type=int, default=None)
    p.add_argument(
        "--default-target",
        action="append",
        default=[],
        help="target of route '/'; repeat it to name several (requests go to healthy ones in turn)",
    )
    p.add_argument("--error-target", default=None)
    p.add_argument("--error-path", default=None)
    p.add_argument("--ssl-key", default=None)
    p.add_argument("--ssl-cert", default=None)
    p.add_argument("--ssl-ca", default=None)
    p.add_argument("--api-ssl-key", default=None)
    p.add_argument("--api-ssl-cert", default=None)
    p.add_argument(
        "--log-level", default="info", type=str.lower, choices=["debug", "info", "warn", "warning", "error"]
    )
    p.add_argument("--timeout", type=int, default=None, help="ms of client inactivity on an open request")
    p.add_argument("--proxy-timeout", type=int, default=None, help="ms to wait for the target's response")
    p.add_argument("--keep-alive-timeout", type=int, default=5000, help="ms an idle client keep-alive lasts")
    p.add_argument(
        "--request-head-timeout",
        type=int,
        default=20000,
        help="ms a request head may take once it began (408)",
    )
    p.add_argument("--host-routing", action="store_true")
    p.add_argument("--no-x-forward", action="store_true")
    p.add_argument("--no-prepend-path", action="store_true")
    p.add_argument("--no-include-prefix", action="store_true")
    p.add_argument("--custom-header", action="append", default=[], help="k:v, repeatable")
    p.add_argument("--pid-file", default=None)
    p.add_argument(
        "--ports-file",
        default=None,
        help="write the bound ports as JSON once listening (use with --port 0 / --api-port 0)",
    )
    # hubkit-proxy's own options
    p.add_argument(
        "--state-file", default=None, help="route journal; a restarted proxy reloads its routes from it"
    )
    p.add_argument(
        "--peer", action="append", default=[], help="API URL of a replica to copy routes from at start"
    )
    p.add_argument("--max-upstream-per-route", type=int, default=256)
    p.add_argument("--max-header-size", type=int, default=64 * 1024, help="bytes of request line + headers")
    p.add_argument("--upstream-idle-timeout", type=int, default=4000, help="ms an idle pooled upstream lasts")
    p.add_argument("--no-uvloop", action="store_true", help="use the stdlib event loop")
    p.add_argument("--nginx-routes", default=None, help="experimental: render routes into this nginx include")
    p.add_argument(
        "--nginx-pid", default=None, help="experimental: nginx master pid file to SIGHUP on changes"
    )
    p.add_argument("--nginx-listen", default="127.0.0.1:8080", help="experimental: listen address rendered")
    p.add_argument(
        "--standby-fd",
        type=int,
        default=None,
        help="start, then wait: take over when a byte arrives on this fd, exit on EOF (the hub's warm standby)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="data-plane processes sharing the public port (SO_REUSEPORT) behind one API/journal master",
    )
    p.add_argument(
        "--health-check-interval", type=int, default=1000, help="ms between probes of several-target routes"
    )
    p.add_argument("--health-check-timeout", type=int, default=1000, help="ms a probe may take")
    p.add_argument(
        "--health-check-path",
        default="",
        help="GET this path on each target (< 500 = up); default: TCP connect",
    )
    p.add_argument(
        "--fail-timeout", type=int, default=10000, help="ms a target that refused a connection is skipped"
    )
    for flag in UNSUPPORTED_VALUE:
        p.add_argument(flag, default=None, help=argparse.SUPPRESS)
    for flag in UNSUPPORTED_FLAG:
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    headers: list[tuple[str, str]] = []
    for item in args.custom_header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"hubkit-proxy: --custom-header wants 'name:value', got {item!r}")
        headers.append((name.strip(), value.strip()))
    ms = lambda v: None if v is None else v / 1000.0  # noqa: E731
    return Settings(
        ip=args.ip,
        port=args.port,
        api_ip=args.api_ip,
        api_port=args.api_port,
        metrics_ip=args.metrics_ip,
        metrics_port=args.metrics_port,
        default_targets=args.default_target,
        error_target=args.error_target,
        error_path=args.error_path,
        ssl_key=args.ssl_key,
        ssl_cert=args.ssl_cert,
        ssl_ca=args.ssl_ca,
        api_ssl_key=args.api_ssl_key,
        api_ssl_cert=args.api_ssl_cert,
        log_level=args.log_level,
        timeout=ms(args.timeout),
        proxy_timeout=ms(args.proxy_timeout),
        keep_alive_timeout=args.keep_alive_timeout / 1000.0,
        request_head_timeout=args.request_head_timeout / 1000.0,
        upstream_idle_timeout=args.upstream_idle_timeout / 1000.0,
        host_routing=args.host_routing,
        x_forward=not args.no_x_forward,
        prepend_path=not args.no_prepend_path,
        include_prefix=not args.no_include_prefix,
        custom_headers=headers,
        pid_file=args.pid_file,
        ports_file=args.ports_file,
        auth_token=os.environ.get("CONFIGPROXY_AUTH_TOKEN") or None,
        hub_mark=os.environ.get("HUBKIT_PROXY_HUB_MARK") or None,
        state_file=args.state_file,
        peers=args.peer,
        max_upstream_per_route=args.max_upstream_per_route,
        max_header_bytes=args.max_header_size,
        workers=args.workers,
        nginx_routes=args.nginx_routes,
        nginx_pid=args.nginx_pid,
        nginx_listen=args.nginx_listen,
        no_uvloop=args.no_uvloop,
        fail_timeout=args.fail_timeout / 1000.0,
        health_check_interval=args.health_check_interval / 1000.0,
        health_check_timeout=args.health_check_timeout / 1000.0,
        health_check_path=args.health_check_path,
    )


async def serve(settings: Settings) -> None:
    proxy = Proxy(settings, role="master" if settings.workers > 1 else "single")
    await proxy.start()
    stop = proxy.exit
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await proxy.stop()


def loop_factory(no_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when it is installed (a default dependency where it builds), else the stdlib loop."""
    if no_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        logging.getLogger("hubkit_proxy").info("uvloop is not installed: running on the stdlib event loop")
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def wait_for_takeover(fd: int) -> bool:
    """A warm standby: everything is imported and parsed; block until told to take over (True) or until the
    hub that started it is gone (EOF: False). Taking over then costs only binding and replaying the journal."""
    try:
        go = os.read(fd, 1)
    except OSError:
        go = b""
    os.close(fd)
    logging.getLogger("hubkit_proxy").info("standby %s", "taking over" if go else "no longer needed")
    return bool(go)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    level = {"warn": "WARNING"}.get(args.log_level, args.log_level.upper())
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    log = logging.getLogger("hubkit_proxy")
    for flag in (*UNSUPPORTED_VALUE, *UNSUPPORTED_FLAG):
        if getattr(args, flag[2:].replace("-", "_")):
            log.warning("%s is accepted for CHP compatibility but not implemented; ignored", flag)
    if args.error_target and args.error_path:
        raise SystemExit("hubkit-proxy: --error-target and --error-path cannot be combined")
    if args.workers < 1:
        raise SystemExit("hubkit-proxy: --workers must be at least 1")
    settings = settings_from_args(args)
    if not settings.auth_token:
        log.warning("CONFIGPROXY_AUTH_TOKEN is not set: the REST API is unauthenticated")
    factory = loop_factory(args.no_uvloop)
    if args.standby_fd is not None and not wait_for_takeover(args.standby_fd):
        return
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(settings))
    except OSError as exc:
        raise SystemExit(f"hubkit-proxy: {exc}") from exc


if __name__ == "__main__":
    main()
