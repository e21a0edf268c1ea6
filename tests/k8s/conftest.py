"""Hub-level Kubernetes tests: a real control plane built from Debian's source package and a real kubelet
(session-scoped, torn down by PID), a real hub + hubkit-proxy as processes. The fixtures (and the wait for a
build that .ci/setup/k8s.sh still runs in the background) are shared with the package's tests. Missing parts
skip locally and fail in CI (CI=true)."""

from __future__ import annotations

from hubkit_spawn_k8s.testing.fixtures import cluster, image, k8s_bin, ns, pytest_collection_finish

__all__ = ["cluster", "image", "k8s_bin", "ns", "pytest_collection_finish"]
