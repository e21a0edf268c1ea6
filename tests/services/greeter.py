"""A small web service that logs users in through the hub with JupyterHub's own service OAuth
(``jupyterhub.services.auth.HubOAuthenticated``, from the ``jupyterhub`` package), and greets them.

Run by the hub as a managed service: everything it needs comes from the environment the hub sets
(JUPYTERHUB_SERVICE_URL, JUPYTERHUB_SERVICE_PREFIX, JUPYTERHUB_API_URL, JUPYTERHUB_API_TOKEN,
JUPYTERHUB_CLIENT_ID, JUPYTERHUB_OAUTH_CALLBACK_URL, JUPYTERHUB_OAUTH_ACCESS_SCOPES).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web


class Greeting(HubOAuthenticated, web.RequestHandler):
    @web.authenticated
    def get(self) -> None:
        user = self.get_current_user()
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.write(f"Hello, {user['name']}! (kind={user['kind']})\n")


async def main() -> None:
    prefix = os.environ["JUPYTERHUB_SERVICE_PREFIX"]
    address = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    app = web.Application(
        [
            (prefix, Greeting),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        ],
        cookie_secret=secrets.token_bytes(32),
    )
    app.listen(address.port or 80, address.hostname or "127.0.0.1")
    print(f"greeter listening on {address.netloc}{prefix}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
