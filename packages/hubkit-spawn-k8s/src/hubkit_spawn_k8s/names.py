"""DNS-safe names and label values for pods, claims and services.

Hub user names may hold any character; Kubernetes names may not. A readable slug plus a short hash of the
exact name keeps them unique (``Alice`` and ``alice`` never share a pod), and annotations carry the raw names.
"""

from __future__ import annotations

import hashlib
import re

LABEL_HUB = "hubkit.io/hub"
LABEL_USER = "hubkit.io/user"
LABEL_SERVER = "hubkit.io/server-name"
LABEL_COMPONENT = "hubkit.io/component"
ANNOTATION_USER = "hubkit.io/username"
ANNOTATION_SERVER = "hubkit.io/servername"
COMPONENT = "singleuser-server"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]


def slug(text: str, limit: int = 30) -> str:
    """Lower-case alphanumerics and dashes, never empty, ending with a hash when anything was changed."""
    safe = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    if safe == text and safe:
        return safe
    return f"{safe}-{_digest(text)}" if safe else f"x-{_digest(text)}"


def label_value(text: str) -> str:
    """A valid label value (<= 63 chars, alphanumeric ends) that still identifies ``text``."""
    if re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]", text) or text == "":
        return text
    return slug(text, 40)


def render(template: str, user: str, server: str = "") -> str:
    name = template.format(user=slug(user), server=f"--{slug(server)}" if server else "")
    if len(name) > 63 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        name = f"{slug(name, 50)}"[:63].strip("-")
    return name
