"""``POST /hub/api/oauth2/token``: exchange a code for an access token (JupyterHub B4, error JSON included).

Client credentials are read from the form body only (HTTP Basic is not used, as in JupyterHub). The issued
token is an ordinary hub API token of kind ``oauth`` tied to the client and the browser session.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth.tokens import hash_secret, issue_token
from ..inputs import encodable
from ..web.context import web_of
from ..web.errors import JSONResponse
from ..web.middleware import BodyTooLarge
from .codes import find_client, pkce_ok, take_code

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(status: int, error: str, description: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error}
    if description:
        body["error_description"] = description
    return JSONResponse(body, status_code=status, headers=NO_STORE)


async def token(request: Request) -> Response:
    ctx = web_of(request).services
    try:
        form = await request.form(max_files=0, max_fields=20)
    except BodyTooLarge:
        raise  # 413, as everywhere
    except Exception:
        return oauth_error(400, "invalid_request", "Malformed form body.")
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not all(encodable(v) and "\x00" not in v for v in fields.values()):
        return oauth_error(400, "invalid_request", "The form holds text that is not valid UTF-8.")
    if fields.get("grant_type") != "authorization_code":
        return oauth_error(400, "unsupported_grant_type")
    client_id = fields.get("client_id", "")
    secret = fields.get("client_secret", "")
    async with ctx.storage.session() as session:
        client = await find_client(session, client_id)
        if (
            client is None
            or not client.secret_hash
            or not secret
            or not hmac.compare_digest(client.secret_hash, hash_secret(secret))
        ):
            return oauth_error(401, "invalid_client")
        code = await take_code(session, fields.get("code", ""), client.identifier)
        await session.commit()
        if code is None:
            return oauth_error(400, "invalid_grant")
        if fields.get("redirect_uri", "") != code.redirect_uri:
            return oauth_error(400, "invalid_request", "Mismatching redirect URI.")
        if code.code_challenge:
            verifier = fields.get("code_verifier")
            if not verifier:
                return oauth_error(400, "invalid_request", "Code verifier required.")
            if not pkce_ok(code.code_challenge, verifier):
                return oauth_error(400, "invalid_grant")
        expires_in = int(ctx.settings.hub.cookie_max_age_days * 86400)
        secret_out, _ = await issue_token(
            session,
            user_id=code.user_id,
            scopes=list(code.scopes),
            kind="oauth",
            note=f"OAuth login to {client.description or client.identifier}",
            expires_in=expires_in,
            session_id=code.session_id,
            oauth_client=client.identifier,
        )
        await session.commit()
    return JSONResponse(
        {
            "access_token": secret_out,
            "expires_in": expires_in,
            "token_type": "Bearer",
            "scope": " ".join(code.scopes),
        },
        headers=NO_STORE,
    )


def routes(api: str) -> list[Route]:
    return [Route(f"{api}/oauth2/token", token, methods=["POST"])]
