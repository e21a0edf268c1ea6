"""ORM models, one module per aggregate. Import from here."""

from .base import Base, metadata, table_of
from .groups import Group, group_names_of, user_group
from .jupyterhub import JupyterHubTokenHash
from .logins import LoginFailure
from .oauth import OAuthClient, OAuthCode
from .queue import QueueEntry
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
    "LoginFailure",
    "OAuthClient",
    "OAuthCode",
    "QueueEntry",
    "Server",
    "ServerStatus",
    "Service",
    "Spawn",
    "SpawnEvent",
    "User",
    "group_names_of",
    "metadata",
    "table_of",
    "user_group",
]
