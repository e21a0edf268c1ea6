"""``GET /hub/api/users/{name}/auth-state``: a user's upstream auth state, refreshed first.

Single-user servers read fresh provider tokens here instead of tokens frozen into their environment at spawn
time. Allowed for ``admin:auth_state`` or for a server token of that same user. The authenticator's
``refresh_user`` runs first: a new result is stored (encrypted) before it is returned; ``False`` answers 401
("log in to the hub again"). Written by the OAuth engineer (issue 7) as a stand-alone module; mount it with
``routes(api_prefix)`` next to the users API.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..api.base import APIError, JSONResponse, authed, endpoint, hub_of
from ..auth import scopes as sc
from ..auth.refresh import apply_refresh
from ..interfaces import AuthResult, UserInfo
from ..services import users as svc


@endpoint
async def get_auth_state(request: Request) -> Response:
    hub = hub_of(request)
    name = request.path_params["name"]
    ident = await authed(request)
    own_server = ident.kind == "user" and ident.token_kind == "server" and ident.name == name
    if not (own_server or sc.allows(ident.scopes, "admin:auth_state", user=name)):
        raise APIError(
            403, "Reading auth state needs the admin:auth_state scope or the user's own server token"
        )
    if not hub.crypt.enabled:
        raise APIError(404, "No auth state is stored: the hub has no encryption key (crypt_keys)")
    async with hub.db() as session:
        user = await svc.get_user(session, name)
        if user is None:
            raise APIError(404, "No access to resources or resources not found")
        try:
            state = user.auth_state
        except RuntimeError:
            raise APIError(
                500, "The stored auth state cannot be decrypted with the configured keys"
            ) from None
        info = UserInfo(
            name=user.name, admin=user.admin, groups=tuple(g.name for g in user.groups), id=user.id
        )
        outcome = await hub.authenticator.refresh_user(info, state)
        if outcome is False:
            raise APIError(401, "The login provider session has expired: log in to the hub again")
        if apply_refresh(user, outcome):
            await session.commit()
        if isinstance(outcome, AuthResult) and outcome.auth_state is not None:
            state = outcome.auth_state
    return JSONResponse(state)


def routes(api: str) -> list[Route]:
    """``api`` is the API prefix without a trailing slash, e.g. ``/hub/api``."""
    return [Route(f"{api}/users/{{name}}/auth-state", get_auth_state, methods=["GET"])]
