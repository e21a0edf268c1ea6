"""hubkit-auth-pam: the machine's own accounts log in to hubkit through PAM (backend name ``pam``)."""

from __future__ import annotations

from .authenticator import PAMAuthenticator
from .config import PAMConfig

__all__ = ["PAMAuthenticator", "PAMConfig"]
