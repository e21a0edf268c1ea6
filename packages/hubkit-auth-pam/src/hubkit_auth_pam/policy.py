"""Who may log in and who is an admin, from the config and the account's OS groups.

Applied only *after* PAM accepted the password, so a refusal here tells nothing to someone without it.
"""

from __future__ import annotations

from .accounts import Account
from .config import PAMConfig
from .pam_calls import PAM_ACCT_EXPIRED, PAM_NEW_AUTHTOK_REQD, Outcome, Stage

BAD_CREDENTIALS = "Invalid username or password."
NOT_ALLOWED = "This account is not allowed to use this hub. Ask an administrator if you think it should be."
ACCOUNT_EXPIRED = "This account has expired. Ask an administrator to renew it."
PASSWORD_EXPIRED = (
    "The password of this account has expired. Set a new one (for example with `passwd` over ssh), "
    "then log in again."
)
ACCOUNT_REFUSED = "The system's account policy refuses this account at the moment. Ask an administrator."
SERVICE_BROKEN = "Login is not possible right now (the hub's PAM setup failed). Ask an administrator."


def pam_refusal_message(outcome: Outcome, shadow_reason: str | None = None) -> str:
    """What to show for a PAM refusal. Password-stage failures all read the same.

    ``shadow_reason`` (from :func:`accounts.shadow_expiry`) is consulted only at the account stage, i.e.
    after the password was right."""
    if outcome.stage is Stage.ACCOUNT:
        if outcome.code == PAM_ACCT_EXPIRED or shadow_reason == "account":
            return ACCOUNT_EXPIRED
        if outcome.code == PAM_NEW_AUTHTOK_REQD or shadow_reason == "password":
            return PASSWORD_EXPIRED
        return ACCOUNT_REFUSED
    if outcome.stage is Stage.START:
        return SERVICE_BROKEN
    return BAD_CREDENTIALS


def is_allowed(cfg: PAMConfig, account: Account) -> bool:
    if account.name in cfg.blocked_users:
        return False
    if cfg.min_uid and account.uid < cfg.min_uid:
        return False
    if not cfg.allowed_users and not cfg.allowed_groups:
        return True
    if account.name in cfg.allowed_users:
        return True
    return any(g in cfg.allowed_groups for g in account.groups)


def is_admin(cfg: PAMConfig, account: Account) -> bool:
    return account.name in cfg.admin_users or any(g in cfg.admin_groups for g in account.groups)
