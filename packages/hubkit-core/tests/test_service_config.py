"""``[[services]]``: bad entries are refused at startup with the key and the reason (and never the token), the
environment a managed service gets, and the commented section of ``--generate-config``."""

from __future__ import annotations

import json
import re
import tomllib

import pytest
from hubkit.config.loader import load_settings
from hubkit.config.models import ServiceConfig
from hubkit.errors import ConfigError
from hubkit.hubservices import env, registry
from hubkit.urls import HubUrls

SECRET = "s3cret-token-4d2f"


def _load(tmp_path, body: str):
    cfg = tmp_path / "h.toml"
    cfg.write_text(body)
    return load_settings(cfg, env={})


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            '[[services]]\nname = "a"\n[[services]]\nname = "a"\n',
            "services: services.0 and services.1 have the same name 'a'",
        ),
        ('[[services]]\nname = "../etc"\n', "services.0.name: a service name is 1-100 ASCII letters"),
        ('[[services]]\nname = "a/b"\n', "services.0.name: a service name is"),
        ('[[services]]\nname = "caf\\u00e9"\n', "services.0.name: a service name is"),
        ('[[services]]\nname = "a b"\n', "services.0.name:"),
        ('[[services]]\nname = ""\n', "services.0.name:"),
        ('[[services]]\nname = "%2e%2e"\n', "services.0.name:"),
        ('[[services]]\nurl = "http://127.0.0.1:1"\n', "services.0.name: Field required"),
        (
            '[[services]]\nname = "x"\nurl = "127.0.0.1:9000"\n',
            "services.0.url: url must start with http:// or https:// and name a host",
        ),
        ('[[services]]\nname = "x"\nurl = "ftp://h:21"\n', "services.0.url: url must start with http://"),
        (
            '[[services]]\nname = "x"\nurl = "http://h:1/sub"\n',
            "services.0.url: url must be only scheme://host:port",
        ),
        ('[[services]]\nname = "x"\nurl = "http://h:0"\n', "services.0.url: url: choose a port"),
        (
            '[[services]]\nname = "x"\ncwd = "/tmp"\n',
            "services.0: cwd is set, but it only applies to a managed",
        ),
        (
            '[[services]]\nname = "x"\noauth_client_id = "x"\n',
            "services.0.oauth_client_id: oauth_client_id must start",
        ),
        ('[[services]]\nname = "x"\nenvironment = {"A" = "1"}\n', "services.0: environment is set"),
        (
            '[[services]]\nname = "x"\ncommand = ["y"]\nenvironment = {"A B" = "1"}\n',
            "services.0.environment: environment variable name 'A B' is not valid",
        ),
        (
            '[[services]]\nname = "x"\ncommand = ["y", ""]\n',
            "services.0.command: command parts must be non-empty",
        ),
        ('[[services]]\nname = "x"\nadmn = true\n', "services.0.admn: unknown key"),
    ],
)
def test_bad_services_are_refused_naming_the_key(tmp_path, body, needle):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, body)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        f'[[services]]\nname = "x"\napi_token = "{SECRET[:5]}"\n',  # too short: the value is not echoed
        f'[[services]]\nname = "x"\napi_token = "{SECRET} x"\n',
        f'[[services]]\nname = "a"\napi_token = "{SECRET}"\n[[services]]\nname = "b"\napi_token = "{SECRET}"\n',
        f'[[services]]\nname = "a"\napi_token = "{SECRET}"\ncwd = "/"\n',
    ],
)
def test_token_errors_never_show_the_token(tmp_path, body):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, body)
    assert SECRET[:5] not in str(info.value), str(info.value)
    assert "services" in str(info.value)


URLS = HubUrls.build("/", "http://127.0.0.1:8081")


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"name": "x", "scopes": ["read:usrs"]}, "services.0.scopes: unknown scope 'read:usrs'"),
        ({"name": "x", "oauth_client_allowed_scopes": ["a!b"]}, "services.0.oauth_client_allowed_scopes"),
        ({"name": "x", "command": ["true"], "user": "no-such-account-hk"}, "services.0.user: no OS account"),
        (
            {"name": "x", "oauth_no_confirm": True},
            "services.0: OAuth is configured but there is no redirect URI",
        ),
        (
            {"name": "x", "oauth_redirect_uri": "https://svc.example/cb"},
            "services.0: an OAuth client needs a secret",
        ),
    ],
)
def test_checks_after_parsing(entry, needle):
    with pytest.raises(ConfigError) as info:
        registry.check([ServiceConfig.model_validate(entry)], URLS)
    assert needle in str(info.value)


def test_cli_refuses_a_bad_service_with_exit_2(tmp_path, run_cli):
    cfg = tmp_path / "h.toml"
    cfg.write_text(f'[hub]\ndata_dir = "{tmp_path}"\n[[services]]\nname = "x"\nurl = "localhost:9000"\n')
    r = run_cli("-f", str(cfg))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "services.0.url: url must start with http:// or https://" in r.stderr
    assert "Traceback" not in r.stderr
    cfg.write_text(f'[hub]\ndata_dir = "{tmp_path}"\n[[services]]\nname = "x"\nscopes = ["nope"]\n')
    r = run_cli("-f", str(cfg), "config", "show")
    assert r.returncode == 2 and "services.0.scopes: unknown scope 'nope'" in r.stderr, r.stderr


@pytest.mark.anyio
async def test_the_hub_refuses_to_start_with_a_bad_service(tmp_path):
    from hubkit.runtime.hub import Hub
    from hubkit.testing.plugin import make_settings

    settings = make_settings(tmp_path, services=[{"name": "x", "scopes": ["admin:everything"]}])
    with pytest.raises(ConfigError, match=re.escape("services.0.scopes: unknown scope 'admin:everything'")):
        await Hub.create(settings, load_entry_points=False)
    assert not (tmp_path / "hubkit-test.sqlite").exists()  # refused before touching the database


def test_url_is_reduced_to_its_origin():
    svc = ServiceConfig(name="x", url="http://127.0.0.1:9000/")
    assert svc.url == "http://127.0.0.1:9000"


def test_managed_service_environment():
    urls = HubUrls.build("/jh/", "http://10.0.0.5:8081", "https://hub.example.org")
    svc = ServiceConfig(
        name="greeter",
        url="http://127.0.0.1:10101",
        command=["greet"],
        environment={"EXTRA": "1", "JUPYTERHUB_SERVICE_NAME": "spoofed", "JUPYTERHUB_API_TOKEN": "mine"},
        oauth_client_allowed_scopes=["read:users:name!user"],
    )
    api = env.local_api_url("http://0.0.0.0:8081", urls.base_url)
    assert api == "http://127.0.0.1:8081/jh/hub/api"
    e = env.build_env(
        svc,
        token="t0k3n",
        api_url=api,
        urls=urls,
        inherited={"PATH": "/bin", "SECRET_OF_HUB": "x", "LANG": "C"},
    )
    assert e["PATH"] == "/bin" and e["LANG"] == "C" and "SECRET_OF_HUB" not in e  # only env_keep passes
    assert e["JUPYTERHUB_API_TOKEN"] == "mine" and e["JPY_API_TOKEN"] == "t0k3n"  # environment wins ...
    assert e["JUPYTERHUB_SERVICE_NAME"] == "greeter"  # ... except for the service's name and address
    assert e["JUPYTERHUB_SERVICE_URL"] == "http://127.0.0.1:10101"
    assert e["JUPYTERHUB_SERVICE_PREFIX"] == "/jh/services/greeter/"
    assert e["JUPYTERHUB_API_URL"] == "http://127.0.0.1:8081/jh/hub/api"
    assert e["JUPYTERHUB_BASE_URL"] == "/jh/"
    assert e["JUPYTERHUB_CLIENT_ID"] == "service-greeter"
    assert e["JUPYTERHUB_OAUTH_CALLBACK_URL"] == "/jh/services/greeter/oauth_callback"
    assert json.loads(e["JUPYTERHUB_OAUTH_ACCESS_SCOPES"]) == [
        "access:services",
        "access:services!service=greeter",
    ]
    assert e["JUPYTERHUB_OAUTH_SCOPES"] == e["JUPYTERHUB_OAUTH_ACCESS_SCOPES"]
    assert json.loads(e["JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES"]) == ["read:users:name!user"]
    assert e["JUPYTERHUB_PUBLIC_URL"] == "https://hub.example.org/jh/services/greeter/"
    assert e["JUPYTERHUB_PUBLIC_HUB_URL"] == "https://hub.example.org/jh/hub/"
    assert e["EXTRA"] == "1" and "JUPYTERHUB_ACTIVITY_URL" not in e
    # without a url: no address, no OAuth callback
    bare = env.build_env(
        ServiceConfig(name="cull", command=["c"]), token="t", api_url=api, urls=urls, inherited={}
    )
    assert "JUPYTERHUB_SERVICE_URL" not in bare and "JUPYTERHUB_SERVICE_PREFIX" not in bare
    assert "JUPYTERHUB_OAUTH_CALLBACK_URL" not in bare and bare["JUPYTERHUB_SERVICE_NAME"] == "cull"


def test_generate_config_has_a_commented_services_section_whose_examples_load(tmp_path, run_cli):
    out = tmp_path / "gen.toml"
    r = run_cli("--generate-config", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "services" not in tomllib.loads(text)  # commented out
    assert "# [[services]]  -- Hub services" in text
    for key in ServiceConfig.model_fields:
        assert re.search(rf"^# {key} =", text, re.M), key
    # the examples, uncommented, are a valid configuration
    examples = text[text.index("# Two examples.") :].split("\n\n")[0]
    body = "\n".join(line[2:] for line in examples.splitlines() if re.match(r"# (\[\[|\w+ = )", line))
    cfg = tmp_path / "examples.toml"
    cfg.write_text(f'[hub]\ndata_dir = "{tmp_path}"\n' + body + "\n")
    settings = load_settings(cfg, env={})
    assert [s.name for s in settings.services] == ["idle-culler", "dashboard"]
    assert settings.services[0].managed and settings.services[0].scopes == [
        "list:users",
        "read:users:activity",
        "read:servers",
        "delete:servers",
    ]
    r = run_cli("-f", str(cfg), "config", "show")
    assert r.returncode == 0, r.stderr
    assert "idle-culler" in r.stdout


def test_config_show_masks_a_service_token(tmp_path, run_cli):
    cfg = tmp_path / "h.toml"
    cfg.write_text(f'[hub]\ndata_dir = "{tmp_path}"\n[[services]]\nname = "x"\napi_token = "{SECRET}"\n')
    r = run_cli("-f", str(cfg), "config", "show")
    assert r.returncode == 0, r.stderr
    assert SECRET not in r.stdout and "********" in r.stdout
