"""The simulated scheduler loop + kubelet: moves each pod through Pending → Scheduled → image pull →
Running (ready) and reports failures the way a real node does (events + container states)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import TYPE_CHECKING, Any

from .runtime import Container, Exit, FakeImage, HttpContainer, OomContainer, ProcessContainer, container_env
from .store import Obj, now_iso

if TYPE_CHECKING:
    from .cluster import Cluster


class _PodRun:
    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.task: asyncio.Task[None] | None = None
        self.container: Container | None = None
        self.logs: list[str] = []
        self.deleting = False


class Kubelet:
    def __init__(self, cluster: Cluster, workdir: str) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.runs: dict[tuple[str, str], _PodRun] = {}
        self._ip_counter = 0
        self.extra_delay: dict[str, float] = {}

    # -- bookkeeping --------------------------------------------------------------------------------------
    def admit(self, pod: Obj) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        run = _PodRun(pod["metadata"]["uid"])
        self.runs[key] = run
        run.task = asyncio.get_running_loop().create_task(self._lifecycle(key, run))

    def has_container(self, pod: Obj) -> bool:
        run = self.runs.get((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        return bool(run and run.container and not run.container.done.done())

    def forget(self, pod: Obj, *, grace: int) -> None:
        """Stop a pod's containers; with a grace period the pod object is removed once they are gone."""
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        run = self.runs.get(key)
        if run is None or run.uid != pod["metadata"]["uid"]:
            return
        run.deleting = True
        if grace == 0:
            self.runs.pop(key, None)
            if run.task:
                run.task.cancel()
            if run.container:
                asyncio.get_running_loop().create_task(run.container.terminate(0))
            return
        asyncio.get_running_loop().create_task(self._terminate(key, run, grace))

    async def _terminate(self, key: tuple[str, str], run: _PodRun, grace: int) -> None:
        pod = self._current(key, run)
        if pod and run.container:
            name = pod["spec"]["containers"][0]["name"]
            self.cluster.event(pod, "Killing", f"Stopping container {name}")
            await run.container.terminate(grace)
        if run.task:
            run.task.cancel()
        if self.runs.get(key) is run:
            self.runs.pop(key, None)
        if self._current(key, run) is not None:
            self.cluster.store.remove("pods", key[0], key[1])

    def log_lines(self, pod: Obj) -> list[str]:
        run = self.runs.get((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        if run is None:
            return []
        return run.logs + (list(run.container.logs) if run.container else [])

    def _current(self, key: tuple[str, str], run: _PodRun) -> Obj | None:
        pod = self.cluster.store.objects["pods"].get(key)
        if pod is None or pod["metadata"]["uid"] != run.uid:
            return None
        return pod

    def _set_status(self, key: tuple[str, str], mutate: Any) -> Obj:
        return self.cluster.store.update("pods", key[0], key[1], mutate)

    def _next_ip(self) -> str:
        n = self._ip_counter
        self._ip_counter += 1
        return f"127.{100 + n // 64516}.{n // 254 % 254}.{n % 254 + 1}"

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def _lifecycle(self, key: tuple[str, str], run: _PodRun) -> None:
        try:
            await self._run(key, run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the fake must be visible, not a hung pod
            run.logs.append(f"fake kubelet error: {exc!r}")
            raise

    async def _run(self, key: tuple[str, str], run: _PodRun) -> None:
        timing = self.cluster.timing
        await asyncio.sleep(timing.schedule)
        last_reason = ""
        while True:
            pod = self._current(key, run)
            if pod is None or run.deleting:
                return
            node, reason = self.cluster.schedule(pod)
            if node:
                break
            if reason != last_reason:
                last_reason = reason
                self._set_status(key, lambda o, r=reason: _condition(o, "PodScheduled", "False", "Unschedulable", r))
                self.cluster.event(pod, "FailedScheduling", reason, warning=True, component="default-scheduler")
            await asyncio.sleep(timing.retry_schedule)

        ip = self._next_ip()

        def bind(o: Obj) -> None:
            o["spec"]["nodeName"] = node
            o["status"].update(hostIP="127.0.0.1", podIP=ip, podIPs=[{"ip": ip}], startTime=now_iso())
            _condition(o, "PodScheduled", "True")
            _condition(o, "Initialized", "True")

        pod = self._set_status(key, bind)
        self.cluster.event(pod, "Scheduled", f"Successfully assigned {key[0]}/{key[1]} to {node}", component="default-scheduler")
        container = pod["spec"]["containers"][0]
        cname, image_name = container["name"], container["image"]
        self.cluster.event(pod, "Pulling", f'Pulling image "{image_name}"')
        started = time.monotonic()
        await asyncio.sleep(timing.pull + self.extra_delay.get(image_name, 0))
        image = self.cluster.images.get(image_name)
        if image is None:
            await self._pull_failure(key, run, image_name, cname)
            return
        took = time.monotonic() - started
        self.cluster.event(pod, "Pulled", f'Successfully pulled image "{image_name}" in {took:.3f}s. Image size: 1048576 bytes.')
        restarts = 0
        while True:
            pod = self._current(key, run)
            if pod is None or run.deleting:
                return
            self.cluster.event(pod, "Created", f"Created container: {cname}")
            try:
                run.container = await self._start_container(pod, container, image, ip)
            except OSError as exc:
                run.logs.append(f"failed to start container: {exc}")
                run.container = None
                exit_ = Exit(128, "ContainerCannotRun")
            else:
                self.cluster.event(pod, "Started", f"Started container {cname}")
                probe = (container.get("readinessProbe") or {}).get("httpGet")
                self._set_status(key, lambda o, n=restarts, r=not probe: _running(o, cname, image_name, n, r))
                prober = asyncio.ensure_future(self._probe(key, run, run.container, ip, probe)) if probe else None
                exit_ = await run.container.wait()
                if prober:
                    prober.cancel()
            if run.deleting or self._current(key, run) is None:
                return
            policy = pod["spec"].get("restartPolicy", "Always")
            if policy == "Never" or (policy == "OnFailure" and exit_.code == 0):
                self._set_status(key, lambda o, e=exit_, n=restarts: _terminated(o, cname, image_name, e, n))
                return
            restarts += 1
            if restarts == 1:  # the kubelet restarts a crashed container once right away, then backs off
                self._set_status(key, lambda o, e=exit_, n=restarts: _crashed(o, cname, image_name, e, n, None))
                continue
            msg = f"back-off 10s restarting failed container={cname} pod={key[1]}_{key[0]}"
            self._set_status(key, lambda o, e=exit_, n=restarts, m=msg: _crashed(o, cname, image_name, e, n, m))
            pod = self._current(key, run)
            if pod:
                self.cluster.event(pod, "BackOff", f"Back-off restarting failed container {cname} in pod {key[1]}_{key[0]}", warning=True)
            await asyncio.sleep(timing.backoff)

    async def _probe(self, key: tuple[str, str], run: _PodRun, current: Container, ip: str, probe: Obj) -> None:
        """An HTTP readiness probe: the container turns ready once GET answers 200..399."""
        port = int(probe.get("port", 80))
        request = f"GET {probe.get('path', '/')} HTTP/1.1\r\nHost: {ip}:{port}\r\nConnection: close\r\n\r\n"
        while not current.done.done():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 1)
                writer.write(request.encode())
                line = await asyncio.wait_for(reader.readline(), 2)
                writer.close()
                code = int(line.split()[1]) if len(line.split()) > 1 else 0
                if 200 <= code < 400:
                    if self._current(key, run) is not None and run.container is current:
                        self._set_status(key, _mark_ready)
                    return
            except (OSError, TimeoutError, ValueError):
                pass
            await asyncio.sleep(self.cluster.timing.probe)

    async def _pull_failure(self, key: tuple[str, str], run: _PodRun, image_name: str, cname: str) -> None:
        pod = self._current(key, run)
        if pod is None:
            return
        detail = (f'rpc error: code = NotFound desc = failed to pull and unpack image "{image_name}": '
                  f'failed to resolve reference "{image_name}": not found')
        self.cluster.event(pod, "Failed", f'Failed to pull image "{image_name}": {detail}', warning=True)
        self.cluster.event(pod, "Failed", "Error: ErrImagePull", warning=True)
        self._set_status(key, lambda o: _waiting(o, cname, image_name, "ErrImagePull", detail))
        await asyncio.sleep(self.cluster.timing.backoff)
        pod = self._current(key, run)
        if pod is None:
            return
        self.cluster.event(pod, "BackOff", f'Back-off pulling image "{image_name}"')
        self.cluster.event(pod, "Failed", "Error: ImagePullBackOff", warning=True)
        msg = f'Back-off pulling image "{image_name}": ErrImagePull: {detail}'
        self._set_status(key, lambda o: _waiting(o, cname, image_name, "ImagePullBackOff", msg))

    async def _start_container(self, pod: Obj, container: Obj, image: FakeImage, ip: str) -> Container:
        home = self._volume_dir(pod, container)
        env = container_env(container, image, ip, home)
        port = _port(container, env)
        if image.runtime == "http":
            http = HttpContainer()
            await http.start(ip, port)
            return http
        if image.runtime == "oom":
            oom = OomContainer()
            limit = ((container.get("resources") or {}).get("limits") or {}).get("memory", "")
            await oom.start(image.run_seconds, limit)
            return oom
        argv = list(container.get("command") or image.entrypoint) + list(container.get("args") or [])
        argv = [a.replace("0.0.0.0", ip) for a in argv]
        proc = ProcessContainer()
        await proc.start(argv, env, home)
        return proc

    def _volume_dir(self, pod: Obj, container: Obj) -> str:
        """Where the container's files live: the PVC's directory if one is mounted (so data outlives the pod)."""
        ns = pod["metadata"]["namespace"]
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                  for v in pod["spec"].get("volumes") or [] if v.get("persistentVolumeClaim")}
        for mount in container.get("volumeMounts") or []:
            if mount["name"] in claims:
                path = os.path.join(self.workdir, "pvc", ns, claims[mount["name"]])
                break
        else:
            path = os.path.join(self.workdir, "pods", ns, pod["metadata"]["name"], pod["metadata"]["uid"])
        os.makedirs(path, exist_ok=True)
        return path


def _port(container: Obj, env: dict[str, str]) -> int:
    ports = container.get("ports") or []
    if ports:
        return int(ports[0]["containerPort"])
    match = re.match(r"^https?://[^/:]+:(\d+)", env.get("JUPYTERHUB_SERVICE_URL", ""))
    return int(match.group(1)) if match else 8888


def _condition(o: Obj, ctype: str, status: str, reason: str | None = None, message: str | None = None) -> None:
    conds = [c for c in o["status"].get("conditions") or [] if c["type"] != ctype]
    cond: dict[str, Any] = {"type": ctype, "status": status, "lastTransitionTime": now_iso()}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    conds.append(cond)
    o["status"]["conditions"] = conds


def _cstatus(o: Obj, name: str, image: str, restarts: int, **kw: Any) -> None:
    status = {"name": name, "image": image, "imageID": "", "restartCount": restarts, "started": False, "ready": False}
    status.update(kw)
    o["status"]["containerStatuses"] = [status]


def _running(o: Obj, name: str, image: str, restarts: int, ready: bool) -> None:
    prev = (o["status"].get("containerStatuses") or [{}])[0].get("lastState")
    _cstatus(o, name, image, restarts, started=True, ready=ready, state={"running": {"startedAt": now_iso()}},
             **({"lastState": prev} if prev else {}))
    o["status"]["phase"] = "Running"
    flag = "True" if ready else "False"
    _condition(o, "ContainersReady", flag)
    _condition(o, "Ready", flag)


def _mark_ready(o: Obj) -> None:
    o["status"]["containerStatuses"][0]["ready"] = True
    _condition(o, "ContainersReady", "True")
    _condition(o, "Ready", "True")


def _terminated_state(e: Exit) -> dict[str, Any]:
    return {"terminated": {"exitCode": e.code, "reason": e.reason, "startedAt": now_iso(), "finishedAt": now_iso()}}


def _terminated(o: Obj, name: str, image: str, e: Exit, restarts: int) -> None:
    _cstatus(o, name, image, restarts, state=_terminated_state(e))
    o["status"]["phase"] = "Succeeded" if e.code == 0 else "Failed"
    _condition(o, "ContainersReady", "False", "ContainersNotReady")
    _condition(o, "Ready", "False", "ContainersNotReady")


def _crashed(o: Obj, name: str, image: str, e: Exit, restarts: int, backoff: str | None) -> None:
    state = {"waiting": {"reason": "CrashLoopBackOff", "message": backoff}} if backoff else {"running": {"startedAt": now_iso()}}
    _cstatus(o, name, image, restarts, state=state, lastState=_terminated_state(e))
    _condition(o, "ContainersReady", "False", "ContainersNotReady")
    _condition(o, "Ready", "False", "ContainersNotReady")


def _waiting(o: Obj, name: str, image: str, reason: str, message: str) -> None:
    _cstatus(o, name, image, 0, state={"waiting": {"reason": reason, "message": message}})
    _condition(o, "ContainersReady", "False", "ContainersNotReady")
    _condition(o, "Ready", "False", "ContainersNotReady")


