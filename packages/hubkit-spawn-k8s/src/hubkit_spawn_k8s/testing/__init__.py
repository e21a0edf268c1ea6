"""Test support for the kubernetes spawner: a real control plane built from Debian's source package
(:mod:`.controlplane`, its binaries found or waited for by :mod:`.binaries`), the pytest fixtures both test
folders share (:mod:`.fixtures`), the one stand-in left (:mod:`.nodeagent`, kubelet status work for many fake
nodes), a cuttable TCP path to the API server (:mod:`.netgate`) and an admission gate (:mod:`.webhook`)."""

from __future__ import annotations

from .binaries import BuildFailed, find_bin_dir, wait_for_binaries
from .controlplane import ControlPlane, StartError

__all__ = ["BuildFailed", "ControlPlane", "StartError", "find_bin_dir", "wait_for_binaries"]
