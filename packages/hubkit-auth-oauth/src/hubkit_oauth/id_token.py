"""ID token verification: signature against the provider's JWKS, then ``iss``, ``aud``/``azp``, ``exp``, ``nonce``.

Each failure says in plain words what was wrong, because each has a different fix (clock, config, retry).
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Collection
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from .jwks import JWKSCache
from .refusal import LoginRefused, printable

_KTY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


class InvalidIDToken(LoginRefused):
    """The provider's sign-in token failed verification."""


def _bad(what: str) -> InvalidIDToken:
    what = printable(what, 200)
    return InvalidIDToken(f"The sign-in token from the login provider was rejected: {what}. Start the login again.",
                          reason=f"ID token rejected: {what}")


async def verify_id_token(
    token: str,
    *,
    jwks: JWKSCache,
    issuer: Callable[[dict[str, Any]], str],
    client_id: str,
    nonce: str | None,
    algorithms: Collection[str],
    leeway: float,
    now: float | None = None,
) -> dict[str, Any]:
    """Verified claims of ``token``. ``issuer(claims)`` gives the expected ``iss`` (multi-tenant providers
    derive it from the token's tenant). ``nonce=None`` skips the nonce check (refreshed tokens)."""
    try:
        compact = jws.extract_compact(token.encode())
    except (JoseError, ValueError):
        raise _bad("it is not a well-formed signed token") from None
    header = dict(compact.headers())
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise _bad(f"it uses the signature algorithm {alg!r}, which the hub does not accept")
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    keys = await jwks.keys_for(kid, _KTY.get(alg[:2], "RSA"))
    if not keys:
        raise _bad("it is signed by a key the provider does not publish (unknown key)")
    for key in keys:
        try:
            verified = jws.deserialize_compact(token, key, algorithms=[alg])
            break
        except JoseError:
            continue
    else:
        raise _bad("its signature is not valid")
    try:
        claims = json.loads(verified.payload)
    except ValueError:
        raise _bad("its contents are unreadable") from None
    if not isinstance(claims, dict):
        raise _bad("its contents are unreadable")
    check_claims(claims, issuer=issuer(claims), client_id=client_id, nonce=nonce, leeway=leeway, now=now)
    return claims


def check_claims(claims: dict[str, Any], *, issuer: str, client_id: str, nonce: str | None, leeway: float,
                 now: float | None = None) -> None:
    now = time.time() if now is None else now
    if claims.get("iss") != issuer:
        raise _bad(f"it was issued by {str(claims.get('iss'))[:100]!r}, not the configured issuer {issuer!r}")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if client_id not in audiences:
        raise _bad("it was issued for a different application (wrong audience)")
    if len(audiences) > 1 and claims.get("azp") not in (None, client_id):
        raise _bad("it was issued to a different authorized party (azp)")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise _bad("it has no expiry time")
    if exp + leeway < now:
        raise _bad("it has expired (if this keeps happening, the hub's clock may be wrong)")
    iat = claims.get("iat")
    if isinstance(iat, int | float) and iat - leeway > now:
        raise _bad("it was issued in the future (the hub's or the provider's clock is wrong)")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise _bad("it does not name a subject (sub)")
    if nonce is not None:
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
            raise _bad("it does not belong to this login attempt (nonce mismatch)")
