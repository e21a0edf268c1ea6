"""hubkit plugin entry point: registers the ``pam`` authenticator and its runtime hooks.

Runtime hooks are module functions (that is how entry-point plugins are registered), but they need the
configured authenticator. A started :class:`PAMAuthenticator` records itself here (:func:`activate`), keyed by
its hub id; hooks for a hub without an active PAM authenticator return at once (they are ``async`` so an
installed-but-unused plugin costs no thread hop); the blocking PAM and ``useradd`` calls run in a worker thread.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import anyio.to_thread
from hubkit.errors import SpawnFailed
from hubkit.interfaces import ExitStatus, ServerSpec, UserInfo
from hubkit.plugins import hookimpl
from hubkit.plugins.registry import BackendRegistry

from . import accounts, pam_calls
from .authenticator import PAMAuthenticator
from .config import PAMConfig

log = logging.getLogger("hubkit.auth.pam")

_active: weakref.WeakValueDictionary[str, PAMAuthenticator] = weakref.WeakValueDictionary()
_latest: list[weakref.ref[PAMAuthenticator]] = []


def activate(auth: PAMAuthenticator) -> None:
    """Called by :meth:`PAMAuthenticator.startup`: from now on this hub's hooks use ``auth``."""
    _active[auth.hub.hub_id] = auth
    _latest[:] = [weakref.ref(auth)]


def active_for(hub_id: str | None) -> PAMAuthenticator | None:
    """The started PAM authenticator of ``hub_id`` (``None``: the most recently started one)."""
    if hub_id is not None:
        return _active.get(hub_id)
    return _latest[0]() if _latest else None


@hookimpl
def hubkit_register_authenticators(registry: BackendRegistry[Any]) -> None:
    registry.add(
        "pam",
        PAMAuthenticator,
        config=PAMConfig,
        description="the machine's own accounts and passwords (PAM)",
    )


@hookimpl
async def hubkit_normalize_username(name: str) -> str | None:
    auth = active_for(None)
    if auth is None or not auth.config.lowercase_usernames:
        return None  # the core's fallback strips whitespace
    return auth.normalize(name)


@hookimpl
async def hubkit_pre_spawn(spec: ServerSpec) -> ServerSpec | None:
    auth = active_for(spec.hub_id)
    if auth is None or not auth.config.open_sessions:
        return None
    await anyio.to_thread.run_sync(_open_session, spec.user.name, auth.config.service)
    return None


@hookimpl
async def hubkit_post_stop(spec: ServerSpec, status: ExitStatus | None) -> None:
    auth = active_for(spec.hub_id)
    if auth is None or not auth.config.open_sessions:
        return
    await anyio.to_thread.run_sync(_close_session, spec.user.name, auth.config.service)


@hookimpl
async def hubkit_user_created(user: UserInfo) -> None:
    auth = active_for(None)
    if auth is None or not auth.config.create_system_users:
        return
    await anyio.to_thread.run_sync(_create_account, user.name, auth.config)


# Blocking parts, run in a worker thread only when this hub uses them.


def _open_session(name: str, service: str) -> None:
    pamela = pam_calls.load_pamela()
    try:
        pam_calls.open_session(name, service=service)
    except pamela.PAMError as exc:
        raise SpawnFailed(
            f"could not open a PAM session for {name!r} (service {service!r}): {exc}",
            reason_code="pam-session",
        ) from exc
    log.info("opened PAM session for %s", name)


def _close_session(name: str, service: str) -> None:
    pamela = pam_calls.load_pamela()
    try:
        pam_calls.close_session(name, service=service)
    except pamela.PAMError as exc:
        log.warning("closing the PAM session of %s failed: %s", name, exc)
    else:
        log.info("closed PAM session for %s", name)


def _create_account(name: str, cfg: PAMConfig) -> None:
    if accounts.exists(name):
        return  # first login of an existing account, or created by hand
    account = accounts.create(
        name, shell=cfg.useradd_shell, groups=tuple(cfg.useradd_groups), skel=cfg.skel_dir
    )
    log.info("created OS account %s (uid %d, home %s)", account.name, account.uid, account.home)
