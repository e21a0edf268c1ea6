"""hubkit-proxy: a fast HTTP/websocket reverse proxy with a configurable-http-proxy compatible REST API.

The proxy process imports only its own modules (plus httptools and, if present, uvloop); ``hubkit_proxy.plugin``
is the one module that imports the hubkit core.
"""

from __future__ import annotations

__version__ = "0.1.0"
