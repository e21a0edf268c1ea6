"""Container/volume names and labels.

Docker names allow only ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``; user names allow far more. The escape below is
injective (``-`` itself is escaped, so ``-`` in the output is always followed by two hex digits), so two users
can never collide on one container or volume.
"""

from __future__ import annotations

import string

LABEL_PREFIX = "org.hubkit"
LABEL_HUB = f"{LABEL_PREFIX}.hub"
LABEL_USER = f"{LABEL_PREFIX}.user"
LABEL_SERVER = f"{LABEL_PREFIX}.server"
LABEL_SERVER_ID = f"{LABEL_PREFIX}.server-id"
LABEL_ROLE = f"{LABEL_PREFIX}.role"  # "server" (a container) or "home" (a user volume)

_SAFE = frozenset(string.ascii_letters + string.digits + "_.")


def escape(value: str) -> str:
    """Escape ``value`` to Docker name characters: unsafe bytes become ``-xx`` (lower-case hex)."""
    out: list[str] = []
    for ch in value:
        if ch in _SAFE:
            out.append(ch)
        else:
            out.extend(f"-{b:02x}" for b in ch.encode())
    return "".join(out)


def render(template: str, *, hub_id: str, user: str, server: str) -> str:
    """Fill a name template; the result is a valid Docker name."""
    name = template.format(
        hub_id=escape(hub_id),
        user=escape(user),
        server=escape(server),
        server_suffix=f"--{escape(server)}" if server else "",
    )
    if not name or name[0] not in string.ascii_letters + string.digits:
        name = "h" + name
    return name


def server_labels(hub_id: str, user: str, server: str, server_id: int) -> dict[str, str]:
    return {
        LABEL_HUB: hub_id,
        LABEL_USER: user,
        LABEL_SERVER: server,
        LABEL_SERVER_ID: str(server_id),
        LABEL_ROLE: "server",
    }


def volume_labels(hub_id: str, user: str) -> dict[str, str]:
    return {LABEL_HUB: hub_id, LABEL_USER: user, LABEL_ROLE: "home"}
