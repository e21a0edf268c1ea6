"""ORM models, one module per aggregate. Import from here."""

from .base import Base, metadata
from .groups import Group, user_group
from .jupyterhub import JupyterHubTokenHash
from .oauth import OAuthClient, OAuthCode
from .servers import Server, ServerStatus
from .services import Service
from .spawns import Spawn, SpawnEvent
from .tokens import APIToken
from .users import User

__all__ = [
    "APIToken",
    "Base",
    "Group",
    "JupyterHubTokenHash",
    "OAuthClient",
    "OAuthCode",
    "Server",
    "ServerStatus",
    "Service",
    "Spawn",
    "SpawnEvent",
    "User",
    "metadata",
    "user_group",
]
