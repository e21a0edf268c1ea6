"""The ``kubernetes`` spawner backend: a pod per server, followed through two shared watches."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

import urllib3
from hubkit.errors import ConfigError, InvalidOptions, SpawnFailed, SpawnTimeout
from hubkit.interfaces import (
    Endpoint,
    ExitStatus,
    JSONDict,
    KnownServer,
    OptionsForm,
    Phase,
    ProgressEvent,
    ReconcileReport,
    ServerSpec,
    SpawnContext,
    StartResult,
    UserInfo,
)
from hubkit.plugins import hookimpl
from hubkit.plugins.registry import HubInfo
from kubernetes.client.exceptions import ApiException

from . import access, names, objects, profiles
from .config import KubeSpawnerConfig
from .informer import Informer
from .kubeapi import ClientRefused, KubeApi, load_configuration, status_of
from .progress import event_progress, milestones_from_pod, pod_failure, pod_running, unschedulable
from .reconcile import reconcile_owned, reconcile_pods
from .tracking import PodMailbox, Tracker

log = logging.getLogger(__name__)
Obj = dict[str, Any]

_PORT_QUARANTINE = 300.0  # with host_network: seconds a handed-out port is not handed out again


def _free_port(ip: str, recent: dict[int, float]) -> int:
    now = time.monotonic()
    for port, t in list(recent.items()):
        if now - t > _PORT_QUARANTINE:
            del recent[port]
    for _ in range(50):
        with socket.socket() as s:
            s.bind((ip, 0))
            port = int(s.getsockname()[1])
        if port not in recent:
            recent[port] = now
            return port
    raise SpawnFailed("no free port on the node's network", reason_code="no-port")


class KubeSpawner:
    """Implements :class:`hubkit.interfaces.SpawnerBackend` on Kubernetes. Its ``hubkit_*`` methods are runtime
    hooks: the hub registers the instance it built, so they act on this instance's cluster and namespace."""

    def __init__(self, config: KubeSpawnerConfig, hub: HubInfo) -> None:
        self.cfg = config
        self.hub = hub
        self.hub_label = names.label_value(hub.hub_id)
        self.tracker = Tracker()
        self.api: KubeApi | None = None
        self.pods: Informer | None = None
        self.events: Informer | None = None
        self._recent_ports: dict[int, float] = {}

    # -- lifecycle of the backend ---------------------------------------------------------------------------
    async def startup(self) -> None:
        conf = await asyncio.to_thread(load_configuration, self.cfg)
        self.api = KubeApi(conf, self.cfg.api_concurrency, self.cfg.api_retry_seconds)
        ns, timeout = self.cfg.namespace, self.cfg.watch_timeout
        await self._check_access(conf.host, ns)
        self.pods = Informer(
            "pods", self.api.new_core().list_namespaced_pod, ns, self.tracker.on_pod,
            label_selector=f"{names.LABEL_HUB}={self.hub_label},{names.LABEL_COMPONENT}={names.COMPONENT}",
            timeout=timeout,
        )
        self.events = Informer(
            "events", self.api.new_core().list_namespaced_event, ns, self.tracker.on_event,
            field_selector="involvedObject.kind=Pod", timeout=timeout, keep_cache=False,
        )
        self.pods.start()
        self.events.start()
        try:
            await asyncio.wait_for(asyncio.gather(self.pods.synced.wait(), self.events.synced.wait()), 60)
        except TimeoutError:
            await self.shutdown()
            raise SpawnFailed(
                f"cannot list pods/events in namespace {ns!r}: is the API server reachable and the Role bound?",
                reason_code="k8s-unreachable",
            ) from None

    async def _check_access(self, host: str, ns: str) -> None:
        """Fail startup with one clear message (every missing verb named) rather than a spawn that fails later
        or a watch that retries forever."""
        try:
            missing = await self.missing_permissions()
        except ApiException as exc:
            self._api.close()
            message = status_of(exc).get("message") or exc.reason
            if exc.status in (401, 403):
                raise ConfigError(
                    f"the Kubernetes API at {host} refused the hub's credentials ({message}); check its "
                    "kubeconfig or ServiceAccount", key="spawner.kubernetes",
                ) from None
            raise ConfigError(f"the Kubernetes API at {host} answered {exc.status}: {message}",
                              key="spawner.kubernetes") from None
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            self._api.close()
            raise ConfigError(f"cannot reach the Kubernetes API at {host}: {exc}", key="spawner.kubernetes") from None
        if missing:
            self._api.close()
            raise ConfigError(
                f"the hub's Kubernetes account lacks, in namespace {ns!r}: "
                + "; ".join(f"{n.rule} (for {n.why})" for n in missing)
                + ". Grant the Role of examples/k8s/base/hub-rbac.yaml (or turn off the option that needs it).",
                key="spawner.kubernetes",
            )

    async def missing_permissions(self) -> list[access.Need]:
        """Every permission this configuration needs that the API server says the hub does not have.

        Raises :class:`ApiException` when the credentials themselves are refused (401)."""
        path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        needs = access.needed(self.cfg)
        try:
            answers = await asyncio.gather(
                *(self._api.request("POST", path, access.review_body(self.cfg.namespace, n)) for n in needs)
            )
        except ApiException as exc:
            if exc.status == 401:
                raise
            # a cluster that refuses self-reviews: the calls themselves will tell, in their errors
            log.warning("could not check the hub's permissions (%s %s)", exc.status, exc.reason)
            return []
        return [n for n, a in zip(needs, answers, strict=True) if not (a.get("status") or {}).get("allowed")]

    async def shutdown(self) -> None:
        for inf in (self.pods, self.events):
            if inf:
                inf.stop()
        for inf in (self.pods, self.events):
            if inf:
                await asyncio.to_thread(inf.join, 5)
        if self.api:
            api, self.api = self.api, None
            api.close()

    @property
    def _api(self) -> KubeApi:
        if self.api is None:
            raise RuntimeError("the kubernetes spawner was not started")
        return self.api

    # -- options ------------------------------------------------------------------------------------------
    def options_form(self, user: UserInfo) -> OptionsForm | None:
        return profiles.options_form(self.cfg, user)

    def parse_options(self, user: UserInfo, form: Mapping[str, Any]) -> JSONDict:
        return profiles.parse_options(self.cfg, user, form)

    # -- start --------------------------------------------------------------------------------------------
    async def start(self, spec: ServerSpec, ctx: SpawnContext) -> StartResult:
        try:
            plan = profiles.plan_for(self.cfg, spec.user, spec.user_options)
        except InvalidOptions as exc:
            raise SpawnFailed(str(exc), reason_code="invalid-options") from None
        srv = objects.ServerNames.for_spec(self.cfg, spec)
        port = _free_port(self.cfg.host_network_ip, self._recent_ports) if self.cfg.host_network else self.cfg.port
        state: JSONDict = {"namespace": srv.namespace, "pod_name": srv.pod, "pvc_name": srv.pvc,
                           "service_name": srv.service, "secret_name": srv.secret, "port": port}
        # Identity first: a hub killed anywhere below restarts, finds these names and removes what exists.
        await ctx.save_state(state)
        if srv.pvc:
            await self._ensure_pvc(spec, srv, ctx)
        if srv.service:
            await self._create_ignoring_conflict("create_namespaced_service", objects.build_service(self.cfg, spec, srv))
        box = self.tracker.open(srv.pod)
        try:
            if srv.secret:
                await self._replace_secret(objects.build_secret(self.cfg, spec, srv))
            pod = await self._create_pod(objects.build_pod(self.cfg, spec, plan, srv, port), box, ctx)
            box.uid = pod["metadata"]["uid"]
            state["pod_uid"] = box.uid
            await ctx.save_state(state)
            if srv.secret:
                await self._own_secret(srv.secret, pod)
            await ctx.emit(ProgressEvent(Phase.REQUESTED, f"Pod {srv.pod} created, waiting for a node", 10,
                                         detail={"pod": srv.pod, "image": plan.image}))
            try:
                ip = await asyncio.wait_for(self._follow(box, ctx), self.cfg.start_timeout)
            except TimeoutError:
                raise SpawnTimeout(
                    f"The pod {srv.pod} was not running after {self.cfg.start_timeout:.0f}s "
                    f"({self._describe(srv.pod)}).", phase="start",
                ) from None
        except BaseException:
            # leave no pod (nor its token) behind, whatever ended the spawn (failure, timeout, cancellation)
            try:
                await asyncio.shield(self._remove_pod(srv.pod, grace=0))
                if srv.secret:
                    await asyncio.shield(self._delete_quietly("delete_namespaced_secret", srv.secret))
            except Exception:
                log.exception("could not remove pod %s after a failed spawn", srv.pod)
            raise
        finally:
            self.tracker.close(box)
        await ctx.emit(ProgressEvent(Phase.STARTING, f"Pod running at {ip}", 90, detail={"pod_ip": ip}))
        if self.cfg.host_network:
            host = self.cfg.host_network_ip
        else:
            host = f"{srv.service}.{srv.namespace}.svc" if srv.service else ip
        state["pod_ip"] = ip
        return StartResult(Endpoint(f"http://{host}:{port}"), state)

    async def _replace_secret(self, body: Obj) -> None:
        """Each start has a new token: an earlier Secret of that name (its owner may be gone) is replaced."""
        for attempt in range(2):
            try:
                await self._api.call("create_namespaced_secret", self.cfg.namespace, body)
                return
            except ClientRefused as exc:
                raise self._api_failure(exc, body) from None
            except ApiException as exc:
                if exc.status != 409 or attempt:
                    raise self._api_failure(exc, body) from None
            await self._delete_quietly("delete_namespaced_secret", body["metadata"]["name"])

    async def _own_secret(self, name: str, pod: Obj) -> None:
        """Make the pod the Secret's owner, so the garbage collector deletes the token with the pod, whoever
        deletes it (the hub's stop deletes both itself as well)."""
        path = f"/api/v1/namespaces/{self.cfg.namespace}/secrets/{name}"
        try:
            await self._api.request("PATCH", path, {"metadata": {"ownerReferences": [objects.owner_reference(pod)]}},
                                    content_type="application/merge-patch+json")
        except ApiException as exc:
            raise self._api_failure(exc, {"kind": "Secret", "metadata": {"name": name}}, verb="patch") from None

    async def _delete_quietly(self, method: str, name: str) -> None:
        """Delete, treating "already gone" as done."""
        try:
            await self._api.call(method, name, self.cfg.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def _ensure_pvc(self, spec: ServerSpec, srv: objects.ServerNames, ctx: SpawnContext) -> None:
        created = await self._create_ignoring_conflict(
            "create_namespaced_persistent_volume_claim", objects.build_pvc(self.cfg, spec, srv)
        )
        word = "Created" if created else "Using existing"
        await ctx.emit(ProgressEvent(Phase.REQUESTED, f"{word} storage claim {srv.pvc}", 5, detail={"pvc": srv.pvc}))

    async def _create_ignoring_conflict(self, method: str, body: Obj) -> bool:
        try:
            await self._api.call(method, self.cfg.namespace, body)
            return True
        except ClientRefused as exc:
            raise self._api_failure(exc, body) from None
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise self._api_failure(exc, body) from None

    async def _create_pod(self, body: Obj, box: PodMailbox, ctx: SpawnContext) -> Obj:
        name = body["metadata"]["name"]
        for attempt in range(2):
            try:
                return await self._api.call("create_namespaced_pod", self.cfg.namespace, body)
            except ClientRefused as exc:
                raise self._api_failure(exc, body) from None
            except ApiException as exc:
                if exc.status != 409 or attempt:
                    raise self._api_failure(exc, body) from None
            await ctx.emit(ProgressEvent(Phase.REQUESTED, f"Removing an earlier pod named {name}", 3))
            await self._remove_pod(name, grace=0)
        raise AssertionError("unreachable")

    def _api_failure(self, exc: ApiException | ClientRefused, body: Obj, verb: str = "create") -> SpawnFailed:
        what = f"{body.get('kind', 'object')} {body['metadata']['name']}"
        if isinstance(exc, ClientRefused):
            return SpawnFailed(f"The kubernetes client refused {what} as invalid: {exc}", reason_code="k8s-invalid")
        status = status_of(exc)
        if exc.status == 422:
            return SpawnFailed(f"The cluster refused {what} as invalid: {status.get('message', exc.reason)}",
                               reason_code="k8s-invalid")
        if exc.status == 403:
            return SpawnFailed(f"The hub may not {verb} {what}: {status.get('message', exc.reason)}",
                               reason_code="k8s-forbidden")
        return SpawnFailed(f"{verb.capitalize()} {what} failed ({exc.status}): {status.get('message', exc.reason)}",
                           reason_code="k8s-api-error")

    async def _follow(self, box: PodMailbox, ctx: SpawnContext) -> str:
        """Wait on the pod's mailbox until it runs; emit progress, raise on a terminal problem."""
        seen: set[tuple[str, int]] = set()
        steps: set[str] = set()
        current = self.pods.cache.get(box.name) if self.pods else None
        if current and current["metadata"]["uid"] == box.uid:
            box.queue.put_nowait(("pod", "MODIFIED", current))
        unschedulable_since: float | None = None
        last_unschedulable: Obj = {}
        while True:
            if unschedulable_since is None:
                source, etype, obj = await box.queue.get()
            else:  # still unschedulable when the grace period ends: give up even if nothing new arrives
                left = unschedulable_since + self._grace(last_unschedulable) - time.monotonic()
                try:
                    source, etype, obj = await asyncio.wait_for(box.queue.get(), max(left, 0))
                except TimeoutError:
                    raise unschedulable(last_unschedulable) from None
            if source == "event":
                if (obj.get("involvedObject") or {}).get("uid") != box.uid:
                    continue
                key = (obj["metadata"].get("uid") or obj["metadata"]["name"], int(obj.get("count") or 1))
                if key in seen:
                    continue
                seen.add(key)
                steps.add(obj.get("reason", ""))
                progress = event_progress(obj)
                if progress:
                    await ctx.emit(progress)
                if obj.get("reason") == "FailedScheduling":
                    unschedulable_since = unschedulable_since or time.monotonic()
                    last_unschedulable = obj
                    if time.monotonic() - unschedulable_since >= self._grace(obj):
                        raise unschedulable(obj)
                continue
            if obj["metadata"].get("uid") != box.uid:
                continue
            if etype == "DELETED":
                raise SpawnFailed(f"The pod {box.name} was deleted while it was starting.", reason_code="pod-deleted")
            failure = pod_failure(obj)
            if failure:
                raise failure
            if (obj.get("spec") or {}).get("nodeName"):
                unschedulable_since = None  # a node was found after all
            ip = pod_running(obj)
            if ip:
                # The event stream is a separate watch and may lag the pod's: fill in the milestones the
                # pod's own status already proves, so progress reads the same whichever arrives first.
                for missing in milestones_from_pod(obj, steps):
                    await ctx.emit(missing)
                return ip

    def _grace(self, failed_scheduling: Obj) -> float:
        """How long a FailedScheduling may last: a claim the scheduler has not seen yet ("persistentvolumeclaim
        ... not found" just after the hub created it) or that is still being provisioned ("unbound immediate
        PersistentVolumeClaims") is not a lack of nodes."""
        message = str(failed_scheduling.get("message", "")).lower()
        if "persistentvolumeclaim" in message or "waiting for first consumer" in message:
            return max(self.cfg.unschedulable_grace, self.cfg.storage.bind_grace)
        return self.cfg.unschedulable_grace

    def _describe(self, name: str) -> str:
        pod = self.pods.cache.get(name) if self.pods else None
        if not pod:
            return "no pod seen"
        status = pod.get("status") or {}
        waiting = ((status.get("containerStatuses") or [{}])[0].get("state") or {}).get("waiting") or {}
        return f"phase {status.get('phase')}" + (f", {waiting.get('reason')}" if waiting else "")

    # -- poll / stop ----------------------------------------------------------------------------------------
    async def _get_pod(self, name: str) -> Obj | None:
        """From the shared watch's cache: startup waits until it is synced, and it stays so."""
        return self.pods.cache.get(name) if self.pods else None

    async def poll(self, spec: ServerSpec, state: JSONDict) -> ExitStatus | None:
        name = state.get("pod_name")
        if not name:
            return ExitStatus(reason="no pod was recorded for this server", reason_code="no-state")
        pod = await self._get_pod(name)
        if pod is None:
            return ExitStatus(reason=f"pod {name} is gone", reason_code="pod-gone")
        if state.get("pod_uid") and pod["metadata"].get("uid") != state["pod_uid"]:
            return ExitStatus(reason=f"pod {name} was replaced by another pod", reason_code="pod-replaced")
        if pod["metadata"].get("deletionTimestamp"):
            return ExitStatus(reason=f"pod {name} is being deleted", reason_code="pod-deleting")
        failure = pod_failure(pod)
        if failure:
            term = ((pod.get("status") or {}).get("containerStatuses") or [{}])[0].get("state", {}).get("terminated")
            return ExitStatus(code=(term or {}).get("exitCode"), reason=str(failure), reason_code=failure.reason_code)
        return None

    async def stop(self, spec: ServerSpec, state: JSONDict, *, now: bool = False) -> None:
        name = state.get("pod_name")
        if name:
            await self._remove_pod(name, grace=0 if now else self.cfg.delete_grace_period)
        if state.get("secret_name"):
            await self._delete_quietly("delete_namespaced_secret", state["secret_name"])
        if state.get("service_name"):
            with contextlib.suppress(ApiException):
                await self._api.call("delete_namespaced_service", state["service_name"], self.cfg.namespace)

    async def _remove_pod(self, name: str, *, grace: int) -> None:
        """Delete with a grace period and wait (on the watch) until the pod is really gone."""
        gone = self.tracker.wait_gone(name)
        try:
            await self._api.call("delete_namespaced_pod", name, self.cfg.namespace, grace_period_seconds=grace)
        except ApiException as exc:
            if exc.status != 404:
                gone.cancel()
                raise
        if self.pods and self.pods.synced.is_set() and name not in self.pods.cache:
            gone.cancel()
            return
        try:
            await asyncio.wait_for(gone, self.cfg.stop_wait)
        except TimeoutError:
            log.warning("pod %s still present %.0fs after deletion", name, self.cfg.stop_wait)

    async def log_tail(self, spec: ServerSpec, state: JSONDict, lines: int = 40) -> list[str]:
        name = state.get("pod_name")
        if not name:
            return []
        try:
            text = await self._api.text("read_namespaced_pod_log", name, self.cfg.namespace, tail_lines=lines)
        except ApiException:
            return []
        return text.splitlines()[-lines:]

    async def reconcile(self, known: Sequence[KnownServer], *, remove_orphans: bool) -> ReconcileReport:
        selector = f"{names.LABEL_HUB}={self.hub_label},{names.LABEL_COMPONENT}={names.COMPONENT}"
        pods = await self._api.call("list_namespaced_pod", self.cfg.namespace, label_selector=selector)
        report = await reconcile_pods(pods.get("items") or [], known, remove_orphans, self._remove_pod)
        # the per-server objects that outlive a hub killed mid-spawn: token Secrets and Services
        extra_removed, extra_reported = [], []
        for kind, key, lister, deleter, enabled in (
            ("secret", "secret_name", "list_namespaced_secret", "delete_namespaced_secret", self.cfg.token_secret),
            ("service", "service_name", "list_namespaced_service", "delete_namespaced_service", self.cfg.service),
        ):
            if not enabled:
                continue
            items = (await self._api.call(lister, self.cfg.namespace, label_selector=selector)).get("items") or []
            removed, reported = await reconcile_owned(
                kind, items, known, key, remove_orphans, functools.partial(self._delete_quietly, deleter)
            )
            extra_removed += removed
            extra_reported += reported
        return dataclasses.replace(report, removed=report.removed + tuple(extra_removed),
                                   reported=report.reported + tuple(extra_reported))

    async def delete_user_resources(self, user: UserInfo) -> list[str]:
        """What a deleted user leaves here: their claim, when ``storage.delete_pvc`` is set."""
        if not (self.cfg.storage.enabled and self.cfg.storage.delete_pvc):
            return []
        name = names.render(self.cfg.storage.pvc_name_template, user.name)
        try:
            await self._api.call("delete_namespaced_persistent_volume_claim", name, self.cfg.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise
        return [f"{self.cfg.namespace}/{name}"]

    @hookimpl
    async def hubkit_user_deleted(self, user: UserInfo) -> None:
        if self.api is None:  # not started, or shut down
            return
        removed = await self.delete_user_resources(user)
        if removed:
            log.info("removed the claim of deleted user %s: %s", user.name, ", ".join(removed))
