"""Debian's nginx serving examples/vm/nginx-hubkit-subdomains.conf, changed only in its ports, names, certificate
paths and upstream, with a wildcard certificate made by examples/vm/self-signed-cert.sh --wildcard."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "vm"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# nginx as an unprivileged foreground process whose files all live in one directory
MAIN = """\
user root root;
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 128; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp-body;
    proxy_temp_path {d}/tmp-proxy;
    fastcgi_temp_path {d}/tmp-fastcgi;
    uwsgi_temp_path {d}/tmp-uwsgi;
    scgi_temp_path {d}/tmp-scgi;
    include {d}/site.conf;
}}
"""


def wildcard_cert(dest: Path, name: str) -> tuple[Path, Path]:
    subprocess.run(
        ["bash", str(EXAMPLE / "self-signed-cert.sh"), "--wildcard", name, str(dest)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return dest / "cert.pem", dest / "key.pem"


def adapt(
    text: str, *, domain: str, http_port: int, https_port: int, cert: Path, key: Path, upstream: str
) -> str:
    """Each change must apply (at least once), or the example has changed under the test."""
    swaps = [
        (r"listen 80;", f"listen 127.0.0.1:{http_port};"),
        (r"listen 443 ssl http2", f"listen 127.0.0.1:{https_port} ssl http2"),
        (r"\s*listen \[::\]:\d+[^;]*;", ""),  # IPv6 may be off in containers
        (r"hub\.example\.org", domain),
        (r"ssl_certificate\s+/etc/hubkit/tls/cert.pem;", f"ssl_certificate {cert};"),
        (r"ssl_certificate_key\s+/etc/hubkit/tls/key.pem;", f"ssl_certificate_key {key};"),
        (r"proxy_pass http://127.0.0.1:8000;", f"proxy_pass {upstream};"),
    ]
    for pattern, repl in swaps:
        text, n = re.subn(pattern, lambda _m, r=repl: r, text)
        assert n >= 1, f"nginx-hubkit-subdomains.conf no longer contains {pattern!r}"
    return text


class PortTaken(Exception):
    """nginx could not bind a port another program took after it was chosen: choose again."""


def _wait_listening(proc: subprocess.Popen[bytes], workdir: Path, ports: list[int], limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (workdir / "error.log").read_text(errors="replace") if (workdir / "error.log").exists() else ""
            if "address already in use" in log.lower():
                raise PortTaken(log[-500:])
            raise AssertionError(f"nginx exited with {proc.returncode}:\n{log[-2000:]}")
        try:
            for port in ports:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nginx did not listen on {ports} within {limit}s")


@contextlib.contextmanager
def serving(workdir: Path, **site: object) -> Iterator[Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    text = (EXAMPLE / "nginx-hubkit-subdomains.conf").read_text()
    (workdir / "site.conf").write_text(adapt(text, **site))  # type: ignore[arg-type]
    (workdir / "nginx.conf").write_text(MAIN.format(d=workdir))
    args = [NGINX, "-c", str(workdir / "nginx.conf"), "-p", str(workdir)]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30, check=False)
    assert check.returncode == 0, f"nginx -t refused the example:\n{check.stderr}"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ports = [int(str(site["http_port"])), int(str(site["https_port"]))]
    try:
        _wait_listening(proc, workdir, ports)
    except BaseException:
        proc.kill()
        proc.wait(5)
        raise
    try:
        yield workdir
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
