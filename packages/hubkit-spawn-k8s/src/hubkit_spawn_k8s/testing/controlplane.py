"""A real Kubernetes control plane on loopback for tests and benchmarks: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and (optionally) a kubelet on the local Docker engine, each a child
process of the caller, started on free ports and stopped by PID.

The binaries come from ``.ci/setup/k8s.sh`` (built from Debian's ``kubernetes`` source package): the folder
named by ``$HUBKIT_K8S_BIN``, else ``<repo>/.cache/k8s/bin``, else ``/var/cache/hubkit-ci/k8s/current/bin``
(:mod:`.binaries`, which also waits for a build still running).

Everything answers on 127.0.0.1 only: etcd (client and peer), the API server (TLS, certificates made with
``openssl``), the kubelet's API. Authentication is a static token file: an admin in ``system:masters`` (used by
the controller manager and scheduler as well), a node identity for the kubelet (Node authorizer), and tokens of
ServiceAccounts come from the TokenRequest API, so a hub can be given exactly the Role of ``examples/k8s``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .binaries import Binaries, locate

NODE_NAME = "localhost"  # the kubelet's node: its Hostname address is what the API server dials for logs
# One kubelet per Docker engine: a kubelet kills pods it finds in the engine that it does not know, so two
# test sessions on one machine take turns (the second waits for the first to finish).
KUBELET_LOCK = Path("/run/lock/hubkit-k8s-kubelet.lock")
SERVICE_CIDR = "10.96.0.0/16"


def kubernetes_version(bin_dir: Path) -> str:
    out = subprocess.run([str(bin_dir / "kube-apiserver"), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip().split()[-1]  # "Kubernetes v1.20.2" -> "v1.20.2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- processes --------------------------------------------------------------------------------------------------


class Proc:
    """One child process in its own session, output to a log file, stopped by its PID."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.log_path, self.env = name, list(argv), log, env
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=self.env, start_new_session=True)
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)


class StartError(RuntimeError):
    pass


def _wait(proc: Proc, ready: Callable[[], bool], timeout: float, what: str) -> bool:
    """True when ``ready``; False when the process died because its port was taken (caller retries)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            tail = proc.log_tail()
            if "address already in use" in tail:
                return False
            raise StartError(f"{what} exited with {proc.popen.returncode if proc.popen else '?'}:\n{tail}")
        try:
            if ready():
                return True
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.1)
    proc.stop(signal.SIGKILL)
    raise StartError(f"{what} not ready after {timeout:.0f}s:\n{proc.log_tail()}")


# ---- certificates (openssl) --------------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> None:
    """A CA, the API server's serving certificate, its client certificate for kubelets, the SA signing key."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=d)
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=hubkit-test-ca", "-days", "3650",
             "-out", "ca.crt", cwd=d)
    sans = ("IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            "DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1")
    certs = {
        "apiserver": ("/CN=kube-apiserver", f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n"),
        "apiserver-kubelet-client": ("/O=system:masters/CN=kube-apiserver-kubelet-client",
                                     "extendedKeyUsage=clientAuth\n"),
    }
    for name, (subject, ext) in certs.items():
        (d / f"{name}.ext").write_text(ext)
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=d)
        _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "3650", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key", cwd=d)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def write_kubeconfig(path: Path, server: str, ca: Path, token: str, user: str = "user") -> Path:
    conf = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "hubkit-test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "hubkit-test", "context": {"cluster": "hubkit-test", "user": user}}],
        "current-context": "hubkit-test",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(conf))
    path.chmod(0o600)
    return path


# ---- the control plane -------------------------------------------------------------------------------------------


@dataclass
class Tokens:
    admin: str = field(default_factory=lambda: secrets.token_hex(16))
    node: str = field(default_factory=lambda: secrets.token_hex(16))


class ControlPlane:
    """Start with :meth:`start`, end with :meth:`stop` (or use it as a context manager)."""

    def __init__(
        self,
        workdir: str | Path,
        *,
        bin_dir: Path | None = None,
        kubelet: bool = False,
        audit: bool = False,
        watch_cache: bool = True,
        kubelet_lock_timeout: float = 1800,
    ) -> None:
        self.workdir = Path(workdir)
        found = bin_dir or locate()
        if isinstance(found, Binaries):
            if found.bin_dir is None:
                raise StartError(
                    f"the Kubernetes binaries are still being built (log {found.log}): try again when it ends"
                    if found.building else f"building the Kubernetes binaries failed: {found.failure}"
                    if found.failure else "no Kubernetes binaries: run .ci/setup/k8s.sh (or set HUBKIT_K8S_BIN)"
                )
            found = found.bin_dir
        self.bin = found
        self.want_kubelet = kubelet
        self.audit = audit
        self.watch_cache = watch_cache
        self.kubelet_lock_timeout = kubelet_lock_timeout
        self.tokens = Tokens()
        self.pki = self.workdir / "pki"
        self.etcd: Proc | None = None
        self.apiserver: Proc | None = None
        self.controller_manager: Proc | None = None
        self.scheduler: Proc | None = None
        self.kubelet: Proc | None = None
        self.etcd_url = ""
        self.api_port = 0
        self.kubelet_port = 0
        self._lock_fd: int | None = None
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.started_seconds = 0.0

    # -- public -------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def version(self) -> str:
        return kubernetes_version(self.bin)

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        t0 = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            make_pki(self.pki)
            (self.workdir / "tokens.csv").write_text(
                f'{self.tokens.admin},hubkit-admin,hubkit-admin,"system:masters"\n'
                f'{self.tokens.node},system:node:{NODE_NAME},system:node:{NODE_NAME},"system:nodes"\n'
            )
            if self.audit:
                (self.workdir / "audit-policy.yaml").write_text(yaml.safe_dump({
                    "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                    "omitStages": ["RequestReceived"], "rules": [{"level": "Metadata"}],
                }))
            write_kubeconfig(self.kubeconfig, "https://127.0.0.1:0", self.ca, self.tokens.admin, "admin")
            self._start_etcd()
            self._start_apiserver()
            write_kubeconfig(self.kubeconfig, self.url, self.ca, self.tokens.admin, "admin")
            self._start_controller_manager()
            self._start_scheduler()
            self._bootstrap()
            if self.want_kubelet:
                self._start_kubelet()
        except BaseException:
            self.stop()
            raise
        self.started_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        namespaces: list[str] = []
        if self.kubelet is not None and self.apiserver is not None and self.apiserver.alive():
            with contextlib.suppress(Exception):
                namespaces = [n["metadata"]["name"] for n in self.ok("GET", "/api/v1/namespaces")["items"]]
        for proc in (self.kubelet, self.scheduler, self.controller_manager, self.apiserver, self.etcd):
            if proc is not None:
                proc.stop()
        if self.kubelet is not None:
            self._remove_kubelet_containers()
            self._unmount_kubelet_dirs()
            _remove_pod_logs(namespaces)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def processes(self) -> dict[str, int]:
        out = {}
        for p in (self.etcd, self.apiserver, self.controller_manager, self.scheduler, self.kubelet):
            if p is not None and p.alive() and p.pid:
                out[p.name] = p.pid
        return out

    # -- HTTP to the API server with the admin token --------------------------------------------------------
    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                content_type: str = "application/json", timeout: float = 30) -> tuple[int, Any]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.tokens.admin}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._ssl(), timeout=timeout) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        text = raw.decode(errors="replace")
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, data = self.request(method, path, body, **kw)
        if status >= 400:
            raise RuntimeError(f"{method} {path} -> {status}: {data}")
        return data

    def apply(self, obj: dict[str, Any], *, field_manager: str = "hubkit-tests") -> Any:
        """Server-side apply of one object (any kind the API server knows)."""
        path = resource_path(self, obj)
        return self.ok("PATCH", f"{path}?fieldManager={field_manager}&force=true", obj,
                       content_type="application/apply-patch+yaml")

    def audit_events(self, user: str | None = None) -> list[dict[str, Any]]:
        """Completed requests from the audit log (``audit=True``), optionally only those of ``user``."""
        out = []
        with contextlib.suppress(FileNotFoundError), open(self.audit_log) as fh:
            for line in fh:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if user is None or (ev.get("user") or {}).get("username") == user:
                    out.append(ev)
        return out

    def metrics(self) -> str:
        status, text = self.request("GET", "/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics -> {status}")
        return str(text)

    # -- ServiceAccounts ------------------------------------------------------------------------------------
    def service_account_token(self, namespace: str, name: str, seconds: int = 86400) -> str:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds}}
        out = self.ok("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", body)
        return str(out["status"]["token"])

    def service_account_kubeconfig(self, path: Path, namespace: str, name: str) -> Path:
        return write_kubeconfig(path, self.url, self.ca, self.service_account_token(namespace, name),
                                f"{namespace}-{name}")

    def ensure_namespace(self, name: str) -> None:
        status, _ = self.request("POST", "/api/v1/namespaces",
                                 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        if status not in (201, 409):
            raise RuntimeError(f"creating namespace {name}: {status}")
        self.wait_for(lambda: self.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")[0] == 200,
                      30, f"default ServiceAccount in {name}")

    # -- etcd ---------------------------------------------------------------------------------------------
    def etcdctl(self, *args: str) -> str:
        out = subprocess.run([str(self.bin / "etcdctl"), f"--endpoints={self.etcd_url}", *args],
                             capture_output=True, text=True, timeout=60, env={**os.environ, "ETCDCTL_API": "3"})
        if out.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {out.stderr}")
        return out.stdout

    def compact(self) -> int:
        """Compact etcd's history up to its current revision (what ``etcdctl compact`` does); returns it."""
        status = json.loads(self.etcdctl("endpoint", "status", "-w", "json"))
        revision = int(status[0]["Status"]["header"]["revision"])
        self.etcdctl("compact", str(revision), "--physical")
        return revision

    # -- restarts -----------------------------------------------------------------------------------------
    def stop_apiserver(self) -> None:
        if self.apiserver:
            self.apiserver.stop(signal.SIGKILL)

    def start_apiserver(self) -> None:
        self._start_apiserver(port=self.api_port)

    # -- internals ----------------------------------------------------------------------------------------
    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if cond():
                    return
            except (OSError, urllib.error.URLError, ValueError, RuntimeError):
                pass
            time.sleep(0.1)
        raise StartError(f"{what} not ready after {timeout:.0f}s")

    def _start_etcd(self) -> None:
        for _ in range(5):
            client, peer = free_port(), free_port()
            self.etcd_url = f"http://127.0.0.1:{client}"
            proc = Proc("etcd", [
                str(self.bin / "etcd"), "--name", "hubkit", "--data-dir", str(self.workdir / "etcd"),
                "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-cluster", f"hubkit=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync", "--log-level", "warn", "--quota-backend-bytes", str(4 << 30),
            ], self.workdir / "etcd.log").start()

            def healthy(url: str = self.etcd_url) -> bool:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    return bool(json.loads(r.read()).get("health") == "true")

            if _wait(proc, healthy, 30, "etcd"):
                self.etcd = proc
                return
        raise StartError("etcd: no free port after 5 attempts")

    def _apiserver_argv(self, port: int) -> list[str]:
        p = self.pki
        argv = [
            str(self.bin / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1", f"--secure-port={port}", "--insecure-port=0",
            "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC,Node",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=Hostname",
            "--enable-admission-plugins=NodeRestriction",
            "--profiling=false",
            "--v=1",
        ]
        if not self.watch_cache:
            argv.append("--watch-cache=false")  # watches go to etcd: a compacted revision answers 410 Gone
        if self.audit:
            argv += [f"--audit-policy-file={self.workdir / 'audit-policy.yaml'}",
                     f"--audit-log-path={self.audit_log}", "--audit-log-format=json", "--audit-log-maxsize=0",
                     "--audit-log-mode=blocking"]
        return argv

    def _apiserver_ready(self) -> bool:
        status, _ = self.request("GET", "/readyz", timeout=3)
        return status == 200

    def _start_apiserver(self, port: int | None = None) -> None:
        attempts = 20 if port else 5
        for _ in range(attempts):
            self.api_port = port or free_port()
            proc = Proc("kube-apiserver", self._apiserver_argv(self.api_port), self.workdir / "kube-apiserver.log")
            proc.start()
            if _wait(proc, self._apiserver_ready, 90, "kube-apiserver"):
                self.apiserver = proc
                return
            time.sleep(0.5)
        raise StartError("kube-apiserver: port stayed busy")

    def _component(self, name: str, argv: list[str]) -> Proc:
        kubeconfig = write_kubeconfig(self.workdir / f"{name}.kubeconfig", self.url, self.ca, self.tokens.admin,
                                      name)
        return Proc(name, [str(self.bin / name), f"--kubeconfig={kubeconfig}", *argv],
                    self.workdir / f"{name}.log").start()

    def _start_controller_manager(self) -> None:
        self.controller_manager = self._component("kube-controller-manager", [
            "--leader-elect=false", "--port=0", "--secure-port=0",
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            f"--root-ca-file={self.pki / 'ca.crt'}",
            "--pvclaimbinder-sync-period=1s",
            "--enable-hostpath-provisioner=true",  # StorageClass "standard": a /tmp/hostpath_pv/<uid> per claim
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--kube-api-qps=200", "--kube-api-burst=400",
            "--v=1",
        ])

    def _start_scheduler(self) -> None:
        self.scheduler = self._component("kube-scheduler", [
            "--leader-elect=false", "--port=0", "--secure-port=0", "--v=1",
            "--kube-api-qps=200", "--kube-api-burst=400",
        ])

    def _bootstrap(self) -> None:
        """Wait for what every test needs: the controller manager's default ServiceAccount, a StorageClass."""
        self.wait_for(
            lambda: self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
            60, "the default ServiceAccount (kube-controller-manager)",
        )
        for proc in (self.controller_manager, self.scheduler):
            if proc is not None and not proc.alive():
                raise StartError(f"{proc.name} exited:\n{proc.log_tail()}")
        # the in-tree hostPath provisioner (one-node test clusters): claims are provisioned and deleted
        self.apply({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard",
                         "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "kubernetes.io/host-path", "volumeBindingMode": "Immediate",
            "reclaimPolicy": "Delete",
        })

    def volume_for(self, namespace: str, claim: str, *, capacity: str = "10Gi",
                   storage_class: str = "standard") -> str:
        """A hostPath PersistentVolume reserved for one claim (``claimRef``), world-writable: the provisioner's
        directories are root's with mode 0750, and a notebook running as uid 1000 must write its home."""
        name = f"hubkit-test-pv-{secrets.token_hex(4)}"
        path = self.workdir / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        self.ok("POST", "/api/v1/persistentvolumes", {
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": capacity}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": storage_class,
                     "claimRef": {"namespace": namespace, "name": claim},
                     "hostPath": {"path": str(path), "type": "Directory"}},
        })
        return name

    # -- kubelet ------------------------------------------------------------------------------------------
    def _take_kubelet_lock(self) -> None:
        KUBELET_LOCK.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(KUBELET_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.kubelet_lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise StartError(f"another kubelet session holds {KUBELET_LOCK}") from None
                time.sleep(1)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def pause_image(self) -> str:
        path = self.bin.parent / "pause-image"
        if not path.exists():
            raise StartError(f"{path} missing: run .ci/setup/k8s.sh (it imports the sandbox image)")
        return path.read_text().strip()

    def _start_kubelet(self) -> None:
        if not (self.bin / "kubelet").is_file():
            raise StartError(f"no kubelet in {self.bin}")
        self._take_kubelet_lock()
        self._remove_kubelet_containers()  # anything a crashed earlier session left behind
        root = self.workdir / "kubelet"
        for sub in ("root", "certs", "plugins", "dockershim", "seccomp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        kubeconfig = write_kubeconfig(root / "kubelet.kubeconfig", self.url, self.ca, self.tokens.node, "kubelet")
        for _ in range(5):
            self.kubelet_port = free_port()
            proc = Proc("kubelet", [
                str(self.bin / "kubelet"),
                f"--kubeconfig={kubeconfig}", f"--hostname-override={NODE_NAME}",
                "--container-runtime=docker", "--docker-endpoint=unix:///var/run/docker.sock",
                f"--pod-infra-container-image={self.pause_image()}",
                "--cgroup-driver=cgroupfs", "--cgroups-per-qos=false", "--enforce-node-allocatable=",
                "--fail-swap-on=false", "--make-iptables-util-chains=false",
                "--address=127.0.0.1", f"--port={self.kubelet_port}", "--read-only-port=0", "--healthz-port=0",
                f"--client-ca-file={self.ca}", "--anonymous-auth=false", "--authorization-mode=AlwaysAllow",
                f"--root-dir={root / 'root'}", f"--cert-dir={root / 'certs'}",
                f"--volume-plugin-dir={root / 'plugins'}",
                f"--experimental-dockershim-root-directory={root / 'dockershim'}",
                f"--seccomp-profile-root={root / 'seccomp'}",
                "--image-gc-high-threshold=100", "--image-gc-low-threshold=99",
                "--eviction-hard=", "--sync-frequency=10s", "--file-check-frequency=1h",
                "--node-status-update-frequency=5s", "--max-pods=110",
                "--serialize-image-pulls=false", "--oom-score-adj=0", "--v=1",
            ], root / "kubelet.log").start()

            def node_ready() -> bool:
                status, node = self.request("GET", f"/api/v1/nodes/{NODE_NAME}", timeout=3)
                if status != 200:
                    return False
                conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
                return conds.get("Ready") == "True"

            if _wait(proc, node_ready, 120, "kubelet"):
                self.kubelet = proc
                return
        raise StartError("kubelet: no free port after 5 attempts")

    def _unmount_kubelet_dirs(self) -> None:
        """The kubelet bind-mounts its root dir onto itself (and pods' volumes below it); a stopped kubelet
        leaves the mounts, and the directory could not be deleted. Deepest first."""
        root = str(self.workdir / "kubelet" / "root")
        with open("/proc/self/mountinfo") as fh:
            points = [line.split()[4] for line in fh]
        for point in sorted((p for p in points if p == root or p.startswith(root + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)

    def _remove_kubelet_containers(self) -> None:
        """Containers the dockershim made (pods and their sandboxes); a stopped kubelet leaves them running."""
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=io.kubernetes.docker.type"],
                             capture_output=True, text=True, timeout=60).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120)


def _remove_pod_logs(namespaces: list[str]) -> None:
    """The kubelet keeps container logs under /var/log/pods/<namespace>_<pod>_<uid> (a fixed path) and links
    them from /var/log/containers; a stopped kubelet leaves those of pods still running at its end."""
    logs = Path("/var/log/pods")
    for ns in namespaces:
        if ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            continue
        for d in logs.glob(f"{ns}_*"):
            shutil.rmtree(d, ignore_errors=True)
    links = Path("/var/log/containers")
    if links.is_dir():
        for link in links.iterdir():
            if link.is_symlink() and not link.exists():
                link.unlink(missing_ok=True)


def resource_path(cp: ControlPlane, obj: dict[str, Any]) -> str:
    """The REST path of an object, found through the API server's discovery (so any kind works)."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    resources = cp.ok("GET", base)["resources"]
    res = next(r for r in resources if r["kind"] == kind and "/" not in r["name"])
    meta = obj["metadata"]
    ns = meta.get("namespace") or "default"
    prefix = f"{base}/namespaces/{ns}" if res["namespaced"] else base
    return f"{prefix}/{res['name']}/{meta['name']}"


@contextlib.contextmanager
def control_plane(workdir: Path, **kw: Any) -> Iterator[ControlPlane]:
    cp = ControlPlane(workdir, **kw)
    with cp:
        yield cp
