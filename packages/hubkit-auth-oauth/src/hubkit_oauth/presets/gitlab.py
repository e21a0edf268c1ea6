"""GitLab (gitlab.com or self-managed) as an OpenID Connect provider; groups from the userinfo ``groups`` claim
(full paths such as ``team`` and ``team/subgroup``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..config import OIDCConfig
from ..oidc import OIDCAuthenticator


class GitLabConfig(OIDCConfig):
    issuer: str = Field("https://gitlab.com", description="Your GitLab's URL (self-managed: its own address).")
    use_userinfo: bool = Field(True, description="GitLab sends the full groups list only from userinfo.")


class GitLabAuthenticator(OIDCAuthenticator):
    display_name: ClassVar[str] = "GitLab"
    provider: ClassVar[str] = "gitlab"
    default_username_claim: ClassVar[str] = "nickname"
    config: GitLabConfig
