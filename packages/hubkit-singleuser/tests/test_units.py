"""Pure parts: scope matching and the environment contract's validation (bad input → clear errors)."""

from __future__ import annotations

import pytest

from hubkit_singleuser.hubenv import HubEnv, HubEnvError
from hubkit_singleuser.launcher import choose_app
from hubkit_singleuser.logscrub import scrub
from hubkit_singleuser.oauth import pkce_challenge, safe_next
from hubkit_singleuser.scopes import allowed

BASE = {
    "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:4321/user/alice/",
    "JUPYTERHUB_API_TOKEN": "t",
    "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-alice",
}


def test_scopes() -> None:
    need = ["access:servers!server=alice/", "access:servers!user=alice"]
    assert allowed(["access:servers!user=alice"], ["access:servers!server=alice/nb1"])
    assert allowed(["access:servers"], need)
    assert not allowed(["access:servers!user=al"], need)
    assert not allowed(["access:servers!server=alice/x"], ["access:servers!server=alice/"])
    assert not allowed([], need)
    assert not allowed(["access:servers"], [])
    assert allowed(["access:services!service=s"], ["access:services!service=s"])


def test_env_parsing() -> None:
    env = HubEnv.from_environ({**BASE, "JUPYTERHUB_OAUTH_ACCESS_SCOPES": '["access:servers!server=alice/"]'})
    assert (env.bind_ip, env.bind_port, env.service_prefix) == ("127.0.0.1", 4321, "/user/alice/")
    assert env.oauth_callback_url == "/user/alice/oauth_callback"
    assert env.authorize_url == "/hub/api/oauth2/authorize"
    assert env.activity_interval == 300


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"JUPYTERHUB_SERVICE_URL": ""}, "missing JUPYTERHUB_SERVICE_URL"),
        ({"JUPYTERHUB_API_TOKEN": ""}, "missing JUPYTERHUB_API_TOKEN"),
        ({"JUPYTERHUB_SERVICE_URL": "127.0.0.1:80"}, "must be http(s)://ip:port"),
        ({"JUPYTERHUB_OAUTH_ACCESS_SCOPES": "access:servers"}, "JSON list"),
        ({"JUPYTERHUB_OAUTH_ACCESS_SCOPES": '{"a": 1}'}, "JSON list"),
        ({"JUPYTERHUB_ACTIVITY_INTERVAL": "soon"}, "number of seconds"),
        ({"JUPYTERHUB_ACTIVITY_INTERVAL": "-1"}, "positive"),
    ],
)
def test_env_errors(extra: dict[str, str], message: str) -> None:
    with pytest.raises(HubEnvError, match=message.replace("(", r"\(").replace(")", r"\)")):
        HubEnv.from_environ({**BASE, **extra})


def test_pkce_and_next() -> None:
    # RFC 7636 appendix B example
    assert (
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    assert safe_next("/user/alice/lab?x=1", "/user/alice/", "/d") == "/user/alice/lab?x=1"
    for bad in ("https://evil/", "//evil/user/alice/", "/user/bob/", "/hub/home"):
        assert safe_next(bad, "/user/alice/", "/d") == "/d"


def test_choose_app() -> None:
    assert choose_app({"HUBKIT_SINGLEUSER_APP": "server"}) == "jupyter_server.serverapp:ServerApp"
    assert choose_app({"JUPYTERHUB_SINGLEUSER_APP": "jupyterlab"}) == "jupyterlab.labapp:LabApp"
    assert choose_app({"HUBKIT_SINGLEUSER_APP": "my.mod.App"}) == "my.mod:App"
    assert choose_app({}) == "jupyterlab.labapp:LabApp"


def test_launcher_refuses_without_hub_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hubkit_singleuser import launcher

    for k in BASE:
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(SystemExit) as e:
        launcher.main([])
    assert e.value.code == 2
    assert "missing JUPYTERHUB_SERVICE_URL" in capsys.readouterr().err


def test_slow_optional_import_is_skipped_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from hubkit_singleuser.launcher import skip_slow_optional_imports

    monkeypatch.delitem(sys.modules, "rfc3987_syntax", raising=False)
    assert skip_slow_optional_imports({"HUBKIT_SINGLEUSER_IRI_FORMATS": "1"}) == []
    assert "rfc3987_syntax" not in sys.modules
    assert skip_slow_optional_imports({}) == ["rfc3987_syntax"]
    with pytest.raises(ImportError):
        import rfc3987_syntax  # noqa: F401
    monkeypatch.delitem(sys.modules, "rfc3987_syntax")


def test_log_scrub() -> None:
    assert scrub("403 GET /user/a/api/status?token=abc123 (127.0.0.1)") == (
        "403 GET /user/a/api/status?token=[secret] (127.0.0.1)"
    )
    line = "GET /user/a/oauth_callback?code=C0DE&state=ST&next=/lab uri='/x?access_token=T'"
    assert scrub(line) == "GET /user/a/oauth_callback?code=[secret]&state=[secret]&next=/lab uri='/x?access_token=[secret]'"
    assert scrub("GET /user/a/lab?reset (no secret)") == "GET /user/a/lab?reset (no secret)"


def test_auth_cache_seconds() -> None:
    assert HubEnv.from_environ(BASE).auth_cache_seconds == 10
    assert HubEnv.from_environ({**BASE, "HUBKIT_SINGLEUSER_AUTH_CACHE_SECONDS": "2.5"}).auth_cache_seconds == 2.5
    assert HubEnv.from_environ({**BASE, "HUBKIT_SINGLEUSER_AUTH_CACHE_SECONDS": "0"}).auth_cache_seconds == 0
    for bad in ("soon", "-1", "nan", "1e9"):
        with pytest.raises(HubEnvError, match="HUBKIT_SINGLEUSER_AUTH_CACHE_SECONDS"):
            HubEnv.from_environ({**BASE, "HUBKIT_SINGLEUSER_AUTH_CACHE_SECONDS": bad})
