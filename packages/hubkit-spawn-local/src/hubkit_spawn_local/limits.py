"""Memory and CPU limits: cgroups (v2, else v1) when writable, RLIMIT_AS as a per-process memory fallback.

The plan is made in the hub (where errors can be reported) and applied in the child before exec, so the
server never runs unlimited, even briefly.
"""

from __future__ import annotations

import os
import re
import resource
from dataclasses import dataclass, field

CGROUP_ROOT = "/sys/fs/cgroup"
PERIOD_US = 100_000


@dataclass
class LimitPlan:
    procs_files: list[str] = field(default_factory=list)  # cgroup.procs files the child joins
    cgroup_dirs: list[str] = field(default_factory=list)  # removed again on stop
    rlimit_as: int | None = None
    applied: list[str] = field(default_factory=list)  # plain-language summary of what is enforced
    unsupported: list[str] = field(default_factory=list)  # messages for limits that cannot be enforced

    def preexec(self) -> None:
        """Runs in the child between fork and exec, before privileges are dropped."""
        pid = str(os.getpid())
        for path in self.procs_files:
            with open(path, "w") as f:
                f.write(pid)
        if self.rlimit_as is not None:
            resource.setrlimit(resource.RLIMIT_AS, (self.rlimit_as, self.rlimit_as))


def cgroup_name(hub_id: str, user: str, server: str) -> str:
    raw = f"{hub_id}-{user}-{server}" if server else f"{hub_id}-{user}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)


def _writable_dir(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK)


def _v2_controllers(root: str) -> set[str]:
    try:
        with open(os.path.join(root, "cgroup.controllers")) as f:
            return set(f.read().split())
    except OSError:
        return set()


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _plan_v2(root: str, name: str, mem: int | None, cpu: float | None, plan: LimitPlan) -> bool:
    wanted = {c for c, v in (("memory", mem), ("cpu", cpu)) if v is not None}
    if not wanted or not wanted <= _v2_controllers(root) or not _writable_dir(root):
        return False
    parent = os.path.join(root, "hubkit")
    os.makedirs(parent, exist_ok=True)
    enable = " ".join(f"+{c}" for c in sorted(wanted))
    _write(os.path.join(root, "cgroup.subtree_control"), enable)
    _write(os.path.join(parent, "cgroup.subtree_control"), enable)
    d = os.path.join(parent, name)
    os.makedirs(d, exist_ok=True)
    if mem is not None:
        _write(os.path.join(d, "memory.max"), str(mem))
        plan.applied.append(f"memory {mem} bytes via cgroup v2")
    if cpu is not None:
        _write(os.path.join(d, "cpu.max"), f"{int(cpu * PERIOD_US)} {PERIOD_US}")
        plan.applied.append(f"cpu {cpu} cores via cgroup v2")
    plan.procs_files.append(os.path.join(d, "cgroup.procs"))
    plan.cgroup_dirs.append(d)
    return True


def _plan_v1(root: str, controller: str, name: str, settings: dict[str, str], plan: LimitPlan) -> bool:
    base = os.path.join(root, controller)
    if not _writable_dir(base) or not os.path.exists(os.path.join(base, next(iter(settings)))):
        return False
    d = os.path.join(base, "hubkit", name)
    os.makedirs(d, exist_ok=True)
    for key, value in settings.items():
        _write(os.path.join(d, key), value)
    plan.procs_files.append(os.path.join(d, "cgroup.procs"))
    plan.cgroup_dirs.append(d)
    return True


def plan_limits(name: str, mem: int | None, cpu: float | None, *, root: str | None = None) -> LimitPlan:
    """Prepare cgroups for ``name``. Never raises for an unsupported machine: it says so in ``unsupported``."""
    root = root or CGROUP_ROOT
    plan = LimitPlan()
    if mem is None and cpu is None:
        return plan
    try:
        if _plan_v2(root, name, mem, cpu, plan):
            return plan
    except OSError as e:
        plan.unsupported.append(f"cgroup v2 setup failed ({e}); trying other mechanisms")
    if mem is not None:
        ok = False
        try:
            ok = _plan_v1(root, "memory", name, {"memory.limit_in_bytes": str(mem)}, plan)
        except OSError as e:
            plan.unsupported.append(f"cgroup v1 memory setup failed: {e}")
        if ok:
            plan.applied.append(f"memory {mem} bytes via cgroup v1")
        else:
            plan.rlimit_as = mem
            plan.applied.append(
                f"memory {mem} bytes as RLIMIT_AS per process (no writable cgroup: each process, not the total, "
                "is capped)"
            )
    if cpu is not None:
        ok = False
        try:
            ok = _plan_v1(
                root,
                "cpu",
                name,
                {"cpu.cfs_period_us": str(PERIOD_US), "cpu.cfs_quota_us": str(int(cpu * PERIOD_US))},
                plan,
            )
        except OSError as e:
            plan.unsupported.append(f"cgroup v1 cpu setup failed: {e}")
        if ok:
            plan.applied.append(f"cpu {cpu} cores via cgroup v1")
        else:
            plan.unsupported.append(
                f"cpu_limit={cpu} cannot be enforced here: no writable cgroup cpu controller under {root} "
                "(run the hub as root on a machine with cgroups, or remove cpu_limit)"
            )
    return plan


def remove_cgroups(dirs: list[str]) -> None:
    """Remove a stopped server's cgroups (empty by then); leftovers are harmless and retried next time."""
    for d in dirs:
        try:
            os.rmdir(d)
        except OSError:
            pass
