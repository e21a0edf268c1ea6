"""Test support for the kubernetes spawner: a real control plane built from Debian's source package
(:mod:`.controlplane`), the one stand-in left (:mod:`.nodeagent`, kubelet status work for many fake nodes),
a cuttable TCP path to the API server (:mod:`.netgate`) and an admission gate (:mod:`.webhook`)."""

from __future__ import annotations

from .controlplane import ControlPlane, StartError, find_bin_dir

__all__ = ["ControlPlane", "StartError", "find_bin_dir"]
