"""The OpenAPI 3 document served at ``/hub/api/openapi.json``.

Written by hand (small helpers below) rather than introspected, so it documents JupyterHub's wire format
exactly; a test compares its paths and methods with the app's real routes so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from .. import JUPYTERHUB_COMPAT_VERSION, __version__
from ..auth.tokens import MAX_EXPIRES_IN
from ..web.errors import JSONResponse

# What a user, group, server or service name may not contain (hubkit.services.users.check_name): control and
# invisible characters, Unicode spaces, URL metacharacters, private-use and surrogate code points, and a leading
# dot. Unassigned code points and compatibility forms (full-width letters) are refused too, but a regular
# expression cannot say so: those answer 400 although this pattern admits them.
_NOT_IN_NAMES = (
    r"\x00-\x20\x7f-\x9f/\\?#%&\"'<>`\u00a0\u00ad\u0600-\u0605\u061c\u06dd\u070f\u1680\u180e"
    r"\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ue000-\uf8ff\ufeff\ufff9-\ufffd"
)
NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": f"^[^.{_NOT_IN_NAMES}][^{_NOT_IN_NAMES}]*$",
}
TOKEN_ID = {"type": "string", "pattern": "^a[0-9]{1,19}$"}
OAUTH_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
    "required": ["error"],
}
TS = {"type": ["string", "null"], "format": "date-time"}
ERROR = {
    "type": "object",
    "properties": {"status": {"type": "integer"}, "message": {"type": ["string", "null"]}},
    "required": ["status", "message"],
}
SCOPES = {"type": "array", "items": {"type": "string"}}
COMMON_ERRORS = {
    "400": "Bad request: malformed or schema-violating input, or a state that forbids it",
    "403": "Missing credentials or scope",
    "404": "Not found (or hidden by the caller's scopes)",
    "409": "Conflicts with the current state, or lost a race to a concurrent identical request",
    "413": "Request body too large",
}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": NAME}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    out = {"name": name, "in": "query", "required": False, "schema": schema}
    if schema.get("type") == "boolean":
        out["allowEmptyValue"] = True  # a bare ?flag means true, as in JupyterHub
    return out


def _body(schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def op(
    summary: str,
    ok: dict[str, str],
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    auth: bool = True,
    tag: str = "hub",
    errors: dict[str, str] | None = None,
    error_schema: dict[str, Any] = ERROR,
) -> dict[str, Any]:
    responses: dict[str, Any] = {code: {"description": desc} for code, desc in ok.items()}
    for code, desc in (errors or COMMON_ERRORS).items():
        responses.setdefault(
            code, {"description": desc, "content": {"application/json": {"schema": error_schema}}}
        )
    out: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        out["parameters"] = params
    if body is not None:
        out["requestBody"] = body
    if not auth:
        out["security"] = []
    return out


USER = [_path_param("name")]
TOKEN = [*USER, {"name": "token_id", "in": "path", "required": True, "schema": TOKEN_ID}]
SERVER = [_path_param("name"), _path_param("server_name")]
MAX_INT = 2**53
PAGING = [
    _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INT}),
    _query(
        "limit",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_INT,
            "description": "at most 200 items are returned whatever the limit",
        },
    ),
]
START_BODY = _body(
    {
        "type": "object",
        "properties": {
            "user_options": {"type": ["object", "null"]},
            "display_name": {"type": "string", "maxLength": 255},
        },
    }
)
STOP_BODY = _body(_obj({"remove": {"type": "boolean"}}))
ACTIVITY = _body(
    _obj(
        {
            "last_activity": {"type": "string", "format": "date-time"},
            "servers": {
                "type": "object",
                "additionalProperties": _obj(
                    {
                        "last_activity": {"type": "string", "format": "date-time"},
                        "hubkit": _obj(
                            {
                                **{
                                    k: {"type": "integer", "minimum": 0}
                                    for k in ("kernels", "kernels_busy", "connections", "terminals")
                                },
                                "last_busy": {"type": "string", "format": "date-time"},
                            }
                        ),
                    }
                ),
            },
        }
    ),
    required=True,
)
TOKEN_BODY = _body(
    _obj(
        {
            "note": {"type": "string", "maxLength": 1000},
            "expires_in": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_EXPIRES_IN},
            "scopes": SCOPES,
            "roles": SCOPES,
        }
    )
)


def document(api: str) -> dict[str, Any]:
    u, s = f"{api}/users/{{name}}", f"{api}/users/{{name}}/servers/{{server_name}}"
    paths: dict[str, dict[str, Any]] = {
        api: {"get": op("JupyterHub-compatible version probe", {"200": "version"}, auth=False)},
        f"{api}/": {"get": op("Version probe (trailing slash)", {"200": "version"}, auth=False)},
        f"{api}/info": {"get": op("Hub information (read:hub)", {"200": "info"})},
        f"{api}/health": {"get": op("Liveness", {"200": "ok"}, auth=False)},
        f"{api}/user": {"get": op("Identity of the calling token", {"200": "user or service model"})},
        f"{api}/users": {
            "get": op(
                "List users (list:users)",
                {"200": "list or pagination envelope"},
                params=[
                    _query("state", {"type": "string", "enum": ["active", "ready", "inactive"]}),
                    _query("name_filter", {"type": "string", "maxLength": 255}),
                    _query(
                        "sort",
                        {
                            "type": "string",
                            "enum": ["id", "name", "last_activity", "-id", "-name", "-last_activity"],
                        },
                    ),
                    _query("include_stopped_servers", {"type": "boolean"}),
                    *PAGING,
                ],
            ),
            "post": op(
                "Create users (admin:users)",
                {"201": "created"},
                body=_body(
                    _obj(
                        {
                            "usernames": {"type": "array", "items": NAME, "minItems": 1},
                            "admin": {"type": "boolean"},
                        },
                        ["usernames"],
                    ),
                    required=True,
                ),
            ),
        },
        u: {
            "get": op(
                "Read a user",
                {"200": "user model"},
                params=[*USER, _query("include_stopped_servers", {"type": "boolean"})],
            ),
            "post": op(
                "Create a user (admin:users)",
                {"201": "created", "409": "exists"},
                params=USER,
                body=_body(_obj({"admin": {"type": "boolean"}})),
            ),
            "patch": op(
                "Modify a user (admin:users)",
                {"200": "user model", "409": "name taken"},
                params=USER,
                body=_body(
                    _obj(
                        {
                            "name": NAME,
                            "admin": {"type": "boolean"},
                            "groups": {"type": "array", "items": NAME},
                            "roles": SCOPES,
                            "auth_state": {"type": ["object", "null"]},
                        }
                    )
                ),
            ),
            "delete": op("Delete a user (delete:users)", {"204": "deleted"}, params=USER),
        },
        f"{u}/activity": {
            "post": op("Report activity (users:activity)", {"200": "recorded"}, params=USER, body=ACTIVITY)
        },
        f"{u}/auth-state": {
            "get": op(
                "Upstream auth state, refreshed first (admin:auth_state, or the user's own server token)",
                {"200": "auth state", "401": "log in again"},
                params=USER,
            )
        },
        f"{u}/server": {
            "get": op("Read the default server", {"200": "server model"}, params=USER),
            "post": op(
                "Start the default server", {"201": "ready", "202": "starting"}, params=USER, body=START_BODY
            ),
            "delete": op(
                "Stop the default server", {"204": "stopped", "202": "stopping"}, params=USER, body=STOP_BODY
            ),
        },
        f"{u}/server/progress": {
            "get": op("Spawn progress (text/event-stream)", {"200": "event stream"}, params=USER)
        },
        s: {
            "get": op("Read a named server", {"200": "server model"}, params=SERVER),
            "post": op(
                "Start a named server", {"201": "ready", "202": "starting"}, params=SERVER, body=START_BODY
            ),
            "put": op(
                "Create a named server without starting it",
                {"201": "created", "409": "exists"},
                params=SERVER,
                body=START_BODY,
            ),
            "patch": op(
                "Rename / edit a stopped named server",
                {"200": "server model", "409": "name taken"},
                params=SERVER,
                body=_body(
                    _obj(
                        {
                            "name": NAME,
                            "display_name": {"type": "string", "maxLength": 255},
                            "user_options": {"type": "object"},
                        }
                    )
                ),
            ),
            "delete": op(
                "Stop (and with remove, delete) a named server",
                {"204": "stopped", "202": "stopping"},
                params=SERVER,
                body=STOP_BODY,
            ),
        },
        f"{s}/progress": {
            "get": op("Spawn progress of a named server", {"200": "event stream"}, params=SERVER)
        },
        f"{u}/tokens": {
            "get": op("List tokens (read:tokens)", {"200": "api_tokens"}, params=USER),
            "post": op(
                "Issue a token (tokens)", {"201": "token model with secret"}, params=USER, body=TOKEN_BODY
            ),
        },
        f"{u}/tokens/{{token_id}}": {
            "get": op("Read a token", {"200": "token model"}, params=TOKEN),
            "delete": op("Revoke a token", {"204": "revoked"}, params=TOKEN),
        },
        f"{api}/groups": {
            "get": op("List groups (list:groups)", {"200": "list or envelope"}, params=PAGING),
            "post": op(
                "Create groups (admin:groups)",
                {"201": "created", "409": "exists"},
                body=_body(
                    _obj(
                        {
                            "groups": {"type": "array", "items": NAME, "minItems": 1},
                            "users": {"type": "array", "items": NAME},
                        },
                        ["groups"],
                    ),
                    required=True,
                ),
            ),
        },
        f"{api}/groups/{{group}}": {
            "get": op("Read a group", {"200": "group model"}, params=[_path_param("group")]),
            "post": op(
                "Create a group",
                {"201": "created", "409": "exists"},
                params=[_path_param("group")],
                body=_body(_obj({"users": {"type": "array", "items": NAME}})),
            ),
            "delete": op("Delete a group", {"204": "deleted"}, params=[_path_param("group")]),
        },
        f"{api}/groups/{{group}}/users": {
            m: op(
                f"{'Add' if m == 'post' else 'Remove'} group members",
                {"200": "group model"},
                params=[_path_param("group")],
                body=_body(_obj({"users": {"type": "array", "items": NAME}}), required=True),
            )
            for m in ("post", "delete")
        },
        f"{api}/groups/{{group}}/properties": {
            "put": op(
                "Replace group properties",
                {"200": "group model"},
                params=[_path_param("group")],
                body=_body({"type": "object"}, required=True),
            )
        },
        f"{api}/services": {"get": op("List services", {"200": "dict of services"})},
        f"{api}/services/{{service}}": {
            "get": op("Read a service", {"200": "service model"}, params=[_path_param("service")]),
            "post": op(
                "Create a service (admin:services)",
                {"201": "created", "409": "exists"},
                params=[_path_param("service")],
                body=_body(
                    _obj(
                        {
                            "admin": {"type": "boolean"},
                            "url": {"type": "string"},
                            "display": {"type": "boolean"},
                            "info": {"type": "object"},
                            "scopes": SCOPES,
                            "oauth_client_id": {"type": "string"},
                        }
                    )
                ),
            ),
            "delete": op(
                "Delete a runtime service",
                {"200": "deleted", "405": "from config"},
                params=[_path_param("service")],
            ),
        },
        f"{api}/proxy": {
            "get": op("Proxy routes (proxy)", {"200": "routes"}, params=PAGING),
            "post": op("Reconcile proxy routes now (proxy)", {"200": "done"}),
        },
        f"{api}/shutdown": {
            "post": op(
                "Shut the hub down (shutdown): 202, then the process ends. servers / proxy (default false): "
                "also stop every user server / the proxy the hub launched",
                {"202": "shutting down"},
                body=_body(_obj({"servers": {"type": "boolean"}, "proxy": {"type": "boolean"}})),
            )
        },
        f"{api}/oauth2/authorize": {
            "get": op(
                "OAuth2 authorize (browser, hub session cookie)",
                {"302": "redirect", "200": "consent page"},
                auth=False,
                tag="oauth",
                params=[
                    _query(n, {"type": "string"})
                    for n in (
                        "client_id",
                        "redirect_uri",
                        "response_type",
                        "state",
                        "scope",
                        "code_challenge",
                        "code_challenge_method",
                    )
                ],
            ),
            "post": op("OAuth2 consent submit (browser, XSRF)", {"302": "redirect"}, auth=False, tag="oauth"),
        },
        f"{api}/oauth2/token": {
            "post": op(
                "OAuth2 token exchange",
                {"200": "token"},
                auth=False,
                tag="oauth",
                errors={
                    "400": "invalid_request / invalid_grant / unsupported_grant_type",
                    "401": "invalid_client",
                },
                error_schema=OAUTH_ERROR,
                body={
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    k: {"type": "string"}
                                    for k in (
                                        "grant_type",
                                        "code",
                                        "redirect_uri",
                                        "client_id",
                                        "client_secret",
                                        "code_verifier",
                                    )
                                },
                            }
                        }
                    },
                },
            )
        },
        f"{api}/openapi.json": {"get": op("This document", {"200": "OpenAPI 3"}, auth=False)},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hubkit hub API (JupyterHub-compatible)",
            "version": __version__,
            "description": f"Wire-compatible with JupyterHub {JUPYTERHUB_COMPAT_VERSION}'s REST API. Authenticate with "
            "`Authorization: token <t>` or `Authorization: Bearer <t>`.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization"}}
        },
        "security": [{"token": []}],
        "paths": paths,
    }


def routes(api: str) -> list[Route]:
    doc = document(api)

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(doc)

    return [Route(f"{api}/openapi.json", openapi, methods=["GET"])]
