"""A fake Kubernetes API server with a simulated scheduler and kubelet, for tests and benchmarks.

The official ``kubernetes`` client talks to it unmodified (see :class:`FakeKubernetes`); containers are
emulated by local processes or in-process HTTP servers, each pod on its own loopback address.
"""

from __future__ import annotations

from .cluster import FakeImage, FakeNode
from .server import FakeKubernetes

__all__ = ["FakeImage", "FakeKubernetes", "FakeNode"]
