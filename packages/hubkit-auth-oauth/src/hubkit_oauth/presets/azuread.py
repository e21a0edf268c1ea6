"""Microsoft Entra ID (Azure AD), v2.0 endpoints. Single-tenant by ``tenant_id``; ``common`` /
``organizations`` accept any tenant, with the token's ``iss`` checked against its own ``tid``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from ..config import OIDCConfig, check_provider_url
from ..oidc import OIDCAuthenticator


class AzureADConfig(OIDCConfig):
    tenant_id: str = Field(..., min_length=1, description="Directory (tenant) id, or common / organizations.")
    issuer: str = Field("", description="Unset: https://login.microsoftonline.com/<tenant_id>/v2.0.")
    authority: str = Field("https://login.microsoftonline.com", description="Entra ID authority host.")
    groups_claim: str = Field("groups", description="groups (object ids unless configured otherwise) or roles.")

    @model_validator(mode="before")
    @classmethod
    def _issuer_from_tenant(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("issuer") and data.get("tenant_id"):
            authority = str(data.get("authority") or "https://login.microsoftonline.com").rstrip("/")
            data = {**data, "issuer": check_provider_url(f"{authority}/{data['tenant_id']}/v2.0")}
        return data


class AzureADAuthenticator(OIDCAuthenticator):
    display_name: ClassVar[str] = "Microsoft"
    provider: ClassVar[str] = "azuread"
    default_username_claim: ClassVar[str] = "preferred_username"
    config: AzureADConfig
