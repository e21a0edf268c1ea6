"""Reading a pod's status: what ends a spawn and what the kubelet retries by itself. The real components make
every terminal case in test_failures.py; the kubelet's cache lag below comes only when a node is busy (seen
here under load), so its status is written out."""

from __future__ import annotations

from typing import Any

from hubkit_spawn_k8s.progress import pod_failure


def _waiting(reason: str, message: str) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "notebook", "image": "hubkit-test"}]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "notebook", "image": "hubkit-test", "ready": False,
                 "state": {"waiting": {"reason": reason, "message": message}}}]}}


def test_the_kubelets_secret_cache_lag_is_waited_for() -> None:
    lag = _waiting("CreateContainerConfigError", "failed to sync secret cache: timed out waiting for the condition")
    assert pod_failure(lag) is None


def test_a_container_config_error_otherwise_ends_the_spawn() -> None:
    missing = _waiting("CreateContainerConfigError", 'secret "hubkit-alice-token" not found')
    failure = pod_failure(missing)
    assert failure is not None and failure.reason_code == "container-error"
    assert 'secret "hubkit-alice-token" not found' in str(failure)
