"""hubkit plugin entry point: registers the ``pam`` authenticator.

Its runtime hooks (username normalisation, PAM sessions around servers, OS accounts for new users) are methods of
:class:`~hubkit_auth_pam.authenticator.PAMAuthenticator`: the hub registers the instance it built, so the hooks act
with that hub's configuration and a hub using another authenticator never runs them.
"""

from __future__ import annotations

from typing import Any

from hubkit.plugins import hookimpl
from hubkit.plugins.registry import BackendRegistry

from .authenticator import PAMAuthenticator
from .config import PAMConfig


@hookimpl
def hubkit_register_authenticators(registry: BackendRegistry[Any]) -> None:
    registry.add(
        "pam",
        PAMAuthenticator,
        config=PAMConfig,
        description="the machine's own accounts and passwords (PAM)",
    )
