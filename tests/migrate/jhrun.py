"""A real JupyterHub 6.1.1 (from PyPI) with configurable-http-proxy, run for the import tests, and the data
they put into it through JupyterHub's own REST API and login page."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from hubkit.testing import require
from hubkit.testing.processes import free_port, retry_on_address_in_use

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]

CONFIG = """
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = {db_url!r}
c.JupyterHub.cookie_secret_file = "{tmp}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{tmp}/jupyterhub.pid"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.pid_file = "{tmp}/proxy.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"adm"}}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{tmp}/home/{{username}}"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = ["--allow-root"]
c.Spawner.environment = {{"JUPYTERHUB_SINGLEUSER_APP": "jupyter_server.serverapp.ServerApp"}}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.JupyterHub.allow_named_servers = True
c.JupyterHub.services = [{{"name": "tester", "api_token": {service_token!r}, "admin": True}}]
c.JupyterHub.load_roles = [
    {{"name": "tester", "services": ["tester"],
      "scopes": ["admin:users", "admin:servers", "admin:groups", "tokens", "access:servers"]}},
    {{"name": "tutors", "scopes": ["read:users!group=students"], "users": ["bob"]}},
]
# an operator-supplied token: JupyterHub hashes these with 16384 rounds
c.JupyterHub.api_tokens = {{{config_token!r}: "carol"}}


async def add_user_info(authenticator, handler, authentication):
    name = authentication["name"]
    authentication["user_info"] = {{"display_name": name.title(), "email": name + "@example.org"}}
    return authentication


c.Authenticator.post_auth_hook = add_user_info
"""


def chp_bin() -> str | None:
    env = os.environ.get("HUBKIT_CHP_BIN")
    if env:
        return env
    path = REPO / ".cache/npm/node_modules/.bin/configurable-http-proxy"
    return str(path) if path.exists() else None


@dataclass
class JupyterHubRun:
    tmp: Path
    db_url: str
    public: str = ""
    service_token: str = field(default_factory=lambda: secrets.token_hex(16))
    config_token: str = field(default_factory=lambda: "carols-config-token-" + secrets.token_hex(8))
    tokens: dict[str, str] = field(default_factory=dict)  # label -> secret, made through the REST API

    @property
    def log(self) -> Path:
        return self.tmp / "jupyterhub.log"

    def api(self, method: str, path: str, body: object = None, token: str | None = None) -> httpx.Response:
        r = httpx.request(
            method,
            f"{self.public}/hub/api{path}",
            json=body,
            timeout=60,
            headers={"Authorization": f"token {token or self.service_token}"},
        )
        assert r.status_code < 400, f"{method} {path}: {r.status_code} {r.text}\n{self.tail()}"
        return r

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@contextmanager
def running_jupyterhub(tmp: Path, db_url: str) -> Iterator[JupyterHubRun]:
    jh = shutil.which("jupyterhub", path=str(VENV_BIN))
    singleuser = shutil.which("jupyterhub-singleuser", path=str(VENV_BIN))
    require(jh is not None and singleuser is not None, "jupyterhub==6.1.1 is not installed in this venv")
    chp = chp_bin()
    require(chp is not None, "configurable-http-proxy not installed (run .ci/setup/proxy.sh)")
    tmp.mkdir(parents=True, exist_ok=True)
    run = JupyterHubRun(tmp=tmp, db_url=db_url)
    env = dict(os.environ, CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(16), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    seen = [0]

    def launch() -> subprocess.Popen[bytes]:
        """JupyterHub and CHP cannot bind port 0 and report it: fresh ports, and another try (through
        retry_on_address_in_use) when another program took one of them in between."""
        seen[0] = run.log.stat().st_size if run.log.exists() else 0
        port, hub_port, api_port = free_port(), free_port(), free_port()
        run.public = f"http://127.0.0.1:{port}"
        (tmp / "jupyterhub_config.py").write_text(
            CONFIG.format(
                port=port,
                hub_port=hub_port,
                api_port=api_port,
                db_url=db_url,
                tmp=tmp,
                chp=chp,
                singleuser=singleuser,
                service_token=run.service_token,
                config_token=run.config_token,
            )
        )
        with open(run.log, "ab") as log:
            proc = subprocess.Popen(
                [str(jh), "-f", "jupyterhub_config.py"],
                cwd=tmp,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, f"JupyterHub exited:\n{run.tail()}"
                try:
                    if httpx.get(f"{run.public}/hub/api", timeout=2).status_code == 200:
                        return proc
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"JupyterHub did not come up:\n{run.tail()}"
                time.sleep(0.25)
        except AssertionError:
            _stop(proc, tmp / "proxy.pid")
            raise

    def new_output() -> str:
        with open(run.log, "rb") as fh:
            fh.seek(seen[0])
            return fh.read().decode(errors="replace")

    proc = retry_on_address_in_use(launch, new_output)
    try:
        yield run
    finally:
        _stop(proc, tmp / "proxy.pid")


def _stop(proc: subprocess.Popen[bytes], proxy_pid: Path) -> None:
    """SIGTERM (JupyterHub stops its servers and the proxy on the way out), SIGKILL what is left."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in its group (a server, the proxy)
    except ProcessLookupError:
        pass
    if proxy_pid.exists():
        try:
            os.kill(int(proxy_pid.read_text().strip()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _wait_server(run: JupyterHubRun, user: str, server: str, *, ready: bool) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        servers = run.api("GET", f"/users/{user}").json()["servers"]
        state = servers.get(server)
        if (ready and state and state.get("ready")) or (not ready and state is None):
            return
        time.sleep(0.5)
    raise AssertionError(f"server {user}/{server} never became {'ready' if ready else 'stopped'}\n{run.tail()}")


def _browser_login(run: JupyterHubRun, name: str) -> None:
    """Log in through JupyterHub's login form (its post_auth_hook stores user_info)."""
    with httpx.Client(base_url=run.public, timeout=60, follow_redirects=False) as c:
        page = c.get("/hub/login")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        assert xsrf is not None, page.text[:500]
        r = c.post("/hub/login", data={"username": name, "password": "x", "_xsrf": xsrf.group(1)})
        assert r.status_code == 302, f"{r.status_code} {r.text[:500]}"


def populate(run: JupyterHubRun) -> None:
    """What an operator's JupyterHub holds: users (one name hubkit refuses), admins, groups with properties,
    a custom role, a named server with user_options, tokens of several kinds."""
    run.api("POST", "/users", {"usernames": ["alice", "bob", "carol", "o'brien"]})
    run.api("POST", "/users/dana", {"admin": True})
    run.api("POST", "/groups/students", {"users": ["alice", "bob"]})
    run.api("PUT", "/groups/students/properties", {"course": "physics", "term": 3})
    run.api("POST", "/groups/staff", {"users": ["dana", "o'brien"]})
    _browser_login(run, "erin")

    def token(user: str, label: str, **body: object) -> None:
        run.tokens[label] = run.api("POST", f"/users/{user}/tokens", body).json()["token"]

    token("alice", "alice-scoped", note="nbgitpuller", scopes=["read:users!user=alice", "access:servers!user=alice"],
          expires_in=7 * 86400)
    token("alice", "alice-short", note="short-lived", expires_in=1)
    token("bob", "bob-group", note="tutoring", scopes=["read:users!group=students"])
    token("dana", "dana-all", note="admin scripts")
    token("o'brien", "obrien", note="refused user")

    run.api("POST", "/users/alice/servers/nb1", {"profile": "gpu", "cpus": 2})
    _wait_server(run, "alice", "nb1", ready=True)
    run.api("DELETE", "/users/alice/servers/nb1")
    _wait_server(run, "alice", "nb1", ready=False)
    time.sleep(1.5)  # alice's short-lived token has expired by now
