"""The PAM authenticator: the machine's own accounts log in with their system password.

Every blocking PAM call runs in a worker thread behind a small capacity limiter, so a burst of logins cannot
take every thread the hub has. Every refusal takes the same configured minimum time (slept on the event loop,
not in a thread), which hides whether the account exists and replaces PAM's randomized failure sleep.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, NoReturn

import anyio
import anyio.to_thread
from hubkit.errors import AuthFailed, ConfigError, SpawnFailed
from hubkit.interfaces import (
    AuthResult,
    Credentials,
    ExitStatus,
    JSONDict,
    LoginCompletion,
    LoginKind,
    LoginRedirect,
    ServerSpec,
    UserInfo,
)
from hubkit.plugins import hookimpl
from hubkit.plugins.registry import HubInfo

from . import accounts, pam_calls, policy
from .config import PAMConfig
from .dummy_hash import DummyHasher, setting_from_shadow

log = logging.getLogger("hubkit.auth.pam")

# Used in place of a name that cannot be an account, so PAM still does (and times) a full check.
PLACEHOLDER_NAME = "hubkit-no-such-account"
PAM_DIRS = ("/etc/pam.d", "/usr/lib/pam.d", "/lib/pam.d")
SHADOW = "/etc/shadow"


def service_exists(service: str) -> bool:
    """Linux-PAM reads /etc/pam.d (then /usr/lib/pam.d); only without /etc/pam.d does it read /etc/pam.conf."""
    if any(Path(d, service).is_file() for d in PAM_DIRS):
        return True
    if Path("/etc/pam.d").is_dir():
        return False
    try:
        lines = Path("/etc/pam.conf").read_text().splitlines()
    except OSError:
        return False
    return any(line.split()[:1] == [service] for line in lines)


class PAMAuthenticator:
    """The ``pam`` authenticator. Its ``hubkit_*`` methods are runtime hooks: the hub registers the instance it
    built, so they act with this instance's configuration (the ``async`` ones cost no thread hop when their
    option is off; blocking PAM and ``useradd`` calls run in a worker thread)."""

    login_kind: ClassVar[LoginKind] = LoginKind.FORM
    display_name: ClassVar[str] = "System account"

    def __init__(self, config: PAMConfig, hub: HubInfo) -> None:
        self.config = config
        self.hub = hub
        self._limiter = anyio.CapacityLimiter(config.max_concurrent_checks)
        self._dummy = DummyHasher(None)

    # ----------------------------------------------------------------------------------------------------
    # startup checks
    # ----------------------------------------------------------------------------------------------------

    async def startup(self) -> None:
        try:
            pam_calls.load_pamela()
        except (ImportError, OSError) as exc:
            raise ConfigError(
                f"PAM is not usable on this machine ({exc}); install libpam (Debian: libpam0g)",
                key="auth.backend",
            ) from exc
        if not service_exists(self.config.service):
            raise ConfigError(
                f"PAM service {self.config.service!r} not found in {', '.join(PAM_DIRS)}; PAM would silently "
                "use the 'other' service instead. Create it or pick an existing one",
                key="auth.pam.service",
            )
        if self.config.require_shadow_access and os.geteuid() != 0 and not os.access(SHADOW, os.R_OK):
            raise ConfigError(
                f"the hub runs as uid {os.geteuid()} (not root) and cannot read {SHADOW}, so PAM can check no "
                "password but the hub user's own. Run the hub as root (needed anyway to start servers as each "
                "user), or add its account to the 'shadow' group, or set [auth.pam] require_shadow_access = "
                "false if your PAM stack does not use the shadow file",
                key="auth.backend",
            )
        if self.config.create_system_users and os.geteuid() != 0:
            raise ConfigError(
                "create_system_users = true needs a hub running as root (it calls useradd)",
                key="auth.pam.create_system_users",
            )
        self._dummy = DummyHasher(setting_from_shadow(SHADOW))
        if not self._dummy.available:
            log.warning(
                "libcrypt not found: unknown users are refused faster than wrong passwords, "
                "only failure_delay_seconds hides the difference"
            )

    async def shutdown(self) -> None:
        return None

    # ----------------------------------------------------------------------------------------------------
    # login
    # ----------------------------------------------------------------------------------------------------

    def normalize(self, name: str) -> str:
        name = name.strip()
        return name.lower() if self.config.lowercase_usernames else name

    async def authenticate(self, credentials: Credentials) -> AuthResult | None:
        started = time.monotonic()
        name = self.normalize(credentials.username)
        checkable = accounts.valid_login_name(name)
        if not credentials.password:
            # pam_unix's ``nullok`` would let a password-less account in with an empty password.
            await self._refuse(started, policy.BAD_CREDENTIALS, f"empty password for {name!r}")
        outcome = await anyio.to_thread.run_sync(
            self._login,
            name if checkable else PLACEHOLDER_NAME,
            credentials.password,
            credentials.remote_addr,
            limiter=self._limiter,
        )
        if not checkable:  # the placeholder can never pass; still, never accept it
            await self._refuse(started, policy.BAD_CREDENTIALS, f"unusable username {name!r}")
        if not outcome.ok:
            await self._refuse(
                started,
                policy.pam_refusal_message(outcome, outcome.shadow_reason),
                f"PAM refused {name!r} at {outcome.stage} stage: {outcome.text} ({outcome.code})",
            )
        account = accounts.lookup(name)
        if account is None:  # PAM accepted a name NSS does not know: nothing could run as it
            await self._refuse(started, policy.NOT_ALLOWED, f"{name!r} passed PAM but has no passwd entry")
        if not policy.is_allowed(self.config, account):
            log.info("PAM login of %r refused by allow/block policy", name)
            raise AuthFailed(policy.NOT_ALLOWED)
        return AuthResult(
            name=account.name,
            admin=True if policy.is_admin(self.config, account) else None,
            user_info={"uid": account.uid, "home": account.home, "os_groups": list(account.groups)},
        )

    def _login(self, name: str, password: str, rhost: str) -> pam_calls.Outcome:
        """In a worker thread: the PAM transaction, and on an account-stage refusal the shadow reason."""
        outcome = pam_calls.login(
            name, password, service=self.config.service, rhost=rhost, check_account=self.config.check_account
        )
        if outcome.stage is pam_calls.Stage.ACCOUNT:
            outcome = dataclasses.replace(outcome, shadow_reason=accounts.shadow_expiry(name))
        elif not outcome.ok and not accounts.exists(name):
            self._dummy.burn(password)  # pam_unix skipped the hash for an unknown account: do it anyway
        return outcome

    async def _refuse(self, started: float, message: str, why: str) -> NoReturn:
        """Log ``why`` (for the admin), wait out the uniform failure time, refuse with ``message``."""
        log.info("login refused: %s", why)
        remaining = self.config.failure_delay_seconds - (time.monotonic() - started)
        if remaining > 0:
            await anyio.sleep(remaining)
        raise AuthFailed(message)

    # ----------------------------------------------------------------------------------------------------
    # the rest of the Authenticator protocol
    # ----------------------------------------------------------------------------------------------------

    def login_url(self, next_url: str) -> str:
        return "/hub/login"

    async def start_login(self, next_url: str, redirect_uri: str) -> LoginRedirect:
        raise AuthFailed("this hub logs in with a username and password form, not a redirect")

    async def complete_login(
        self, params: Mapping[str, str], state: str, redirect_uri: str
    ) -> LoginCompletion:
        raise AuthFailed("this hub logs in with a username and password form, not a redirect")

    async def refresh_user(self, user: UserInfo, auth_state: JSONDict | None) -> AuthResult | bool:
        """Before a spawn: an account deleted, blocked or expired since login must log in again."""
        account = accounts.lookup(user.name)
        if account is None or not policy.is_allowed(self.config, account):
            return False
        if not self.config.check_account:
            return True
        outcome = await anyio.to_thread.run_sync(self._account_ok, user.name, limiter=self._limiter)
        if not outcome.ok:
            log.info("PAM account check of %r failed: %s (%s)", user.name, outcome.text, outcome.code)
        return outcome.ok

    def _account_ok(self, name: str) -> pam_calls.Outcome:
        return pam_calls.account_ok(name, service=self.config.service)

    def logout_url(self, user: UserInfo, auth_state: JSONDict | None) -> str | None:
        return None

    # ----------------------------------------------------------------------------------------------------
    # runtime hooks of the hub that built this instance
    # ----------------------------------------------------------------------------------------------------

    @hookimpl
    async def hubkit_normalize_username(self, name: str) -> str | None:
        if not self.config.lowercase_usernames:
            return None  # the core's fallback strips whitespace
        return self.normalize(name)

    @hookimpl
    async def hubkit_pre_spawn(self, spec: ServerSpec) -> ServerSpec | None:
        if self.config.open_sessions:
            await anyio.to_thread.run_sync(_open_session, spec.user.name, self.config.service)
        return None

    @hookimpl
    async def hubkit_post_stop(self, spec: ServerSpec, status: ExitStatus | None) -> None:
        if self.config.open_sessions:
            await anyio.to_thread.run_sync(_close_session, spec.user.name, self.config.service)

    @hookimpl
    async def hubkit_check_new_user(self, name: str) -> str | None:
        """With account creation on, a name ``useradd`` could not make is refused before the hub stores it."""
        if not self.config.create_system_users:
            return None
        return await anyio.to_thread.run_sync(_account_refusal, name, self.config)

    @hookimpl
    async def hubkit_user_created(self, user: UserInfo) -> None:
        if self.config.create_system_users:
            await anyio.to_thread.run_sync(_create_account, user.name, self.config)


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


def _account_refusal(name: str, cfg: PAMConfig) -> str | None:
    if accounts.exists(name):
        return None  # the account is there already: nothing to create
    try:
        accounts.check_creatable(name, groups=tuple(cfg.useradd_groups), skel=cfg.skel_dir)
    except accounts.AccountError as exc:
        return str(exc)
    return None


def _create_account(name: str, cfg: PAMConfig) -> None:
    if accounts.exists(name):
        return  # first login of an existing account, or created by hand
    account = accounts.create(
        name, shell=cfg.useradd_shell, groups=tuple(cfg.useradd_groups), skel=cfg.skel_dir
    )
    log.info("created OS account %s (uid %d, home %s)", account.name, account.uid, account.home)
