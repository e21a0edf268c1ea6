"""Blocking PAM transactions (run these in a worker thread, never on the event loop).

We drive pamela's primitives ourselves rather than ``pamela.authenticate`` for two reasons: we need to know
*which* stage refused (a wrong password and an expired account deserve different messages), and we install a
``PAM_FAIL_DELAY`` callback so PAM's own randomized 2-3 s failure sleep does not hold a worker thread; the
authenticator applies one uniform delay on the event loop instead.

pamela is imported lazily: a machine without libpam can still load the plugin and use another authenticator.
"""

from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

# Linux-PAM constants (security/_pam_types.h)
PAM_SUCCESS = 0
PAM_PERM_DENIED = 6
PAM_AUTH_ERR = 7
PAM_USER_UNKNOWN = 10
PAM_NEW_AUTHTOK_REQD = 12
PAM_ACCT_EXPIRED = 13
PAM_RHOST = 4
PAM_FAIL_DELAY = 10
PAM_REINITIALIZE_CRED = 0x0008

# void (*delay_fn)(int retval, unsigned usec_delay, void *appdata_ptr)
_DELAY_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p)


@_DELAY_FN
def _no_sleep(retval: int, usec: int, appdata: Any) -> None:
    """libpam calls this instead of sleeping after a failure."""


class Stage(enum.StrEnum):
    START = "start"
    AUTH = "auth"
    ACCOUNT = "account"
    OK = "ok"


@dataclass(frozen=True)
class Outcome:
    stage: Stage  # where the transaction stopped; OK when everything passed
    code: int = PAM_SUCCESS
    text: str = ""  # pam_strerror, for the log only (never shown to the person logging in)
    shadow_reason: str | None = None  # see accounts.shadow_expiry; filled for account-stage refusals

    @property
    def ok(self) -> bool:
        return self.stage is Stage.OK


def load_pamela() -> ModuleType:
    """Import pamela (loads libpam). Raises ImportError/OSError when PAM is not available."""
    import pamela

    return cast(ModuleType, pamela)


def _set_fail_delay(pamela: ModuleType, handle: Any) -> None:
    set_item = pamela.LIBPAM["pam_set_item"]  # a fresh function object: our own argtypes
    set_item.restype = ctypes.c_int
    set_item.argtypes = [pamela.PamHandle, ctypes.c_int, ctypes.c_void_p]
    set_item(handle, PAM_FAIL_DELAY, ctypes.cast(_no_sleep, ctypes.c_void_p))


def login(
    username: str, password: str, *, service: str, rhost: str = "", check_account: bool = True
) -> Outcome:
    """Authenticate ``username`` with ``password`` and (optionally) run account management."""
    pamela = load_pamela()
    conv = pamela.new_simple_password_conv((password,), "utf-8")
    try:
        handle = pamela.pam_start(service, username, conv_func=conv)
    except pamela.PAMError as exc:
        return Outcome(Stage.START, exc.errno or -1, str(exc))
    rv = PAM_SUCCESS
    stage = Stage.AUTH
    try:
        _set_fail_delay(pamela, handle)
        if rhost:
            try:
                handle.set_item(PAM_RHOST, rhost)
            except pamela.PAMError:
                pass
        rv = pamela.PAM_AUTHENTICATE(handle, 0)
        if rv == PAM_SUCCESS and check_account:
            stage = Stage.ACCOUNT
            rv = pamela.PAM_ACCT_MGMT(handle, 0)
        if rv == PAM_SUCCESS:
            stage = Stage.OK
            pamela.PAM_SETCRED(handle, PAM_REINITIALIZE_CRED)  # result ignored, as login(1) does
        text = pamela.pam_strerror(handle, rv) if rv != PAM_SUCCESS else ""
    finally:
        pamela.PAM_END(handle, rv)
    del conv  # the C callback had to outlive the transaction
    return Outcome(stage, rv, text)


def account_ok(username: str, *, service: str) -> Outcome:
    """PAM account management alone (no password): is the account still allowed in?"""
    pamela = load_pamela()
    try:
        pamela.check_account(username, service=service)
    except pamela.PAMError as exc:
        return Outcome(Stage.ACCOUNT, exc.errno or -1, str(exc))
    return Outcome(Stage.OK)


def open_session(username: str, *, service: str) -> None:
    """Raises ``pamela.PAMError`` when a required session module refuses."""
    load_pamela().open_session(username, service=service)


def close_session(username: str, *, service: str) -> None:
    load_pamela().close_session(username, service=service)
