"""Options of ``[auth.pam]``. Unknown keys are errors, so a typo never silently opens the hub."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class PAMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(
        "login",
        description="PAM service (a file in /etc/pam.d) used for password checks, accounts and sessions.",
    )
    open_sessions: bool = Field(
        False,
        description=(
            "Open a PAM session for a user before their server starts and close it after it stops. "
            "Session modules run inside the hub process: use a service whose session stack suits that."
        ),
    )
    check_account: bool = Field(
        True, description="Run PAM account management too: expired or refused accounts cannot log in."
    )
    allowed_users: list[str] = Field(
        default_factory=list, description="If this or allowed_groups is set, only these users may log in."
    )
    allowed_groups: list[str] = Field(
        default_factory=list, description="OS groups whose members may log in (e.g. 'students')."
    )
    blocked_users: list[str] = Field(default_factory=list, description="Users who may never log in.")
    admin_users: list[str] = Field(default_factory=list, description="Users made hub admins at login.")
    admin_groups: list[str] = Field(
        default_factory=list, description="OS groups whose members are hub admins (e.g. 'sudo')."
    )
    min_uid: int = Field(
        1000,
        ge=0,
        description="Accounts with a lower uid (root, system accounts) may not log in; 0 allows all.",
    )
    lowercase_usernames: bool = Field(
        False, description="Lower-case typed usernames (accounts must then be lower-case)."
    )
    failure_delay_seconds: float = Field(
        2.0,
        ge=0,
        le=30,
        description=(
            "Every refused login takes at least this long, whatever the reason, so response time does not "
            "tell whether an account exists. Replaces PAM's own failure delay."
        ),
    )
    max_concurrent_checks: int = Field(
        8, ge=1, description="PAM calls running at once (each holds a worker thread)."
    )
    require_shadow_access: bool = Field(
        True,
        description=(
            "Refuse to start when the hub can neither run as root nor read /etc/shadow. "
            "Turn off only for PAM stacks that do not use the shadow file (LDAP, sssd)."
        ),
    )
    create_system_users: bool = Field(
        False,
        description="When an admin adds a user on the hub, create the OS account (useradd -m, /etc/skel).",
    )
    skel_dir: str = Field("/etc/skel", description="Files copied into the home of accounts the hub creates.")
    useradd_shell: str = Field("/bin/bash", description="Login shell for accounts the hub creates.")
    useradd_groups: list[str] = Field(
        default_factory=list, description="Extra OS groups for accounts the hub creates."
    )

    @field_validator("service")
    @classmethod
    def _service_name(cls, v: str) -> str:
        if not v or "/" in v or v.startswith("."):
            raise ValueError("a PAM service name is a file name in /etc/pam.d, like 'login'")
        return v
