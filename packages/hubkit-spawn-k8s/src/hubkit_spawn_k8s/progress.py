"""Turn what the cluster reports (events, pod status) into progress a person can read, and into failures.

Failures end the spawn: a pod that cannot be scheduled, whose image cannot be pulled, that keeps crashing
or that ran out of memory will not fix itself within a spawn timeout, so waiting would only hide the reason.
"""

from __future__ import annotations

from typing import Any

from hubkit.errors import SpawnFailed
from hubkit.interfaces import Phase, ProgressEvent

Obj = dict[str, Any]

_EVENT_STEPS: dict[str, tuple[Phase, int]] = {
    "Scheduled": (Phase.SCHEDULING, 30),
    "FailedScheduling": (Phase.SCHEDULING, 20),
    "Pulling": (Phase.PULLING, 40),
    "Pulled": (Phase.PULLING, 60),
    "Created": (Phase.STARTING, 70),
    "Started": (Phase.STARTING, 80),
}


def event_progress(event: Obj) -> ProgressEvent | None:
    reason, message = event.get("reason", ""), event.get("message", "")
    detail = {"k8s_reason": reason, "k8s_type": event.get("type", "")}
    step = _EVENT_STEPS.get(reason)
    if reason == "FailedScheduling":
        return ProgressEvent(Phase.SCHEDULING, f"Waiting for a node: {message}", 20, detail=detail)
    if reason == "Scheduled":
        node = message.rsplit(" to ", 1)[-1] if " to " in message else ""
        text = f"Scheduled on node {node}" if node else "Scheduled"
        return ProgressEvent(Phase.SCHEDULING, text, 30, detail={**detail, "node": node})
    if reason == "Pulling":
        return ProgressEvent(Phase.PULLING, message.replace("Pulling image", "Pulling image", 1), 40, detail=detail)
    if reason == "Pulled":
        return ProgressEvent(Phase.PULLING, message.split(" in ", 1)[0].replace("Successfully pulled", "Pulled")
                             if "Successfully" in message else message, 60, detail=detail)
    if step:
        phase, pct = step
        text = "Container created" if reason == "Created" else "Container started"
        return ProgressEvent(phase, text, pct, detail=detail)
    if event.get("type") == "Warning":
        return ProgressEvent(Phase.STARTING, f"{reason}: {message}", None, detail=detail)
    return None


def unschedulable(event: Obj) -> SpawnFailed:
    return SpawnFailed(
        f"No node in the cluster can run this server: {event.get('message', '')}", reason_code="unschedulable"
    )


def _container(pod: Obj) -> Obj:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def _mem_limit(pod: Obj) -> str:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return str(((containers[0].get("resources") or {}).get("limits") or {}).get("memory") or "none set")


# "failed to sync secret cache: timed out waiting for the condition": the kubelet's watch-based Secret (and
# ConfigMap) cache gives a new object one second to arrive, which a busy node, or a Node authorizer that does
# not know the pod yet, can miss. The kubelet tries again at its next sync of the pod: not a failure.
_KUBELET_CACHE_LAG = "failed to sync"


def pod_failure(pod: Obj) -> SpawnFailed | None:
    """A terminal problem visible in the pod's status, or ``None``."""
    cs = _container(pod)
    state, last = cs.get("state") or {}, cs.get("lastState") or {}
    image = cs.get("image") or ((pod.get("spec") or {}).get("containers") or [{}])[0].get("image", "")
    for terminated in (state.get("terminated"), last.get("terminated")):
        if terminated and terminated.get("reason") == "OOMKilled":
            return SpawnFailed(
                f"The server ran out of memory (limit: {_mem_limit(pod)}) and was killed (OOMKilled). "
                "Choose a larger profile or use less memory at startup.",
                reason_code="oom-killed",
            )
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason", "")
    if reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"):
        return SpawnFailed(
            f'The image "{image}" could not be pulled ({reason}). Check its name and tag and that the cluster '
            f"may pull it. Detail: {waiting.get('message', '')}",
            reason_code="image-pull-failed",
        )
    if reason == "CrashLoopBackOff":
        code = (last.get("terminated") or {}).get("exitCode")
        return SpawnFailed(
            f"The server keeps crashing right after it starts (CrashLoopBackOff, exit code {code}). "
            "Its log shows why.",
            reason_code="crash-loop",
        )
    if reason == "CreateContainerConfigError" and _KUBELET_CACHE_LAG in waiting.get("message", ""):
        return None  # the kubelet retries at its next sync
    if reason in ("CreateContainerConfigError", "CreateContainerError", "RunContainerError"):
        return SpawnFailed(f"The container could not be created ({reason}): {waiting.get('message', '')}",
                           reason_code="container-error")
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Failed", "Succeeded"):
        term = state.get("terminated") or {}
        return SpawnFailed(
            f"The server exited (pod phase {phase}, exit code {term.get('exitCode')}, {term.get('reason', 'no reason')}).",
            reason_code="pod-exited",
        )
    return None


def pod_running(pod: Obj) -> str | None:
    """The pod IP once the pod runs and its container is ready (readiness of HTTP is the core's job)."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        return None
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    cs = _container(pod)
    if not (cs.get("state") or {}).get("running") or not cs.get("ready", False):
        return None
    return str(status["podIP"])


def milestones_from_pod(pod: Obj, seen_reasons: set[str]) -> list[ProgressEvent]:
    """Progress a running pod's status implies but whose events have not arrived (yet)."""
    out = []
    node = (pod.get("spec") or {}).get("nodeName", "")
    image = _container(pod).get("image", "")
    if "Scheduled" not in seen_reasons:
        out.append(ProgressEvent(Phase.SCHEDULING, f"Scheduled on node {node}", 30, detail={"node": node}))
    if "Pulled" not in seen_reasons:
        out.append(ProgressEvent(Phase.PULLING, f'Pulled image "{image}"', 60))
    if "Started" not in seen_reasons:
        out.append(ProgressEvent(Phase.STARTING, "Container started", 80))
    return out
