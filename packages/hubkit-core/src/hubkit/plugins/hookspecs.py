"""The hook specifications: hubkit's plugin contract.

Two kinds of hook:

* **Registration hooks** (``hubkit_register_*``) are called once at startup, synchronously, through pluggy.
  Their implementations must be plain functions (an ``async def`` one fails startup). They add backends,
  tables, web endpoints and config sections to the registry they receive.
* **Runtime hooks** may be implemented as ``def`` or ``async def``. They are only ever dispatched through
  :mod:`hubkit.plugins.calling`, which awaits async implementations and runs sync ones in a worker thread so
  blocking code (PAM, a slow directory lookup) cannot stall the event loop. Wrappers are rejected on them.

Each docstring says *when* the hook is called, *how* results combine, and what to return. Plugins receive
frozen data objects from :mod:`hubkit.interfaces`, never ORM rows or DB sessions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _hookspec as hookspec

if TYPE_CHECKING:
    from ..interfaces import (
        Authenticator,
        AuthResult,
        Endpoint,
        ExitStatus,
        ProxyBackend,
        RouteChange,
        ServerSpec,
        SpawnerBackend,
        UserInfo,
    )
    from .registry import (
        BackendRegistry,
        ConfigSectionRegistry,
        StorageRegistry,
        WebRouteRegistry,
    )

# ---------------------------------------------------------------------------------------------------------------
# A. Registration (sync, once at startup)
# ---------------------------------------------------------------------------------------------------------------


@hookspec
def hubkit_register_authenticators(registry: BackendRegistry[Authenticator]) -> None:
    """Register authenticator backends: ``registry.add("pam", PAMAuthenticator, config=PAMConfig)``.

    Called once at startup (all implementations). The one named by ``[auth] backend`` is built with
    ``factory(config=<validated [auth.<name>] section>, hub=HubInfo)`` and must satisfy
    :class:`hubkit.interfaces.Authenticator` (checked at startup: a missing member fails it, naming the
    distribution). If the built instance has ``hubkit_*`` runtime hook methods (marked with ``hookimpl``), it is
    registered as a plugin of that hub, so its hooks see its own configuration.
    """


@hookspec
def hubkit_register_spawners(registry: BackendRegistry[SpawnerBackend]) -> None:
    """Register spawner backends (:class:`hubkit.interfaces.SpawnerBackend`) with their config models.

    Called once at startup (all implementations). ``[spawner] backend`` picks one; its options live in
    ``[spawner.<name>]``. Built, checked and registered for its runtime hooks as authenticators are.
    """


@hookspec
def hubkit_register_proxies(registry: BackendRegistry[ProxyBackend]) -> None:
    """Register proxy backends (:class:`hubkit.interfaces.ProxyBackend`).

    Called once at startup (all implementations). ``[proxy] backend`` picks one; options in ``[proxy.<name>]``.
    Built, checked and registered for its runtime hooks as authenticators are.
    """


@hookspec
def hubkit_register_storage(storage: StorageRegistry) -> None:
    """Contribute tables (``storage.add_metadata(md)``) and an Alembic branch
    (``storage.add_migrations("pkg:migrations", branch="my-plugin")``), run by ``hubkit db upgrade``.

    Called once at startup and by the ``db`` commands (all implementations).
    """


@hookspec
def hubkit_register_web_routes(routes: WebRouteRegistry) -> None:
    """Add web endpoints (ASGI apps) under the hub prefix, e.g. an OAuth callback at ``/hub/oauth_callback``.

    Called once when the web app is built (all implementations).
    """


@hookspec
def hubkit_register_config(config: ConfigSectionRegistry) -> None:
    """Declare a typed config section for options that are not a backend's, e.g. ``config.add("shared_data", M)``.

    Called once at startup (all implementations); the section is validated with the model and shown by
    ``hubkit --generate-config``.
    """


# ---------------------------------------------------------------------------------------------------------------
# B. Authentication (runtime)
# ---------------------------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def hubkit_normalize_username(name: str) -> str | None:
    """Normalize a username typed at login (e.g. lower-case it, map an e-mail to an account name).

    Called before authentication and when admins add users. First non-``None`` result wins; ``None`` means
    "no opinion" (an ``async def`` implementation returning ``None`` does *not* stop the chain). The core's
    fallback strips surrounding whitespace.
    """


@hookspec
def hubkit_check_allowed(result: AuthResult) -> bool | None:
    """Decide whether an authenticated identity may use the hub.

    Called after the authenticator accepts a login, for every implementation in order. Any ``False`` refuses
    the login; ``None`` abstains. The core's own implementation applies ``[auth] allowed_users`` /
    ``blocked_users``.
    """


@hookspec
def hubkit_post_auth(result: AuthResult) -> AuthResult | None:
    """Amend a successful login (add groups, set admin, enrich ``auth_state``) before the user is stored.

    Called after :func:`hubkit_check_allowed` accepted, in order; each implementation receives the result
    of the previous one. Return a new :class:`AuthResult` or ``None`` to leave it unchanged.
    """


# ---------------------------------------------------------------------------------------------------------------
# C. Spawning (runtime)
# ---------------------------------------------------------------------------------------------------------------


@hookspec
def hubkit_pre_spawn(spec: ServerSpec) -> ServerSpec | None:
    """Adjust a server before it starts (extra env, options, command).

    Called once per spawn after the spawn leaves the admission queue and before the backend's ``start``;
    implementations run in order, each receiving the previous result. Return a new spec (use
    ``dataclasses.replace``) or ``None``. Raising :class:`hubkit.errors.SpawnFailed` aborts the spawn with
    that message.
    """


@hookspec
def hubkit_server_ready(spec: ServerSpec, endpoint: Endpoint) -> None:
    """A server answered its readiness check and its route is in the proxy. Broadcast; results ignored."""


@hookspec
def hubkit_post_stop(spec: ServerSpec, status: ExitStatus | None) -> None:
    """A server stopped (by request, by the culler, or found dead by the poller: then ``status`` says how).

    Broadcast after its route is removed and the backend's ``stop`` returned; results ignored.
    """


# ---------------------------------------------------------------------------------------------------------------
# D. Storage and lifecycle events (runtime)
# ---------------------------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def hubkit_check_new_user(name: str) -> str | None:
    """Refuse a user an admin is about to add (admin page, ``POST /hub/api/users``), before anything is stored.

    Called once per name that does not exist yet (already normalised), in order. The first non-``None`` result
    refuses the whole request: it is the message shown to the admin (400 from the API, an error on the admin
    page), so say what is wrong and what would work. ``None`` accepts. For names a plugin cannot serve, e.g. PAM
    with account creation refuses names that cannot become an OS account. Logins do not call it.
    """


@hookspec
def hubkit_user_created(user: UserInfo) -> None:
    """A user was added (first login, admin page, API). Broadcast; results ignored.

    An exception here is logged with the plugin's name and does not undo the creation.
    """


@hookspec
def hubkit_user_deleted(user: UserInfo) -> None:
    """A user was deleted (servers already stopped). Plugins remove what they own for that user
    (their own table rows, volumes). Broadcast; results ignored."""


# ---------------------------------------------------------------------------------------------------------------
# E. Routing (runtime)
# ---------------------------------------------------------------------------------------------------------------


@hookspec
def hubkit_route_changed(change: RouteChange) -> None:
    """A route was added to or removed from the proxy (by a spawn, a stop or the reconciler).

    Broadcast after the proxy accepted the change; results ignored. For audit logs and metrics.
    """


REGISTRATION_HOOKS = frozenset(
    {
        "hubkit_register_authenticators",
        "hubkit_register_spawners",
        "hubkit_register_proxies",
        "hubkit_register_storage",
        "hubkit_register_web_routes",
        "hubkit_register_config",
    }
)
