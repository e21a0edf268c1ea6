"""GitHub (github.com or Enterprise Server): OAuth 2 plus its REST API for the user, verified e-mail,
organisations and teams. Provider groups are ``org`` and ``org:team-slug``, so organisation and team rules are
ordinary group rules and land in the one claims-to-groups mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, field_validator

from ..base import Endpoints, OAuthAuthenticator
from ..config import OAuthConfig, check_provider_url
from ..identity import Identity, username_from
from ..policy import AccessPolicy
from ..transport import ProviderRefused

_MAX_PAGES = 10  # 1000 orgs/teams is plenty; bounds the calls made per login


class GitHubConfig(OAuthConfig):
    github_url: str = Field("https://github.com", description="Where users log in (Enterprise: your server).")
    api_url: str = Field("https://api.github.com", description="REST API base (Enterprise: https://host/api/v3).")
    allowed_organizations: list[str] = Field(
        default_factory=list, description="Organisations ('org') or teams ('org:team-slug') allowed in."
    )
    admin_organizations: list[str] = Field(
        default_factory=list, description="Organisations or teams ('org:team-slug') whose members are admins."
    )
    fetch_teams: bool = Field(True, description="Read team membership (needs the read:org scope).")

    @field_validator("github_url", "api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_provider_url(value).rstrip("/")


class GitHubAuthenticator(OAuthAuthenticator):
    display_name: ClassVar[str] = "GitHub"
    provider: ClassVar[str] = "github"
    default_username_claim: ClassVar[str] = "login"
    config: GitHubConfig

    def make_policy(self) -> AccessPolicy:
        return AccessPolicy(
            self.config,
            extra_allowed_groups=tuple(self.config.allowed_organizations),
            extra_admin_groups=tuple(self.config.admin_organizations),
        )

    def default_scopes(self) -> list[str]:
        return ["read:user", "user:email", "read:org"]

    async def endpoints(self) -> Endpoints:
        base = self.config.github_url
        return Endpoints(f"{base}/login/oauth/authorize", f"{base}/login/oauth/access_token")

    async def _get(self, path: str, token: str) -> Any:
        return await self.http.get_json(
            f"{self.config.api_url}{path}", token=token,
            headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
        )

    async def _pages(self, path: str, token: str) -> list[Any]:
        items: list[Any] = []
        for page in range(1, _MAX_PAGES + 1):
            batch = await self._get(f"{path}?per_page=100&page={page}", token)
            if not isinstance(batch, list):
                break
            items.extend(batch)
            if len(batch) < 100:
                break
        return items

    async def identify(self, tokens: dict[str, Any], *, nonce: str | None,
                       previous: Mapping[str, Any] | None = None) -> Identity:
        token = tokens["access_token"]
        user = await self._get("/user", token)
        if not isinstance(user, dict):
            user = {}
        email, email_verified = await self._verified_email(token, user)
        groups: list[str] = []
        for org in await self._optional_pages("/user/orgs", token):
            if isinstance(org, dict) and isinstance(org.get("login"), str):
                groups.append(org["login"])
        if self.config.fetch_teams:
            for team in await self._optional_pages("/user/teams", token):
                org = (team.get("organization") or {}).get("login") if isinstance(team, dict) else None
                if isinstance(org, str) and isinstance(team.get("slug"), str):
                    groups.append(f"{org}:{team['slug']}")
        claims = {k: user.get(k) for k in ("login", "id", "name", "email", "avatar_url", "html_url")}
        return Identity(
            username=username_from(user, self.username_claim, lowercase=self.config.lowercase_username),
            email=email,
            email_verified=email_verified,
            groups=tuple(dict.fromkeys(groups)),
            claims={**claims, "email": email},
        )

    async def _optional_pages(self, path: str, token: str) -> list[Any]:
        """Membership lists need read:org; without it GitHub answers 403 and the person simply has no orgs."""
        try:
            return await self._pages(path, token)
        except ProviderRefused as exc:
            if exc.status in (401,):
                raise
            return []

    async def _verified_email(self, token: str, user: dict[str, Any]) -> tuple[str | None, bool]:
        """The primary verified address from /user/emails; the profile's public e-mail is not proof."""
        try:
            emails = await self._get("/user/emails", token)
        except ProviderRefused as exc:
            if exc.status == 401:
                raise
            public = user.get("email")
            return (public if isinstance(public, str) else None), False
        best: tuple[str | None, bool] = (None, False)
        for entry in emails if isinstance(emails, list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("email"), str):
                continue
            if entry.get("verified") is True and entry.get("primary") is True:
                return entry["email"], True
            if entry.get("verified") is True and not best[1]:
                best = (entry["email"], True)
            elif best[0] is None or (entry.get("primary") is True and not best[1]):
                best = (entry["email"], False)  # kept to say "not verified" rather than "no address"
        return best
