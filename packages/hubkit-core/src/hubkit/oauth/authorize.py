"""``/hub/api/oauth2/authorize``: log in if needed, check access, then 302 back with a code (JupyterHub B3).

A server's owner is never asked for consent; anyone else with access (an admin) confirms once with a form. A hub
service's client asks every user, unless the service is configured with ``oauth_no_confirm``.
Problems with the client itself (unknown client, wrong redirect URI) are shown at the hub and never
redirected, so the hub cannot be used as an open redirector.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import quote, urlencode

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import grants, service_access
from ..auth import scopes as sc
from ..auth.identity import Identity
from ..storage.orm import OAuthClient, Server, Service
from ..web import xsrf
from ..web.caller import identify
from ..web.context import web_of
from ..web.render import error_page, redirect, render
from .codes import find_client, issue_code


@dataclass(frozen=True)
class Grant:
    client: OAuthClient
    redirect_uri: str
    state: str | None
    scopes: list[str]
    challenge: str | None
    method: str | None


class Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _back(uri: str, **params: str | None) -> Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return redirect(uri + ("&" if "?" in uri else "?") + query)


async def _validate(request: Request, ident: Identity) -> Grant:
    q = request.query_params
    client_id = q.get("client_id", "")
    async with web_of(request).services.storage.session() as session:
        client = await find_client(session, client_id)
    if client is None or not client.secret_hash:
        raise Refused(error_page(request, 400, "Invalid client_id: this OAuth client is not registered."))
    if client.service_id is not None:
        ident = await _with_service_access(request, ident)
    redirect_uri = q.get("redirect_uri", client.redirect_uri)
    if redirect_uri != client.redirect_uri:
        raise Refused(error_page(request, 400, "Mismatching redirect URI."))
    state = q.get("state")
    if q.get("response_type") != "code":
        raise Refused(_back(redirect_uri, error="unsupported_response_type", state=state))
    challenge = q.get("code_challenge") or None
    method = q.get("code_challenge_method") or ("plain" if challenge else None)
    if challenge and (method != "S256" or not (43 <= len(challenge) <= 128)):
        raise Refused(
            _back(
                redirect_uri,
                error="invalid_request",
                error_description="Only S256 PKCE is supported",
                state=state,
            )
        )
    if not sc.access_scope_covers(ident.scopes, client.access_scopes or []):
        raise Refused(
            error_page(
                request,
                403,
                f"You do not have permission to access {client.description or client.identifier}.",
            )
        )
    identify = sc.flatten(sc.expand(sc.IDENTIFY, owner=ident.name))
    allowed = [*identify, *(client.access_scopes or [])[:1], *(client.allowed_scopes or [])]
    requested = q.get("scope")
    if requested:
        wanted = requested.split()
        if any(s not in allowed and s not in sc.IDENTIFY for s in wanted):
            raise Refused(_back(redirect_uri, error="invalid_scope", state=state))
        scopes = sorted({*identify, *(s for s in wanted if s not in sc.IDENTIFY)})
    else:
        scopes = sorted(set(allowed))
    # a client never gets more than the user who authorizes it holds (the same rule as the token API)
    scopes = grants.held_by(scopes, ident.scopes, owner=ident.name)
    return Grant(client, redirect_uri, state, scopes, challenge, "S256" if challenge else None)


async def _with_service_access(request: Request, ident: Identity) -> Identity:
    """The user's scopes plus the hub services their access policies let them log in to."""
    async with web_of(request).services.storage.session() as session:
        extra = await service_access.granted(session, ident.name, ident.groups)
    return replace(ident, scopes=service_access.with_grants(ident.scopes, extra, ident.name))


async def _skips_consent(request: Request, ident: Identity, client: OAuthClient) -> bool:
    """No consent page for the user's own server, nor for a service configured with ``oauth_no_confirm``."""
    async with web_of(request).services.storage.session() as session:
        if client.service_id is not None:
            no_confirm = (
                await session.execute(select(Service.oauth_no_confirm).where(Service.id == client.service_id))
            ).scalar_one_or_none()
            return bool(no_confirm)
        if client.server_id is None:
            return False
        owner = (
            await session.execute(select(Server.user_id).where(Server.id == client.server_id))
        ).scalar_one_or_none()
    return owner == ident.id


async def _issue(request: Request, ident: Identity, grant: Grant) -> Response:
    async with web_of(request).services.storage.session() as session:
        code = await issue_code(
            session,
            client=grant.client.identifier,
            user_id=ident.id,
            redirect_uri=grant.redirect_uri,
            scopes=grant.scopes,
            session_id=ident.session_id,
            code_challenge=grant.challenge,
            code_challenge_method=grant.method,
        )
        await session.commit()
    return _back(grant.redirect_uri, code=code, state=grant.state)


async def authorize(request: Request) -> Response:
    web = web_of(request)
    ident = await identify(request)
    if ident is None or ident.kind != "user" or ident.via != "cookie":
        here = request.url.path + ("?" + request.url.query if request.url.query else "")
        return redirect(f"{web.urls.hub_prefix}login?next={quote(here, safe='')}")
    try:
        grant = await _validate(request, ident)
    except Refused as r:
        return r.response
    if request.method == "POST":
        form = await request.form(max_files=0, max_fields=20)
        try:
            xsrf.check(web, request, str(form.get("_xsrf", "")))
        except xsrf.XSRFError as exc:
            return error_page(request, 403, exc.reason)
        return await _issue(request, ident, grant)
    if await _skips_consent(request, ident, grant.client):
        return await _issue(request, ident, grant)
    return render(request, "consent.html", {"description": grant.client.description, "scopes": grant.scopes})


def routes(api: str) -> list[Route]:
    return [Route(f"{api}/oauth2/authorize", authorize, methods=["GET", "POST"])]
