"""Run Debian's nginx with the examples/vm site file, adapted only in ports, certificate paths and upstream."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hubkit.testing import require

from .hubproc import EXAMPLE, read_pid

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class PortTaken(Exception):
    """nginx could not bind a port another program took after it was chosen: choose again."""


MAIN_CONF = """\
user root root;
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/site.conf;
}}
"""


@dataclass
class Nginx:
    workdir: Path
    http_port: int
    https_port: int
    proc: subprocess.Popen[bytes] | None = None

    def log(self, name: str = "error.log") -> str:
        p = self.workdir / name
        return p.read_text(errors="replace") if p.exists() else ""


def adapt_site(text: str, *, http_port: int, https_port: int, cert: Path, key: Path, upstream: str) -> str:
    """The example site with this test's ports/paths. Each replacement must hit, or the example changed."""
    swaps = [
        (r"listen 80;", f"listen 127.0.0.1:{http_port};"),
        (r"listen \[::\]:80;\n", ""),  # IPv6 may be off in containers
        (r"listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        (r"listen \[::\]:443 ssl http2;\n", ""),
        (r"ssl_certificate\s+/etc/hubkit/tls/cert.pem;", f"ssl_certificate {cert};"),
        (r"ssl_certificate_key\s+/etc/hubkit/tls/key.pem;", f"ssl_certificate_key {key};"),
        (r"proxy_pass http://127.0.0.1:8000;", f"proxy_pass {upstream};"),
    ]
    for pattern, repl in swaps:
        text, n = re.subn(pattern, lambda _m, r=repl: r, text)
        assert n >= 1, f"examples/vm/nginx-hubkit.conf no longer contains {pattern!r}"
    return text


def _wait_listening(ngx: Nginx, limit: float = 30) -> None:
    assert ngx.proc is not None
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if ngx.proc.poll() is not None:
            if "address already in use" in ngx.log().lower():
                raise PortTaken(ngx.log()[-500:])
            raise AssertionError(f"nginx exited with {ngx.proc.returncode}:\n{ngx.log()[-2000:]}")
        try:
            for port in (ngx.http_port, ngx.https_port):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nginx did not listen within {limit}s:\n{ngx.log()[-2000:]}")


@contextlib.contextmanager
def running_nginx(
    workdir: Path, *, http_port: int, https_port: int, cert: Path, key: Path, upstream: str
) -> Iterator[Nginx]:
    require(Path(NGINX).exists(), "nginx is not installed (apt-get install nginx)")
    workdir.mkdir(parents=True, exist_ok=True)
    site = adapt_site(
        (EXAMPLE / "nginx-hubkit.conf").read_text(),
        http_port=http_port,
        https_port=https_port,
        cert=cert,
        key=key,
        upstream=upstream,
    )
    (workdir / "site.conf").write_text(site)
    (workdir / "nginx.conf").write_text(MAIN_CONF.format(d=workdir))
    check = subprocess.run(
        [NGINX, "-t", "-c", str(workdir / "nginx.conf"), "-p", str(workdir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, f"nginx -t refused the example site:\n{check.stderr}"
    ngx = Nginx(workdir, http_port, https_port)
    ngx.proc = subprocess.Popen(
        [NGINX, "-c", str(workdir / "nginx.conf"), "-p", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_listening(ngx)
    try:
        yield ngx
    finally:
        ngx.proc.send_signal(signal.SIGQUIT)  # graceful: master and workers
        try:
            ngx.proc.wait(15)
        except subprocess.TimeoutExpired:
            ngx.proc.kill()
            ngx.proc.wait(5)
        pid = read_pid(workdir / "nginx.pid")
        assert pid is None or pid == ngx.proc.pid
