"""Configuration: precedence, and bad config (unknown key, wrong type, unknown backend, unreadable file)
exits 2 with a message naming the file/variable, the key and what was expected."""

from __future__ import annotations

import os
import tomllib

import pytest
from hubkit.config.loader import load_settings
from hubkit.errors import ConfigError


def test_precedence_file_env_flags(tmp_path):
    cfg = tmp_path / "h.toml"
    cfg.write_text(
        '[hub]\nport = 1000\nip = "127.0.0.2"\nadmin_users = ["a"]\n[spawner.test]\nmode = "process"\n'
    )
    s = load_settings(cfg, env={"HUBKIT_HUB__PORT": "2000", "HUBKIT_HUB__ADMIN_USERS": '["b", "c"]'})
    assert s.hub.port == 2000 and s.hub.ip == "127.0.0.2" and s.hub.admin_users == ["b", "c"]
    assert s.spawner.backends == {"test": {"mode": "process"}}
    s = load_settings(cfg, env={"HUBKIT_HUB__PORT": "2000"}, overrides={"hub": {"port": 3000}})
    assert s.hub.port == 3000


@pytest.mark.parametrize(
    ("body", "env", "needle"),
    [
        ("[hub]\nprot = 8000\n", {}, "h.toml: hub.prot: unknown key"),
        ("[hub]\nport = 'eight'\n", {}, "h.toml: hub.port: Input should be a valid integer"),
        ("[hub]\nport = 8000\n", {"HUBKIT_HUB__PORT": "x"}, "environment HUBKIT_HUB__PORT: hub.port"),
        ("[hubb]\nport = 8000\n", {}, "h.toml: hubb: unknown key"),
        ("[hub\n", {}, "h.toml: not valid TOML"),
    ],
)
def test_bad_config_messages(tmp_path, body, env, needle):
    cfg = tmp_path / "h.toml"
    cfg.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env=env)
    assert needle in str(info.value)


def _write(tmp_path, body: str):
    cfg = tmp_path / "h.toml"
    cfg.write_text(f'[hub]\ndata_dir = "{tmp_path}"\n' + body)
    return cfg


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("sprot = 1\n", "hub.sprot: unknown key"),
        ("port = 'x'\n", "hub.port: Input should be a valid integer"),
        ('[spawner]\nbackend = "dockr"\n', "unknown spawner backend 'dockr'; installed: none"),  # stand-in: only when configured
        ('[proxy]\nbackend = "nope"\n', "unknown proxy backend 'nope'; installed: none"),
        ('[spawner.test]\nmode = "fast"\n', "spawner.test.mode: Input should be 'inprocess' or 'process'"),
        ("[spawner.dockr]\nimage = 'x'\n", "spawner.dockr: section for unknown spawner backend 'dockr'"),
        ("[plugins.nothing]\nx = 1\n", "plugins.nothing: no installed plugin declares this section"),
    ],
)
def test_cli_exits_2_naming_the_problem(tmp_path, run_cli, body, needle):
    cfg = _write(tmp_path, body)
    r = (
        run_cli("-f", str(cfg), "config", "show")
        if "backend" not in needle and "section" not in needle
        else None
    )
    if r is None:  # backend names are checked once plugins are loaded: `db upgrade` loads them
        r = run_cli("-f", str(cfg), "db", "upgrade")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr
    assert "Traceback" not in r.stderr


def test_unreadable_and_missing_file(tmp_path, run_cli):
    missing = tmp_path / "nope.toml"
    r = run_cli("-f", str(missing))
    assert r.returncode == 2 and f"{missing}: config file not found" in r.stderr
    locked = tmp_path / "locked.toml"
    locked.write_text("[hub]\n")
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads anything: use a directory, which no one can read as a file
        locked = tmp_path
    r = run_cli("-f", str(locked))
    assert r.returncode == 2 and str(locked) in r.stderr and "cannot read config file" in r.stderr


def test_generate_config_is_valid_and_complete(tmp_path, run_cli):
    out = tmp_path / "gen.toml"
    r = run_cli("--generate-config", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    tomllib.loads(text)  # commented defaults: a valid, empty configuration
    for needle in (
        "[hub]",
        "# port = 8000",
        "# concurrent_spawn_limit = 100",
        "# [spawner.stand-in]",
        '# mode = "inprocess"',
        "# [auth.dummy]",
        "Shared password",
    ):
        assert needle in text
    # the file loads cleanly as a config
    r = run_cli("-f", str(out), "config", "show")
    assert r.returncode == 0, r.stderr
    # refuse to overwrite
    again = run_cli("--generate-config", str(out))
    assert again.returncode == 2 and "exists already" in again.stderr


def test_config_show_masks_secrets(tmp_path, run_cli):
    cfg = _write(
        tmp_path,
        'db_url = "postgresql://hub:pw-Q7x2v@db/hub"\ncrypt_keys = ["key-Zr81wq"]\n'
        '[auth.dummy]\npassword = "hunter2-Kp3"\n',
    )
    r = run_cli("-f", str(cfg), "config", "show")
    assert r.returncode == 0, r.stderr
    # Secrets distinctive enough that no tmp path or default can contain them by chance ("k1" once matched
    # a random temp-dir name in CI).
    for secret in ("pw-Q7x2v", "key-Zr81wq", "hunter2-Kp3"):
        assert secret not in r.stdout
    shown = tomllib.loads(r.stdout)
    assert shown["auth"]["dummy"]["password"] == "********"
    assert shown["hub"]["crypt_keys"] == "********"


def test_token_and_plugins_commands(tmp_path, run_cli):
    cfg = _write(tmp_path, "")
    r = run_cli("-f", str(cfg), "token", "alice")
    assert r.returncode == 1 and "no user 'alice'" in r.stderr
    r = run_cli("-f", str(cfg), "token", "alice", "--create", "--scopes", "read:users")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert len(token) == 32
    import asyncio

    from hubkit.auth.tokens import lookup_token
    from hubkit.storage.engine import create_engine, create_sessionmaker, normalize_url

    async def check():
        engine = create_engine(normalize_url(f"sqlite:///{tmp_path}/hubkit.sqlite"))
        async with create_sessionmaker(engine)() as s:
            row = await lookup_token(s, token)
            assert row is not None and row.scopes == ["read:users"]
        await engine.dispose()

    asyncio.run(check())
    r = run_cli("plugins")
    assert r.returncode == 0
    assert "standin (hubkit-core): hubkit_register_spawners" in r.stdout
    assert "  stand-in: stand-in servers for tests" in r.stdout
    assert "  test: former name of stand-in" in r.stdout
