"""Bad ``--from`` values get one clear line and change nothing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hubkit.errors import ConfigError
from hubkit.importers.jupyterhub.source import SourceError, read_jupyterhub, source_url

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///does/not/exist.sqlite", "no such file"),
        ("sqlite://", "name the JupyterHub SQLite file"),
        ("mysql://u@127.0.0.1/jh", "unsupported database 'mysql'"),
        ("not a url", "not a database URL"),
    ],
)
def test_bad_source_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        source_url(url)
    assert message in str(exc.value)


async def test_databases_that_are_not_jupyterhubs(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(SourceError) as exc:
        await read_jupyterhub(f"sqlite:///{other}")
    assert "not a JupyterHub database: no table groups, user_group_map, spawners, api_tokens" in str(exc.value)
    old = tmp_path / "old.sqlite"
    con = sqlite3.connect(old)
    for table, cols in [
        ("users", "id, name, admin"),
        ("groups", "id, name"),
        ("user_group_map", "user_id, group_id"),
        ("spawners", "id, user_id, name"),
        ("api_tokens", "id, hashed, prefix, user_id"),
    ]:
        con.execute(f"CREATE TABLE {table} ({cols})")
    con.commit()
    con.close()
    with pytest.raises(SourceError) as exc:
        await read_jupyterhub(f"sqlite:///{old}")
    assert "predates JupyterHub 3.0" in str(exc.value) and "jupyterhub upgrade-db" in str(exc.value)
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database\n" * 50)
    with pytest.raises(SourceError) as exc:
        await read_jupyterhub(f"sqlite:///{junk}")
    assert "cannot read" in str(exc.value)


def test_cli_says_it_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "hubkit.toml"
    config.write_text(f'[hub]\ndata_dir = "{tmp_path / "data"}"\n')
    r = subprocess.run(
        [sys.executable, "-m", "hubkit.cli", "-f", str(config), "import-jupyterhub", "--from",
         f"sqlite:///{tmp_path}/missing.sqlite"],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"hubkit: error: --from: no such file: {tmp_path}/missing.sqlite"]
    assert not (tmp_path / "data" / "hubkit.sqlite").exists()
