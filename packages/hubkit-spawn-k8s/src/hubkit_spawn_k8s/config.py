"""``[spawner.kubernetes]``: typed options for the pod, its storage, the API connection and profiles."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .quantity import parse_quantity

Quantity = str | None


def _check_quantity(value: str | None) -> str | None:
    if value is not None:
        parse_quantity(value)  # raises ValueError with the API server's wording
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Profile(_Model):
    """A named server size/image a user may pick. ``groups`` restricts it to members of those hub groups."""

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$", description="Identifier sent by the form.")
    display_name: str
    description: str = ""
    default: bool = False
    groups: list[str] = Field(default_factory=list, description="Hub groups allowed (empty: everyone).")
    image: str | None = Field(None, description="Image for this profile (default: the spawner's image).")
    images: list[str] = Field(default_factory=list, description="Other images a user may choose in this profile.")
    cpu_request: Quantity = None
    cpu_limit: Quantity = None
    mem_request: Quantity = None
    mem_limit: Quantity = None
    max_cpu: Quantity = Field(None, description="If set, users may ask for a CPU limit up to this.")
    max_mem: Quantity = Field(None, description="If set, users may ask for a memory limit up to this.")
    extra_resource_limits: dict[str, str] = Field(default_factory=dict, description="e.g. nvidia.com/gpu = '1'.")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] | None = None

    _q = field_validator("cpu_request", "cpu_limit", "mem_request", "mem_limit", "max_cpu", "max_mem")(
        _check_quantity
    )


class StorageConfig(_Model):
    enabled: bool = Field(True, description="Give each user a PersistentVolumeClaim, kept across servers.")
    storage_class: str | None = Field(None, description="StorageClass of the claims (None: cluster default).")
    capacity: str = Field("10Gi", description="Requested size of each claim.")
    access_modes: list[str] = Field(default_factory=lambda: ["ReadWriteOnce"])
    mount_path: str = Field("/home/jovyan", description="Where the claim is mounted in the container.")
    pvc_name_template: str = Field("hubkit-home-{user}", description="{user} is a DNS-safe form of the name.")
    bind_grace: float = Field(
        60, ge=0, description="Seconds a spawn waits while the scheduler's only complaint is that the claim is not "
        "bound yet (a provisioner at work), before it fails with that reason.",
    )
    delete_pvc: bool = Field(
        False,
        description="Delete the user's claim when the user is deleted from the hub (KubeSpawner's delete_pvc); "
        "the data goes too if its volume's reclaim policy is Delete. The hub's Role then needs delete on claims.",
    )

    _q = field_validator("capacity")(_check_quantity)


class KubeSpawnerConfig(_Model):
    # -- connection -------------------------------------------------------------------------------------
    namespace: str = Field("default", description="Namespace of the user pods (one watch per kind here).")
    kubeconfig: str | None = Field(None, description="kubeconfig file; None: in-cluster config, else ~/.kube/config.")
    context: str | None = Field(None, description="kubeconfig context.")
    api_concurrency: int = Field(16, ge=1, le=256, description="Blocking API calls in flight at once.")
    watch_timeout: int = Field(300, ge=1, description="Server-side timeout of one watch request (s); it resumes.")
    api_retry_seconds: float = Field(
        30, ge=0, description="Retry a call this long while the API server cannot be reached (restart, upgrade)."
    )
    # -- pod --------------------------------------------------------------------------------------------
    image: str = Field("quay.io/jupyter/base-notebook:latest", description="Default image (Docker Stacks work).")
    image_pull_policy: str = Field("IfNotPresent", pattern="^(Always|IfNotPresent|Never)$")
    image_pull_secrets: list[str] = Field(default_factory=list)
    cmd: list[str] = Field(
        default_factory=list,
        description="Container command; empty: [spawner] cmd, else the image's own (Docker Stacks start the server).",
    )
    port: int = Field(8888, ge=1, le=65535, description="Port the server listens on inside the pod.")
    host_network: bool = Field(
        False,
        description="Pods share their node's network: each server listens on host_network_ip at a free port the "
        "hub picks, and the hub connects there. Only for a cluster whose node is the hub's own machine "
        "(a one-machine cluster, as in hubkit's tests); `port` is then unused.",
    )
    host_network_ip: str = Field("127.0.0.1", description="With host_network: where servers listen and are reached.")
    token_secret: bool = Field(
        True,
        description="Keep the server's hub API token in a Secret of its own (referenced by the pod's env, owned by "
        "the pod so it goes with it) rather than as a plain value in the pod spec. Needs create/patch/delete/list "
        "on secrets in the hub's Role.",
    )
    container_name: str = Field("notebook", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    pod_name_template: str = Field("hubkit-{user}{server}", description="{user}/{server} are DNS-safe forms.")
    working_dir: str | None = None
    service_account: str | None = Field(None, description="Service account of the pods.")
    automount_service_account_token: bool = False
    run_as_uid: int | None = 1000
    run_as_gid: int | None = 100
    fs_gid: int | None = 100
    run_as_non_root: bool = True
    allow_privilege_escalation: bool = False
    cpu_request: Quantity = None
    cpu_limit: Quantity = None
    mem_request: Quantity = None
    mem_limit: Quantity = None
    extra_resource_limits: dict[str, str] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] | None = None
    extra_labels: dict[str, str] = Field(default_factory=dict)
    extra_annotations: dict[str, str] = Field(default_factory=dict)
    extra_env: dict[str, str] = Field(default_factory=dict)
    extra_volumes: list[dict[str, Any]] = Field(default_factory=list, description="Pod volumes (API shape).")
    extra_volume_mounts: list[dict[str, Any]] = Field(default_factory=list, description="Container volumeMounts.")
    readiness_probe: bool = Field(
        True, description="HTTP readiness probe on {prefix}api: a pod counts as started only once it answers."
    )
    restart_policy: str = Field("OnFailure", pattern="^(Always|OnFailure|Never)$")
    priority_class_name: str | None = None
    storage: StorageConfig = Field(default_factory=StorageConfig)  # type: ignore[arg-type]
    service: bool = Field(False, description="Also create a ClusterIP Service per server; the hub connects to it.")
    # -- lifecycle --------------------------------------------------------------------------------------
    start_timeout: float = Field(300, gt=0, description="Seconds for the pod to be running.")
    delete_grace_period: int = Field(1, ge=0, description="Grace period (s) when stopping a server.")
    stop_wait: float = Field(30, gt=0, description="Seconds to wait for a deleted pod to be gone.")
    unschedulable_grace: float = Field(
        0, ge=0, description="Seconds to keep waiting after FailedScheduling (raise it with a cluster autoscaler)."
    )
    profiles: list[Profile] = Field(default_factory=list)

    _q = field_validator("cpu_request", "cpu_limit", "mem_request", "mem_limit")(_check_quantity)

    @model_validator(mode="after")
    def _profiles_unique(self) -> KubeSpawnerConfig:
        slugs = [p.slug for p in self.profiles]
        if len(slugs) != len(set(slugs)):
            raise ValueError("profile slugs must be unique")
        if sum(p.default for p in self.profiles) > 1:
            raise ValueError("at most one profile may be the default")
        return self
