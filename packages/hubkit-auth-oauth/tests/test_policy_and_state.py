"""The shared access policy, the login-state codec and config guards, without any provider."""

from __future__ import annotations

import pytest
from hubkit.errors import AuthFailed
from hubkit.interfaces import LoginKind
from hubkit.plugins.registry import BackendRegistry, HubInfo
from hubkit_oauth import AccessDenied, AccessPolicy, Identity, OAuthConfig, OIDCAuthenticator, OIDCConfig
from hubkit_oauth import plugin as oauth_plugin
from hubkit_oauth.identity import claim, group_names
from hubkit_oauth.login_state import LoginState, safe_next_url
from pydantic import ValidationError


def policy(**options: object) -> AccessPolicy:
    return AccessPolicy(OAuthConfig(client_id="c", **options))  # type: ignore[arg-type]


def test_allow_rules_blocked_and_admin() -> None:
    p = policy(allowed_users=["Ann"], allowed_email_domains=["@Uni.example"], allowed_groups=["lab"],
               blocked_users=["eve"], admin_groups=["ops"])
    assert p.decide(Identity("ann")).admin is False  # allowed users compare lower-cased
    assert p.decide(Identity("bo", email="bo@uni.example", email_verified=True)).groups == ()
    assert p.decide(Identity("cy", groups=("lab",))).groups == ("lab",)
    assert p.decide(Identity("ops-person", groups=("ops",))).admin is True  # admins are always allowed in
    with pytest.raises(AccessDenied, match="blocked"):
        p.decide(Identity("eve", groups=("lab", "ops")))
    with pytest.raises(AccessDenied, match="not verified"):
        p.decide(Identity("dee", email="dee@uni.example", email_verified=False))
    with pytest.raises(AccessDenied, match="not on the list of allowed users"):
        p.decide(Identity("zed", email="zed@elsewhere.example", email_verified=True))
    # no admin rule configured: the authenticator has no opinion, the hub keeps what it has
    assert policy(allow_all=True).decide(Identity("x")).admin is None


def test_group_mapping_is_one_place() -> None:
    p = policy(allow_all=True, group_map={"Staff": "staff"}, group_prefix="ext-")
    assert p.map_groups(("Staff", "physics/lab", "a b")) == ("ext-a_b", "ext-physics:lab", "staff")
    assert policy(allow_all=True, manage_groups=False).map_groups(("x",)) is None
    assert policy(allow_all=True, only_mapped_groups=True, group_map={"x": "y"}).map_groups(("x", "z")) == ("y",)


def test_claim_paths_and_group_shapes() -> None:
    claims = {"realm_access": {"roles": ["a", "b"]}, "https://hub/groups": "c, d", "objs": [{"name": "e"}]}
    assert group_names(claim(claims, "realm_access.roles")) == ("a", "b")
    assert group_names(claim(claims, "https://hub/groups")) == ("c", "d")
    assert group_names(claim(claims, "objs")) == ("e",)
    assert group_names(claim(claims, "missing.path")) == ()


def test_login_state_round_trip_and_tampering() -> None:
    s = LoginState.new("/user/ann/lab?x=1")
    back = LoginState.decode(s.encode())
    assert back == s and back.next_url == "/user/ann/lab?x=1"
    assert len({s.state, s.nonce, s.verifier}) == 3 and len(s.verifier) >= 43
    for bad in ("", "v1.", "v2." + s.encode()[3:], s.encode()[:-4], "v1.bm90IGpzb24"):
        with pytest.raises(AuthFailed, match="could not be read"):
            LoginState.decode(bad)
    with pytest.raises(AuthFailed, match="expired"):
        s.check_age(600, now=s.issued_at + 601)


@pytest.mark.parametrize("url", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)",
                                 "/\\evil.example", "hub/home", "/x\r\nSet-Cookie: a=b"])
def test_next_url_cannot_leave_the_hub(url: str) -> None:
    assert safe_next_url(url) == ""


def test_config_guards() -> None:
    with pytest.raises(ValidationError, match="must use https"):
        OIDCConfig(client_id="c", issuer="http://idp.example.org")
    with pytest.raises(ValidationError, match="unsafe ID token algorithms"):
        OIDCConfig(client_id="c", issuer="https://idp.example.org", id_token_algorithms=["HS256"])
    with pytest.raises(ValidationError, match="client_id"):
        OIDCConfig(issuer="https://idp.example.org")  # type: ignore[call-arg]
    OIDCConfig(client_id="c", issuer="http://127.0.0.1:9000")  # loopback test providers are fine


def test_plugin_registers_every_backend_and_login_url() -> None:
    registry: BackendRegistry[object] = BackendRegistry("auth")
    oauth_plugin.hubkit_register_authenticators(registry)
    assert registry.names() == ["auth0", "azuread", "github", "gitlab", "google", "oidc"]
    hub = HubInfo(hub_id="t", data_dir="/tmp", hub_api_url="", hub_url="", public_url="https://hub.example",
                  base_url="/jh/")
    auth = OIDCAuthenticator(OIDCConfig(client_id="c", issuer="https://idp.example.org", allow_all=True), hub)
    assert auth.login_kind is LoginKind.REDIRECT
    assert auth.login_url("/jh/user/a/?x=1") == "/jh/hub/oauth_login?next=%2Fjh%2Fuser%2Fa%2F%3Fx%3D1"
    assert auth.post_logout_redirect_url() == "https://hub.example/jh/hub/login"
