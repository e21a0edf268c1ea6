"""Typed data objects and backend protocols: the contract between the core and its plugins.

Plugins only ever see these frozen value objects and protocols, never ORM rows or DB sessions, so the
storage schema can change without breaking a plugin. Backends (authenticators, spawners, proxies) are
*stateless towards a single server*: per-server state is a JSON dict that the core persists and hands back,
which is what lets a restarted hub (or a second hub process) pick up where another left off.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

JSONDict = dict[str, Any]


# --------------------------------------------------------------------------------------------------------------
# Identities
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserInfo:
    """A hub user as plugins see it."""

    name: str
    admin: bool = False
    groups: tuple[str, ...] = ()
    id: int | None = None


@dataclass(frozen=True)
class Credentials:
    """What a login form submitted. ``form`` holds every submitted field (minus the password)."""

    username: str
    password: str = field(default="", repr=False)
    remote_addr: str = ""
    form: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthResult:
    """A successful authentication.

    ``admin``/``groups`` of ``None`` mean "the authenticator has no opinion": the hub keeps what it has.
    ``auth_state`` is stored in an encrypted column and never shown without ``admin:auth_state``.
    """

    name: str
    admin: bool | None = None
    groups: tuple[str, ...] | None = None
    auth_state: JSONDict | None = field(default=None, repr=False)
    user_info: JSONDict | None = None


class LoginKind(enum.StrEnum):
    FORM = "form"  # username/password form posted to /hub/login
    REDIRECT = "redirect"  # a button that sends the browser to ``login_url``


# --------------------------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    """Everything a spawner needs to start one user server.

    ``env`` already follows the single-user contract (JUPYTERHUB_* variables) except the server's own address,
    which only the backend knows: it finishes the environment with :meth:`env_with_url` and adds its own
    (``HOME``, ``USER``...). ``api_token`` is the server's own hub token (also in ``env``).
    """

    user: UserInfo
    server_name: str  # "" for the default server
    server_id: int
    url_prefix: str  # "/user/alice/" or "/user/alice/nb1/"
    hub_api_url: str  # as reachable from the server
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    cmd: tuple[str, ...] = ()  # empty: the backend's default command
    args: tuple[str, ...] = ()
    user_options: Mapping[str, Any] = field(default_factory=dict)
    api_token: str = field(default="", repr=False)
    hub_id: str = "hubkit"  # labels external resources so orphans can be told apart per hub

    @property
    def full_name(self) -> str:
        return f"{self.user.name}/{self.server_name}"

    def env_with_url(self, ip: str, port: int, *, proto: str = "http") -> dict[str, str]:
        """The environment to start the server with: :attr:`env` plus ``JUPYTERHUB_SERVICE_URL`` for the
        address the backend chose. ``ip`` is where the server binds (``""`` or ``0.0.0.0`` for all interfaces,
        as in containers and pods)."""
        env = dict(self.env)
        env["JUPYTERHUB_SERVICE_URL"] = f"{proto}://{ip}:{port}{self.url_prefix}"
        return env


@dataclass(frozen=True)
class Endpoint:
    """Where a started server listens, e.g. ``http://127.0.0.1:41234``. The proxy routes to it."""

    url: str


@dataclass(frozen=True)
class ExitStatus:
    """A server that is not running. ``code`` is the exit code when known; ``reason`` is plain language."""

    code: int | None = None
    reason: str = ""
    reason_code: str = "exited"


class Phase(enum.StrEnum):
    QUEUED = "queued"
    REQUESTED = "requested"
    PULLING = "pulling"
    SCHEDULING = "scheduling"
    STARTING = "starting"
    WAITING_HTTP = "waiting-http"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a spawn. ``reason_code`` (machine-readable) is set on failures, e.g. ``image-missing``."""

    phase: Phase
    message: str
    progress: int | None = None  # 0..100
    reason_code: str | None = None
    queue_position: int | None = None
    detail: JSONDict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.phase is Phase.FAILED

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY


class SpawnContext(Protocol):
    """Handed to :meth:`SpawnerBackend.start`.

    ``save_state`` persists the backend's state *before* it creates an external resource (a process, a
    container, a pod), so a hub killed mid-spawn can still find and clean that resource up.
    """

    async def emit(self, event: ProgressEvent) -> None: ...

    async def save_state(self, state: JSONDict) -> None: ...


@dataclass(frozen=True)
class StartResult:
    endpoint: Endpoint
    state: JSONDict


@dataclass(frozen=True)
class OptionsForm:
    """An HTML fragment of form fields shown on the spawn page (server-rendered, no JS needed)."""

    html: str


@dataclass(frozen=True)
class KnownServer:
    """A server the hub believes is running or starting, as given to a backend's reconciler."""

    spec: ServerSpec
    state: JSONDict


@dataclass(frozen=True)
class ReconcileReport:
    adopted: tuple[str, ...] = ()  # full names of servers found and kept
    removed: tuple[str, ...] = ()  # external resource ids deleted as orphans
    reported: tuple[str, ...] = ()  # orphans left alone (report-only mode)
    missing: tuple[str, ...] = ()  # servers the hub knows but the backend cannot find


@runtime_checkable
class SpawnerBackend(Protocol):
    """One spawner backend instance per hub; the core drives it per server.

    Each method gets the server's ``spec`` and its persisted ``state`` (what :meth:`start` returned or last
    saved). The core wraps every call in its own timeout, so a hung backend cannot wedge the hub.
    """

    async def startup(self) -> None:
        """Open shared clients/watches. Called once before any other method."""

    async def shutdown(self) -> None:
        """Close shared resources. Must not stop user servers: they outlive the hub."""

    def options_form(self, user: UserInfo) -> OptionsForm | None:
        """Spawn options for this user, or ``None`` when there are none."""

    def parse_options(self, user: UserInfo, form: Mapping[str, Any]) -> JSONDict:
        """Validate submitted options server-side. Raise :class:`hubkit.errors.InvalidOptions` when bad."""

    async def start(self, spec: ServerSpec, ctx: SpawnContext) -> StartResult:
        """Start the server; return as soon as its address is known (readiness is the core's job).

        Raise :class:`hubkit.errors.SpawnFailed` with a ``reason_code`` for a failure a person can act on.
        """

    async def poll(self, spec: ServerSpec, state: JSONDict) -> ExitStatus | None:
        """``None`` while the server is running, an :class:`ExitStatus` once it is gone."""

    async def stop(self, spec: ServerSpec, state: JSONDict, *, now: bool = False) -> None:
        """Stop the server and release what it holds. Idempotent: stopping a gone server is not an error."""

    async def log_tail(self, spec: ServerSpec, state: JSONDict, lines: int = 40) -> list[str]:
        """The last lines of the server's output, for failure messages and the admin page."""

    async def reconcile(self, known: Sequence[KnownServer], *, remove_orphans: bool) -> ReconcileReport:
        """Compare the backend's labelled resources with ``known``; adopt, remove or report orphans."""


# --------------------------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginRedirect:
    url: str
    state: str = field(repr=False)


@dataclass(frozen=True)
class LoginCompletion:
    result: AuthResult
    next_url: str = ""


@runtime_checkable
class Authenticator(Protocol):
    """One authenticator per hub, chosen by name in ``[auth] backend``.

    Form authenticators (``login_kind = LoginKind.FORM``) check credentials in :meth:`authenticate`. Redirect
    authenticators (OAuth) set ``login_kind = LoginKind.REDIRECT`` and also implement
    :class:`RedirectAuthenticator`. The core owns every web endpoint and runs the usual allow/admin/groups
    pipeline on the :class:`AuthResult`, so an authenticator never touches HTTP framework objects.
    """

    login_kind: ClassVar[LoginKind]
    display_name: ClassVar[str]

    async def startup(self) -> None:
        """Open clients, read provider metadata, check the configuration. Called once before any other method."""

    async def shutdown(self) -> None:
        """Close what :meth:`startup` opened."""

    async def authenticate(self, credentials: Credentials) -> AuthResult | None:
        """Check credentials; ``None`` (or :class:`hubkit.errors.AuthFailed`) means refused."""

    def login_url(self, next_url: str) -> str:
        """Where the login button goes: ``/hub/login`` for forms, ``/hub/oauth_login?next=...`` for redirects."""

    async def refresh_user(self, user: UserInfo, auth_state: JSONDict | None) -> AuthResult | bool:
        """Refresh upstream credentials before a spawn / on use. ``True``: still valid; ``False``: log in again."""

    def logout_url(self, user: UserInfo, auth_state: JSONDict | None) -> str | None:
        """Where to send the browser after the hub session is cleared (RP-initiated logout), or ``None``."""


@runtime_checkable
class RedirectAuthenticator(Authenticator, Protocol):
    """An authenticator with ``login_kind = LoginKind.REDIRECT``: the core owns ``/hub/oauth_login`` and
    ``/hub/oauth_callback`` and keeps the opaque ``state`` string in a signed, HttpOnly, short-lived cookie."""

    async def start_login(self, next_url: str, redirect_uri: str) -> LoginRedirect:
        """The provider URL to send the browser to, and opaque state (PKCE verifier, nonce, ``next_url``) for
        the core to keep in a signed cookie. ``redirect_uri`` is the hub's callback URL."""

    async def complete_login(
        self, params: Mapping[str, str], state: str, redirect_uri: str
    ) -> LoginCompletion:
        """Handle the callback's query ``params`` with the cookie ``state``.

        Raise :class:`hubkit.errors.AuthFailed` with a message a person can act on (state mismatch, provider
        error, denied); never let a provider fault become a 500."""


# --------------------------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One proxy route. ``routespec`` is JupyterHub-style: ``/user/alice/`` (trailing slash), or with a host
    for subdomain routing: ``alice.hub.example/user/alice/``. ``data`` is stored verbatim by the proxy
    (``user``, ``server_name``, ``hub``...); ``last_activity`` there is read back for the culler."""

    routespec: str
    target: str
    data: Mapping[str, Any] = field(default_factory=dict)


class RouteChangeKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"


@dataclass(frozen=True)
class RouteChange:
    kind: RouteChangeKind
    route: Route


@runtime_checkable
class ProxyBackend(Protocol):
    """The proxy's route table as the hub drives it. The core owns reconciling (desired vs actual)."""

    async def startup(self) -> None:
        """Connect to (or launch, for embedded proxies) the proxy."""

    async def shutdown(self) -> None:
        """Disconnect. An external or embedded proxy keeps running: it outlives the hub."""

    async def add_route(self, route: Route) -> None:
        """Add or replace a route (upsert)."""

    async def delete_route(self, routespec: str) -> None:
        """Remove a route. Idempotent: a missing route is not an error."""

    async def get_routes(self) -> dict[str, Route]:
        """The proxy's current table keyed by routespec, only routes the hub owns."""


@runtime_checkable
class ProxyProcess(Protocol):
    """Optional for proxy backends that launch their proxy process. ``POST /hub/api/shutdown`` with
    ``"proxy": true`` calls it once, after the hub stopped serving; nothing else does (the proxy outlives the
    hub). It may block (the hub runs it in a worker thread) and returns whether a process was stopped: a proxy
    the backend did not launch is left alone (``False``), as JupyterHub does."""

    def stop_proxy(self) -> bool: ...


@runtime_checkable
class MarksHubRequests(Protocol):
    """Optional for proxy backends. ``True`` when every request the proxy forwards to the hub carries
    ``X-Hubkit-Forwarded: <HubInfo.forward_mark>`` and the proxy removes that header from what clients send.
    The hub then believes ``X-Forwarded-*`` only on marked requests: loopback is shared with every local
    process (users' servers included), so a peer address alone cannot tell the proxy from them. Asked once,
    after the backend is built."""

    def marks_hub_requests(self) -> bool: ...


# --------------------------------------------------------------------------------------------------------------
# Registration helpers passed to plugins
# --------------------------------------------------------------------------------------------------------------

BackendFactory = Callable[..., Any]


@dataclass(frozen=True)
class WebRoute:
    """A web endpoint contributed by a plugin: an ASGI app mounted at ``path`` (under the hub prefix).

    Keeping this an ASGI callable keeps hook modules free of any web framework import."""

    path: str
    app: Callable[[Any, Any, Any], Awaitable[None]]
    name: str = ""
